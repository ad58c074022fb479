"""Bulk import benchmark: `argus import`'s engine (argus.importer) against the models' own work on the same photos.

    python bench/import_bench.py [--photos N] [--concurrency C] [--quick] [--json [PATH]]

Starts the detector, embedder and face database in this process on free ports (the face database on a temporary
SQLite file), picks N LFW photos (the first photo of the first N people), then, in one run:
- raw: what an enrollment must compute, called straight on the detector and the embedder through the same gRPC
  clients: DetectFaces, then Embed of every face found with the default profile's networks and the face crop back
  (as Enroll asks), C photos at a time;
- import: the same photos imported into a new collection by FaceDbClient.import_photos, C at a time, one Enroll
  each (take the largest face: LFW photos often show bystanders), journal written;
- resume: the same import again with its journal (every photo skipped), and again without it (every photo answered
  PHOTO_ALREADY_ENROLLED by the server).
The ratio import / raw is what the import adds on top of the models' own work: the face database's hop, its
database writes and index, the journal. Nothing here asserts a speed: it prints what it measured.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import harness

from argus.client import DetectorClient, EmbedderClient, FaceDbClient, photo_face
from argus.config import Settings
from argus.importer import ImportItem, ImportSummary, Journal
from argus.models.manifest import DLIB_RESNET, MOBILEFACENET, YUNET
from argus.models.store import ModelStore
from argus.profiles import get_profile

T = TypeVar("T")
COLLECTION = "import-bench"
QUICK = {"photos": 16}
CALL_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Row:
    what: str
    photos: int
    seconds: float
    faces: int | None = None
    note: str = ""

    @property
    def per_s(self) -> float:
        return self.photos / self.seconds

    @property
    def ms_per_photo(self) -> float:
        return 1000 * self.seconds / self.photos


def lfw_photos(settings: Settings, count: int) -> list[tuple[str, Path]]:
    root = settings.eval_dir / "lfw" / "lfw-deepfunneled"
    if not root.is_dir():
        raise harness.Unavailable(f"no LFW images under {root}")
    chosen = []
    for folder in sorted(root.iterdir()):
        images = sorted(folder.glob("*.jpg"))
        if images:
            chosen.append((folder.name, images[0]))
        if len(chosen) == count:
            return chosen
    raise harness.Unavailable(f"only {len(chosen)} LFW people, {count} asked for")


def timed(work: Callable[[], T]) -> tuple[float, T]:
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


def measure(args: argparse.Namespace, settings: Settings) -> harness.Report:
    photos = lfw_photos(settings, args.photos)
    store = ModelStore.from_settings(settings)
    store.pull_all([YUNET, MOBILEFACENET, DLIB_RESNET])
    models = get_profile(settings.profile).models
    rows: list[Row] = []
    facedb_calls = max(settings.concurrent_calls("facedb"), args.concurrency)
    with (
        tempfile.TemporaryDirectory(prefix="argus-import-bench-") as scratch,
        harness.face_services(settings, store, Path(scratch), facedb_calls) as services,
        DetectorClient(services.detector, CALL_TIMEOUT_S) as detect,
        EmbedderClient(services.embedder, CALL_TIMEOUT_S) as embed,
        FaceDbClient(services.facedb, CALL_TIMEOUT_S) as faces,
    ):

        def raw_one(path: Path) -> int:
            data = path.read_bytes()
            found = detect.detect_faces([data]).results[0].faces
            if found:
                inputs = [photo_face(0, face.landmarks) for face in found]
                embed.embed(inputs, models=models, return_face_crop=True, photos=[data])
            return len(found)

        def raw() -> int:
            with ThreadPoolExecutor(args.concurrency) as pool:
                return sum(pool.map(raw_one, [path for _, path in photos]))

        raw_one(photos[0][1])  # warm the sessions up
        faces.create_collection(COLLECTION)
        items = [ImportItem(name, "", path) for name, path in photos]
        journal = Journal(Path(scratch) / "journal.jsonl", COLLECTION)

        def run_import(with_journal: Journal | None) -> ImportSummary:
            return faces.import_photos(
                COLLECTION, items, journal=with_journal, concurrency=args.concurrency, take_largest_face=True
            )

        seconds, found = timed(raw)
        rows.append(Row("raw: DetectFaces + Embed", len(photos), seconds, found, "the models' own work"))
        seconds, summary = timed(lambda: run_import(journal))
        journal.close()
        rows.append(Row("import", len(photos), seconds, note=_summary(summary)))
        seconds, summary = timed(lambda: run_import(journal))
        journal.close()
        rows.append(Row("import again, with the journal", len(photos), seconds, note=_summary(summary)))
        seconds, summary = timed(lambda: run_import(Journal(Path(scratch) / "other.jsonl", COLLECTION)))
        rows.append(Row("import again, no journal", len(photos), seconds, note=_summary(summary)))
    report = harness.Report(
        "import",
        None,
        [f"{len(photos)} LFW photos", f"concurrency {args.concurrency}"],
        {
            "profile": settings.profile,
            "max_batch_size": settings.max_batch_size,
            "max_queue_delay_ms": settings.max_queue_delay_ms,
        },
    )
    report.table(
        "rows",
        [
            "raw: the detector and the embedder called directly (what an enrollment must compute); import: "
            "argus.importer through the face database, one Enroll per photo"
        ],
        rows,
        COLUMNS,
    )
    ratio = rows[1].seconds / rows[0].seconds
    report.text("", f"import / raw: {ratio:.2f}x")
    report.data["import_over_raw"] = ratio
    return report


def _summary(summary: ImportSummary) -> str:
    return (
        f"{summary.enrolled} enrolled, {summary.already_enrolled} already, {summary.skipped} skipped, "
        f"{len(summary.refused)} refused"
    )


COLUMNS = [
    harness.Column("what", "what"),
    harness.Column("photos", "photos", "d"),
    harness.Column("s", "seconds", ".2f"),
    harness.Column("photos/s", "per_s", ".1f"),
    harness.Column("ms/photo", "ms_per_photo", ".1f"),
    harness.Column("faces", "faces"),
    harness.Column("note", "note"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=1000, help="LFW photos to import (default 1000)")
    parser.add_argument("--concurrency", type=int, default=4, help="photos in flight (default 4)")
    parser.add_argument("--quick", action="store_true", help=f"a smoke run: {QUICK['photos']} photos")
    parser.add_argument("--json", nargs="?", const="-", metavar="PATH", help="the figures as JSON (as the others)")
    args = parser.parse_args(argv)
    if args.quick:
        args.photos = QUICK["photos"]
    return harness.main(lambda: measure(args, Settings()), args.json)


if __name__ == "__main__":
    sys.exit(main())
