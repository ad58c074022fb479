"""What every bench shares: its command line, the drive loop, latency statistics and the report.

The bench scripts run as `python bench/<name>.py`, so this folder is first on their `sys.path` and they import this
module by its bare name; no bench imports another. Nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import sqlalchemy as sa

from argus.config import Settings
from argus.files import atomic_write

Row = TypeVar("Row")


class Unavailable(Exception):
    """Something the bench needs is missing (a test image, a calibration, redis-server): it exits 2 saying what."""


@contextmanager
def scratch_postgres(server: str) -> Iterator[str]:
    """The URL of an empty database created on this PostgreSQL server (one the bench may create databases on),
    dropped afterwards with whatever is still connected to it."""
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    name = f"argus_bench_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass(frozen=True)
class FaceServices:
    """The detector, embedder and face database a bench started in this process, and where they listen."""

    detector: str
    embedder: str
    facedb: str


@contextmanager
def face_services(settings: Settings, store: Any, scratch: Path, facedb_calls: int) -> Iterator[FaceServices]:
    """Starts the three on free loopback ports, auth off, no /metrics, the face database on a SQLite file in
    `scratch` admitting `facedb_calls` at once (a bench measures throughput, not the overload bound); stops them
    after. `store` is the ModelStore the models come from."""
    from argus.services.detector.server import start_detector_server
    from argus.services.embedder.server import start_embedder_server
    from argus.services.facedb.server import start_facedb_server

    serving = settings.model_copy(update={"host": "127.0.0.1", "metrics_port": 0, "auth": "off"})
    running = []
    try:
        detector = start_detector_server(serving, store, port=0)
        running.append(detector)
        embedder = start_embedder_server(serving, store, port=0)
        running.append(embedder)
        facedb_settings = serving.model_copy(
            update={
                "detector_address": detector.address,
                "embedder_address": embedder.address,
                "database_url": f"sqlite:///{scratch / 'facedb.sqlite3'}",
                "max_concurrent_calls": facedb_calls,
            }
        )
        facedb = start_facedb_server(facedb_settings, port=0)
        running.append(facedb)
        yield FaceServices(detector.address, embedder.address, facedb.address)
    finally:
        for server in reversed(running):
            server.stop()


def free_port() -> int:
    """A loopback port nobody listens on right now, for a server the bench starts as a process."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def process_cpu_s(pid: int) -> float | None:
    """A process's user + system CPU seconds so far, from /proc (None where there is no /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def total_cpu_s(processes: Sequence[subprocess.Popen[bytes]]) -> float | None:
    """The processes' CPU seconds so far, all together (None where there is no /proc)."""
    spent = [process_cpu_s(process.pid) for process in processes]
    return None if None in spent else sum(seconds for seconds in spent if seconds is not None)


def cpu_count() -> int:
    """The CPUs this process may run on, which is what the figures depend on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# --- command line ---------------------------------------------------------------------------------------------


def arguments(doc: str, *, seconds: float, images: str) -> argparse.ArgumentParser:
    """The flags every bench takes; `doc` is the script's docstring, `images` what its --images folder holds."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument(
        "--seconds", type=float, default=seconds, help=f"duration of each timed row (default {seconds:g})"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: short rows, small sizes (flags given still win)"
    )
    parser.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="PATH",
        help="write the figures as JSON to PATH; --json alone prints the JSON on stdout and the table on stderr",
    )
    parser.add_argument(
        "--images", type=Path, default=None, help=f"folder holding {images} (default: images/ beside ARGUS_EVAL_DIR)"
    )
    return parser


def parse(parser: argparse.ArgumentParser, argv: list[str] | None, quick: Mapping[str, object]) -> argparse.Namespace:
    """Parses the command line; with --quick, `quick` replaces the defaults of the flags it names."""
    args = parser.parse_args(argv)
    if args.quick:
        parser.set_defaults(**quick)
        args = parser.parse_args(argv)
    if args.seconds <= 0:
        parser.error("--seconds must be positive")
    return args


def int_list(minimum: int) -> Callable[[str], tuple[int, ...]]:
    """An argparse type: comma-separated integers, each at least `minimum` (`1_000` spelling allowed)."""

    def parse_list(text: str) -> tuple[int, ...]:
        try:
            values = tuple(int(part.replace("_", "")) for part in text.split(",") if part.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
        if not values or min(values) < minimum:
            raise argparse.ArgumentTypeError(f"{text!r}: give one or more integers of at least {minimum}")
        return values

    return parse_list


def images_folder(args: argparse.Namespace, settings: Settings) -> Path:
    """--images, or images/ beside ARGUS_EVAL_DIR (../shared/images beside a checkout)."""
    folder: Path = args.images or settings.eval_dir.parent / "images"
    return folder


def read_images(args: argparse.Namespace, settings: Settings, names: Iterable[str]) -> dict[str, bytes]:
    """The test images by their paths under the images folder."""
    folder = images_folder(args, settings)
    names = tuple(names)
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise Unavailable(f"missing test image(s) {missing} under {folder}; pass --images DIR")
    return {name: (folder / name).read_bytes() for name in names}


# --- timing ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Latency:
    """Statistics of one row's samples, in the unit the samples are in."""

    count: int
    mean: float
    p50: float
    p90: float
    p99: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Latency:
        values = np.asarray(samples, dtype=np.float64)
        p50, p90, p99 = np.percentile(values, [50, 90, 99])
        return cls(int(values.size), float(values.mean()), float(p50), float(p90), float(p99))


@dataclass(frozen=True)
class Run:
    """What one timed row did: calls, the timed window, and each call's latency in ms."""

    calls: int
    elapsed_s: float
    latencies_ms: list[float]
    started_wall: float  # time.time() when the window began, to compare with timestamps the servers write

    @property
    def per_s(self) -> float:
        return self.calls / self.elapsed_s

    @property
    def latency(self) -> Latency:
        return Latency.of(self.latencies_ms)


def repeat(call: Callable[[], object], seconds: float, *, warmup: bool = True) -> Run:
    """`call` back to back in this thread for `seconds` (at least once), after one untimed call unless `warmup` is
    off (the caller made it)."""
    if warmup:
        call()
    latencies = []
    started_wall, started = time.time(), time.perf_counter()
    deadline = started + seconds
    while True:
        t0 = time.perf_counter()
        call()
        t1 = time.perf_counter()
        latencies.append((t1 - t0) * 1e3)
        if t1 >= deadline:
            break
    return Run(len(latencies), time.perf_counter() - started, latencies, started_wall)


def drive(
    make_call: Callable[[], Callable[[], object]],
    concurrency: int,
    seconds: float,
    *,
    limit: int | None = None,
    stop: threading.Event | None = None,
) -> Run:
    """`concurrency` threads call back to back until `seconds` pass (or `limit` calls in all have started), each at
    least once unless the limit is reached first, then finish their call.

    `make_call` gives each thread its own callable (its own channel). A call that waits (a backoff) should wait on
    `stop`, which is set when the time is up. The window ends when the last call has returned.
    """
    callers = [make_call() for _ in range(concurrency)]
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors: list[BaseException] = []
    stop = stop or threading.Event()
    tickets = itertools.count()
    barrier = threading.Barrier(concurrency + 1)

    def worker(index: int) -> None:
        barrier.wait()
        try:
            while True:
                if limit is not None and next(tickets) >= limit:
                    stop.set()
                    break
                t0 = time.perf_counter()
                callers[index]()
                latencies[index].append((time.perf_counter() - t0) * 1e3)
                if stop.is_set():
                    break
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started_wall, started = time.time(), time.perf_counter()
    stop.wait(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} call(s) failed; first: {errors[0]!r}") from errors[0]
    flat = [ms for per_thread in latencies for ms in per_thread]
    return Run(len(flat), elapsed, flat, started_wall)


# --- report ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column(Generic[Row]):
    """One column of a printed table: its header, the row's value (an attribute's name or a function) and the
    format of that value. Numbers are right-aligned, text left; a missing value (None) prints as '-'."""

    header: str
    value: str | Callable[[Row], object]
    spec: str = ""

    def cell(self, row: Row) -> tuple[str, bool]:
        value = getattr(row, self.value) if isinstance(self.value, str) else self.value(row)
        if value is None:
            return "-", True
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        return format(value, self.spec), numeric


def table(rows: Sequence[Row], columns: Sequence[Column[Row]]) -> list[str]:
    """The rows as aligned text: a header line, a rule, a line per row."""
    cells = [[column.cell(row) for column in columns] for row in rows]
    widths = [max([len(column.header), *(len(line[i][0]) for line in cells)]) for i, column in enumerate(columns)]
    right = [all(line[i][1] for line in cells) and bool(cells) for i in range(len(columns))]

    def line(texts: Sequence[str]) -> str:
        return "  ".join(
            text.rjust(width) if aligned else text.ljust(width)
            for text, width, aligned in zip(texts, widths, right, strict=True)
        ).rstrip()

    return [
        line([column.header for column in columns]),
        line(["-" * width for width in widths]),
        *(line([text for text, _ in row_cells]) for row_cells in cells),
    ]


def _plain(value: object) -> Any:
    return asdict(value) if is_dataclass(value) and not isinstance(value, type) else value


class Report:
    """One run's figures: tables and notes for people, the same rows (and the run's facts) as JSON for tools."""

    def __init__(self, bench: str, seconds: float | None, facts: Sequence[str], settings: Mapping[str, object]) -> None:
        """`seconds`: each timed row's duration; None for a bench whose rows are a fixed amount of work."""
        per_row = [] if seconds is None else [f"{seconds:g} s per row"]
        self.lines = [
            f"Argus {bench} bench: {', '.join([*per_row, *facts, f'{cpu_count()} CPUs'])}",
            "settings: " + " ".join(f"{name}={value}" for name, value in settings.items()),
        ]
        self.data: dict[str, Any] = {"seconds_per_row": seconds, "cpus": cpu_count(), "settings": dict(settings)}

    def text(self, *lines: str) -> None:
        self.lines.extend(lines)

    def table(
        self, key: str | None, caption: Sequence[str], rows: Sequence[Row], columns: Sequence[Column[Row]]
    ) -> None:
        """A blank line, the caption, the table; its rows go into the JSON under `key` (unless None)."""
        self.lines += ["", *caption, *table(rows, columns)]
        if key is not None:
            self.data[key] = [_plain(row) for row in rows]

    def emit(self, total_s: float, json_path: str | None) -> None:
        """Prints the table, and writes the JSON when asked: '-' puts it on stdout and the table on stderr."""
        self.lines.append(f"total run time {total_s:.1f} s")
        self.data["total_s"] = total_s
        text = "\n".join(self.lines)
        document = json.dumps(self.data, indent=2, default=_plain)
        if json_path == "-":
            print(text, file=sys.stderr)
            print(document)
            return
        print(text)
        if json_path is not None:
            atomic_write(Path(json_path), document + "\n")


def main(measure: Callable[[], Report], json_path: str | None) -> int:
    """Runs one bench: `measure` does the work and returns its report; exit status 2 when something is missing."""
    started = time.perf_counter()
    try:
        report = measure()
    except Unavailable as exc:
        print(exc, file=sys.stderr)
        return 2
    report.emit(time.perf_counter() - started, json_path)
    return 0
