"""The jobs bench still runs end to end: a --quick run, its JSON checked for its rows, never for its speed."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable

import pytest

STYLES = ("candy", "mosaic", "rain-princess", "udnie", "arbitrary")
SIDES = (64, 128)  # --quick's sides
JOBS = 40  # --quick's jobs per burst


def _job(row: dict[str, object]) -> tuple[object, ...]:
    return tuple(row[key] for key in ("section", "image", "workers", "clients", "wait"))


def test_jobs_bench_reports_every_row(run_bench: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    done = run_bench("jobs_bench.py", "--quick")
    report = json.loads(done.stdout)  # with --json alone the JSON goes to stdout, the table to stderr
    assert report["seconds_per_row"] == 0.3 and report["total_s"] > 0
    assert "stylize alone p50" in done.stderr and "total run time" in done.stderr  # the table, for people

    assert [_job(row) for row in report["latency"]] == [
        ("no-op", "32x32.jpg", 1, 1, "watch"),
        ("no-op", "32x32.jpg", 1, 1, "poll"),
    ]
    assert [(row["workers"], row["clients"]) for row in report["throughput"]] == [(1, 4), (2, 4)]
    assert [_job(row) for row in report["detection"]] == [
        ("detection", "bus.jpg", 1, 1, "poll"),
        ("detection", "bus.jpg", 1, 1, "watch"),
        ("detection", "bus.jpg", 1, 4, "poll"),
    ]
    for row in [*report["latency"], *report["detection"]]:
        assert row["jobs"] >= row["clients"]
        assert row["p99_ms"] >= row["p50_ms"] > 0
    for row in report["throughput"]:
        assert 1 <= row["jobs"] <= JOBS
        assert row["submitted_per_s"] > 0 and row["completed_per_s"] > 0
    # the API in one process of its own, then in two replicas; 8 clients in processes of theirs
    assert [row["api_processes"] for row in report["capacity"]] == [1, 2]
    for capacity in report["capacity"]:
        assert capacity["clients"] == 8 and capacity["jobs"] >= 8 and capacity["submitted_per_s"] > 0
        spent = [capacity["server_cpu_ms"], capacity["redis_cpu_ms"], capacity["client_cpu_ms"]]
        assert all(ms > 0 for ms in spent)
        assert capacity["ceiling_per_s"] == pytest.approx(1e3 * (os.cpu_count() or 1) / sum(spent))
    assert sorted((row["model"], row["max_side"], row["output"]) for row in report["styles"]) == sorted(
        (style, side, f"{side}x{side}") for style in STYLES for side in SIDES
    )
    for row in report["styles"]:
        assert row["calls"] >= 1 and row["s_per_megapixel"] > 0
        assert row["megapixels"] == row["max_side"] ** 2 / 1e6  # amber.jpg is square
    job = report["stylization_job"]
    assert _job(job["job"]) == ("stylization", "amber.jpg", 1, 1, "watch")
    assert job["style"] == "candy" and job["max_side"] == max(SIDES)
    assert job["job"]["jobs"] >= 1 and job["direct_p50_ms"] > 0
    assert job["paired_rounds"] >= 3 and job["paired_job_p50_ms"] > 0 and job["paired_direct_p50_ms"] > 0
