"""Embedding profiles' cost: CPU (or GPU) milliseconds per face, one face at a time and in batches.

    python bench/embedder_bench.py [--seconds S] [--json] [--images DIR] [--profiles a,b]

Every profile of argus.profiles is timed on the same faces (the face photos of the test images, detected once
up front): `embed` is what the embedder does per face for that profile (face crop, each network's crop, flip
augmentation when on, forward passes, normalising), called with one face at a time and with 16 faces at once;
`detect` is YuNet on the photo, which every profile pays once per photo on top. Nothing here asserts a speed: it
prints what it measured, all rows of one run on the same machine, so compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from argus.cli.output import table
from argus.config import Settings
from argus.imaging import decode_image
from argus.models.store import ModelStore
from argus.profiles import PROFILES
from argus.services.detector.faces import FaceDetector
from argus.services.embedder.align import FaceCrop, face_crop
from argus.services.embedder.embedder import FaceEmbedder

REPO_ROOT = Path(__file__).resolve().parent.parent
BATCH = 16


@dataclass
class Row:
    profile: str
    models: str
    dimension: int
    ms_per_face_single: float  # one face per call
    ms_per_face_batched: float  # BATCH faces per call
    detect_ms_per_photo: float  # with the landmarks' second look when ARGUS_FACE_REFINE_LANDMARKS is on
    first_look_ms_per_photo: float  # the detection pass alone


def timed(call: Callable[[], object], seconds: float) -> float:
    """Mean seconds per call over at least one call and about `seconds` in all (after one warm-up call)."""
    call()
    count, started = 0, time.perf_counter()
    while count == 0 or time.perf_counter() - started < seconds:
        call()
        count += 1
    return (time.perf_counter() - started) / count


def load_faces(detector: FaceDetector, images: Path) -> tuple[list[np.ndarray], list[FaceCrop]]:
    photos = []
    for path in sorted((images / "faces").glob("*.jpg")):
        data = path.read_bytes()
        photos.append(decode_image(data, max_bytes=len(data), max_pixels=1 << 40))
    crops = []
    for photo, faces in zip(photos, detector.detect(photos, detector.defaults), strict=True):
        crops += [face_crop(photo, np.asarray(face.landmarks)) for face in faces]
    if not crops:
        raise SystemExit(f"no faces found under {images / 'faces'}")
    return photos, crops


def run(settings: Settings, images: Path, seconds: float, profiles: list[str]) -> list[Row]:
    store = ModelStore(settings.resolved_models_dir, settings.models_mirror)
    needed = list(dict.fromkeys(model for name in profiles for model in PROFILES[name].models))
    detector = FaceDetector(store, settings)
    embedder = FaceEmbedder(store, settings, needed)
    try:
        photos, crops = load_faces(detector, images)
        detect_s = timed(lambda: [detector.detect([photo], detector.defaults) for photo in photos], seconds)
        first_s = timed(lambda: [detector.detect_once([photo], detector.defaults) for photo in photos], seconds)
        batch = (crops * BATCH)[:BATCH]
        rows = []
        for name in profiles:
            models = PROFILES[name].models
            single = timed(lambda m=models: [embedder.embed_crops([c], m) for c in crops], seconds) / len(crops)
            batched = timed(lambda m=models: embedder.embed_crops(batch, m), seconds) / BATCH
            rows.append(
                Row(
                    profile=name,
                    models=", ".join(embedder.refs(models)),
                    dimension=sum(embedder.dimensions(models)),
                    ms_per_face_single=1e3 * single,
                    ms_per_face_batched=1e3 * batched,
                    detect_ms_per_photo=1e3 * detect_s / len(photos),
                    first_look_ms_per_photo=1e3 * first_s / len(photos),
                )
            )
        return rows
    finally:
        embedder.close()
        detector.close()


def format_table(rows: list[Row], settings: Settings) -> str:
    flip = "with" if settings.flip_augmentation else "without"
    header = f"embedding cost per face ({flip} flip augmentation; detection is per photo, once for any profile)"
    body = table(
        [
            [
                r.profile,
                r.dimension,
                f"{r.ms_per_face_single:.1f}",
                f"{r.ms_per_face_batched:.1f}",
                f"{r.detect_ms_per_photo:.1f} ({r.first_look_ms_per_photo:.1f})",
            ]
            for r in rows
        ],
        ["profile", "dim", "ms/face (1 per call)", f"ms/face ({BATCH} per call)", "detect ms/photo (first look)"],
    )
    return f"{header}\n{body}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time spent on each row")
    parser.add_argument("--images", type=Path, help="test images folder (default: ../shared/images)")
    parser.add_argument("--profiles", help="comma-separated profiles (default: all)")
    parser.add_argument("--json", action="store_true", help="rows as JSON on stdout, the table on stderr")
    args = parser.parse_args(argv)
    settings = Settings()
    images = args.images or REPO_ROOT.parent / "shared" / "images"
    profiles = args.profiles.split(",") if args.profiles else list(PROFILES)
    unknown = [name for name in profiles if name not in PROFILES]
    if unknown:
        parser.error(f"unknown profile(s) {', '.join(unknown)}; known: {', '.join(PROFILES)}")
    rows = run(settings, images, args.seconds, profiles)
    text = format_table(rows, settings)
    if args.json:
        print(text, file=sys.stderr)
        print(json.dumps([asdict(row) for row in rows], indent=2))
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
