"""The services ride out their dependencies restarting: while Redis or PostgreSQL is down the service says
NOT_SERVING and calls fail with UNAVAILABLE (never INTERNAL), and once it is back the service is SERVING again by
itself, with nothing lost: every accepted job ends SUCCEEDED, every enrollment is still there."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from argus.client import FaceDbClient, JobsClient
from argus.config import Settings
from argus.models.store import ModelStore
from argus.proto.facedb.v1 import facedb_pb2
from argus.proto.jobs.v1 import jobs_pb2
from argus.redis_server import RedisServer
from argus.services.facedb.server import start_facedb_server
from argus.services.jobs.server import detection_handler, job_store, start_jobs_server
from argus.services.jobs.store import Kind
from argus.services.jobs.worker import Worker

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def health(address: str) -> int:
    with grpc.insecure_channel(address) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5).status


def wait_health(address: str, wanted: int, timeout_s: float = 15) -> float:
    """Waits until the server's health is `wanted`; returns how long that took."""
    started = time.monotonic()
    while (status := health(address)) != wanted:
        assert time.monotonic() - started < timeout_s, f"health stayed {status}, not {wanted}, for {timeout_s} s"
        time.sleep(0.05)
    return time.monotonic() - started


def unavailable(call: Callable[[], object]) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE, caught.value.details()


# --- Redis ----------------------------------------------------------------------------------------------------------


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own that persists every write (append-only file, fsync always), so it can be
    stopped and started again on the same port and folder without losing anything it acknowledged."""
    server = RedisServer(tmp_path / "redis", fsync_always=True)
    server.start()
    yield server
    server.stop()


def test_redis_restarts_while_jobs_are_in_flight(
    own_redis: RedisServer, settings: Settings, store: ModelStore, images_dir: Path, tmp_path: Path
) -> None:
    jobs_settings = settings.model_copy(
        update={"redis_url": own_redis.url, "results_dir": tmp_path / "results", "job_visibility_timeout_s": 1.5}
    )
    server = start_jobs_server(jobs_settings, port=0)
    worker = Worker(
        Kind.DETECTION,
        detection_handler(jobs_settings, store),
        job_store(jobs_settings),
        visibility_timeout_s=jobs_settings.job_visibility_timeout_s,
        max_attempts=jobs_settings.job_max_attempts,
        consumer="survivor",
    )
    working = threading.Thread(target=worker.run, kwargs={"poll_s": 0.2}, daemon=True)
    working.start()
    photos = [images_dir / "objects/bus.jpg", images_dir / "faces/two_people.jpg"]
    try:
        with JobsClient(server.address, timeout_s=10) as client:
            assert health(server.address) == SERVING
            accepted = [client.submit_detection(photos, faces=True).job_id for _ in range(8)]
            while client.get(accepted[0]).state == jobs_pb2.QUEUED:  # the worker is at it: jobs are in flight
                time.sleep(0.01)

            own_redis.stop()
            took = wait_health(server.address, NOT_SERVING)
            print(f"\nRedis down: NOT_SERVING after {took:.2f} s")
            unavailable(lambda: client.get(accepted[-1]))
            unavailable(lambda: client.submit_detection(photos))
            unavailable(lambda: client.list())
            time.sleep(1.0)  # the worker meets the outage too

            own_redis.start()
            took = wait_health(server.address, SERVING)
            print(f"Redis back: SERVING after {took:.2f} s")
            deadline = time.monotonic() + 60
            final = {}
            for job_id in accepted:
                while (job := client.get(job_id)).state not in (jobs_pb2.SUCCEEDED, jobs_pb2.FAILED):
                    assert time.monotonic() < deadline, f"job {job_id} still {jobs_pb2.JobState.Name(job.state)}"
                    time.sleep(0.05)
                final[job_id] = job
            assert {jobs_pb2.JobState.Name(job.state) for job in final.values()} == {"SUCCEEDED"}, [
                job.error for job in final.values()
            ]
            print("attempts per job:", [job.attempts for job in final.values()])
            done = client.get(accepted[-1], include_result=True)
            assert "bus" in {o.class_name for o in done.detection.objects.results[0].objects}
            # and new work goes through as before
            again = client.submit_detection(photos[:1])
            assert client.wait(again.job_id, timeout_s=60).state == jobs_pb2.SUCCEEDED
    finally:
        worker.stop()
        working.join(timeout=30)
        server.stop()


def test_jobs_api_starts_without_redis(settings: Settings, tmp_path: Path, images_dir: Path) -> None:
    """Redis not up yet when the API starts: it starts NOT_SERVING instead of crashing, and serves once it is."""
    late = RedisServer(tmp_path / "redis", fsync_always=True)
    jobs_settings = settings.model_copy(update={"redis_url": late.url, "results_dir": tmp_path / "results"})
    server = start_jobs_server(jobs_settings, port=0)
    try:
        wait_health(server.address, NOT_SERVING)
        with JobsClient(server.address, timeout_s=10) as client:
            unavailable(lambda: client.submit_detection([images_dir / "objects/dog.jpg"]))
            late.start()
            wait_health(server.address, SERVING)
            job = client.submit_detection([images_dir / "objects/dog.jpg"])  # the queues are set up now
            assert client.get(job.job_id).state == jobs_pb2.QUEUED
    finally:
        server.stop()
        late.stop()


# --- PostgreSQL -----------------------------------------------------------------------------------------------------


def test_postgres_restarts_while_facedb_serves(
    own_postgres_factory: Callable[[], Any], facedb_settings: Settings, images_dir: Path
) -> None:
    database = own_postgres_factory()
    server = start_facedb_server(facedb_settings.model_copy(update={"database_url": database.url}), port=0)
    faces = images_dir / "faces"
    try:
        with FaceDbClient(server.address, timeout_s=30) as client:
            client.create_collection("door")
            enrolled = client.enroll("door", "obama", [faces / "obama.jpg"], display_name="Barack Obama")
            assert client.verify("door", "obama", faces / "obama2.jpg").outcome == facedb_pb2.MATCH

            database.stop_server()
            took = wait_health(server.address, NOT_SERVING)
            print(f"\nPostgreSQL down: NOT_SERVING after {took:.2f} s")
            unavailable(lambda: client.verify("door", "obama", faces / "obama2.jpg"))
            unavailable(lambda: client.enroll("door", "biden", [faces / "biden.jpg"]))
            unavailable(lambda: client.list_collections())

            database.start_server()
            took = wait_health(server.address, SERVING, timeout_s=30)
            print(f"PostgreSQL back: SERVING after {took:.2f} s")
            assert client.verify("door", "obama", faces / "obama2.jpg").outcome == facedb_pb2.MATCH
            stored = client.get_subject("door", "obama")
            assert stored.display_name == "Barack Obama"
            assert [face.face_id for face in stored.faces] == list(enrolled.face_ids)
            found = client.identify("door", faces / "obama2.jpg").faces[0]
            assert not found.unknown and found.candidates[0].subject_id == "obama"
            client.enroll("door", "biden", [faces / "biden.jpg"])  # writes work again too
            assert client.list_collections()[0].subject_count == 2
    finally:
        server.stop()
