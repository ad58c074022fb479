"""Re-embedding over one PostgreSQL from two replicas: one worker holds the lease and works, the other waits; when
the holder's connection dies the other takes over and finishes from the progress in the database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from argus.config import Settings
from argus.evaluation.local_analysis import LocalFaceAnalyzer
from argus.services.facedb.database import FaceDatabase
from argus.services.facedb.reembed import Reembedder
from argus.services.facedb.storage import FaceStore


@pytest.fixture
def replicas(
    analyzer: LocalFaceAnalyzer, settings: Settings, fresh_postgres_url: str
) -> Iterator[tuple[FaceDatabase, FaceDatabase]]:
    """Two replicas' face databases: each its own store (its own connections) over one PostgreSQL database."""
    stores = [FaceStore(fresh_postgres_url) for _ in range(2)]
    databases = [FaceDatabase(store, analyzer, settings) for store in stores]
    for database in databases:
        database.start()
    yield databases[0], databases[1]
    for store in stores:
        store.close()


def photo(images_dir: Path, name: str) -> bytes:
    return (images_dir / "faces" / f"{name}.jpg").read_bytes()


def test_one_replica_re_embeds_and_another_takes_over_when_it_dies(
    replicas: tuple[FaceDatabase, FaceDatabase], images_dir: Path
) -> None:
    a, b = replicas
    a.create_collection("door", profile="mobilefacenet")
    a.enroll("door", "obama", [photo(images_dir, "obama"), photo(images_dir, "obama2")])
    a.enroll("door", "biden", [photo(images_dir, "biden")])
    a.change_profile("door", "dlib")
    worker_a, worker_b = Reembedder(a, batch_size=1), Reembedder(b, batch_size=1)
    try:
        assert worker_a.step()  # A takes the lease and embeds one face
        assert not worker_b.step()  # B waits while A holds it
        assert worker_a.step() and not worker_b.step()
        assert b.collection("door").reembedded == 2

        # A's process dies: the server ends its session, and with it the advisory lock. Without a timeout the call
        # only signals the backend, which may still hold the lock when B asks; with one it waits for it to exit.
        holder = worker_a.lease.backend_pid
        assert holder is not None
        with b.store.engine.connect() as conn:
            ended = conn.execute(sa.text("SELECT pg_terminate_backend(:pid, 10000)"), {"pid": holder}).scalar_one()
            assert ended
        assert worker_b.step()  # B takes over from the progress in the database: the last face
        assert not worker_a.step()  # A finds its lease gone and B holding it
        assert b.collection("door").reembedded == 3
        assert worker_b.step()  # the switch, once, through FaceStore.finish_reembedding
        assert not worker_b.step() and not worker_a.step()  # nothing left; the lease is free again
        assert worker_b.lease.backend_pid is None
        for replica in (a, b):
            assert replica.collection("door").profile == "dlib"
            assert replica.collection("door").pending_profile is None
        assert b.verify("door", "obama", photo(images_dir, "obama2")).match
    finally:
        worker_a.lease.release()
        worker_b.lease.release()


def test_a_sqlite_database_needs_no_lease(tmp_path: Path) -> None:
    with FaceStore(f"sqlite:///{tmp_path / 'facedb.sqlite3'}") as store:
        lease = store.reembedding_lease()
        assert lease.hold() and lease.hold() and lease.backend_pid is None
