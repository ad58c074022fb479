"""Overload benchmark: face database Verify offered 1x to 10x what the stack completes, with a deadline per call.

    python bench/overload_bench.py [--seconds S] [--callers N] [--loads 1,2,5,10] [--deadline S] [--quick] [--json]

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
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import grpc
import numpy as np

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
    ok_p99_ms: float | None
    refused_p50_ms: float | None
    refused_p99_ms: float | None
    of_unloaded: float | None = None  # goodput / the best unloaded rate


def _percentiles(ms: list[float]) -> tuple[float | None, float | None]:
    if not ms:
        return None, None
    p50, p99 = np.percentile(ms, [50, 99])
    return float(p50), float(p99)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
                    wait_until_serving(channel, name, deadline, lambda p=process: p.poll() is None)
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
    clients = [FaceDbClient(address, timeout_s=deadline_s) for _ in range(callers)]
    barrier = threading.Barrier(callers + 1)
    stop = threading.Event()

    def caller(client: FaceDbClient) -> None:
        barrier.wait()
        refusals_in_a_row = 0
        while not stop.is_set():
            started = time.perf_counter()
            try:
                client.verify(COLLECTION, SUBJECT, probe)
                code = grpc.StatusCode.OK
            except grpc.RpcError as exc:
                code = exc.code()  # type: ignore[attr-defined]
            outcomes.record(code, (time.perf_counter() - started) * 1e3)
            if code is grpc.StatusCode.RESOURCE_EXHAUSTED and backoff_ms > 0:
                ceiling = min(BACKOFF_CAP_S, backoff_ms / 1e3 * 2**refusals_in_a_row)
                refusals_in_a_row += 1
                stop.wait(random.uniform(0, ceiling))
            else:
                refusals_in_a_row = 0

    threads = [threading.Thread(target=caller, args=(client,), daemon=True) for client in clients]
    try:
        for thread in threads:
            thread.start()
        barrier.wait()
        started = time.perf_counter()
        stop.wait(seconds)
        stop.set()
        for thread in threads:
            thread.join()
        return outcomes, time.perf_counter() - started
    finally:
        for client in clients:
            client.close()


def row_of(kind: str, load: float, callers: int, outcomes: Outcomes, elapsed: float) -> Row:
    codes = outcomes.codes
    ok = codes.get("OK", 0)
    refused = codes.get("RESOURCE_EXHAUSTED", 0)
    late = codes.get("DEADLINE_EXCEEDED", 0)
    ok_p50, ok_p99 = _percentiles(outcomes.ok_ms)
    refused_p50, refused_p99 = _percentiles(outcomes.refused_ms)
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
        ok_p99_ms=ok_p99,
        refused_p50_ms=refused_p50,
        refused_p99_ms=refused_p99,
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def format_table(args: argparse.Namespace, settings: Settings, where: dict[str, str], rows: list[Row]) -> str:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    bounds = " ".join(f"{name}={settings.concurrent_calls(name)}" for name in SERVICES)
    backoff = f"{args.backoff_ms:g} ms doubling to {BACKOFF_CAP_S:g} s, full jitter" if args.backoff_ms else "none"
    lines = [
        f"Argus overload bench: Verify ({PROBE}.jpg vs subject {SUBJECT}), {args.seconds:g} s per row, "
        f"{args.deadline:g} s deadline per call, {cpus} CPUs",
        f"unary call bounds: {bounds}; max_open_streams={settings.max_open_streams}; backoff after a refusal: "
        f"{backoff}",
        f"servers: facedb {where['facedb']}, detector {where['detector']}, embedder {where['embedder']}, each its own "
        "process; the callers are threads of this one",
        f"{'rows':<9}{'callers':>8}{'load':>6}{'calls':>7}{'goodput/s':>10}{'OK':>6}{'refused':>8}{'deadline':>9}"
        f"{'other':>6}{'OK p50':>9}{'OK p99':>9}{'ref p50':>9}{'ref p99':>9}{'of unloaded':>12}",
    ]
    for row in rows:
        load = "-" if row.kind == "unloaded" else f"{row.load:g}x"
        share = "-" if row.of_unloaded is None else f"{row.of_unloaded:.0%}"
        lines.append(
            f"{row.kind:<9}{row.callers:>8}{load:>6}{row.calls:>7}{row.goodput_per_s:>10.2f}{row.ok:>6}"
            f"{row.refused:>8}{row.deadline_exceeded:>9}{row.other_errors:>6}{_ms(row.ok_p50_ms):>9}"
            f"{_ms(row.ok_p99_ms):>9}{_ms(row.refused_p50_ms):>9}{_ms(row.refused_p99_ms):>9}{share:>12}"
        )
    lines.append(
        "latencies in ms as the caller sees them; 'of unloaded' = goodput / the best unloaded rate; refused = "
        "RESOURCE_EXHAUSTED, deadline = DEADLINE_EXCEEDED"
    )
    return "\n".join(lines)


def _number_list(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give one or more positive numbers")
    return values


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="duration of each row (default 15)")
    parser.add_argument("--callers", type=int, default=10, help="callers at load 1x (default 10)")
    parser.add_argument(
        "--loads", type=_number_list, default=DEFAULT_LOADS, help="offered loads, multiples of --callers (1,2,5,10)"
    )
    parser.add_argument(
        "--unloaded", type=_number_list, default=DEFAULT_UNLOADED, help="concurrencies of the unloaded rows (1,2,4)"
    )
    parser.add_argument("--deadline", type=float, default=10.0, help="deadline of every call in seconds (default 10)")
    parser.add_argument(
        "--backoff-ms", type=float, default=100.0, help="first backoff after a refusal (default 100; 0: none)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: 1 s rows, unloaded at 1, loads 1x and 2x of 2 callers"
    )
    parser.add_argument("--json", action="store_true", help="print JSON on stdout; the table goes to stderr")
    parser.add_argument("--images", type=Path, default=None, help="folder holding faces/obama.jpg and obama2.jpg")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.callers, args.loads, args.unloaded = 1.0, 2, (1.0, 2.0), (1.0,)
    if args.seconds <= 0 or args.deadline <= 0 or args.callers < 1 or args.backoff_ms < 0:
        parser.error("--seconds, --deadline and --callers must be positive, --backoff-ms not negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run_started = time.perf_counter()
    settings = Settings()
    images_dir = args.images or settings.eval_dir.parent / "images"
    paths = {name: images_dir / "faces" / f"{name}.jpg" for name in (SUBJECT, PROBE)}
    missing = [str(path) for path in paths.values() if not path.is_file()]
    if missing:
        print(f"missing test image(s) {missing}; pass --images DIR", file=sys.stderr)
        return 2
    ModelStore(settings.resolved_models_dir, settings.models_mirror).pull_all(
        [YOLOX_NANO, YUNET, MOBILEFACENET, DLIB_RESNET]
    )
    probe = paths[PROBE].read_bytes()
    rows: list[Row] = []
    with (
        tempfile.TemporaryDirectory(prefix="argus-overload-bench-") as scratch,
        serving_stack(settings, Path(scratch)) as where,
    ):
        with FaceDbClient(where["facedb"], timeout_s=60) as setup:
            setup.create_collection(COLLECTION)
            setup.enroll(COLLECTION, SUBJECT, [paths[SUBJECT].read_bytes()])
            setup.verify(COLLECTION, SUBJECT, probe)  # warm-up, untimed
        for concurrency in args.unloaded:
            outcomes, elapsed = offer(where["facedb"], probe, int(concurrency), args.seconds, args.deadline, 0)
            rows.append(row_of("unloaded", 0, int(concurrency), outcomes, elapsed))
        unloaded = max(row.goodput_per_s for row in rows)
        for load in args.loads:
            callers = max(1, round(load * args.callers))
            outcomes, elapsed = offer(where["facedb"], probe, callers, args.seconds, args.deadline, args.backoff_ms)
            rows.append(row_of("load", load, callers, outcomes, elapsed))
        for row in rows:
            row.of_unloaded = row.goodput_per_s / unloaded if unloaded else None

    table = format_table(args, settings, where, rows)
    total_s = time.perf_counter() - run_started
    table += f"\ntotal run time {total_s:.1f} s"
    if args.json:
        print(table, file=sys.stderr)
        report = {
            "seconds_per_row": args.seconds,
            "deadline_s": args.deadline,
            "backoff_ms": args.backoff_ms,
            "total_s": total_s,
            "unloaded_per_s": unloaded,
            "bounds": {name: settings.concurrent_calls(name) for name in SERVICES},
            "rows": [asdict(row) for row in rows],
        }
        print(json.dumps(report, indent=2))
    else:
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
