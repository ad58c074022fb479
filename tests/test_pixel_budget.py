"""The per-request pixel budget and the server's bound on decoded pixels: requests checked from the image headers
before anything is decoded, images decoded one at a time, and the detector's and jobs API's memory bounded under
concurrent requests of large images, within the budget or far over it."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from conftest import PeakRss
from PIL import Image

from argus.client import DetectorClient, JobsClient
from argus.config import Settings
from argus.models.store import ModelStore
from argus.proto.jobs.v1 import jobs_pb2
from argus.server import RunningServer
from argus.services.jobs.server import detection_handler
from argus.services.jobs.store import Kind
from argus.services.jobs.worker import Worker

CONCURRENT = 8
DEFAULTS = Settings.model_fields


@pytest.fixture(scope="module")
def black_png() -> bytes:
    """A black 6000x6000 PNG: about 100 KB that decode to 36 Mpx, within the per-image limit of 40 Mpx."""
    buffer = io.BytesIO()
    Image.new("RGB", (6000, 6000)).save(buffer, "PNG")
    return buffer.getvalue()


def over_budget(black_png: bytes) -> list[bytes]:
    """32 of them (the per-call image limit): 1152 Mpx, far over the default request budget."""
    count = DEFAULTS["max_images_per_request"].default
    assert count * 36_000_000 > DEFAULTS["max_request_pixels"].default
    return [black_png] * count


def within_budget(black_png: bytes) -> list[bytes]:
    """Three of them: 108 Mpx, within the request budget but more than the server decodes at once."""
    assert DEFAULTS["max_pixels_in_flight"].default < 3 * 36_000_000
    return [black_png] * 3


@pytest.fixture
def serve(
    tmp_path: Path, free_port: int, wait_serving: Callable[..., None]
) -> Iterator[Callable[..., tuple[str, int]]]:
    """Starts `argus serve SERVICE` as a process of its own with the default limits (its memory is what is
    measured); gives its address and process id."""
    started: list[subprocess.Popen[bytes]] = []

    def start(service: str, **env: str) -> tuple[str, int]:
        environment = {key: value for key, value in os.environ.items() if not key.startswith("ARGUS_")}
        environment |= {"ARGUS_AUTH": "off", "ARGUS_DATA_DIR": str(tmp_path), "ARGUS_DEVICE": "cpu", **env}
        command = [sys.executable, "-m", "argus.cli.main", "serve", service, "--port", str(free_port)]
        process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(process)
        address = f"127.0.0.1:{free_port}"
        wait_serving(address, process)
        return address, process.pid

    yield start
    for process in started:
        process.kill()
        process.wait(timeout=10)


def concurrently(call: Callable[[], object]) -> list[object]:
    """Runs `call` CONCURRENT times at once; each outcome is its result or the grpc.RpcError it raised."""

    def outcome() -> object:
        try:
            return call()
        except grpc.RpcError as error:
            return error

    with ThreadPoolExecutor(CONCURRENT) as pool:
        return list(pool.map(lambda _: outcome(), range(CONCURRENT)))


def test_detector_memory_stays_bounded_under_concurrent_large_requests(
    serve: Callable[..., tuple[str, int]], models_dir: Path, black_png: bytes
) -> None:
    address, pid = serve("detector", ARGUS_MODELS_DIR=str(models_dir), ARGUS_INTRA_OP_THREADS="2")
    with DetectorClient(address, timeout_s=120) as client:
        client.detect_objects([black_png])  # first-call allocations are not the measurement's
        with PeakRss(pid) as refused_rss:
            refused = concurrently(lambda: client.detect_objects(over_budget(black_png)))
        with PeakRss(pid) as served_rss:
            served = concurrently(lambda: client.detect_objects(within_budget(black_png)))
    print(
        f"detector RSS growth, {CONCURRENT} concurrent DetectObjects of 32 (refused) / 3 (served) black 6000x6000 "
        f"PNGs: {refused_rss.growth_mb:.0f} MB / {served_rss.growth_mb:.0f} MB"
    )
    for error in refused:
        assert isinstance(error, grpc.RpcError) and error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "32 images hold 1152000000 pixels in all; the limit is 400000000" in error.details()
    for response in served:
        assert not isinstance(response, grpc.RpcError), response.details()
        assert [(r.image_size.width, r.image_size.height) for r in response.results] == [(6000, 6000)] * 3
    assert refused_rss.growth_mb < 1024
    assert served_rss.growth_mb < 1024


def test_jobs_api_validates_from_the_headers_in_bounded_memory(
    serve: Callable[..., tuple[str, int]], redis_url: str, black_png: bytes
) -> None:
    address, pid = serve("jobs", ARGUS_REDIS_URL=redis_url)
    with JobsClient(address, timeout_s=120) as client:
        client.submit_detection([black_png])  # first-call allocations are not the measurement's
        with PeakRss(pid) as rss:
            refused = concurrently(lambda: client.submit_detection(over_budget(black_png)))
            accepted = concurrently(lambda: client.submit_detection(within_budget(black_png)))
    print(f"jobs API RSS growth, {CONCURRENT} concurrent SubmitJob of 32 and of 3 black PNGs: {rss.growth_mb:.0f} MB")
    for error in refused:
        assert isinstance(error, grpc.RpcError) and error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "pixels in all" in error.details()
    for job in accepted:
        assert isinstance(job, jobs_pb2.Job) and job.state == jobs_pb2.QUEUED
    # Decoding 3 of them would take over 300 MB each time: the API read their headers only.
    assert rss.growth_mb < 200


def test_a_truncated_image_passes_the_header_checks_and_fails_its_job_with_the_reason(
    jobs_server: RunningServer,
    start_worker: Callable[..., Worker],
    settings: Settings,
    store: ModelStore,
    images_dir: Path,
) -> None:
    data = (images_dir / "objects" / "bus.jpg").read_bytes()
    with JobsClient(jobs_server.address, timeout_s=30) as client:
        job = client.submit_detection([data, data[: len(data) // 3]])
        assert job.state == jobs_pb2.QUEUED
        start_worker(Kind.DETECTION, detection_handler(settings, store))
        final = client.wait(job.job_id, timeout_s=60)
    assert final.state == jobs_pb2.FAILED
    assert "image 1: image could not be decoded (truncated or corrupt?)" in final.error
    assert final.attempts == 1  # bad input stays bad: it is not retried
