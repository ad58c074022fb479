"""The face database bench still runs end to end: a very short run, checked for its rows, never for its speed."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable


def test_facedb_bench_prints_every_row(run_bench: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    done = run_bench("facedb_bench.py", "--seconds", "0.3", "--sizes", "2000", "--queries", "200")

    table = done.stderr  # with --json the table goes to stderr, the JSON to stdout
    rows = [line.split() for line in table.splitlines()]
    for rpc, probe in (
        ("Verify", "obama2.jpg vs subject obama"),
        ("Identify", "obama2.jpg top_k 5"),
        ("Compare", "obama.jpg vs obama2.jpg"),
    ):
        for concurrency in (1, 8):
            assert re.search(rf"^{rpc} +{re.escape(probe)} +{concurrency} ", table, re.MULTILINE), (
                f"no service row for {rpc} at concurrency {concurrency}:\n{table}"
            )
    assert "detection + embedding" in table
    assert any(row[:3] == ["2000", "FaceIndex", "IndexFlatIP"] for row in rows), table
    for nprobe in ("8", "32"):
        assert any(row[:2] == ["2000", "IVFFlat"] and f"nprobe={nprobe}" in row for row in rows), table
    assert "recall@1" in table and "truth@1" in table

    report = json.loads(done.stdout)
    service = report["service"]
    assert sorted((row["rpc"], row["concurrency"]) for row in service) == [
        ("Compare", 1),
        ("Compare", 8),
        ("Identify", 1),
        ("Identify", 8),
        ("Verify", 1),
        ("Verify", 8),
    ]
    for row in service:
        assert row["calls"] >= row["concurrency"]
        assert row["p99_ms"] >= row["p50_ms"] > 0
    answers = {row["rpc"]: row["answer"] for row in service}
    assert answers["Verify"].startswith("MATCH") and answers["Compare"].startswith("MATCH")
    assert answers["Identify"].startswith("obama ")  # obama2.jpg is identified as the enrolled obama

    search = report["search"]
    assert {row["gallery"] for row in search} == {2000}
    assert [row["index"] for row in search][:1] == ["FaceIndex"]
    assert {row["params"].split()[-1] for row in search[1:]} >= {"nprobe=8", "nprobe=32"}
    assert all(row["index"] == "IVFFlat" for row in search[1:])
    exact = search[0]
    assert exact["recall_at_1"] == 1.0 and exact["recall_queries"] == 200
    assert exact["truth_at_1"] > 0.95  # the planted nearest neighbour really is the nearest
    for row in search:
        assert row["queries"] >= 1 and row["p50_ms"] > 0
        assert 0.0 <= row["recall_at_1"] <= 1.0
