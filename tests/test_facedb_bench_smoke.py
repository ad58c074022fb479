"""The face database bench still runs end to end: a --quick run, its JSON checked for its rows, never for its speed."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable


def test_facedb_bench_reports_every_row(run_bench: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    done = run_bench("facedb_bench.py", "--quick")
    report = json.loads(done.stdout)  # with --json alone the JSON goes to stdout, the table to stderr
    assert report["seconds_per_row"] == 0.3
    assert "calls/s" in done.stderr and "look-up p50" in done.stderr  # the tables, for people
    assert "search" not in report  # the index search alone is bench/facedb_scale_bench.py's

    service = report["service"]
    assert sorted((row["rpc"], row["transport"], row["probe"], row["concurrency"]) for row in service) == [
        ("Compare", "gRPC", "obama.jpg vs obama2.jpg", 1),
        ("Compare", "gRPC", "obama.jpg vs obama2.jpg", 8),
        ("Identify", "gRPC", "obama2.jpg top_k 5", 1),
        ("Identify", "gRPC", "obama2.jpg top_k 5", 8),
        ("Verify", "HTTP/JSON", "obama2.jpg vs subject obama", 1),
        ("Verify", "HTTP/JSON", "obama2.jpg vs subject obama", 8),
        ("Verify", "gRPC", "obama2.jpg vs subject obama", 1),
        ("Verify", "gRPC", "obama2.jpg vs subject obama", 8),
    ]
    # the HTTP path, side by side with gRPC: the same answer, and its cost as a ratio measured in this run
    http_rows = [row for row in service if row["transport"] == "HTTP/JSON"]
    assert all(row["p50_vs_grpc"] > 0 and row["answer"].startswith("MATCH") for row in http_rows)
    assert "interleaved at concurrency 1" in done.stderr
    # Detection and embedding are inside every call: two more gRPC hops per photo.
    assert {row["rpc"]: row["grpc_calls"] for row in service} == {"Verify": 3, "Identify": 3, "Compare": 5}
    for row in service:
        assert row["calls"] >= row["concurrency"]
        assert row["p99_ms"] >= row["p50_ms"] > 0
    answers = {row["rpc"]: row["answer"] for row in service}
    assert answers["Verify"].startswith("MATCH") and answers["Compare"].startswith("MATCH")
    assert answers["Identify"].startswith("obama ")  # obama2.jpg is identified as the enrolled obama

    # --quick: collections of 1, 50 and 500 faces, on SQLite only (no --postgres here).
    cost = report["cost"]
    assert [(row["backend"], row["faces"]) for row in cost] == [("sqlite", 1), ("sqlite", 50), ("sqlite", 500)]
    for row in cost:
        assert row["index"]  # the kind of index the collection had
        assert row["verify_p99_ms"] >= row["verify_p50_ms"] > 0
        assert row["identify_p99_ms"] >= row["identify_p50_ms"] > 0
        assert row["search_p50_ms"] > 0 and row["lookup_p50_ms"] > 0 and row["counting_p50_ms"] > 0
    assert cost[0]["verify_ratio"] == 1.0  # the smallest is its own yardstick
    # Identify's yardstick is the smallest collection searched as deep (40 candidates): 50 faces; 1 face has none.
    assert cost[0]["identify_ratio"] is None and cost[1]["identify_ratio"] == 1.0 and cost[2]["identify_ratio"] > 0
