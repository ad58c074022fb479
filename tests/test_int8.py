"""The int8 build of the dlib ResNet: made by the store from committed ranges, byte for byte the file the manifest
pins; run in the fp32 network's place on the CPU, giving that network's vectors; refused when it cannot be the
pinned file."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from argus.config import Settings
from argus.errors import ModelUnavailable
from argus.evaluation import int8
from argus.evaluation.lfw import read_pairs
from argus.imaging import decode_image
from argus.models import quantize
from argus.models.manifest import DLIB_RESNET, DLIB_RESNET_INT8, INT8_BUILDS
from argus.models.quantize import load_ranges, ranges_path
from argus.models.store import ModelState, ModelStore
from argus.services.detector.faces import FaceDetector
from argus.services.embedder.models import DlibResNet


def test_the_store_builds_the_pinned_bytes_from_the_committed_ranges(tmp_path: Path, settings: Settings) -> None:
    store = ModelStore(tmp_path / "store", settings.models_mirror)
    result = store.pull(DLIB_RESNET_INT8)
    assert result.source == "int8 build of dlib-resnet@v1"
    assert store.state(DLIB_RESNET) is ModelState.PRESENT  # the base came first
    assert store.state(DLIB_RESNET_INT8) is ModelState.PRESENT  # the sha256 the manifest pins
    assert INT8_BUILDS == {"dlib-resnet": DLIB_RESNET_INT8}


def test_another_quantiser_version_is_refused_before_any_work(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(quantize, "quantiser_version", lambda: "1.0.0")
    store = ModelStore(tmp_path / "store", settings.models_mirror)
    with pytest.raises(ModelUnavailable, match=r"pinned to the bytes onnxruntime 1\.31\.1's .* has 1\.0\.0"):
        store.pull(DLIB_RESNET_INT8)
    assert store.state(DLIB_RESNET_INT8) is ModelState.MISSING


def test_ranges_other_than_the_pinned_ones_are_refused(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = json.loads(ranges_path("dlib-resnet-v1.json").read_text())
    first = next(iter(document["ranges"]))
    document["ranges"][first][1] *= 2
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(document))
    monkeypatch.setattr(quantize, "ranges_path", lambda name: edited)
    store = ModelStore(tmp_path / "store", settings.models_mirror)
    with pytest.raises(ModelUnavailable, match="not the ones the manifest pins"):
        store.pull(DLIB_RESNET_INT8)
    assert store.state(DLIB_RESNET_INT8) is ModelState.MISSING


def test_it_runs_in_the_networks_place_on_the_cpu_when_turned_on(store: ModelStore, settings: Settings) -> None:
    assert DlibResNet(store, settings).precision == "fp32"  # the default: it costs a little accuracy
    model = DlibResNet(store, settings.model_copy(update={"int8": True}))
    assert model.precision == "int8" and model.spec.ref == "dlib-resnet@v1"  # it answers as the network it is
    on_a_gpu = settings.model_copy(update={"int8": True})
    gpu_model = DlibResNet(store, on_a_gpu)
    gpu_model.providers = lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]  # type: ignore[method-assign]
    assert gpu_model._weights() == (store.require(DLIB_RESNET), "fp32")  # a GPU runs the fp32 file


def test_without_its_build_the_network_runs_in_fp32_and_says_why(
    tmp_path: Path, store: ModelStore, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    only_fp32 = ModelStore(tmp_path / "store")
    only_fp32.path(DLIB_RESNET).parent.mkdir(parents=True)
    only_fp32.path(DLIB_RESNET).write_bytes(store.path(DLIB_RESNET).read_bytes())
    with caplog.at_level(logging.WARNING, logger="argus.models.runtime"):
        assert DlibResNet(only_fp32, settings.model_copy(update={"int8": True})).precision == "fp32"
    assert "argus models pull dlib-resnet-int8" in caplog.text and "runs in fp32" in caplog.text


def test_its_vectors_are_the_fp32_networks(store: ModelStore, settings: Settings, images_dir: Path) -> None:
    detector = FaceDetector(store, settings)
    quantised, exact = DlibResNet(store, settings.model_copy(update={"int8": True})), DlibResNet(store, settings)
    inputs = []
    for name in ("obama.jpg", "obama2.jpg", "biden.jpg", "two_people.jpg"):
        encoded = (images_dir / "faces" / name).read_bytes()
        image = decode_image(encoded, max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels)
        for face in detector.detect([image], detector.defaults)[0]:
            tensor = exact.to_input(exact.crop(image, np.asarray(face.landmarks, dtype=np.float64)))
            inputs += [tensor, exact.mirrored(tensor)]
    batch = np.stack(inputs)
    a, b = (model.run(batch)[model.embedding_output] for model in (quantised, exact))
    a, b = (v / np.linalg.norm(v, axis=1, keepdims=True) for v in (a, b))
    cosines = (a * b).sum(axis=1)
    assert len(cosines) >= 10 and cosines.min() > 0.998 and cosines.mean() > 0.999, cosines
    # and it still tells people apart: obama vs obama2 above obama vs biden, as in fp32
    assert float(a[0] @ a[2]) > float(a[0] @ a[4])


def test_the_committed_ranges_are_what_calibration_measures(
    store: ModelStore, settings: Settings, eval_dir: Path
) -> None:
    lfw = eval_dir / "lfw"
    images = int8.development_only_images(lfw)
    test_images = {name for pair in read_pairs(lfw / "pairs.txt") for name in (pair.path_a, pair.path_b)}
    assert len(images) == 419 and not test_images & set(images)
    measured = int8.calibrate(store, settings, "dlib-resnet", lfw)
    committed = load_ranges(ranges_path("dlib-resnet-v1.json"))
    assert measured["ranges"].keys() == committed.keys()
    for name, (lowest, highest) in committed.items():
        assert measured["ranges"][name] == pytest.approx([lowest, highest], rel=1e-3, abs=1e-4), name
    assert measured["tool"] == "onnxruntime==1.31.1" and measured["model"] == "dlib-resnet@v1"
