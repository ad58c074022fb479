"""Overload benchmark: face database Verify offered 1x to 10x what the stack completes, with a deadline per call.

    python bench/overload_bench.py [--seconds S] [--callers N] [--loads 1,2,5,10] [--deadline S] [--quick]
        [--json [PATH]]

The detector, embedder and face database run as processes of their own (`argus serve`, free loopback ports, the face
database on a temporary SQLite file, auth off), with the settings of this environment: so the bounds measured are
the defaults unless ARGUS_MAX_CONCURRENT_CALLS is set. One subject is enrolled; the unloaded rows call Verify back
to back at a few concurrencies, then each load row runs load x --callers callers for --seconds, every call with a
--deadline. A refused caller (RESOURCE_EXHAUSTED) backs off as a well-behaved client does (exponential, full
jitter); --backoff-ms 0 retries at once. Nothing here asserts a speed: it prints what it measured. See
bench/README.md for how to read the table.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import grpc
import harness

from argus.client import FaceDbClient
from argus.config import Settings
from argus.health import wait_until_serving
from argus.models.manifest import DLIB_RESNET, MOBILEFACENET, YOLOX_NANO, YUNET
from argus.models.store import ModelStore

COLLECTION = "overload"
SUBJECT = "obama"  # faces/obama.jpg, enrolled
PROBE = "obama2"  # faces/obama2.jpg, verified against it
SERVICES = ("detector", "embedder", "facedb")
START_TIMEOUT_S = 180.0
BACKOFF_CAP_S = 2.0
DEFAULT_LOADS = (1, 2, 5, 10)
DEFAULT_UNLOADED = (1, 2, 4)
QUICK = {"seconds": 1.0, "callers": 2, "loads": (1.0, 2.0), "unloaded": (1,)}


@dataclass
class Outcomes:
    """What the callers of one row got: status counts, and the latencies of successes and refusals."""

    ok_ms: list[float] = field(default_factory=list)
    refused_ms: list[float] = field(default_factory=list)
    codes: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, code: grpc.StatusCode, ms: float) -> None:
        with self.lock:
            self.codes[code.name] = self.codes.get(code.name, 0) + 1
            if code is grpc.StatusCode.OK:
                self.ok_ms.append(ms)
            elif code is grpc.StatusCode.RESOURCE_EXHAUSTED:
                self.refused_ms.append(ms)


@dataclass
class Row:
    kind: str  # "unloaded" or "load"
    load: float  # offered callers / --callers; 0 for the unloaded rows
    callers: int
    seconds: float
    calls: int
    goodput_per_s: float  # OK calls per second
    ok: int
    refused: int  # RESOURCE_EXHAUSTED
    deadline_exceeded: int
    other_errors: int
    ok_p50_ms: float | None
    ok_p90_ms: float | None
    ok_p99_ms: float | None
    refused_p50_ms: float | None
    refused_p99_ms: float | None
    of_unloaded: float | None = None  # goodput / the best unloaded rate


def _percentiles(ms: list[float]) -> tuple[float | None, float | None, float | None]:
    """p50, p90, p99 of the samples; None for each when there are none."""
    if not ms:
        return None, None, None
    latency = harness.Latency.of(ms)
    return latency.p50, latency.p90, latency.p99


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _running(process: subprocess.Popen[bytes]) -> bool:
    return process.poll() is None


@contextmanager
def serving_stack(settings: Settings, scratch: Path) -> Iterator[dict[str, str]]:
    """The three services as processes of their own; yields their addresses and stops them at the end."""
    ports = {name: _free_port() for name in SERVICES}
    addresses = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
    env = {
        **os.environ,
        "ARGUS_AUTH": "off",
        "ARGUS_KEYS_FILE": str(scratch / "keys.json"),  # no keys there: auth is off for this bench
        "ARGUS_MODELS_DIR": str(settings.resolved_models_dir),
        "ARGUS_DATABASE_URL": f"sqlite:///{scratch / 'facedb.sqlite3'}",
        "ARGUS_HOST": "127.0.0.1",
        "ARGUS_METRICS_PORT": "0",
        "ARGUS_HEALTH_PORT": "0",
        "ARGUS_DETECTOR_ADDRESS": addresses["detector"],
        "ARGUS_EMBEDDER_ADDRESS": addresses["embedder"],
    }
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for name in SERVICES:
            log = (scratch / f"{name}.log").open("wb")
            command = [sys.executable, "-m", "argus.cli.main", "serve", name, "--port", str(ports[name])]
            processes.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + START_TIMEOUT_S
        for name, process in zip(SERVICES, processes, strict=True):
            with grpc.insecure_channel(addresses[name]) as channel:
                try:
                    wait_until_serving(channel, name, deadline, partial(_running, process))
                except (RuntimeError, TimeoutError) as exc:
                    log_tail = (scratch / f"{name}.log").read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"{exc}; its log ends:\n{log_tail}") from exc
        yield addresses
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def offer(
    address: str, probe: bytes, callers: int, seconds: float, deadline_s: float, backoff_ms: float
) -> tuple[Outcomes, float]:
    """`callers` threads call Verify back to back for `seconds`, each call with a deadline; returns the outcomes and
    the elapsed time (until the last call started in the window ended)."""
    outcomes = Outcomes()
    opened: list[FaceDbClient] = []
    stop = threading.Event()  # set when the row's time is up: a backoff ends there

    def make_call() -> Callable[[], None]:
        client = FaceDbClient(address, timeout_s=deadline_s)
        opened.append(client)
        refusals_in_a_row = 0

        def call() -> None:
            nonlocal refusals_in_a_row
            started = time.perf_counter()
            try:
                client.verify(COLLECTION, SUBJECT, probe)
                code = grpc.StatusCode.OK
            except grpc.RpcError as exc:
                code = exc.code()
            outcomes.record(code, (time.perf_counter() - started) * 1e3)
            if code is grpc.StatusCode.RESOURCE_EXHAUSTED and backoff_ms > 0:
                ceiling = min(BACKOFF_CAP_S, backoff_ms / 1e3 * 2**refusals_in_a_row)
                refusals_in_a_row += 1
                stop.wait(random.uniform(0, ceiling))
            else:
                refusals_in_a_row = 0

        return call

    try:
        return outcomes, harness.drive(make_call, callers, seconds, stop=stop).elapsed_s
    finally:
        for client in opened:
            client.close()


def row_of(kind: str, load: float, callers: int, outcomes: Outcomes, elapsed: float) -> Row:
    codes = outcomes.codes
    ok = codes.get("OK", 0)
    refused = codes.get("RESOURCE_EXHAUSTED", 0)
    late = codes.get("DEADLINE_EXCEEDED", 0)
    ok_p50, ok_p90, ok_p99 = _percentiles(outcomes.ok_ms)
    refused_p50, _, refused_p99 = _percentiles(outcomes.refused_ms)
    return Row(
        kind=kind,
        load=load,
        callers=callers,
        seconds=elapsed,
        calls=sum(codes.values()),
        goodput_per_s=ok / elapsed,
        ok=ok,
        refused=refused,
        deadline_exceeded=late,
        other_errors=sum(codes.values()) - ok - refused - late,
        ok_p50_ms=ok_p50,
        ok_p90_ms=ok_p90,
        ok_p99_ms=ok_p99,
        refused_p50_ms=refused_p50,
        refused_p99_ms=refused_p99,
    )


COLUMNS: list[harness.Column[Row]] = [
    harness.Column("rows", "kind"),
    harness.Column("callers", "callers"),
    harness.Column("load", lambda row: None if row.kind == "unloaded" else f"{row.load:g}x"),
    harness.Column("calls", "calls"),
    harness.Column("goodput/s", "goodput_per_s", ".2f"),
    harness.Column("OK", "ok"),
    harness.Column("refused", "refused"),
    harness.Column("deadline", "deadline_exceeded"),
    harness.Column("other", "other_errors"),
    harness.Column("OK p50", "ok_p50_ms", ".1f"),
    harness.Column("OK p99", "ok_p99_ms", ".1f"),
    harness.Column("ref p50", "refused_p50_ms", ".1f"),
    harness.Column("ref p99", "refused_p99_ms", ".1f"),
    harness.Column("of unloaded", "of_unloaded", ".0%"),
]


def _number_list(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give one or more positive numbers")
    return values


def measure(args: argparse.Namespace, settings: Settings) -> harness.Report:
    photos = harness.read_images(args, settings, (f"faces/{SUBJECT}.jpg", f"faces/{PROBE}.jpg"))
    probe = photos[f"faces/{PROBE}.jpg"]
    ModelStore.from_settings(settings).pull_all([YOLOX_NANO, YUNET, MOBILEFACENET, DLIB_RESNET])
    rows: list[Row] = []
    with (
        tempfile.TemporaryDirectory(prefix="argus-overload-bench-") as scratch,
        serving_stack(settings, Path(scratch)) as where,
    ):
        with FaceDbClient(where["facedb"], timeout_s=60) as setup:
            setup.create_collection(COLLECTION)
            setup.enroll(COLLECTION, SUBJECT, [photos[f"faces/{SUBJECT}.jpg"]])
            setup.verify(COLLECTION, SUBJECT, probe)  # warm-up, untimed
        for concurrency in args.unloaded:
            outcomes, elapsed = offer(where["facedb"], probe, concurrency, args.seconds, args.deadline, 0)
            rows.append(row_of("unloaded", 0, concurrency, outcomes, elapsed))
        unloaded = max(row.goodput_per_s for row in rows)
        for load in args.loads:
            callers = max(1, round(load * args.callers))
            outcomes, elapsed = offer(where["facedb"], probe, callers, args.seconds, args.deadline, args.backoff_ms)
            rows.append(row_of("load", load, callers, outcomes, elapsed))
        for row in rows:
            row.of_unloaded = row.goodput_per_s / unloaded if unloaded else None

    bounds = {name: settings.concurrent_calls(name) for name in SERVICES}
    report = harness.Report(
        "overload",
        args.seconds,
        [f"Verify ({PROBE}.jpg vs subject {SUBJECT})", f"{args.deadline:g} s deadline per call"],
        {
            **{f"{name}_max_concurrent_calls": bound for name, bound in bounds.items()},
            "max_open_streams": settings.max_open_streams,
        },
    )
    report.data.update(deadline_s=args.deadline, backoff_ms=args.backoff_ms, unloaded_per_s=unloaded, bounds=bounds)
    backoff = f"{args.backoff_ms:g} ms doubling to {BACKOFF_CAP_S:g} s, full jitter" if args.backoff_ms else "none"
    report.table(
        "rows",
        [
            f"backoff after a refusal: {backoff}",
            f"servers: facedb {where['facedb']}, detector {where['detector']}, embedder {where['embedder']}, each its "
            "own process; the callers are threads of this one",
        ],
        rows,
        COLUMNS,
    )
    report.text(
        "latencies in ms as the caller sees them; 'of unloaded' = goodput / the best unloaded rate; refused = "
        "RESOURCE_EXHAUSTED, deadline = DEADLINE_EXCEEDED"
    )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = harness.arguments(__doc__, seconds=15.0, images="faces/obama.jpg and obama2.jpg")
    parser.add_argument("--callers", type=int, default=10, help="callers at load 1x (default 10)")
    parser.add_argument(
        "--loads", type=_number_list, default=DEFAULT_LOADS, help="offered loads, multiples of --callers (1,2,5,10)"
    )
    parser.add_argument(
        "--unloaded",
        type=harness.int_list(1),
        default=DEFAULT_UNLOADED,
        help="concurrencies of the unloaded rows (1,2,4)",
    )
    parser.add_argument("--deadline", type=float, default=10.0, help="deadline of every call in seconds (default 10)")
    parser.add_argument(
        "--backoff-ms", type=float, default=100.0, help="first backoff after a refusal (default 100; 0: none)"
    )
    args = harness.parse(parser, argv, QUICK)
    if args.deadline <= 0 or args.callers < 1 or args.backoff_ms < 0:
        parser.error("--deadline and --callers must be positive, --backoff-ms not negative")
    settings = Settings()
    return harness.main(lambda: measure(args, settings), args.json)


if __name__ == "__main__":
    sys.exit(main())
