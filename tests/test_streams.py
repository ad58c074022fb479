"""Open WatchJob streams: each costs a sleeping thread, never the threads unary calls and health checks need, and
every one still hears the job's end."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from argus.client import JobsClient
from argus.config import Settings
from argus.proto.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from argus.server import RunningServer

WATCHES = 256
CHANNELS = 8  # the watches are spread over several connections, as many clients would open them
ANSWER_S = 1.0  # the product's promise: health and the API answer within this while the watches are open
IDLE_CPU_S = 0.5  # most CPU the server process may spend over IDLE_S with every watch open and nothing changing
IDLE_S = 2.0


def _timed(call: object) -> float:
    started = time.perf_counter()
    call()  # type: ignore[operator]
    return time.perf_counter() - started


@pytest.fixture
def jobs_server(jobs_settings: Settings) -> Iterator[RunningServer]:
    """The jobs API with its default bounds, auth off."""
    from argus.services.jobs.server import start_jobs_server

    running = start_jobs_server(jobs_settings.model_copy(update={"auth": "off"}), port=0)
    yield running
    running.stop()


def test_open_watches_leave_health_and_the_api_answering(jobs_server: RunningServer, images_dir: Path) -> None:
    channels = [
        grpc.insecure_channel(jobs_server.address, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(CHANNELS)
    ]
    try:
        with JobsClient(jobs_server.address, timeout_s=ANSWER_S) as client:
            job = client.submit_detection([images_dir / "objects/dog.jpg"])  # no worker: it stays queued
            request = jobs_pb2.GetJobRequest(job_id=job.job_id)
            watches: list[Iterator[jobs_pb2.Job]] = [
                jobs_pb2_grpc.JobsServiceStub(channels[i % CHANNELS]).WatchJob(request, timeout=60)
                for i in range(WATCHES)
            ]
            assert all(next(watch).state == jobs_pb2.QUEUED for watch in watches)  # every stream is open

            cpu_before = time.process_time()  # this process hosts the jobs server
            time.sleep(IDLE_S)
            idle_cpu_s = time.process_time() - cpu_before
            assert idle_cpu_s < IDLE_CPU_S, f"{WATCHES} idle watches cost {idle_cpu_s:.2f} s of CPU in {IDLE_S} s"

            health = health_pb2_grpc.HealthStub(channels[0])
            timings = {
                "health": _timed(lambda: health.Check(health_pb2.HealthCheckRequest(), timeout=ANSWER_S)),
                "SubmitJob": _timed(lambda: client.submit_detection([images_dir / "objects/dog.jpg"])),
                "GetJob": _timed(lambda: client.get(job.job_id)),
            }
            slow = {name: seconds for name, seconds in timings.items() if seconds >= ANSWER_S}
            assert not slow, f"with {WATCHES} open watches these took {ANSWER_S} s or more: {slow}"

            assert client.cancel(job.job_id).state == jobs_pb2.CANCELLED
            with ThreadPoolExecutor(32) as pool:
                last_seen = list(pool.map(lambda watch: [update.state for update in watch][-1], watches))
            assert last_seen == [jobs_pb2.CANCELLED] * WATCHES  # every stream got the end, then closed
    finally:
        for channel in channels:
            channel.close()
