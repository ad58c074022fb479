"""An acknowledged enrollment survives kill -9 of the facedb process, and after a restart the index agrees with
the database. Runs a real `argus serve facedb` process, on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from argus.client import FaceDbClient
from argus.config import Settings


@pytest.fixture
def facedb_process(
    facedb_settings: Settings, facedb_database_url: str, free_port: int, wait_serving: Callable[..., None]
) -> Iterator[object]:
    """Starts (and restarts) `argus serve facedb` as a separate process on one database."""
    env = {
        **os.environ,
        "ARGUS_AUTH": "off",
        "ARGUS_DATABASE_URL": facedb_database_url,
        "ARGUS_DETECTOR_ADDRESS": facedb_settings.detector_address,
        "ARGUS_EMBEDDER_ADDRESS": facedb_settings.embedder_address,
        "ARGUS_DATA_DIR": str(facedb_settings.data_dir),
    }
    processes: list[subprocess.Popen[bytes]] = []

    def start() -> str:
        command = [sys.executable, "-m", "argus.cli.main", "serve", "facedb", "--port", str(free_port)]
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes.append(process)
        address = f"127.0.0.1:{free_port}"
        wait_serving(address, process)
        return address

    yield start, processes
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_acknowledged_enrollments_survive_kill_9(facedb_process: tuple, images_dir: Path) -> None:
    start, processes = facedb_process
    photos = {
        "obama": images_dir / "faces/obama.jpg",
        "biden": images_dir / "faces/biden.jpg",
        "img2": images_dir / "faces/deepface_img2.jpg",
        "img3": images_dir / "faces/deepface_img3.jpg",
    }
    address = start()
    acknowledged: dict[str, list[int]] = {}
    with FaceDbClient(address, timeout_s=60) as client:
        client.create_collection("door")
        for subject_id, path in photos.items():
            acknowledged[subject_id] = list(client.enroll("door", subject_id, [path]).face_ids)
        processes[-1].send_signal(signal.SIGKILL)  # right after the last reply: no chance to flush anything
    processes[-1].wait(timeout=10)

    address = start()
    with FaceDbClient(address, timeout_s=60) as client:
        for subject_id, face_ids in acknowledged.items():
            stored = client.get_subject("door", subject_id)
            assert [face.face_id for face in stored.faces] == face_ids
        (collection,) = [c for c in client.list_collections() if c.name == "door"]
        for subject_id, path in photos.items():
            response = client.identify("door", path)
            assert response.gallery_size == collection.face_count == len(photos)  # index rebuilt = database
            assert response.faces[0].candidates[0].subject_id == subject_id
            assert not response.faces[0].unknown
