"""The detector bench still runs end to end (a --quick run, its JSON checked for its rows, never for its speed), and
the harness every bench shares works as they rely on."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType


def test_detector_bench_reports_every_row(run_bench: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    done = run_bench("detector_bench.py", "--quick")
    report = json.loads(done.stdout)  # with --json alone the JSON goes to stdout, the table to stderr
    assert report["seconds_per_row"] == 0.3
    assert "total run time" in done.stderr

    raw = report["raw"]
    for model, shape in (
        ("yolox-nano", "1x3x416x416"),
        ("yolox-nano", "8x3x416x416"),
        ("yunet-s", "1x3x640x640"),
        ("mobilefacenet", "1x3x112x112"),
        ("mobilefacenet", "32x3x112x112"),
        ("minifasnet-v2", "1x3x80x80"),
        ("minifasnet-v1se", "8x3x80x80"),
    ):
        assert any((row["model"], row["shape"]) == (model, shape) for row in raw), f"no raw row for {model} {shape}"
    assert {row["model"] for row in raw} == {
        "yolox-nano",
        "yunet-s",
        "mobilefacenet",
        "minifasnet-v2",
        "minifasnet-v1se",
    }
    assert all(re.fullmatch(r"\w+ExecutionProvider", row["provider"]) for row in raw), raw
    assert "max_batch_size" in report["settings"] and "max_queue_delay_ms" in report["settings"]

    service = report["service"]
    assert sorted((row["rpc"], row["image"], row["concurrency"]) for row in service) == [
        ("DetectFaces", "two_people.jpg", 1),
        ("DetectFaces", "two_people.jpg", 8),
        ("DetectFaces+liveness", "two_people.jpg", 1),  # the liveness of two faces on top: its cost per face
        ("DetectFaces+liveness", "two_people.jpg", 8),
        ("DetectObjects", "bus.jpg", 1),
        ("DetectObjects", "bus.jpg", 8),
    ]
    for row in service:
        assert row["calls"] >= row["concurrency"]
        assert row["ratio_to_raw_b1"] > 0
        assert row["mean_batch_size"] is not None and row["mean_batch_size"] >= 1
        assert row["found_per_image"] > 0  # bus.jpg has objects, two_people.jpg has faces


def _harness() -> ModuleType:
    """bench/harness.py, which the scripts import by its bare name (bench/ is first on their sys.path)."""
    path = Path(__file__).resolve().parent.parent / "bench" / "harness.py"
    spec = importlib.util.spec_from_file_location("harness", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("harness", module)
    spec.loader.exec_module(module)
    return module


def test_harness_statistics_drive_and_report(tmp_path: Path) -> None:
    harness = _harness()
    latency = harness.Latency.of([float(ms) for ms in range(1, 101)])
    assert (latency.count, latency.mean, latency.p50) == (100, 50.5, 50.5)
    assert latency.p50 < latency.p90 < latency.p99 <= 100

    run = harness.drive(lambda: lambda: None, 3, 10.0, limit=7)  # the limit ends it long before the time is up
    assert run.calls == len(run.latencies_ms) == 7 and run.elapsed_s < 10
    once = harness.repeat(lambda: None, 0.0)
    assert once.calls == 1 and once.per_s > 0

    parser = harness.arguments("a bench", seconds=3.0, images="x.jpg")
    parser.add_argument("--sizes", type=harness.int_list(100), default=(1000,))
    assert harness.parse(parser, ["--quick", "--sizes", "200"], {"seconds": 0.1, "sizes": (100,)}).sizes == (200,)
    args = harness.parse(parser, ["--quick"], {"seconds": 0.1, "sizes": (100,)})
    assert (args.seconds, args.sizes, args.json) == (0.1, (100,), None)

    @dataclass
    class Row:
        name: str
        ms: float | None

    report = harness.Report("test", 0.1, ["one fact"], {"device": "cpu"})
    columns = [harness.Column("name", "name"), harness.Column("p50 ms", "ms", ".2f")]
    report.table("rows", ["caption"], [Row("a", 1.0), Row("bb", None)], columns)
    report.emit(1.0, str(tmp_path / "out.json"))
    written = json.loads((tmp_path / "out.json").read_text())
    assert written["rows"] == [{"name": "a", "ms": 1.0}, {"name": "bb", "ms": None}]
    assert written["settings"] == {"device": "cpu"} and written["seconds_per_row"] == 0.1
    assert report.lines[-5:] == ["name  p50 ms", "----  ------", "a       1.00", "bb         -", "total run time 1.0 s"]
