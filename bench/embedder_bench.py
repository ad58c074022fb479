"""Embedding profiles' cost: CPU (or GPU) milliseconds per face, one face at a time and in batches.

    python bench/embedder_bench.py [--seconds S] [--quick] [--json [PATH]] [--images DIR] [--profiles a,b]

Every profile of argus.profiles is timed on the same faces (the face photos of the test images, detected once
up front): `embed` is what the embedder does per face for that profile (face crop, each network's crop, flip
augmentation when on, forward passes, normalising), called with one face at a time and with 16 faces at once;
`detect` is YuNet on the photo, which every profile pays once per photo on top. Nothing here asserts a speed: it
prints what it measured, all rows of one run on the same machine, so compare the ratios.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import harness
import numpy as np

from argus.alignment import FaceCrop, face_crop
from argus.config import Settings
from argus.imaging import decode_image
from argus.models.store import ModelStore
from argus.profiles import PROFILES
from argus.services.detector.faces import FaceDetector
from argus.services.embedder.embedder import FaceEmbedder

BATCH = 16
QUICK = {"seconds": 0.05}


@dataclass
class Row:
    profile: str
    models: str
    dimension: int
    ms_per_face_single: float  # one face per call
    ms_per_face_batched: float  # BATCH faces per call
    forwards_ms_per_face: float  # the profile's networks' bare forward passes for one face, one after the other
    detect_ms_per_photo: float  # with the landmarks' second look when ARGUS_FACE_REFINE_LANDMARKS is on
    first_look_ms_per_photo: float  # the detection pass alone


COLUMNS: list[harness.Column[Row]] = [
    harness.Column("profile", "profile"),
    harness.Column("dim", "dimension"),
    harness.Column("ms/face (1 per call)", "ms_per_face_single", ".1f"),
    harness.Column(f"ms/face ({BATCH} per call)", "ms_per_face_batched", ".1f"),
    harness.Column("forwards ms/face", "forwards_ms_per_face", ".1f"),
    harness.Column("x forwards", lambda r: f"{r.ms_per_face_single / r.forwards_ms_per_face:.2f}"),
    harness.Column(
        "detect ms/photo (first look)", lambda r: f"{r.detect_ms_per_photo:.1f} ({r.first_look_ms_per_photo:.1f})"
    ),
]


def mean_s(call: Callable[[], object], seconds: float) -> float:
    """Mean seconds per call over at least one call and about `seconds` in all (after one warm-up call)."""
    run = harness.repeat(call, seconds)
    return run.elapsed_s / run.calls


def embed_one_by_one(embedder: FaceEmbedder, crops: list[FaceCrop], models: Sequence[str]) -> None:
    for crop in crops:
        embedder.embed_crops([crop], models)


def forward_s(embedder: FaceEmbedder, name: str, crop: FaceCrop, seconds: float) -> float:
    """One face's forward pass through a network as the embedder runs it (with flip augmentation, the face and its
    mirror image in one batch of two), on a bare session: what a fused embedding is measured against."""
    model = embedder.models[name]
    tensor = model.to_input(model.crop(crop.image, crop.landmarks))
    batch = np.stack([tensor, model.mirrored(tensor)]) if embedder.flip else tensor[None]
    return mean_s(lambda: model.run(batch), seconds)


def load_faces(detector: FaceDetector, images: Path) -> tuple[list[np.ndarray], list[FaceCrop]]:
    photos = []
    for path in sorted((images / "faces").glob("*.jpg")):
        data = path.read_bytes()
        photos.append(decode_image(data, max_bytes=len(data), max_pixels=1 << 40))
    crops = []
    for photo, faces in zip(photos, detector.detect(photos, detector.defaults), strict=True):
        crops += [face_crop(photo, np.asarray(face.landmarks)) for face in faces]
    if not crops:
        raise harness.Unavailable(f"no faces found under {images / 'faces'}")
    return photos, crops


def run(settings: Settings, images: Path, seconds: float, profiles: list[str]) -> list[Row]:
    store = ModelStore.from_settings(settings)
    needed = list(dict.fromkeys(model for name in profiles for model in PROFILES[name].models))
    detector = FaceDetector(store, settings)
    embedder = FaceEmbedder(store, settings, needed)
    try:
        photos, crops = load_faces(detector, images)
        detect_s = mean_s(lambda: [detector.detect([photo], detector.defaults) for photo in photos], seconds)
        first_s = mean_s(lambda: [detector.detect_once([photo], detector.defaults) for photo in photos], seconds)
        batch = (crops * BATCH)[:BATCH]
        forwards = {name: forward_s(embedder, name, crops[0], seconds) for name in needed}
        rows = []
        for name in profiles:
            models = PROFILES[name].models
            single = mean_s(partial(embed_one_by_one, embedder, crops, models), seconds) / len(crops)
            batched = mean_s(partial(embedder.embed_crops, batch, models), seconds) / BATCH
            rows.append(
                Row(
                    profile=name,
                    models=", ".join(embedder.refs(models)),
                    dimension=sum(embedder.dimensions(models)),
                    ms_per_face_single=1e3 * single,
                    ms_per_face_batched=1e3 * batched,
                    forwards_ms_per_face=1e3 * sum(forwards[model] for model in models),
                    detect_ms_per_photo=1e3 * detect_s / len(photos),
                    first_look_ms_per_photo=1e3 * first_s / len(photos),
                )
            )
        return rows
    finally:
        embedder.close()
        detector.close()


def measure(settings: Settings, images: Path, seconds: float, profiles: list[str]) -> harness.Report:
    rows = run(settings, images, seconds, profiles)
    report = harness.Report(
        "embedder",
        seconds,
        [],
        {
            "device": settings.device,
            "intra_op_threads": settings.intra_op_threads,
            "flip_augmentation": settings.flip_augmentation,
            "int8": settings.int8,
            "face_refine_landmarks": settings.face_refine_landmarks,
        },
    )
    flip = "with" if settings.flip_augmentation else "without"
    report.table(
        "profiles",
        [
            f"embedding cost per face ({flip} flip augmentation; detection is per photo, once for any profile)",
            "forwards ms/face: the profile's networks' bare forward passes for one face (and its mirror image, in one "
            "batch), one network after the other; x forwards: the 1-per-call cost over that",
        ],
        rows,
        COLUMNS,
    )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = harness.arguments(__doc__, seconds=3.0, images="faces/*.jpg")
    parser.add_argument("--profiles", help="comma-separated profiles (default: all)")
    args = harness.parse(parser, argv, QUICK)
    profiles = args.profiles.split(",") if args.profiles else list(PROFILES)
    unknown = [name for name in profiles if name not in PROFILES]
    if unknown:
        parser.error(f"unknown profile(s) {', '.join(unknown)}; known: {', '.join(PROFILES)}")
    settings = Settings()
    images = harness.images_folder(args, settings)
    return harness.main(lambda: measure(settings, images, args.seconds, profiles), args.json)


if __name__ == "__main__":
    sys.exit(main())
