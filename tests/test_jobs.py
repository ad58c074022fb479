"""The jobs API and its Redis Streams queue, against a real redis-server: submit and fetch, idempotency, cancel,
a worker killed with SIGKILL mid-job, a job that always fails ending in the dead-letter stream, result expiry."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest
import redis

from argus.client import JobsClient
from argus.config import Settings
from argus.models.store import ModelStore
from argus.proto.jobs.v1 import jobs_pb2
from argus.queue import GROUP
from argus.server import RunningServer
from argus.services.jobs.server import detection_handler, job_store, start_jobs_server, stylization_handler
from argus.services.jobs.store import DEAD_LETTER_STREAM, Kind
from argus.services.jobs.worker import Handler, Worker


@pytest.fixture
def client(jobs_server: RunningServer) -> Iterator[JobsClient]:
    with JobsClient(jobs_server.address, timeout_s=30) as jobs:
        yield jobs


@pytest.fixture(scope="session")
def detect(settings: Settings, store: ModelStore) -> Handler:
    return detection_handler(settings, store)


def redis_client(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url, decode_responses=True)


def test_detection_job_end_to_end(
    client: JobsClient, start_worker: Callable[..., Worker], detect: Handler, images_dir: Path
) -> None:
    job = client.submit_detection([images_dir / "objects/bus.jpg", images_dir / "faces/two_people.jpg"], faces=True)
    assert job.state == jobs_pb2.QUEUED and job.kind == jobs_pb2.DETECTION and len(job.job_id) == 32
    start_worker(Kind.DETECTION, detect)
    states = [update.state for update in client.watch(job.job_id, timeout_s=60)]
    assert states[-1] == jobs_pb2.SUCCEEDED and states == sorted(states)  # queued -> running -> succeeded
    done = client.get(job.job_id, include_result=True)
    assert done.progress == pytest.approx(1.0) and done.attempts == 1 and done.finished_at.seconds > 0
    bus, _ = done.detection.objects.results
    assert "bus" in {o.class_name for o in bus.objects}
    assert len(done.detection.faces.results[1].faces) == 2
    assert not client.get(job.job_id).HasField("detection")  # results only when asked for
    listed = client.list(kind=jobs_pb2.DETECTION, state=jobs_pb2.SUCCEEDED)
    assert [j.job_id for j in listed.jobs] == [job.job_id]


def test_idempotent_submit_makes_one_job(client: JobsClient, jobs_settings: Settings, images_dir: Path) -> None:
    first = client.submit_detection([images_dir / "objects/dog.jpg"], idempotency_key="upload-42")
    again = client.submit_detection([images_dir / "objects/dog.jpg"], idempotency_key="upload-42")
    other = client.submit_detection([images_dir / "objects/dog.jpg"], idempotency_key="upload-43")
    assert first.job_id == again.job_id != other.job_id
    assert redis_client(jobs_settings).xlen(Kind.DETECTION.stream) == 2


def test_cancel_a_queued_job(
    client: JobsClient, start_worker: Callable[..., Worker], detect: Handler, jobs_settings: Settings, images_dir: Path
) -> None:
    job = client.submit_detection([images_dir / "objects/dog.jpg"])
    cancelled = client.cancel(job.job_id)
    assert cancelled.state == jobs_pb2.CANCELLED and cancelled.finished_at.seconds > 0
    start_worker(Kind.DETECTION, detect)
    deadline = time.monotonic() + 10
    while True:  # until the worker has taken the message and acknowledged it
        (group,) = redis_client(jobs_settings).xinfo_groups(Kind.DETECTION.stream)
        if group["last-delivered-id"] != "0-0" and group["pending"] == 0:
            break
        assert time.monotonic() < deadline, group
        time.sleep(0.1)
    final = client.get(job.job_id)
    assert final.state == jobs_pb2.CANCELLED and final.attempts == 0  # the worker skipped it


def test_bad_jobs_fail_at_submit(client: JobsClient, images_dir: Path) -> None:
    photo = images_dir / "style/amber.jpg"
    cases = [
        (lambda: client.submit(jobs_pb2.SubmitJobRequest()), "no job"),
        (lambda: client.submit_detection([b"not an image"]), "not a recognisable image"),
        (lambda: client.submit_detection([]), "no images"),
        (lambda: client.submit_detection([photo], classes=["unicorn"]), "unknown class"),
        (lambda: client.submit_stylization(photo, style="picasso"), "unknown style 'picasso'"),
        (lambda: client.submit_stylization(photo), "choose a style"),
        (lambda: client.submit_stylization(photo, style_image=photo, strength=1.5), "strength must be between 0 and 1"),
        (lambda: client.submit_stylization(photo, style="candy", max_size=100_000), "max_size"),
        (lambda: client.submit_stylization(b"\xff\xd8\xff junk", style="candy"), "content image"),
    ]
    for submit, message in cases:
        with pytest.raises(grpc.RpcError) as caught:
            submit()
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT, message
        assert message in caught.value.details()
    with pytest.raises(grpc.RpcError) as caught:
        client.get("no-such-job")
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND


def test_a_job_that_always_fails_is_dead_lettered(
    client: JobsClient, start_worker: Callable[..., Worker], jobs_settings: Settings, images_dir: Path
) -> None:
    def broken(request: bytes, progress: Callable[[float], None]) -> bytes:
        raise RuntimeError("the GPU caught fire")

    job = client.submit_detection([images_dir / "objects/dog.jpg"])
    start_worker(Kind.DETECTION, broken)
    final = client.wait(job.job_id, timeout_s=60)
    assert final.state == jobs_pb2.FAILED
    assert final.attempts == jobs_settings.job_max_attempts == 3
    assert "RuntimeError: the GPU caught fire" in final.error
    dead = redis_client(jobs_settings).xrange(DEAD_LETTER_STREAM)
    assert len(dead) == 1
    _, fields = dead[0]
    assert fields["job_id"] == job.job_id and "the GPU caught fire" in fields["error"]
    assert redis_client(jobs_settings).xpending(Kind.DETECTION.stream, GROUP)["pending"] == 0


SLOW_WORKER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from argus.services.jobs.store import JobStore, Kind
    from argus.services.jobs.worker import Worker

    def slow(request, progress):
        progress(0.1)
        time.sleep(120)  # killed long before this ends

    store = JobStore(sys.argv[1], Path(sys.argv[2]), 60, 1 << 20)
    Worker(Kind.DETECTION, slow, store, visibility_timeout_s=1.5, max_attempts=3, consumer="doomed").run(poll_s=0.2)
    """
)


def test_a_job_survives_its_worker_being_killed(
    client: JobsClient, start_worker: Callable[..., Worker], detect: Handler, jobs_settings: Settings, images_dir: Path
) -> None:
    results = str(jobs_settings.resolved_results_dir)
    doomed = subprocess.Popen(
        [sys.executable, "-c", SLOW_WORKER, jobs_settings.redis_url, results], env=os.environ.copy()
    )
    try:
        job = client.submit_detection([images_dir / "objects/bus.jpg"])
        deadline = time.monotonic() + 30
        while client.get(job.job_id).state != jobs_pb2.RUNNING:
            assert time.monotonic() < deadline, "the doomed worker never started the job"
            time.sleep(0.05)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=10)
    finally:
        if doomed.poll() is None:
            doomed.kill()
    assert client.get(job.job_id).state == jobs_pb2.RUNNING  # stuck with a dead worker...
    start_worker(Kind.DETECTION, detect)  # ...until a live one reclaims it after the visibility timeout
    final = client.wait(job.job_id, timeout_s=60)
    assert final.state == jobs_pb2.SUCCEEDED and final.attempts == 2
    assert "bus" in {o.class_name for o in final.detection.objects.results[0].objects}


def test_results_expire_and_large_ones_live_in_files(
    jobs_settings: Settings, start_worker: Callable[..., Worker], detect: Handler, images_dir: Path
) -> None:
    settings = jobs_settings.model_copy(update={"result_ttl_s": 1.0, "result_inline_bytes": 0})
    server = start_jobs_server(settings, port=0)
    try:
        with JobsClient(server.address) as client:
            worker = Worker(
                Kind.DETECTION, detect, job_store(settings), visibility_timeout_s=5, max_attempts=1, consumer="ttl"
            )
            thread = threading.Thread(target=worker.run, kwargs={"poll_s": 0.2}, daemon=True)
            thread.start()
            job = client.submit_detection([images_dir / "objects/dog.jpg"])
            done = client.wait(job.job_id, timeout_s=60)
            assert done.state == jobs_pb2.SUCCEEDED and done.detection.objects.results[0].objects
            assert done.expires_at.seconds >= done.finished_at.seconds
            files = list(settings.resolved_results_dir.glob("*.result"))
            assert [f.stem for f in files] == [job.job_id]
            time.sleep(2.5)
            with pytest.raises(grpc.RpcError) as caught:
                client.get(job.job_id)
            assert caught.value.code() is grpc.StatusCode.NOT_FOUND
            assert job_store(settings).sweep_results() == 1
            assert not list(settings.resolved_results_dir.glob("*.result"))
            worker.stop()
            thread.join(timeout=10)
    finally:
        server.stop()


def test_list_pages_through_jobs_newest_first(client: JobsClient, images_dir: Path) -> None:
    ids = [client.submit_detection([images_dir / "objects/dog.jpg"]).job_id for _ in range(5)]
    seen, token = [], ""
    while True:
        page = client.list(page_size=2, page_token=token)
        seen += [job.job_id for job in page.jobs]
        token = page.next_page_token
        if not token:
            break
    assert seen == ids[::-1]
    with pytest.raises(grpc.RpcError) as caught:
        client.list(page_token="bogus")
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture(scope="session")
def stylize_handler(settings: Settings, store: ModelStore) -> Handler:
    return stylization_handler(settings, store)


def colour_stats(image: np.ndarray) -> np.ndarray:
    pixels = image.reshape(-1, 3).astype(np.float64)
    return np.concatenate([pixels.mean(axis=0), pixels.std(axis=0)])


def test_stylization_jobs_fixed_and_arbitrary(
    client: JobsClient, start_worker: Callable[..., Worker], stylize_handler: Handler, images_dir: Path
) -> None:
    content_path, style_path = images_dir / "style/amber.jpg", images_dir / "style/candy.jpg"
    content = cv2.imread(str(content_path))
    style = cv2.imread(str(style_path))
    start_worker(Kind.STYLIZATION, stylize_handler)
    fixed = client.submit_stylization(content_path, style="mosaic", max_size=200, output_format=jobs_pb2.PNG)
    arbitrary = client.submit_stylization(content_path, style_image=style_path, strength=1.0, max_size=240)
    gentle = client.submit_stylization(content_path, style_image=style_path, strength=0.0, max_size=240)

    done = client.wait(fixed.job_id, timeout_s=120)
    assert done.state == jobs_pb2.SUCCEEDED, done.error
    image = cv2.imdecode(np.frombuffer(done.stylization.image.data, np.uint8), cv2.IMREAD_COLOR)
    scale = 200 / max(content.shape[:2])
    assert image.shape[:2] == (round(content.shape[0] * scale), round(content.shape[1] * scale))
    assert (done.stylization.size.width, done.stylization.size.height) == (image.shape[1], image.shape[0])
    assert done.stylization.model.startswith("style-mosaic@")
    assert done.stylization.image.data[:4] == b"\x89PNG"

    strong = client.wait(arbitrary.job_id, timeout_s=120)
    weak = client.wait(gentle.job_id, timeout_s=120)
    assert strong.state == weak.state == jobs_pb2.SUCCEEDED
    strong_image = cv2.imdecode(np.frombuffer(strong.stylization.image.data, np.uint8), cv2.IMREAD_COLOR)
    weak_image = cv2.imdecode(np.frombuffer(weak.stylization.image.data, np.uint8), cv2.IMREAD_COLOR)
    small_content = cv2.resize(content, (strong_image.shape[1], strong_image.shape[0]), interpolation=cv2.INTER_AREA)
    # the output's colours move toward the style image's, and strength 0 stays nearer the content than strength 1
    target = colour_stats(style)
    assert np.linalg.norm(colour_stats(strong_image) - target) < np.linalg.norm(colour_stats(small_content) - target)
    assert (
        np.abs(weak_image.astype(int) - small_content).mean() < np.abs(strong_image.astype(int) - small_content).mean()
    )
