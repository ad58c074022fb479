"""The embedding-profile bench still runs end to end: a --quick run, its JSON checked for its rows, never for its
speed."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

from argus.profiles import PROFILES


def test_embedder_bench_reports_a_row_per_profile(run_bench: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    done = run_bench("embedder_bench.py", "--quick", ARGUS_INTRA_OP_THREADS="2")
    report = json.loads(done.stdout)  # with --json alone the JSON goes to stdout, the table to stderr
    assert report["seconds_per_row"] == 0.05
    rows = report["profiles"]
    assert [row["profile"] for row in rows] == list(PROFILES)
    dims = {row["profile"]: row["dimension"] for row in rows}
    assert dims == {"mobilefacenet": 128, "dlib": 128, "mobilefacenet+dlib": 256, "mobilefacenet+dlib+faceres": 1280}
    for row in rows:
        assert row["ms_per_face_single"] > 0 and row["ms_per_face_batched"] > 0 and row["detect_ms_per_photo"] > 0
    assert "ms/face (16 per call)" in done.stderr  # the table, for people
