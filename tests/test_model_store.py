"""The model store: mirror copies and downloads are verified by sha256; a bad file never lands."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest

from argus.errors import ModelUnavailable
from argus.models.manifest import MANIFEST, YUNET, ModelSpec
from argus.models.store import ModelState, ModelStore, resolve_specs

PAYLOAD = b"not really a network, but bytes with a known hash"


def spec_for(payload: bytes, **changes: object) -> ModelSpec:
    base = replace(YUNET, name="tiny", file="tiny/model.onnx", sha256=hashlib.sha256(payload).hexdigest())
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture
def web_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A real HTTP server on loopback serving a folder."""
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_missing_model_error_says_how_to_get_it(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    with pytest.raises(ModelUnavailable, match=r"is missing .* run `argus models pull yunet-s`"):
        store.require(YUNET)


def test_pull_copies_from_the_mirror_and_verifies(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    (mirror / "tiny").mkdir(parents=True)
    (mirror / "tiny" / "model.onnx").write_bytes(PAYLOAD)
    store = ModelStore(tmp_path / "store", mirror)
    spec = spec_for(PAYLOAD, url="http://127.0.0.1:9/never-used")
    assert store.pull(spec).source == "mirror"
    assert store.require(spec).read_bytes() == PAYLOAD
    assert store.pull(spec).source == "already present"


def test_pull_refuses_a_mirror_file_with_the_wrong_hash(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    (mirror / "tiny").mkdir(parents=True)
    (mirror / "tiny" / "model.onnx").write_bytes(b"tampered")
    store = ModelStore(tmp_path / "store", mirror)
    with pytest.raises(ModelUnavailable, match=r"refusing tiny@.*sha256 is"):
        store.pull(spec_for(PAYLOAD))
    assert store.state(spec_for(PAYLOAD)) is ModelState.MISSING
    assert list((tmp_path / "store" / "tiny").iterdir()) == []  # no partial file left behind


def test_pull_downloads_by_url_when_no_mirror_has_it(tmp_path: Path, web_root: tuple[Path, str]) -> None:
    root, base_url = web_root
    (root / "m.onnx").write_bytes(PAYLOAD)
    store = ModelStore(tmp_path / "store", mirror=tmp_path / "empty-mirror")
    spec = spec_for(PAYLOAD, url=f"{base_url}/m.onnx")
    assert store.pull(spec).source == spec.url
    assert store.state(spec) is ModelState.PRESENT


def test_download_with_the_wrong_hash_is_refused(tmp_path: Path, web_root: tuple[Path, str]) -> None:
    root, base_url = web_root
    (root / "m.onnx").write_bytes(b"something else")
    store = ModelStore(tmp_path / "store")
    with pytest.raises(ModelUnavailable, match="refusing"):
        store.pull(spec_for(PAYLOAD, url=f"{base_url}/m.onnx"))


def test_unreachable_url_explains_the_mirror(tmp_path: Path, web_root: tuple[Path, str]) -> None:
    _, base_url = web_root
    store = ModelStore(tmp_path / "store")
    with pytest.raises(ModelUnavailable, match="ARGUS_MODELS_MIRROR"):
        store.pull(spec_for(PAYLOAD, url=f"{base_url}/absent.onnx"))


def test_a_corrupted_store_file_is_reported(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    spec = spec_for(PAYLOAD)
    store.path(spec).parent.mkdir(parents=True)
    store.path(spec).write_bytes(b"bit rot")
    assert store.state(spec) is ModelState.CORRUPT
    with pytest.raises(ModelUnavailable, match="fails its sha256 check"):
        store.require(spec)


def test_manifest_matches_the_mirror(models_dir: Path) -> None:
    store = ModelStore(models_dir)
    for spec in MANIFEST.values():
        assert store.state(spec) is ModelState.PRESENT, spec.name
        assert store.path(spec).stat().st_size == spec.size


def test_resolve_specs() -> None:
    assert resolve_specs([]) == list(MANIFEST.values())
    with pytest.raises(KeyError, match="unknown model"):
        resolve_specs(["nope"])


def test_a_derived_model_without_url_can_only_come_from_the_mirror(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store", mirror=tmp_path / "empty-mirror")
    spec = spec_for(PAYLOAD, url="")
    with pytest.raises(
        ModelUnavailable, match=r"tiny@.* has no download URL: it is a derived file; set ARGUS_MODELS_MIRROR"
    ):
        store.pull(spec)
    with pytest.raises(ModelUnavailable, match="this derived model has no download URL"):
        store.require(spec)
    assert store.state(spec) is ModelState.MISSING
    (tmp_path / "empty-mirror" / "tiny").mkdir(parents=True)
    (tmp_path / "empty-mirror" / "tiny" / "model.onnx").write_bytes(PAYLOAD)
    assert store.pull(spec).source == "mirror"
