"""Jobs bench: the Redis job queue's own overhead, detection jobs end to end, and stylization speed, in one run.

    python bench/jobs_bench.py [--seconds S] [--quick] [--json [PATH]] [--sides 512,1024] [--jobs N] [--images DIR]

The bench starts a redis-server of its own on a free loopback port (no persistence; stopped at the end), the jobs
API server in this process on a free port, and its workers as threads of this process; clients call the jobs API
through real channels to 127.0.0.1. Part 1 measures the queue with workers whose handler does nothing, and the
submit capacity of `argus serve jobs` in a process of its own (on a Redis of its own) called by 8 clients in two
processes of their own; part 2 runs
detection jobs on the real handler; part 3 times Stylizer.stylize for each model directly, then one stylization
job end to end. Every timed row runs for --seconds (at least one job or call each) and every wait has a deadline,
so the whole run is bounded. Nothing here asserts a speed: it prints what it measured. See bench/README.md.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import grpc
import harness
import numpy as np
import onnxruntime as ort
import redis
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import REGISTRY

from argus.client import JobsClient
from argus.config import Settings
from argus.health import wait_until_serving
from argus.models.manifest import FAST_STYLES, MAGENTA_STYLE_PREDICT, MAGENTA_STYLE_TRANSFER, YOLOX_NANO, YUNET
from argus.models.store import ModelStore
from argus.proto.jobs.v1 import jobs_pb2
from argus.redis_server import RedisServer, RedisServerError
from argus.services.jobs.changes import FALLBACK_POLL_S
from argus.services.jobs.handlers import StylizationHandler
from argus.services.jobs.server import detection_handler, job_store, make_worker, start_jobs_server
from argus.services.jobs.store import EVERYONE, Kind, State
from argus.services.jobs.worker import Worker
from argus.services.stylizer.styles import ARBITRARY, Stylizer

OBJECT_IMAGE = "objects/bus.jpg"
CONTENT_IMAGE = "style/amber.jpg"
STYLE_IMAGE = "style/candy.jpg"  # the style image of the arbitrary (Magenta) rows
QUEUE_STYLE = "candy"  # the fixed style of the end-to-end stylization job
DEFAULT_SIDES = (512, 1024)
DEFAULT_JOBS = 500  # jobs per throughput burst, unless --seconds runs out first
BURST_CLIENTS = 4  # client threads submitting a burst
# The submit capacity row: `argus serve jobs` in a process of its own, as deployed, and 8 clients in processes of
# their own, so that neither the clients nor workers share the server's interpreter.
CAPACITY_CLIENT_PROCESSES = 2
CAPACITY_CLIENT_THREADS = 4
CAPACITY_API_PROCESSES = (1, 2)  # one jobs API process, then two replicas
DETECTION_CONCURRENCIES = (1, 4)
NOOP_IMAGE_SIDE = 32  # the no-op jobs carry a tiny JPEG: submit still decodes it to check the job
# A polling client calls GetJob every POLL_S at first, then every POLL_BACKOFF x the time waited so far, at most
# POLL_MAX_S: a client hammering the server in this process would steal the CPU from long jobs (stylization).
POLL_S = 0.001
POLL_BACKOFF = 0.05
POLL_MAX_S = 0.02
WORKER_POLL_S = 0.05  # how long a worker's XREADGROUP blocks; it wakes at once when a job arrives
CALL_TIMEOUT_S = 60.0  # a job or call that hangs fails the run instead of hanging it
DRAIN_TIMEOUT_S = 60.0  # longest wait for a burst's jobs to finish
QUICK = {"seconds": 0.3, "sides": (64, 128), "jobs": 40}


@dataclass
class JobRow:
    """Jobs one at a time per client: submit, then wait for the result; latencies as the client sees them."""

    section: str  # no-op, detection, stylization
    image: str
    workers: int
    clients: int
    wait: str  # watch: JobsClient.wait (WatchJob stream); poll: GetJob every POLL_S, backing off
    jobs: int
    jobs_per_s: float
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    # p50 of each leg (ms): the SubmitJob call; created -> started (in the stream, picked up, record read);
    # started -> finished (the handler and storing the result); finished -> the client holding the result.
    submit_p50_ms: float
    queued_p50_ms: float
    run_p50_ms: float
    seen_p50_ms: float


@dataclass
class BurstRow:
    """N no-op jobs submitted as fast as BURST_CLIENTS threads can, drained by `workers` workers."""

    workers: int
    clients: int
    jobs: int
    submitted_per_s: float
    completed_per_s: float
    submit_s: float  # first submit sent -> last submit answered
    drain_ms: float  # last submit answered -> last job finished
    submit_p50_ms: float
    submit_p99_ms: float


@dataclass
class StyleRow:
    model: str  # a fixed style's name, or "arbitrary" (Magenta, with a style image)
    refs: str
    max_side: int
    output: str  # WxH of the result
    megapixels: float
    provider: str
    calls: int
    s_per_call: float
    p50_s: float
    p90_s: float
    p99_s: float
    s_per_megapixel: float


@dataclass
class StyleJobRow:
    job: JobRow
    style: str
    max_side: int
    direct_p50_ms: float  # Stylizer.stylize alone, same style and size, from part 3
    outside_model_ms: float  # end-to-end p50 minus direct_p50_ms
    share_outside_model: float  # outside_model_ms / end-to-end p50
    outside_worker_ms: float  # submit + queued + seen: what the queue and the API add around the worker
    share_outside_worker: float
    # Stylizer.stylize and the same job taking turns, so the machine's drift weighs on both (paired_ratio)
    paired_rounds: int
    paired_direct_p50_ms: float
    paired_job_p50_ms: float

    @property
    def paired_ratio(self) -> float:
        return self.paired_job_p50_ms / self.paired_direct_p50_ms


@dataclass
class CapacityRow:
    """SubmitJob as fast as the clients can call it, against jobs API processes with no worker in them."""

    api_processes: int  # replicas the clients spread their calls over (round robin over an address list)
    clients: int
    jobs: int
    submitted_per_s: float
    submit_p50_ms: float
    server_cpu_ms: float | None  # the API processes' CPU time per submit (user + system); None off Linux
    redis_cpu_ms: float  # redis-server's, from INFO cpu
    client_cpu_ms: float  # the client processes', gRPC stubs and all
    ceiling_per_s: float | None  # the machine's cores over the CPU all three spend per submit: the most it could do


@dataclass
class Measured:
    redis_version: str
    address: str  # where the jobs API listened
    latency: list[JobRow]
    bursts: list[BurstRow]
    detection: list[JobRow]
    styles: list[StyleRow]
    style_job: StyleJobRow
    capacity: list[CapacityRow]


# --- plumbing -------------------------------------------------------------------------------------------------


@contextmanager
def own_redis(folder: Path) -> Iterator[tuple[str, str]]:
    """A redis-server of this run's own on a free loopback port, without persistence; yields (url, version)."""
    server = RedisServer(folder, persistent=False)
    try:
        url = server.start()
        with redis.Redis.from_url(url, decode_responses=True) as client:
            version = str(client.info("server")["redis_version"])
        yield url, version
    finally:
        server.stop()


class Workers:
    """Worker threads of this process, each with its own consumer name; all stopped by stop_all()."""

    def __init__(self) -> None:
        self.running: list[tuple[Worker, threading.Thread]] = []

    def start(self, worker: Worker) -> Worker:
        thread = threading.Thread(target=worker.run, kwargs={"poll_s": WORKER_POLL_S}, daemon=True)
        thread.start()
        self.running.append((worker, thread))
        return worker

    def stop_all(self) -> None:
        for worker, _ in self.running:
            worker.stop()
        for worker, thread in self.running:
            thread.join(timeout=10)
            worker.store.close()
        self.running.clear()


def noop_handler(request: bytes, progress: Callable[[float], None]) -> bytes:
    return b""


def _seconds(stamp: Timestamp) -> float:
    return float(stamp.ToNanoseconds()) / 1e9


def _poll(client: JobsClient, job_id: str) -> jobs_pb2.Job:
    """GetJob until the job ends, every POLL_S at first and backing off; the result comes with the call that sees
    the job end."""
    started = time.monotonic()
    while True:
        job = client.get(job_id, include_result=True)
        if State(job.state).terminal:
            return job
        waited = time.monotonic() - started
        if waited > CALL_TIMEOUT_S:
            raise TimeoutError(f"job {job_id} still {State(job.state).name} after {CALL_TIMEOUT_S:g} s")
        time.sleep(min(max(POLL_S, POLL_BACKOFF * waited), POLL_MAX_S))


def run_jobs(
    address: str,
    submit: Callable[[JobsClient], jobs_pb2.Job],
    *,
    section: str,
    image: str,
    workers: int,
    clients: int,
    wait: str,
    seconds: float,
    check: Callable[[jobs_pb2.Job], None] | None = None,
) -> JobRow:
    """`clients` threads, each submitting a job and waiting for its result, back to back for `seconds`."""
    legs: list[tuple[float, float, float, float]] = []
    opened: list[JobsClient] = []

    def make_call() -> Callable[[], int]:
        client = JobsClient(address, timeout_s=CALL_TIMEOUT_S)
        opened.append(client)

        def call() -> int:
            t0 = time.perf_counter()
            job = submit(client)
            t1 = time.perf_counter()
            done = client.wait(job.job_id, timeout_s=CALL_TIMEOUT_S) if wait == "watch" else _poll(client, job.job_id)
            seen_at = time.time()
            if done.state != jobs_pb2.SUCCEEDED:
                raise RuntimeError(f"job {done.job_id} ended {State(done.state).name}: {done.error}")
            if check is not None:
                check(done)
            created, started, finished = (
                _seconds(done.created_at),
                _seconds(done.started_at),
                _seconds(done.finished_at),
            )
            legs.append(
                ((t1 - t0) * 1e3, (started - created) * 1e3, (finished - started) * 1e3, (seen_at - finished) * 1e3)
            )
            return 1

        return call

    try:
        run = harness.drive(make_call, clients, seconds)
    finally:
        for client in opened:
            client.close()
    latency = run.latency
    submit_ms, queued_ms, run_ms, seen_ms = (float(np.percentile(column, 50)) for column in zip(*legs, strict=True))
    return JobRow(
        section=section,
        image=image,
        workers=workers,
        clients=clients,
        wait=wait,
        jobs=run.calls,
        jobs_per_s=run.per_s,
        mean_ms=latency.mean,
        p50_ms=latency.p50,
        p90_ms=latency.p90,
        p99_ms=latency.p99,
        submit_p50_ms=submit_ms,
        queued_p50_ms=queued_ms,
        run_p50_ms=run_ms,
        seen_p50_ms=seen_ms,
    )


def _finished_count(kind: Kind) -> float:
    labels = {"kind": kind.name, "state": State.SUCCEEDED.name}
    return REGISTRY.get_sample_value("argus_jobs_finished_total", labels) or 0.0


def run_burst(address: str, settings: Settings, image: bytes, workers: int, jobs: int, seconds: float) -> BurstRow:
    """BURST_CLIENTS threads submit no-op jobs back to back until `jobs` are in or `seconds` pass, then the
    workers drain the queue. Completion is timed by the jobs' own finished_at, read from Redis at the end."""
    job_ids: list[str] = []
    opened: list[JobsClient] = []
    before = _finished_count(Kind.DETECTION)

    def make_call() -> Callable[[], None]:
        client = JobsClient(address, timeout_s=CALL_TIMEOUT_S)
        opened.append(client)
        return lambda: job_ids.append(client.submit_detection([image]).job_id)

    try:
        run = harness.drive(make_call, BURST_CLIENTS, seconds, limit=jobs)
    finally:
        for client in opened:
            client.close()
    total = run.calls
    drain_deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while _finished_count(Kind.DETECTION) - before < total:
        if time.monotonic() > drain_deadline:
            done = int(_finished_count(Kind.DETECTION) - before)
            raise RuntimeError(f"only {done} of {total} burst jobs finished within {DRAIN_TIMEOUT_S:g} s")
        time.sleep(0.005)
    store = job_store(settings)
    try:
        last_finished = max(store.get(job_id, EVERYONE).finished_at for job_id in job_ids)
    finally:
        store.close()
    submitted_wall = run.started_wall + run.elapsed_s
    latency = run.latency
    return BurstRow(
        workers=workers,
        clients=BURST_CLIENTS,
        jobs=total,
        submitted_per_s=run.per_s,
        completed_per_s=total / max(last_finished - run.started_wall, run.elapsed_s),
        submit_s=run.elapsed_s,
        drain_ms=max(0.0, last_finished - submitted_wall) * 1e3,
        submit_p50_ms=latency.p50,
        submit_p99_ms=latency.p99,
    )


def tiny_jpeg() -> bytes:
    """The no-op jobs' image: submit still checks its header."""
    ok, encoded = cv2.imencode(".jpg", np.full((NOOP_IMAGE_SIDE, NOOP_IMAGE_SIDE, 3), 128, dtype=np.uint8))
    assert ok
    return encoded.tobytes()


def _redis_cpu_s(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _capacity_client(address: str, threads: int, seconds: float, image: bytes) -> tuple[int, float, list[float], float]:
    """One client process: `threads` threads submitting no-op jobs back to back (calls, seconds, latencies, and the
    CPU seconds this process spent on them)."""
    opened: list[JobsClient] = []

    def make_call() -> Callable[[], object]:
        client = JobsClient(address, timeout_s=CALL_TIMEOUT_S)
        opened.append(client)
        return lambda: client.submit_detection([image])

    started = time.process_time()
    try:
        run = harness.drive(make_call, threads, seconds)
    finally:
        for client in opened:
            client.close()
    return run.calls, run.elapsed_s, run.latencies_ms, time.process_time() - started


def run_submit_capacity(scratch: Path, image: bytes, seconds: float) -> list[CapacityRow]:
    """`argus serve jobs` as one process of its own, then as two replicas (its workers would be other processes;
    none run here), called by CAPACITY_CLIENT_PROCESSES x CAPACITY_CLIENT_THREADS clients in processes of their own.
    On a Redis of its own: the jobs it leaves queued must not wait ahead of the other parts' jobs."""
    with own_redis(scratch / "capacity-redis") as (redis_url, _):
        return [_submit_capacity(redis_url, scratch, image, seconds, replicas) for replicas in CAPACITY_API_PROCESSES]


def _submit_capacity(redis_url: str, scratch: Path, image: bytes, seconds: float, replicas: int) -> CapacityRow:
    ports = [harness.free_port() for _ in range(replicas)]
    env = {key: value for key, value in os.environ.items() if not key.startswith("ARGUS_")}
    env |= {"ARGUS_AUTH": "off", "ARGUS_REDIS_URL": redis_url, "ARGUS_DATA_DIR": str(scratch / "capacity")}
    servers = [
        subprocess.Popen(
            [sys.executable, "-m", "argus.cli.main", "serve", "jobs", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]
    # What DNS gives a client for a scaled service: every replica's address; the client spreads calls over them.
    address = "ipv4:" + ",".join(f"127.0.0.1:{port}" for port in ports)
    try:
        for port, server in zip(ports, servers, strict=True):
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                wait_until_serving(channel, "jobs", time.monotonic() + 60, lambda s=server: s.poll() is None)
        with JobsClient(address, timeout_s=CALL_TIMEOUT_S) as warm:
            for _ in ports:
                warm.submit_detection([image])
        with redis.Redis.from_url(redis_url) as client:
            server_before, redis_before = harness.total_cpu_s(servers), _redis_cpu_s(client)
            with multiprocessing.get_context("spawn").Pool(CAPACITY_CLIENT_PROCESSES) as pool:
                runs = pool.starmap(
                    _capacity_client,
                    [(address, CAPACITY_CLIENT_THREADS, seconds, image)] * CAPACITY_CLIENT_PROCESSES,
                )
            server_after, redis_after = harness.total_cpu_s(servers), _redis_cpu_s(client)
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=30)
    jobs = sum(run[0] for run in runs)
    latencies = [latency for run in runs for latency in run[2]]
    server_cpu_ms = None
    if server_before is not None and server_after is not None:
        server_cpu_ms = 1e3 * (server_after - server_before) / jobs
    redis_cpu_ms = 1e3 * (redis_after - redis_before) / jobs
    client_cpu_ms = 1e3 * sum(run[3] for run in runs) / jobs
    return CapacityRow(
        api_processes=replicas,
        clients=CAPACITY_CLIENT_PROCESSES * CAPACITY_CLIENT_THREADS,
        jobs=jobs,
        submitted_per_s=sum(calls / elapsed for calls, elapsed, _, _ in runs),
        submit_p50_ms=harness.Latency.of(latencies).p50,
        server_cpu_ms=server_cpu_ms,
        redis_cpu_ms=redis_cpu_ms,
        client_cpu_ms=client_cpu_ms,
        ceiling_per_s=None
        if server_cpu_ms is None
        else 1e3 * (os.cpu_count() or 1) / (server_cpu_ms + redis_cpu_ms + client_cpu_ms),
    )


# --- part 1: the queue's own overhead ------------------------------------------------------------------------


def run_queue_overhead(
    address: str, settings: Settings, seconds: float, jobs: int
) -> tuple[list[JobRow], list[BurstRow]]:
    tiny = tiny_jpeg()
    image = f"{NOOP_IMAGE_SIDE}x{NOOP_IMAGE_SIDE}.jpg"
    workers = Workers()
    latency: list[JobRow] = []
    bursts: list[BurstRow] = []

    def noop_worker(index: int) -> Worker:
        return Worker(
            Kind.DETECTION,
            noop_handler,
            job_store(settings),
            visibility_timeout_s=settings.job_visibility_timeout_s,
            max_attempts=settings.job_max_attempts,
            consumer=f"bench-noop-{index}",
        )

    try:
        workers.start(noop_worker(0))

        def submit(client: JobsClient) -> jobs_pb2.Job:
            return client.submit_detection([tiny])

        run_jobs(address, submit, section="no-op", image=image, workers=1, clients=1, wait="poll", seconds=0.0)
        for wait in ("watch", "poll"):
            latency.append(
                run_jobs(
                    address, submit, section="no-op", image=image, workers=1, clients=1, wait=wait, seconds=seconds
                )
            )
        bursts.append(run_burst(address, settings, tiny, 1, jobs, seconds))
        workers.start(noop_worker(1))
        bursts.append(run_burst(address, settings, tiny, 2, jobs, seconds))
    finally:
        workers.stop_all()
    return latency, bursts


# --- part 2: detection jobs -------------------------------------------------------------------------------------


def run_detection(address: str, settings: Settings, store: ModelStore, image: bytes, seconds: float) -> list[JobRow]:
    workers = Workers()
    rows = []

    def submit(client: JobsClient) -> jobs_pb2.Job:
        return client.submit_detection([image])

    def check(job: jobs_pb2.Job) -> None:
        if len(job.detection.objects.results) != 1 or not job.detection.objects.results[0].objects:
            raise RuntimeError(f"detection job {job.job_id} found nothing in {Path(OBJECT_IMAGE).name}")

    name = Path(OBJECT_IMAGE).name
    try:
        workers.start(make_worker(Kind.DETECTION, settings, store, detection_handler(settings, store)))
        run_jobs(address, submit, section="detection", image=name, workers=1, clients=1, wait="poll", seconds=0.0)
        for clients, wait in ((1, "poll"), (1, "watch"), *((c, "poll") for c in DETECTION_CONCURRENCIES[1:])):
            rows.append(
                run_jobs(
                    address,
                    submit,
                    section="detection",
                    image=name,
                    workers=1,
                    clients=clients,
                    wait=wait,
                    seconds=seconds,
                    check=check,
                )
            )
    finally:
        workers.stop_all()
    return rows


# --- part 3: stylization ----------------------------------------------------------------------------------------


def _decode(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise harness.Unavailable("a test image of the stylization rows is not an image")
    return image


PAIRED_MIN_ROUNDS = 3


def paired_stylization(
    stylizer: Stylizer, content: np.ndarray, content_bytes: bytes, address: str, side: int, seconds: float
) -> tuple[int, float, float]:
    """Stylizer.stylize and the same work as a job (watched), one after the other, for `seconds` and at least
    PAIRED_MIN_ROUNDS rounds: (rounds, direct p50 ms, job p50 ms). Rows run minutes apart see different loads on
    a shared machine; turns taken within a row do not."""
    direct: list[float] = []
    jobs: list[float] = []
    with JobsClient(address, timeout_s=CALL_TIMEOUT_S) as client:
        deadline = time.monotonic() + seconds
        while len(direct) < PAIRED_MIN_ROUNDS or time.monotonic() < deadline:
            started = time.perf_counter()
            stylizer.stylize(content, style=QUEUE_STYLE, max_side=side)
            direct.append((time.perf_counter() - started) * 1e3)
            started = time.perf_counter()
            job = client.submit_stylization(content_bytes, style=QUEUE_STYLE, max_size=side)
            client.wait(job.job_id, timeout_s=CALL_TIMEOUT_S)
            jobs.append((time.perf_counter() - started) * 1e3)
    return len(direct), harness.Latency.of(direct).p50, harness.Latency.of(jobs).p50


def time_stylize(
    stylizer: Stylizer, content: np.ndarray, style_image: np.ndarray, model: str, max_side: int, seconds: float
) -> StyleRow:
    """Stylizer.stylize back to back for `seconds` (at least one call) after one untimed call at this size."""
    arbitrary = model == ARBITRARY
    if arbitrary:
        refs = f"{stylizer.predictor.spec.ref}+{stylizer.transfer.spec.ref}"
        provider = stylizer.transfer.provider
    else:
        refs = stylizer.fixed[model].spec.ref
        provider = stylizer.fixed[model].provider

    def stylize() -> np.ndarray:
        return stylizer.stylize(
            content,
            max_side=max_side,
            style=None if arbitrary else model,
            style_image_bgr=style_image if arbitrary else None,
        )

    height, width = stylize().shape[:2]  # the untimed call
    megapixels = height * width / 1e6
    run = harness.repeat(stylize, seconds, warmup=False)
    seconds_per_call = harness.Latency.of([ms / 1e3 for ms in run.latencies_ms])
    return StyleRow(
        model=model,
        refs=refs,
        max_side=max_side,
        output=f"{width}x{height}",
        megapixels=megapixels,
        provider=provider,
        calls=run.calls,
        s_per_call=seconds_per_call.mean,
        p50_s=seconds_per_call.p50,
        p90_s=seconds_per_call.p90,
        p99_s=seconds_per_call.p99,
        s_per_megapixel=seconds_per_call.mean / megapixels,
    )


def run_stylization(
    address: str,
    settings: Settings,
    store: ModelStore,
    content_bytes: bytes,
    style_bytes: bytes,
    sides: tuple[int, ...],
    seconds: float,
) -> tuple[list[StyleRow], StyleJobRow]:
    stylizer = Stylizer(store, settings)
    content, style_image = _decode(content_bytes), _decode(style_bytes)
    rows = [
        time_stylize(stylizer, content, style_image, model, side, seconds)
        for model in (*stylizer.fixed, ARBITRARY)
        for side in sides
    ]

    side = max(sides)
    workers = Workers()

    def submit(client: JobsClient) -> jobs_pb2.Job:
        return client.submit_stylization(content_bytes, style=QUEUE_STYLE, max_size=side)

    def check(job: jobs_pb2.Job) -> None:
        if not job.stylization.image.data:
            raise RuntimeError(f"stylization job {job.job_id} returned no image")

    try:
        workers.start(make_worker(Kind.STYLIZATION, settings, store, StylizationHandler(stylizer, settings)))
        name = Path(CONTENT_IMAGE).name
        run_jobs(address, submit, section="stylization", image=name, workers=1, clients=1, wait="poll", seconds=0.0)
        job = run_jobs(
            address,
            submit,
            section="stylization",
            image=name,
            workers=1,
            clients=1,
            wait="watch",
            seconds=seconds,
            check=check,
        )
        paired = paired_stylization(stylizer, content, content_bytes, address, side, seconds)
    finally:
        workers.stop_all()
    direct_ms = next(row.p50_s for row in rows if row.model == QUEUE_STYLE and row.max_side == side) * 1e3
    outside_worker = job.submit_p50_ms + job.queued_p50_ms + job.seen_p50_ms
    return rows, StyleJobRow(
        job=job,
        style=QUEUE_STYLE,
        max_side=side,
        direct_p50_ms=direct_ms,
        outside_model_ms=job.p50_ms - direct_ms,
        share_outside_model=(job.p50_ms - direct_ms) / job.p50_ms,
        outside_worker_ms=outside_worker,
        share_outside_worker=outside_worker / job.p50_ms,
        paired_rounds=paired[0],
        paired_direct_p50_ms=paired[1],
        paired_job_p50_ms=paired[2],
    )


# --- output ---------------------------------------------------------------------------------------------------

JOB_COLUMNS: list[harness.Column[JobRow]] = [
    harness.Column("job", "section"),
    harness.Column("image", "image"),
    harness.Column("workers", "workers"),
    harness.Column("clients", "clients"),
    harness.Column("wait", "wait"),
    harness.Column("jobs", "jobs"),
    harness.Column("jobs/s", "jobs_per_s", ".1f"),
    harness.Column("p50 ms", "p50_ms", ".2f"),
    harness.Column("p99 ms", "p99_ms", ".2f"),
    harness.Column("submit", "submit_p50_ms", ".2f"),
    harness.Column("queued", "queued_p50_ms", ".2f"),
    harness.Column("run", "run_p50_ms", ".2f"),
    harness.Column("seen", "seen_p50_ms", ".2f"),
]
BURST_COLUMNS: list[harness.Column[BurstRow]] = [
    harness.Column("workers", "workers"),
    harness.Column("clients", "clients"),
    harness.Column("jobs", "jobs"),
    harness.Column("submitted/s", "submitted_per_s", ".1f"),
    harness.Column("completed/s", "completed_per_s", ".1f"),
    harness.Column("submit s", "submit_s", ".2f"),
    harness.Column("drain ms", "drain_ms", ".1f"),
    harness.Column("submit p50", "submit_p50_ms", ".2f"),
    harness.Column("p99 ms", "submit_p99_ms", ".2f"),
]
STYLE_COLUMNS: list[harness.Column[StyleRow]] = [
    harness.Column("model", "model"),
    harness.Column("max_side", "max_side"),
    harness.Column("output", "output"),
    harness.Column("MP", "megapixels", ".3f"),
    harness.Column("calls", "calls"),
    harness.Column("s/call", "s_per_call", ".3f"),
    harness.Column("p50 s", "p50_s", ".3f"),
    harness.Column("p99 s", "p99_s", ".3f"),
    harness.Column("s/MP", "s_per_megapixel", ".3f"),
    harness.Column("provider", "provider"),
]


def report_of(settings: Settings, seconds: float, measured: Measured, content_shape: tuple[int, int]) -> harness.Report:
    providers = sorted({row.provider for row in measured.styles})
    report = harness.Report(
        "jobs",
        seconds,
        [
            f"redis-server {measured.redis_version} of its own",
            f"onnxruntime {ort.__version__}",
            f"provider {', '.join(providers)}",
        ],
        {
            "device": settings.device,
            "intra_op_threads": settings.intra_op_threads,
            "max_concurrent_calls": settings.concurrent_calls("jobs"),
            "result_inline_bytes": settings.result_inline_bytes,
        },
    )
    report.data.update(
        redis=measured.redis_version,
        onnxruntime=ort.__version__,
        watch_fallback_poll_s=FALLBACK_POLL_S,
        poll_s=[POLL_S, POLL_BACKOFF, POLL_MAX_S],
    )
    report.text(
        f"WatchJob wakes on change notifications (else reads every {FALLBACK_POLL_S:g} s); "
        f"workers block {WORKER_POLL_S * 1e3:g} ms per read"
    )
    report.table(
        "latency",
        [
            f'1. queue overhead: no-op handler (returns b"" at once), jobs API on {measured.address}, workers are '
            "threads of this process",
            "one job at a time: submit, then wait (watch = JobsClient.wait over WatchJob; poll = GetJob every "
            f"{POLL_S * 1e3:g} ms, later every {POLL_BACKOFF:.0%} of the time waited, at most {POLL_MAX_S * 1e3:g} ms)",
        ],
        measured.latency,
        JOB_COLUMNS,
    )
    report.table(
        "throughput",
        [
            f"burst: {BURST_CLIENTS} client threads submit back to back until the jobs are in (or the row's time is "
            "up); completed = jobs / (first submit -> last finished)"
        ],
        measured.bursts,
        BURST_COLUMNS,
    )
    clients = CAPACITY_CLIENT_PROCESSES * CAPACITY_CLIENT_THREADS
    report.table(
        "capacity",
        [
            f"submit capacity: `argus serve jobs` in processes of its own (no workers; two replicas: the clients "
            f"spread their calls over both), {clients} clients in {CAPACITY_CLIENT_PROCESSES} processes of their own "
            "submitting no-op jobs back to back; CPU ms per submit of the API processes (user + system), of "
            "redis-server and of the clients; the ceiling is the machine's cores over all three: what this machine "
            "could submit were nothing else running"
        ],
        measured.capacity,
        [
            harness.Column("API processes", "api_processes"),
            harness.Column("clients", "clients"),
            harness.Column("jobs", "jobs"),
            harness.Column("submits/s", "submitted_per_s", ".0f"),
            harness.Column("p50 ms", "submit_p50_ms", ".2f"),
            harness.Column("API CPU ms/submit", "server_cpu_ms", ".2f"),
            harness.Column("redis CPU ms/submit", "redis_cpu_ms", ".3f"),
            harness.Column("client CPU ms/submit", "client_cpu_ms", ".2f"),
            harness.Column("ceiling/s", "ceiling_per_s", ".0f"),
        ],
    )
    report.table(
        "detection",
        [
            f"2. detection jobs end to end: one worker on the real detection handler ({YOLOX_NANO.name}), one image "
            "per job"
        ],
        measured.detection,
        JOB_COLUMNS,
    )
    report.table(
        "styles",
        [
            f"3. stylization: Stylizer.stylize called directly on {Path(CONTENT_IMAGE).name} "
            f"({content_shape[1]}x{content_shape[0]}), one call at a time; arbitrary = Magenta with "
            f"{Path(STYLE_IMAGE).name} as the style image (strength 1)"
        ],
        measured.styles,
        STYLE_COLUMNS,
    )
    style_job = measured.style_job
    report.table(
        None,
        [
            f"stylization job end to end: {style_job.style}, max_size {style_job.max_side}, JPEG out; one worker, "
            "one client watching it (WatchJob: a polling client in this process takes CPU from the job)"
        ],
        [style_job.job],
        JOB_COLUMNS,
    )
    report.data["stylization_job"] = style_job
    report.text(
        f"stylize alone p50 {style_job.direct_p50_ms:.1f} ms; the job's p50 is {style_job.outside_model_ms:.1f} ms "
        f"more ({style_job.share_outside_model:.1%} of it). Of that, {style_job.outside_worker_ms:.1f} ms "
        f"({style_job.share_outside_worker:.1%} of the job) is outside the worker (submit + queued + seen); the rest "
        "is in the worker (decoding, progress updates, JPEG encoding, storing the result).",
        f"taking turns ({style_job.paired_rounds} rounds of a stylize and a watched job): stylize p50 "
        f"{style_job.paired_direct_p50_ms:.1f} ms, job p50 {style_job.paired_job_p50_ms:.1f} ms, "
        f"x {style_job.paired_ratio:.2f}.",
        "",
        "job tables: the ms columns after p99 are p50s of each job's legs, from the job's own timestamps: submit = "
        "the SubmitJob call; queued = created -> started (in the stream, picked up, record read); run = started -> "
        "finished (handler + storing the result); seen = finished -> the client holding the result.",
    )
    return report


def run_all(settings: Settings, store: ModelStore, images: dict[str, bytes], args: argparse.Namespace) -> Measured:
    """Redis, the jobs API server and the three parts; everything started here is stopped here."""
    with tempfile.TemporaryDirectory(prefix="argus-jobs-bench-") as scratch, own_redis(Path(scratch)) as started:
        redis_url, redis_version = started
        # The bench talks to 127.0.0.1 and needs no /metrics endpoint; large results go to the scratch folder.
        serving = settings.model_copy(
            update={
                "host": "127.0.0.1",
                "auth": "off",
                "metrics_port": 0,
                "redis_url": redis_url,
                "results_dir": Path(scratch) / "results",
            }
        )
        server = start_jobs_server(serving, port=0)
        try:
            latency, bursts = run_queue_overhead(server.address, serving, args.seconds, args.jobs)
            capacity = run_submit_capacity(Path(scratch), tiny_jpeg(), args.seconds)
            # Stylization before detection: a stylization worker is a process without a detector, and loading one
            # changes how this process allocates large buffers (argus.imaging.return_large_buffers_to_the_os).
            styles, style_job = run_stylization(
                server.address, serving, store, images[CONTENT_IMAGE], images[STYLE_IMAGE], args.sides, args.seconds
            )
            detection = run_detection(server.address, serving, store, images[OBJECT_IMAGE], args.seconds)
        finally:
            server.stop()
    return Measured(redis_version, server.address, latency, bursts, detection, styles, style_job, capacity)


def measure(args: argparse.Namespace, settings: Settings) -> harness.Report:
    images = harness.read_images(args, settings, (OBJECT_IMAGE, CONTENT_IMAGE, STYLE_IMAGE))
    store = ModelStore.from_settings(settings)
    store.pull_all([YOLOX_NANO, YUNET, *FAST_STYLES, MAGENTA_STYLE_PREDICT, MAGENTA_STYLE_TRANSFER])
    try:
        measured = run_all(settings, store, images, args)
    except RedisServerError as exc:
        raise harness.Unavailable(str(exc)) from exc
    height, width = _decode(images[CONTENT_IMAGE]).shape[:2]
    return report_of(settings, args.seconds, measured, (height, width))


def main(argv: list[str] | None = None) -> int:
    parser = harness.arguments(__doc__, seconds=3.0, images="objects/bus.jpg, style/amber.jpg, style/candy.jpg")
    parser.add_argument(
        "--sides",
        type=harness.int_list(16),
        default=DEFAULT_SIDES,
        help="max_side of the stylization rows, comma-separated (default 512,1024; the job row uses the largest)",
    )
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS, help=f"no-op jobs per burst (default {DEFAULT_JOBS})")
    args = harness.parse(parser, argv, QUICK)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    settings = Settings()
    return harness.main(lambda: measure(args, settings), args.json)


if __name__ == "__main__":
    sys.exit(main())
