"""The overload bench still runs end to end: a --quick run, checked for its rows, never for its speed."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable


def test_overload_bench_prints_every_row(run_bench: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    done = run_bench("overload_bench.py", "--quick")

    table = done.stderr  # with --json the table goes to stderr, the JSON to stdout
    assert re.search(r"^unloaded +1 +- ", table, re.MULTILINE), table
    for callers, load in ((2, "1x"), (4, "2x")):
        assert re.search(rf"^load +{callers} +{load} ", table, re.MULTILINE), f"no row for {load}:\n{table}"
    assert "goodput/s" in table and "unary call bounds: detector=" in table

    report = json.loads(done.stdout)
    assert report["bounds"]["facedb"] >= 1
    assert [(row["kind"], row["callers"]) for row in report["rows"]] == [("unloaded", 1), ("load", 2), ("load", 4)]
    unloaded = report["rows"][0]
    assert unloaded["ok"] >= 1 and unloaded["ok"] == unloaded["calls"]  # nothing fails without load
    assert unloaded["ok_p99_ms"] >= unloaded["ok_p50_ms"] > 0
    for row in report["rows"]:
        assert row["calls"] == row["ok"] + row["refused"] + row["deadline_exceeded"] + row["other_errors"]
        assert row["other_errors"] == 0
        assert row["of_unloaded"] is not None and row["goodput_per_s"] >= 0
