"""A decision does not wait on its audit write: with another process holding the SQLite file's write lock, Verify
answers at once, its event is written once the lock is gone, and a full backlog refuses rather than forgets."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from argus.config import Settings
from argus.proto.common.v1 import common_pb2
from argus.proto.facedb.v1 import facedb_pb2 as pb
from argus.proto.facedb.v1 import facedb_pb2_grpc
from argus.server import RunningServer

BACKLOG = 3


@pytest.fixture
def facedb(facedb_settings: Settings, tmp_path: Path) -> Iterator[tuple[facedb_pb2_grpc.FaceDatabaseServiceStub, Path]]:
    from argus.services.facedb.server import start_facedb_server

    path = tmp_path / "facedb.sqlite3"
    settings = facedb_settings.model_copy(
        update={"database_url": f"sqlite:///{path}", "audit_wait_s": 0.5, "audit_backlog": BACKLOG}
    )
    running: RunningServer = start_facedb_server(settings, port=0)
    channel = grpc.insecure_channel(running.address)
    yield facedb_pb2_grpc.FaceDatabaseServiceStub(channel), path
    channel.close()
    running.stop()


def test_verify_answers_while_another_process_holds_the_write_lock(
    facedb: tuple[facedb_pb2_grpc.FaceDatabaseServiceStub, Path], images_dir: Path
) -> None:
    stub, path = facedb
    stub.CreateCollection(pb.CreateCollectionRequest(name="door"), timeout=30)
    obama = common_pb2.Image(data=(images_dir / "faces/obama.jpg").read_bytes())
    stub.Enroll(pb.EnrollRequest(collection="door", subject_id="1234", images=[obama]), timeout=60)
    probe = pb.VerifyRequest(collection="door", subject_id="1234", image=obama)

    other = sqlite3.connect(path, isolation_level=None, timeout=1)  # another process would do the same
    other.execute("BEGIN EXCLUSIVE")
    try:
        answers = []
        for _ in range(BACKLOG):
            started = time.monotonic()
            answers.append(stub.Verify(probe, timeout=20))
            assert time.monotonic() - started < 5  # it once waited 30 s, then failed
        assert all(answer.outcome == pb.MATCH for answer in answers)
        # The backlog is full: the next decision is refused, never answered unaudited.
        with pytest.raises(grpc.RpcError) as caught:
            stub.Verify(probe, timeout=20)
        assert caught.value.code() is grpc.StatusCode.UNAVAILABLE and "audit" in caught.value.details()
    finally:
        other.execute("ROLLBACK")
        other.close()

    deadline = time.monotonic() + 15
    while True:  # the kept events reach the database by themselves once it takes writes
        events = stub.ListAuditEvents(pb.ListAuditEventsRequest(collection="door"), timeout=10).events
        verified = [event for event in events if event.action == "verify"]
        if len(verified) == BACKLOG:
            break
        assert time.monotonic() < deadline, [event.action for event in events]
        time.sleep(0.2)
    assert all(event.decision == "match" and event.subject_id == "1234" for event in verified)
    # Each event keeps the time of its decision, not of its late write, and the trail keeps its order.
    stamps = [event.occurred_at.ToDatetime() for event in reversed(verified)]
    assert stamps == sorted(stamps)
    assert stub.Verify(probe, timeout=20).outcome == pb.MATCH  # and decisions are taken again
