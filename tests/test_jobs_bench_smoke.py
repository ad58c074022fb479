"""The jobs bench still runs end to end: a very short run, checked for its rows, never for its speed."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable

STYLES = ("candy", "mosaic", "rain-princess", "udnie", "arbitrary")
SIDES = (64, 128)


def test_jobs_bench_prints_every_row(run_bench: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    sides = ",".join(str(side) for side in SIDES)
    done = run_bench("jobs_bench.py", "--seconds", "0.3", "--sides", sides, "--jobs", "40")

    table = done.stderr  # with --json the table goes to stderr, the JSON to stdout

    def has_row(pattern: str) -> bool:
        return re.search(pattern, table, re.MULTILINE) is not None

    for wait in ("watch", "poll"):
        assert has_row(rf"^no-op +32x32\.jpg +1 +1 +{wait} +\d+ "), f"no queue overhead row ({wait}):\n{table}"
    for workers in (1, 2):
        assert has_row(rf"^ +{workers} +4 +\d+ +[\d.]+ +[\d.]+ "), (
            f"no throughput row for {workers} worker(s):\n{table}"
        )
    for clients, wait in ((1, "poll"), (1, "watch"), (4, "poll")):
        assert has_row(rf"^detection +bus\.jpg +1 +{clients} +{wait} +\d+ "), (
            f"no detection row for {clients} client(s), {wait}:\n{table}"
        )
    for style in STYLES:
        for side in SIDES:
            assert has_row(rf"^{style} +{side} +{side}x{side} "), f"no stylization row for {style} at {side}:\n{table}"
    assert has_row(r"^stylization +amber\.jpg +1 +1 +poll +\d+ "), f"no stylization job row:\n{table}"
    assert "stylize alone p50" in table and "total run time" in table

    report = json.loads(done.stdout)
    assert [row["wait"] for row in report["latency"]] == ["watch", "poll"]
    assert [row["workers"] for row in report["throughput"]] == [1, 2]
    assert [(row["clients"], row["wait"]) for row in report["detection"]] == [(1, "poll"), (1, "watch"), (4, "poll")]
    for row in [*report["latency"], *report["detection"]]:
        assert row["jobs"] >= row["clients"]
        assert row["p99_ms"] >= row["p50_ms"] > 0
    for row in report["throughput"]:
        assert 1 <= row["jobs"] <= 40
        assert row["submitted_per_s"] > 0 and row["completed_per_s"] > 0
    assert sorted((row["model"], row["max_side"]) for row in report["styles"]) == sorted(
        (style, side) for style in STYLES for side in SIDES
    )
    for row in report["styles"]:
        assert row["calls"] >= 1 and row["s_per_megapixel"] > 0
        assert row["megapixels"] == row["max_side"] ** 2 / 1e6  # amber.jpg is square
    job = report["stylization_job"]
    assert job["style"] == "candy" and job["max_side"] == max(SIDES)
    assert job["job"]["jobs"] >= 1 and job["direct_p50_ms"] > 0
