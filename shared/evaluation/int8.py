"""Calibrating an int8 build: a network's activation ranges measured on real aligned faces, each face and its mirror
as one batch, as the embedder feeds them (the chip is cut straight from the photo here, where the embedder cuts it
from the face crop: the same fit, one resampling fewer). The faces come from LFW's development images that no test
pair uses, so the figures `argus eval lfw` prints are not measured on the calibration set."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from argus.config import Settings
from argus.evaluation.lfw import IMAGES_SUBDIR, pair_images, read_pairs
from argus.imaging import decode_image
from argus.models.manifest import INT8_BUILDS, MANIFEST
from argus.models.quantize import measure_ranges, quantiser_version, ranges_document
from argus.models.store import ModelStore
from argus.services.detector.faces import FaceDetector, largest
from argus.services.embedder.models import EMBEDDING_MODELS, EmbeddingModel


def development_only_images(lfw_dir: Path) -> list[str]:
    """The images of pairsDevTest.txt that pairs.txt (the 10 test folds) does not use, sorted."""
    test = set(pair_images(read_pairs(lfw_dir / "pairs.txt")))
    return sorted(set(pair_images(read_pairs(lfw_dir / "pairsDevTest.txt"))) - test)


def calibration_inputs(
    detector: FaceDetector, network: EmbeddingModel, lfw_dir: Path, images: list[str], settings: Settings
) -> Iterator[np.ndarray]:
    """For each image with a face, the network's input for its largest face and that face's mirror, as a batch."""
    for name in images:
        encoded = (lfw_dir / IMAGES_SUBDIR / name).read_bytes()
        image = decode_image(encoded, max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels)
        face = largest(detector.detect([image], detector.defaults)[0])
        if face is None:
            continue
        tensor = network.to_input(network.crop(image, np.asarray(face.landmarks, dtype=np.float64)))
        yield np.stack([tensor, network.mirrored(tensor)])


def calibrate(store: ModelStore, settings: Settings, name: str, lfw_dir: Path) -> dict[str, Any]:
    """The ranges document of the int8 build of the embedding network `name`, measured on its fp32 file."""
    source = INT8_BUILDS[name].quantized if name in INT8_BUILDS and name in EMBEDDING_MODELS else None
    if source is None:
        raise KeyError(f"{name!r} has no int8 build; these do: {', '.join(INT8_BUILDS)}")
    spec = MANIFEST[name]
    network = EMBEDDING_MODELS[name](store, settings)
    detector = FaceDetector(store, settings)
    images = development_only_images(lfw_dir)
    batches = list(calibration_inputs(detector, network, lfw_dir, images, settings))
    calibration_set = f"{source.calibration_set}: {len(batches)} faces of {len(images)} images"
    ranges = measure_ranges(store.require(spec), batches)
    return ranges_document(spec.ref, calibration_set, ranges, quantiser_version())
