"""Replication bench: how long a face committed through one replica takes to be searchable on another.

    python bench/replication_bench.py --postgres URL [--faces N] [--writers 1,4] [--quick] [--json [PATH]]

Both replicas run over one PostgreSQL database the bench creates on the --postgres server (and drops at the end).
Replica A is a FaceStore of its own connections that enrolls synthetic faces (random unit vectors of the default
profile's size) one transaction each, as an enrollment does; replica B is a Follower (replication.py) with its own
connections and index, woken by PostgreSQL's NOTIFY as in production (no local wake-up: A's commits are not B's).
Each row enrolls --faces faces through A, by `writers` threads back to back, and times from each commit's return
on A to the moment B's index holds that face (B's follower position reaching its change). The "poll only" row
turns B's LISTEN off, so B sees changes only at its ARGUS_FACEDB_POLL_S poll: the fallback's delay. Nothing here
asserts a speed. See bench/README.md.
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import harness
import numpy as np

from argus.config import Settings
from argus.profiles import get_profile
from argus.services.facedb.calibration import Calibrations
from argus.services.facedb.index import IndexRegistry
from argus.services.facedb.replication import Follower
from argus.services.facedb.storage import FaceStore, NewFace

DEFAULT_FACES = 200
DEFAULT_WRITERS = (1, 4)
APPLY_TIMEOUT_S = 30.0  # longest B may take for one face before the bench gives up
QUICK = {"faces": 20, "writers": (1,), "seconds": 0.3}


@dataclass(frozen=True)
class Row:
    wake: str  # "NOTIFY" or "poll only"
    writers: int
    faces: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    commits_per_s: float


class _NoListen(Follower):
    """B without LISTEN: the poll is all that wakes it."""

    def _listen(self) -> Any:
        return None


def measure_row(url: str, settings: Settings, faces: int, writers: int, listen: bool) -> Row:
    """One row: a fresh collection, B following it, `faces` enrollments through A by `writers` threads."""
    profile = get_profile(settings.profile)
    dimension = sum(Calibrations(settings)[profile.name].dimensions)
    a, b = FaceStore(url), FaceStore(url)
    collection = f"bench-{uuid.uuid4().hex[:8]}"
    follower = (Follower if listen else _NoListen)(b, IndexRegistry(), settings, folder=None)
    try:
        a.create_collection(collection, None, profile.name)
        follower.start()
        delays: list[float] = []
        lock = threading.Lock()
        tickets = iter(range(faces))

        def write() -> None:
            rng = np.random.default_rng()
            for number in tickets:
                vector = rng.standard_normal(dimension).astype(np.float32)
                face = NewFace(
                    vector / np.linalg.norm(vector), profile.name, profile.models, (0, 0, 100, 100), 0.9, 100.0, 50.0
                )
                a.add_faces(collection, f"s{number}", "", None, [face])
                committed = time.perf_counter()
                if not follower.wait_for(a.last_change(), APPLY_TIMEOUT_S):
                    raise RuntimeError(f"B did not apply a face within {APPLY_TIMEOUT_S:g} s")
                with lock:
                    delays.append((time.perf_counter() - committed) * 1e3)

        threads = [threading.Thread(target=write) for _ in range(writers)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        if len(delays) != faces:
            raise RuntimeError(f"{faces - len(delays)} enrollment(s) failed")
        stats = harness.Latency.of(delays)
        return Row(
            "NOTIFY" if listen else "poll only",
            writers,
            faces,
            stats.p50,
            stats.p90,
            stats.p99,
            max(delays),
            faces / elapsed,
        )
    finally:
        follower.stop()
        a.close()
        b.close()


def measure(args: Any) -> harness.Report:
    if not args.postgres:
        raise harness.Unavailable(
            "the replication bench needs PostgreSQL: pass --postgres URL (a server it may create and drop databases on)"
        )
    settings = Settings()
    report = harness.Report(
        "replication",
        args.seconds,
        [f"{args.faces} faces per row", "PostgreSQL"],
        {"facedb_poll_s": settings.facedb_poll_s, "profile": settings.profile},
    )
    rows = []
    with harness.scratch_postgres(args.postgres) as url:
        FaceStore(url).migrate()
        for writers in args.writers:
            rows.append(measure_row(url, settings, args.faces, writers, listen=True))
        rows.append(measure_row(url, settings, max(5, args.faces // 20), 1, listen=False))
    report.table(
        "propagation",
        ["Commit on replica A -> searchable on replica B (ms), one face per enrollment transaction"],
        rows,
        [
            harness.Column("wake", "wake"),
            harness.Column("writers", "writers"),
            harness.Column("faces", "faces"),
            harness.Column("p50 ms", "p50_ms", ".2f"),
            harness.Column("p90 ms", "p90_ms", ".2f"),
            harness.Column("p99 ms", "p99_ms", ".2f"),
            harness.Column("max ms", "max_ms", ".2f"),
            harness.Column("commits/s", "commits_per_s", ".0f"),
        ],
    )
    return report


def run(argv: list[str] | None = None) -> int:
    parser = harness.arguments(__doc__ or "", seconds=1.0, images="(not used)")
    parser.add_argument(
        "--faces", type=int, default=DEFAULT_FACES, help=f"enrollments per row (default {DEFAULT_FACES})"
    )
    parser.add_argument(
        "--writers",
        type=harness.int_list(1),
        default=DEFAULT_WRITERS,
        help="threads enrolling through A at once, one row each, comma-separated (default 1,4)",
    )
    parser.add_argument(
        "--postgres", default="", metavar="URL", help="a PostgreSQL server the bench may create (and drop) databases on"
    )
    args = harness.parse(parser, argv, QUICK)
    if args.faces < 1:
        parser.error("--faces must be at least 1")
    return harness.main(lambda: measure(args), args.json)


if __name__ == "__main__":
    sys.exit(run())
