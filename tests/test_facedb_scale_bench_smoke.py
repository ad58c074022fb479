"""The face database scale bench still runs end to end: a --quick run, its JSON checked for its rows, never for its
speed."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable


def test_facedb_scale_bench_reports_every_row(run_bench: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    done = run_bench("facedb_scale_bench.py", "--quick")
    report = json.loads(done.stdout)  # with --json alone the JSON goes to stdout, the table to stderr
    assert report["seconds_per_row"] == 0.3 and "recall@1 genuine" in done.stderr

    search = report["search"]
    assert [(row["gallery"], row["index"], row["params"]) for row in search] == [
        (10_000, "exact", "brute force"),
        (10_000, "ivf-pq", "ivf400,pq32x4 nprobe=40 rescored 200"),
        (10_000, "ivf-pq", "ivf400,pq32x4 nprobe=80 rescored 200"),
        (10_000, "ivf-flat", "nlist=400 nprobe=40"),  # the kind the PQ codes replaced
        (10_000, "ivf-flat", "nlist=400 nprobe=80"),
        (10_000, "hnsw", "M=32 efC=40 efSearch=64"),  # the comparison the IVF was chosen over
    ]
    exact = search[0]
    assert exact["genuine_recall"] == exact["impostor_recall"] == 1.0  # exact against itself
    assert exact["truth_at_1"] > 0.95  # the planted nearest face really is the nearest
    for row in search:
        assert row["queries"] >= 1 and row["p99_ms"] >= row["p50_ms"] > 0
        assert 0.0 <= row["impostor_recall"] <= 1.0 and 0.0 <= row["genuine_recall"] <= 1.0
        assert row["build_s"] > 0 and row["file_per_face"] >= 4 * 256  # at least the float32 vector itself

    start = report["start"]
    assert [(row["faces"], row["path"]) for row in start] == [(10_000, "rebuild"), (10_000, "snapshot")]
    for row in start:
        assert row["ready_s"] > 0 and row["peak_rss_mb"] >= row["steady_rss_mb"] > 0
        assert row["note"].startswith("10000 faces in the index")
