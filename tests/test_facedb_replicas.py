"""Two facedb processes over one PostgreSQL follow each other through the change log: what one enrolls the other
finds within a second, what one deletes the other never matches, a replica killed mid-burst loses nothing it
acknowledged and comes back from its snapshot in step, and a corrupt snapshot is rebuilt."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from argus.client import FaceDbClient
from argus.config import Settings

COLLECTION = "door"


@dataclass
class Replica:
    """One `argus serve facedb` process (restartable), on its own port and data dir, logging to a file."""

    name: str
    env: dict[str, str]
    data_dir: Path
    wait_serving: Callable[..., None]
    port: int = 0
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.data_dir / "facedb.log"

    def start(self) -> Replica:
        if not self.port:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                self.port = sock.getsockname()[1]
        command = [sys.executable, "-m", "argus.cli.main", "serve", "facedb", "--port", str(self.port)]
        with self.log.open("ab") as log:
            process = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        self.wait_serving(self.address, process)
        return self

    def kill(self) -> None:
        self.processes[-1].send_signal(signal.SIGKILL)
        self.processes[-1].wait(timeout=10)

    def stop(self) -> None:
        """A clean shutdown (SIGTERM): the replica saves its snapshots."""
        self.processes[-1].send_signal(signal.SIGTERM)
        assert self.processes[-1].wait(timeout=60) is not None

    def client(self) -> FaceDbClient:
        return FaceDbClient(self.address, timeout_s=60)

    def snapshots(self) -> list[Path]:
        return sorted((self.data_dir / "snapshots").glob("facedb-*/*.faiss-snapshot"))


@pytest.fixture
def replicas(
    facedb_settings: Settings, fresh_postgres_url: str, tmp_path: Path, wait_serving: Callable[..., None]
) -> Iterator[Callable[..., Replica]]:
    """Makes replicas over one fresh PostgreSQL database; each is killed at the end."""
    made: list[Replica] = []

    def make(name: str, **settings: str) -> Replica:
        data_dir = tmp_path / name
        data_dir.mkdir()
        env = {
            **os.environ,
            "ARGUS_AUTH": "off",
            "ARGUS_DATABASE_URL": fresh_postgres_url,
            "ARGUS_DETECTOR_ADDRESS": facedb_settings.detector_address,
            "ARGUS_EMBEDDER_ADDRESS": facedb_settings.embedder_address,
            "ARGUS_DATA_DIR": str(data_dir),
            "ARGUS_MODELS_DIR": str(facedb_settings.resolved_models_dir),
            **{f"ARGUS_{key.upper()}": value for key, value in settings.items()},
        }
        replica = Replica(name, env, data_dir, wait_serving)
        made.append(replica)
        return replica.start()

    yield make
    for replica in made:
        for process in replica.processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)


def faces(images_dir: Path, name: str) -> Path:
    return images_dir / "faces" / f"{name}.jpg"


def candidates(client: FaceDbClient, photo: Path) -> set[tuple[str, int]]:
    """Every (subject, face) Identify returns for the photo, up to 100 subjects."""
    response = client.identify(COLLECTION, photo, top_k=100)
    return {(c.subject_id, c.face_id) for face in response.faces for c in face.candidates}


def test_what_one_replica_enrolls_the_other_finds_and_what_it_deletes_never_matches(
    replicas: Callable[..., Replica], images_dir: Path
) -> None:
    a, b = replicas("a"), replicas("b")
    with a.client() as on_a, b.client() as on_b:
        on_a.create_collection(COLLECTION)
        on_a.enroll(COLLECTION, "obama", [faces(images_dir, "obama")])
        acknowledged = time.monotonic()
        while True:  # Identify through B, from the moment A acknowledged, until it finds him
            asked = time.monotonic()
            found = on_b.identify(COLLECTION, faces(images_dir, "obama2"))
            if found.faces and found.faces[0].candidates and not found.faces[0].unknown:
                break
            assert asked - acknowledged < 1.0, "B did not find A's enrollment within a second"
        assert found.faces[0].candidates[0].subject_id == "obama"
        assert asked - acknowledged < 1.0

        on_a.enroll(COLLECTION, "biden", [faces(images_dir, "biden")])
        on_b.delete_subject(COLLECTION, "obama")
        # At once, and from then on: every hit is checked against the database, and the removal follows.
        for _ in range(5):
            answer = on_a.identify(COLLECTION, faces(images_dir, "obama2"), top_k=5)
            assert "obama" not in {c.subject_id for face in answer.faces for c in face.candidates}
        assert on_a.identify(COLLECTION, faces(images_dir, "obama2")).gallery_size == 1


def test_a_profile_change_started_on_one_replica_finishes_once_and_both_switch(
    replicas: Callable[..., Replica], images_dir: Path
) -> None:
    a, b = replicas("a"), replicas("b")
    probe = faces(images_dir, "obama2")
    with a.client() as on_a, b.client() as on_b:
        on_a.create_collection(COLLECTION, profile="mobilefacenet")
        for subject in ("obama", "biden"):
            on_a.enroll(COLLECTION, subject, [faces(images_dir, subject)])
        before = on_b.identify(COLLECTION, probe).faces[0].candidates[0].similarity

        on_a.change_profile(COLLECTION, "mobilefacenet+dlib")
        deadline = time.monotonic() + 60
        while (collection := on_b.get_collection(COLLECTION)).profile != "mobilefacenet+dlib":
            assert time.monotonic() < deadline, "the re-embedding did not finish"
            time.sleep(0.2)
        assert collection.pending_profile == "" and collection.face_count == 2
        time.sleep(1.0)  # past any replica's follower delay
        # Each replica embeds the probe with its index's profile: the same new similarity on both means both switched.
        answers = [client.identify(COLLECTION, probe).faces[0].candidates[0] for client in (on_a, on_b)]
        assert answers[0].subject_id == answers[1].subject_id == "obama"
        assert answers[0].similarity == pytest.approx(answers[1].similarity, abs=1e-6)
        assert answers[0].similarity != pytest.approx(before, abs=1e-3)
    switched = [r.log.read_text().count(f"collection {COLLECTION} now uses profile") for r in (a, b)]
    assert sorted(switched) == [0, 1]  # one replica did the work and the switch


def test_a_replica_killed_mid_burst_loses_nothing_and_restarts_from_its_snapshot_in_step(
    replicas: Callable[..., Replica], images_dir: Path
) -> None:
    a = replicas("a", facedb_snapshot_s="0.3")
    b = replicas("b")
    photo = faces(images_dir, "deepface_img2")
    acknowledged: dict[str, int] = {}
    with a.client() as on_a:
        on_a.create_collection(COLLECTION)
        for subject in ("first", "second"):  # some faces in A's snapshot, the burst after it
            acknowledged[subject] = on_a.enroll(COLLECTION, subject, [photo]).face_ids[0]
        deadline = time.monotonic() + 10
        while not a.snapshots():
            assert time.monotonic() < deadline, "A saved no snapshot"
            time.sleep(0.1)

        def burst(worker: int) -> None:
            for number in range(30):
                subject = f"w{worker}-{number}"
                try:
                    acknowledged[subject] = on_a.enroll(COLLECTION, subject, [photo]).face_ids[0]
                except grpc.RpcError:
                    return  # A is gone: this one may or may not have committed

        workers = [threading.Thread(target=burst, args=(worker,)) for worker in range(2)]
        for worker in workers:
            worker.start()
        while len(acknowledged) < 8:
            time.sleep(0.01)
        a.kill()
        for worker in workers:
            worker.join(timeout=60)

    with b.client() as on_b:
        through_b = candidates(on_b, photo)  # B kept serving, and holds every acknowledged face
        assert set(acknowledged.items()) <= through_b
        a.start()
        with a.client() as on_a:
            assert candidates(on_a, photo) == through_b  # face for face
            assert on_a.identify(COLLECTION, photo).gallery_size == on_b.identify(COLLECTION, photo).gallery_size
    assert "1 from snapshots, 0 rebuilt" in a.log.read_text()


def test_a_corrupt_snapshot_is_rebuilt_and_answers_correctly(
    replicas: Callable[..., Replica], images_dir: Path
) -> None:
    a = replicas("a", facedb_snapshot_s="0.2")
    with a.client() as on_a:
        on_a.create_collection(COLLECTION)
        on_a.enroll(COLLECTION, "obama", [faces(images_dir, "obama")])
        on_a.enroll(COLLECTION, "biden", [faces(images_dir, "biden")])
    time.sleep(1.0)  # several snapshot periods: the latest snapshot holds both
    a.kill()
    (snapshot,) = a.snapshots()
    data = bytearray(snapshot.read_bytes())
    data[len(data) // 2] ^= 0xFF
    snapshot.write_bytes(bytes(data))

    a.start()
    log = a.log.read_text()
    assert "is unusable (checksum mismatch)" in log and "0 from snapshots, 1 rebuilt" in log
    with a.client() as on_a:
        for subject, photo in (("obama", "obama2"), ("biden", "biden2")):
            found = on_a.identify(COLLECTION, faces(images_dir, photo))
            assert found.gallery_size == 2 and not found.faces[0].unknown
            assert found.faces[0].candidates[0].subject_id == subject


def test_a_clean_shutdown_saves_the_snapshots_the_next_start_loads(
    replicas: Callable[..., Replica], images_dir: Path
) -> None:
    a = replicas("a")  # snapshots only at shutdown: the default period is far longer than the test
    with a.client() as on_a:
        on_a.create_collection(COLLECTION)
        on_a.enroll(COLLECTION, "obama", [faces(images_dir, "obama")])
    a.stop()  # SIGTERM: the process exits only once its stop hooks (the snapshot among them) have run
    assert len(a.snapshots()) == 1

    a.start()
    assert "1 from snapshots, 0 rebuilt" in a.log.read_text()
    with a.client() as on_a:
        found = on_a.identify(COLLECTION, faces(images_dir, "obama2"))
        assert found.gallery_size == 1 and found.faces[0].candidates[0].subject_id == "obama"


def test_changes_pruned_past_a_snapshot_make_the_replica_rebuild(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from datetime import UTC, datetime, timedelta

    import numpy as np

    from argus.services.facedb.index import IndexRegistry
    from argus.services.facedb.replication import Follower
    from argus.services.facedb.storage import FaceStore, NewFace

    store = FaceStore(f"sqlite:///{tmp_path / 'facedb.sqlite3'}")
    store.migrate()
    store.create_collection(COLLECTION, None, "mobilefacenet")
    rng = np.random.default_rng(0)

    def enroll(subject: str) -> int:
        face = NewFace(rng.standard_normal(128).astype(np.float32), "mobilefacenet", ("m",), (0, 0, 1, 1), 1, 99, 50)
        return store.add_faces(COLLECTION, subject, "", None, [face])[1][0]

    enroll("first")
    first = Follower(store, IndexRegistry(), settings, tmp_path / "snapshots")
    first.start()
    assert first.save_snapshots() == 1 and first.position == store.last_change()
    first.stop()
    later = [enroll(f"later-{n}") for n in range(3)]
    assert [c.kind for c in store.changes_after(first.position, 10)] == ["added"] * 3
    assert store.prune_changes(datetime.now(UTC) + timedelta(seconds=1)) == first.position + 2  # all but the newest
    assert store.change_bounds() == (store.last_change(), store.last_change())

    indexes = IndexRegistry()
    with caplog.at_level("INFO", logger="argus.services.facedb.replication"):
        Follower(store, indexes, settings, tmp_path / "snapshots").start()
    assert "is out of date" in caplog.text and "0 from snapshots, 1 rebuilt" in caplog.text
    assert indexes.get(COLLECTION).size == 4 and all(face_id in indexes.get(COLLECTION) for face_id in later)


def test_replication_bench_reports_its_rows(
    run_bench: Callable[..., subprocess.CompletedProcess[str]], postgres_url: str
) -> None:
    import json

    report = json.loads(run_bench("replication_bench.py", "--quick", "--postgres", postgres_url).stdout)
    assert [(row["wake"], row["writers"]) for row in report["propagation"]] == [("NOTIFY", 1), ("poll only", 1)]
    for row in report["propagation"]:
        assert row["faces"] >= 5 and row["max_ms"] >= row["p99_ms"] >= row["p50_ms"] >= 0
