"""The overload bench still runs end to end: a --quick run, its JSON checked for its rows, never for its speed."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable


def test_overload_bench_reports_every_row(run_bench: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    done = run_bench("overload_bench.py", "--quick")
    report = json.loads(done.stdout)  # with --json alone the JSON goes to stdout, the table to stderr
    assert "goodput/s" in done.stderr  # the table, for people

    assert set(report["bounds"]) == {"detector", "embedder", "facedb"}  # the unary call bound of each service
    assert report["bounds"]["facedb"] >= 1
    assert [(row["kind"], row["callers"], row["load"]) for row in report["rows"]] == [
        ("unloaded", 1, 0),
        ("load", 2, 1.0),
        ("load", 4, 2.0),
    ]
    unloaded = report["rows"][0]
    assert unloaded["ok"] >= 1 and unloaded["ok"] == unloaded["calls"]  # nothing fails without load
    assert unloaded["ok_p99_ms"] >= unloaded["ok_p50_ms"] > 0
    for row in report["rows"]:
        assert row["calls"] == row["ok"] + row["refused"] + row["deadline_exceeded"] + row["other_errors"]
        assert row["other_errors"] == 0
        assert row["of_unloaded"] is not None and row["goodput_per_s"] >= 0
