"""Subject metadata is bounded, and a page of subjects fits in one reply whatever the rows hold (rows stored before
the bound existed included)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from google.protobuf import struct_pb2

from argus.config import Settings
from argus.proto.common.v1 import common_pb2
from argus.proto.facedb.v1 import facedb_pb2 as pb
from argus.proto.facedb.v1 import facedb_pb2_grpc
from argus.server import RunningServer
from argus.services.facedb.storage import FaceStore, NewFace

PROFILE = "mobilefacenet"


def _face(seed: int) -> NewFace:
    vector = np.random.default_rng(seed).standard_normal(128).astype(np.float32)
    return NewFace(
        embedding=vector / np.linalg.norm(vector),
        profile=PROFILE,
        models=("mobilefacenet@foamliu-1.0",),
        box=(0.0, 0.0, 100.0, 100.0),
        detection_score=0.9,
        face_size=100.0,
        sharpness=40.0,
    )


def _store_big_subjects(store: FaceStore, count: int, metadata_bytes: int) -> None:
    """Subjects with metadata far over today's bound, as an older version could have stored them."""
    store.create_collection("big", None, PROFILE)
    for number in range(count):
        store.add_faces("big", f"s{number}", "", {"blob": "x" * metadata_bytes}, [_face(number)])


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_page_ends_before_it_outgrows_its_byte_budget(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'db.sqlite3'}" if backend == "sqlite" else request.getfixturevalue("fresh_postgres_url")
    )
    with FaceStore(url) as store:
        store.migrate()
        _store_big_subjects(store, 7, 1_000_000)
        seen: list[str] = []
        after: int | None = 0
        pages = 0
        while after is not None:
            page = store.list_subjects("big", 100, after, max_bytes=2_500_000)
            assert 1 <= len(page.subjects) <= 2  # two 1 MB subjects fit in 2.5 MB, three do not
            seen += [subject.external_id for subject in page.subjects]
            pages += 1
            after = page.after
        assert page.total == 7 and pages == 4
        assert seen == [f"s{number}" for number in range(7)]  # every subject once, in order
        # One subject larger than the whole budget still makes a page of its own, never an empty page.
        alone = store.list_subjects("big", 100, 0, max_bytes=10)
        assert [subject.external_id for subject in alone.subjects] == ["s0"] and alone.after is not None


@pytest.fixture
def facedb(facedb_settings: Settings, tmp_path: Path) -> Iterator[tuple[facedb_pb2_grpc.FaceDatabaseServiceStub, str]]:
    from argus.services.facedb.server import start_facedb_server

    url = f"sqlite:///{tmp_path / 'facedb.sqlite3'}"
    with FaceStore(url) as store:
        store.migrate()
        _store_big_subjects(store, 7, 10 * 1024 * 1024)  # what the attacker got in: 7 x 10 MB
    running: RunningServer = start_facedb_server(facedb_settings.model_copy(update={"database_url": url}), port=0)
    channel = grpc.insecure_channel(
        running.address, options=[("grpc.max_receive_message_length", facedb_settings.max_message_bytes)]
    )
    yield facedb_pb2_grpc.FaceDatabaseServiceStub(channel), url
    channel.close()
    running.stop()


def test_listing_subjects_with_huge_metadata_pages_instead_of_failing(
    facedb: tuple[facedb_pb2_grpc.FaceDatabaseServiceStub, str],
) -> None:
    stub, _ = facedb
    listed, token = [], ""
    for _ in range(10):
        page = stub.ListSubjects(pb.ListSubjectsRequest(collection="big", page_token=token), timeout=60)
        assert page.ByteSize() < 64 * 1024 * 1024
        listed += [subject.subject_id for subject in page.subjects]
        token = page.next_page_token
        if not token:
            break
    assert listed == [f"s{number}" for number in range(7)]


def test_enrollment_refuses_metadata_over_the_bounds(
    facedb: tuple[facedb_pb2_grpc.FaceDatabaseServiceStub, str], facedb_settings: Settings, images_dir: Path
) -> None:
    stub, url = facedb
    photo = common_pb2.Image(data=(images_dir / "faces/obama.jpg").read_bytes())

    def enroll(subject: str, metadata: dict[str, object]) -> grpc.RpcError | pb.EnrollResponse:
        message = struct_pb2.Struct()
        message.update(metadata)
        try:
            return stub.Enroll(
                pb.EnrollRequest(collection="big", subject_id=subject, images=[photo], metadata=message), timeout=60
            )
        except grpc.RpcError as error:
            return error

    nested: dict[str, object] = {"leaf": 1}
    for _ in range(facedb_settings.max_metadata_depth):
        nested = {"level": nested}
    for subject, metadata, words in (
        ("huge", {"blob": "x" * (10 * 1024 * 1024)}, "the limit is 4096 bytes"),
        ("just-over", {"blob": "x" * facedb_settings.max_metadata_bytes}, "the limit is 4096 bytes"),
        ("deep", nested, f"the limit is {facedb_settings.max_metadata_depth}"),
    ):
        answer = enroll(subject, metadata)
        assert isinstance(answer, grpc.RpcError), subject
        assert answer.code() is grpc.StatusCode.INVALID_ARGUMENT and words in answer.details(), answer.details()
    with FaceStore(url) as store:
        assert store.get_collection("big").subject_count == 7  # nothing of the refused enrollments was stored
    ok = enroll("fine", {"badge": 1234, "team": {"name": "night shift", "doors": ["north", "east"]}})
    assert isinstance(ok, pb.EnrollResponse) and ok.subject.metadata["badge"] == 1234


def test_an_overlong_name_is_refused_as_such_not_echoed(
    facedb_stub: facedb_pb2_grpc.FaceDatabaseServiceStub,
) -> None:
    """A 10,000-character name echoed into the status message once overflowed the response header, turning
    INVALID_ARGUMENT into RESOURCE_EXHAUSTED."""
    name = "a" * 10_000
    calls = (
        (facedb_stub.CreateCollection, pb.CreateCollectionRequest(name=name), grpc.StatusCode.INVALID_ARGUMENT),
        (facedb_stub.GetCollection, pb.GetCollectionRequest(name=name), grpc.StatusCode.NOT_FOUND),
        (facedb_stub.ListSubjects, pb.ListSubjectsRequest(collection=name), grpc.StatusCode.NOT_FOUND),
        (
            facedb_stub.GetSubject,
            pb.GetSubjectRequest(collection=name, subject_id="é" * 5_000),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
    )
    for call, request, code in calls:
        with pytest.raises(grpc.RpcError) as caught:
            call(request, timeout=10)
        assert caught.value.code() is code, caught.value.details()[:200]
        assert len(caught.value.details().encode()) <= 1000


def test_status_messages_are_cut_to_fit_a_header() -> None:
    from argus.errors import shown
    from argus.grpc_status import MAX_MESSAGE_BYTES, status_message

    assert status_message("short") == "short"
    cut = status_message("é" * 10_000)  # two bytes a character: the cut must not split one
    assert len(cut.encode()) <= MAX_MESSAGE_BYTES and cut.endswith("... (20000 bytes)")
    assert shown("door") == "'door'"
    assert shown("x" * 500) == repr("x" * 80) + "... (500 characters)"


def test_the_face_database_file_is_the_owners_alone(tmp_path: Path) -> None:
    import stat

    data = tmp_path / "data"
    with FaceStore(f"sqlite:///{data / 'facedb.sqlite3'}") as store:
        store.migrate()
        store.create_collection("staff", None, PROFILE)
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        for path in data.iterdir():  # the database and SQLite's -wal and -shm files beside it
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    # A database left readable by others (by an older version) is tightened at start.
    (data / "facedb.sqlite3").chmod(0o644)
    data.chmod(0o755)
    with FaceStore(f"sqlite:///{data / 'facedb.sqlite3'}") as store:
        assert store.ping()
    assert stat.S_IMODE((data / "facedb.sqlite3").stat().st_mode) == 0o600
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
