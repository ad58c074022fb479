"""The face database bench still runs end to end: a --quick run, its JSON checked for its rows, never for its speed."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable


def test_facedb_bench_reports_every_row(run_bench: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    done = run_bench("facedb_bench.py", "--quick")
    report = json.loads(done.stdout)  # with --json alone the JSON goes to stdout, the table to stderr
    assert report["seconds_per_row"] == 0.3
    assert "recall@1" in done.stderr and "truth@1" in done.stderr  # the table, for people

    service = report["service"]
    assert sorted((row["rpc"], row["probe"], row["concurrency"]) for row in service) == [
        ("Compare", "obama.jpg vs obama2.jpg", 1),
        ("Compare", "obama.jpg vs obama2.jpg", 8),
        ("Identify", "obama2.jpg top_k 5", 1),
        ("Identify", "obama2.jpg top_k 5", 8),
        ("Verify", "obama2.jpg vs subject obama", 1),
        ("Verify", "obama2.jpg vs subject obama", 8),
    ]
    # Detection and embedding are inside every call: two more gRPC hops per photo.
    assert {row["rpc"]: row["grpc_calls"] for row in service} == {"Verify": 3, "Identify": 3, "Compare": 5}
    for row in service:
        assert row["calls"] >= row["concurrency"]
        assert row["p99_ms"] >= row["p50_ms"] > 0
    answers = {row["rpc"]: row["answer"] for row in service}
    assert answers["Verify"].startswith("MATCH") and answers["Compare"].startswith("MATCH")
    assert answers["Identify"].startswith("obama ")  # obama2.jpg is identified as the enrolled obama

    search = report["search"]
    assert {row["gallery"] for row in search} == {2000}
    assert [(row["index"], row["params"]) for row in search][:1] == [("FaceIndex", "IndexFlatIP")]
    assert {row["params"].split()[-1] for row in search[1:]} >= {"nprobe=8", "nprobe=32"}
    assert all(row["index"] == "IVFFlat" for row in search[1:])
    exact = search[0]
    assert exact["recall_at_1"] == 1.0 and exact["recall_queries"] == 200
    assert exact["truth_at_1"] > 0.95  # the planted nearest neighbour really is the nearest
    for row in search:
        assert row["queries"] >= 1 and row["p50_ms"] > 0
        assert 0.0 <= row["recall_at_1"] <= 1.0
        assert 0.0 <= row["truth_at_1"] <= 1.0
