"""kill -9 in the middle of work: a facedb process killed during a stream of enrollments loses no acknowledged
enrollment and holds nothing half-written after a restart; a stylizer worker process killed mid-job leaves the job
to another worker, which finishes it after the visibility timeout."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest
import sqlalchemy as sa

from argus.client import FaceDbClient, JobsClient
from argus.config import Settings
from argus.models.store import ModelStore
from argus.proto.jobs.v1 import jobs_pb2
from argus.server import RunningServer
from argus.services.facedb.storage import normalize_url
from argus.services.jobs.server import stylization_handler
from argus.services.jobs.store import Kind
from argus.services.jobs.worker import Worker


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Child processes a test starts; any still running at the end are killed."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


# --- facedb ---------------------------------------------------------------------------------------------------------

ENROLLERS = 2  # client threads: with two, a request is nearly always in flight when the kill comes
PHOTOS_PER_ENROLLMENT = 2  # one transaction each: a subject with one face of two would be half-written


def enroll_until_refused(
    address: str, collection: str, photos: list[bytes], prefix: str, acknowledged: dict[str, list[int]]
) -> None:
    """Enrolls new subjects one after another until a call fails (the server died), bounded in count and time."""
    deadline = time.monotonic() + 60
    with FaceDbClient(address, timeout_s=30) as client:
        for number in range(500):
            if time.monotonic() > deadline:
                return
            subject_id = f"{prefix}-{number:03d}"
            try:
                response = client.enroll(collection, subject_id, photos)
            except grpc.RpcError:
                return
            acknowledged[subject_id] = list(response.face_ids)


def test_facedb_killed_during_enrollments(
    facedb_settings: Settings,
    facedb_database_url: str,
    free_port: int,
    images_dir: Path,
    processes: list[subprocess.Popen[bytes]],
    wait_serving: Callable[..., None],
) -> None:
    env = {
        **os.environ,
        "ARGUS_AUTH": "off",
        "ARGUS_DATABASE_URL": facedb_database_url,
        "ARGUS_DETECTOR_ADDRESS": facedb_settings.detector_address,
        "ARGUS_EMBEDDER_ADDRESS": facedb_settings.embedder_address,
        "ARGUS_DATA_DIR": str(facedb_settings.data_dir),
    }
    address = f"127.0.0.1:{free_port}"

    def start() -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "argus.cli.main", "serve", "facedb", "--port", str(free_port)]
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes.append(process)
        wait_serving(address, process)
        return process

    collection = "crash"
    photos = [(images_dir / "faces" / name).read_bytes() for name in ("obama.jpg", "obama2.jpg")]
    server = start()
    with FaceDbClient(address, timeout_s=30) as client:
        client.create_collection(collection)
    acknowledged: dict[str, list[int]] = {}
    enrollers = [
        threading.Thread(
            target=enroll_until_refused, args=(address, collection, photos, f"t{n}", acknowledged), daemon=True
        )
        for n in range(ENROLLERS)
    ]
    for thread in enrollers:
        thread.start()
    deadline = time.monotonic() + 60
    while len(acknowledged) < 6:
        assert time.monotonic() < deadline, "the enrollments did not get going"
        assert all(thread.is_alive() for thread in enrollers), "an enroller stopped before the kill"
        time.sleep(0.01)
    time.sleep(random.uniform(0.0, 0.3))  # lands anywhere in a request: detection, embedding, or the commit
    server.send_signal(signal.SIGKILL)  # mid-stream: no chance to finish, flush or roll anything back
    server.wait(timeout=10)
    for thread in enrollers:
        thread.join(timeout=40)
        assert not thread.is_alive()
    acknowledged = dict(acknowledged)  # nothing adds to it any more

    start()
    with FaceDbClient(address, timeout_s=30) as client:
        # every acknowledged enrollment is there, exactly as acknowledged
        for subject_id, face_ids in acknowledged.items():
            stored = client.get_subject(collection, subject_id)
            assert [face.face_id for face in stored.faces] == face_ids, subject_id
        # nothing half-written: every subject has all the faces of its one enrollment (at most one unacknowledged
        # enrollment per enroller may have been committed just before the kill, whole)
        subjects = list(client.iter_subjects(collection))
        print(f"{len(acknowledged)} enrollments acknowledged before the kill, {len(subjects)} subjects after it")
        assert {s.subject_id for s in subjects} >= set(acknowledged)
        assert len(subjects) <= len(acknowledged) + ENROLLERS
        assert all(len(s.faces) == PHOTOS_PER_ENROLLMENT for s in subjects), [len(s.faces) for s in subjects]
        (listed,) = [c for c in client.list_collections() if c.name == collection]
        assert listed.subject_count == len(subjects)
        assert listed.face_count == PHOTOS_PER_ENROLLMENT * len(subjects)
        # the index rebuilt at start holds exactly the database's faces
        assert client.identify(collection, photos[0]).gallery_size == listed.face_count

    # and the database itself: no face without its subject, none filed under another collection than its subject's
    engine = sa.create_engine(normalize_url(facedb_database_url))
    try:
        with engine.connect() as connection:
            orphans = connection.execute(
                sa.text("SELECT count(*) FROM faces f LEFT JOIN subjects s ON s.id = f.subject_id WHERE s.id IS NULL")
            ).scalar_one()
            misfiled = connection.execute(
                sa.text(
                    "SELECT count(*) FROM faces f JOIN subjects s ON s.id = f.subject_id "
                    "WHERE f.collection_id <> s.collection_id"
                )
            ).scalar_one()
            faceless = connection.execute(
                sa.text(
                    "SELECT count(*) FROM subjects s WHERE NOT EXISTS (SELECT 1 FROM faces f WHERE f.subject_id = s.id)"
                )
            ).scalar_one()
    finally:
        engine.dispose()
    assert (orphans, misfiled, faceless) == (0, 0, 0)


# --- stylizer -------------------------------------------------------------------------------------------------------


def test_stylizer_killed_mid_job(
    jobs_settings: Settings,
    jobs_server: RunningServer,
    start_worker: Callable[..., Worker],
    settings: Settings,
    store: ModelStore,
    images_dir: Path,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ARGUS_")}
    env |= {
        "ARGUS_REDIS_URL": jobs_settings.redis_url,
        "ARGUS_RESULTS_DIR": str(jobs_settings.resolved_results_dir),
        "ARGUS_DATA_DIR": str(jobs_settings.data_dir),
        "ARGUS_MODELS_DIR": str(jobs_settings.resolved_models_dir),
        "ARGUS_DEVICE": "cpu",
        "ARGUS_INTRA_OP_THREADS": "2",
        "ARGUS_JOB_VISIBILITY_TIMEOUT_S": str(jobs_settings.job_visibility_timeout_s),
    }
    stylizer = subprocess.Popen(
        [sys.executable, "-m", "argus.cli.main", "serve", "stylizer"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    processes.append(stylizer)
    # A large content image with the arbitrary-style (Magenta) model at the largest output: a job long enough to
    # catch RUNNING (about a second here), short enough to run twice.
    content = cv2.imread(str(images_dir / "style/amber.jpg"))
    ok, large = cv2.imencode(".jpg", cv2.resize(content, (2400, 1800), interpolation=cv2.INTER_CUBIC))
    assert ok
    with JobsClient(jobs_server.address, timeout_s=30) as client:
        job = client.submit_stylization(
            large.tobytes(), style_image=images_dir / "style/candy.jpg", strength=0.8, max_size=1024
        )
        deadline = time.monotonic() + 60  # the worker process loads its models first
        while (state := client.get(job.job_id).state) != jobs_pb2.RUNNING:
            assert state == jobs_pb2.QUEUED, f"the job went {jobs_pb2.JobState.Name(state)} before the kill"
            assert stylizer.poll() is None, "the stylizer process exited"
            assert time.monotonic() < deadline, "the stylizer process never started the job"
            time.sleep(0.005)
        stylizer.send_signal(signal.SIGKILL)
        stylizer.wait(timeout=10)
        assert client.get(job.job_id).state == jobs_pb2.RUNNING  # its worker is dead...

        start_worker(
            Kind.STYLIZATION, stylization_handler(settings, store), consumer="survivor"
        )  # ...another one takes over
        final = client.wait(job.job_id, timeout_s=120)
        assert final.state == jobs_pb2.SUCCEEDED, final.error
        assert final.attempts == 2
        assert (final.stylization.size.width, final.stylization.size.height) == (1024, 768)
        image = cv2.imdecode(np.frombuffer(final.stylization.image.data, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape[:2] == (768, 1024)
