"""The detector bench still runs end to end: a very short run, checked for its rows, never for its speed."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable


def test_detector_bench_prints_every_row(run_bench: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    done = run_bench("detector_bench.py", "--seconds", "0.3")

    table = done.stderr  # with --json the table goes to stderr, the JSON to stdout
    rows = [line.split() for line in table.splitlines()]
    for model, shape in (
        ("yolox-nano", "1x3x416x416"),
        ("yolox-nano", "8x3x416x416"),
        ("yunet-s", "1x3x640x640"),
        ("mobilefacenet", "1x3x112x112"),
        ("mobilefacenet", "32x3x112x112"),
    ):
        assert any(row[:2] == [model, shape] for row in rows), f"no raw row for {model} {shape}:\n{table}"
    assert "concurrency" in table
    for rpc, image in (("DetectObjects", "bus.jpg"), ("DetectFaces", "two_people.jpg")):
        for concurrency in ("1", "8"):
            assert any(row[:3] == [rpc, image, concurrency] for row in rows), (
                f"no service row for {rpc} at concurrency {concurrency}:\n{table}"
            )
    assert re.search(r"provider \w+ExecutionProvider", table), table
    assert "max_batch_size=" in table and "max_queue_delay_ms=" in table

    report = json.loads(done.stdout)
    assert {row["model"] for row in report["raw"]} == {"yolox-nano", "yunet-s", "mobilefacenet"}
    service = report["service"]
    assert sorted((row["rpc"], row["concurrency"]) for row in service) == [
        ("DetectFaces", 1),
        ("DetectFaces", 8),
        ("DetectObjects", 1),
        ("DetectObjects", 8),
    ]
    for row in service:
        assert row["calls"] >= row["concurrency"]
        assert row["ratio_to_raw_b1"] > 0
        assert row["mean_batch_size"] is not None and row["mean_batch_size"] >= 1
        assert row["found_per_image"] > 0  # bus.jpg has objects, two_people.jpg has faces
