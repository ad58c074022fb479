"""Liveness as the face database's policy, over real gRPC on SQLite and PostgreSQL, with upstream's samples: a
collection that requires it refuses to enroll a print, answers SPOOF (never a silent NO_MATCH) to a print or a
screen at Verify, leaves a spoofed face out of Identify, and the audit trail says so with the scores."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from argus.analysis import PhotoFaces, Reembedded, StoredCrop
from argus.config import Settings
from argus.errors import ModelUnavailable
from argus.evaluation.local_analysis import LocalFaceAnalyzer
from argus.proto.common.v1 import common_pb2
from argus.proto.facedb.v1 import facedb_pb2 as pb
from argus.proto.facedb.v1 import facedb_pb2_grpc
from argus.services.facedb.database import FaceDatabase
from argus.services.facedb.storage import FaceStore

Stub = facedb_pb2_grpc.FaceDatabaseServiceStub
DOOR = "door"


def sample(eval_dir: Path, name: str) -> common_pb2.Image:
    return common_pb2.Image(data=(eval_dir / "liveness" / f"image_{name}.jpg").read_bytes(), name=name)


@pytest.fixture(scope="module")
def door(facedb_stub: Stub, eval_dir: Path) -> pb.Collection:
    """A collection that requires liveness, with the live person of image_T1 enrolled."""
    made = facedb_stub.CreateCollection(pb.CreateCollectionRequest(name=DOOR, require_liveness=True), timeout=30)
    facedb_stub.Enroll(pb.EnrollRequest(collection=DOOR, subject_id="t1", images=[sample(eval_dir, "T1")]), timeout=60)
    return made


def test_the_collection_says_what_it_requires(facedb_stub: Stub, door: pb.Collection) -> None:
    assert door.require_liveness
    assert facedb_stub.GetCollection(pb.GetCollectionRequest(name=DOOR), timeout=30).require_liveness


def test_a_print_is_not_enrolled(facedb_stub: Stub, door: object, eval_dir: Path) -> None:
    request = pb.EnrollRequest(collection=DOOR, subject_id="f1", images=[sample(eval_dir, "F1")])
    with pytest.raises(grpc.RpcError) as caught:
        facedb_stub.Enroll(request, timeout=60)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "print or a screen" in caught.value.details() and "liveness 0." in caught.value.details()
    subjects = facedb_stub.ListSubjects(pb.ListSubjectsRequest(collection=DOOR), timeout=30).subjects
    assert [s.subject_id for s in subjects] == ["t1"]  # nothing stored


def test_verify_answers_spoof_for_a_print_and_a_screen(facedb_stub: Stub, door: object, eval_dir: Path) -> None:
    threshold = Settings().liveness_threshold
    for name in ("F1", "F2"):
        reply = facedb_stub.Verify(
            pb.VerifyRequest(collection=DOOR, subject_id="t1", image=sample(eval_dir, name)), timeout=60
        )
        assert reply.outcome == pb.SPOOF and not reply.match, name
        assert reply.probe.HasField("liveness") and reply.probe.liveness < threshold
        assert reply.probe.liveness_threshold == pytest.approx(threshold)
        assert "print or a screen" in reply.detail
    live = facedb_stub.Verify(
        pb.VerifyRequest(collection=DOOR, subject_id="t1", image=sample(eval_dir, "T1")), timeout=60
    )
    assert live.outcome == pb.MATCH and live.probe.liveness >= threshold
    # Asked not to, the request decides on the face alone, with no score: the screen of image_F2 shows the person of
    # image_T1, and it opens the door. That is what the requirement is for.
    request = pb.VerifyRequest(
        collection=DOOR, subject_id="t1", image=sample(eval_dir, "F2"), liveness=pb.LIVENESS_NOT_REQUIRED
    )
    loose = facedb_stub.Verify(request, timeout=60)
    assert loose.outcome == pb.MATCH and not loose.probe.HasField("liveness")


def test_identify_leaves_a_spoofed_face_out(facedb_stub: Stub, door: object, eval_dir: Path) -> None:
    reply = facedb_stub.Identify(pb.IdentifyRequest(collection=DOOR, image=sample(eval_dir, "F2")), timeout=60)
    (face,) = reply.faces
    assert face.spoof and not face.unknown and not face.candidates and face.liveness < Settings().liveness_threshold
    live = facedb_stub.Identify(pb.IdentifyRequest(collection=DOOR, image=sample(eval_dir, "T1")), timeout=60)
    assert not live.faces[0].spoof and live.faces[0].candidates[0].subject_id == "t1"


def test_a_request_may_require_it_where_the_collection_does_not(
    facedb_stub: Stub, door: object, eval_dir: Path
) -> None:
    facedb_stub.CreateCollection(pb.CreateCollectionRequest(name="lobby"), timeout=30)
    request = pb.EnrollRequest(collection="lobby", subject_id="f1", images=[sample(eval_dir, "F1")])
    facedb_stub.Enroll(request, timeout=60)  # the lobby does not require it
    request.liveness = pb.LIVENESS_REQUIRED
    request.subject_id = "f1-again"
    with pytest.raises(grpc.RpcError) as caught:
        facedb_stub.Enroll(request, timeout=60)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_an_admin_changes_the_collection_default(facedb_stub: Stub, door: object, eval_dir: Path) -> None:
    changed = facedb_stub.UpdateCollection(pb.UpdateCollectionRequest(name=DOOR, require_liveness=False), timeout=30)
    assert not changed.require_liveness
    reply = facedb_stub.Verify(
        pb.VerifyRequest(collection=DOOR, subject_id="t1", image=sample(eval_dir, "F1")), timeout=60
    )
    assert reply.outcome != pb.SPOOF and not reply.probe.HasField("liveness")  # no longer asked
    kept = facedb_stub.UpdateCollection(pb.UpdateCollectionRequest(name=DOOR), timeout=30)  # nothing set: kept
    assert not kept.require_liveness
    again = facedb_stub.UpdateCollection(pb.UpdateCollectionRequest(name=DOOR, require_liveness=True), timeout=30)
    assert (
        again.require_liveness
        and facedb_stub.GetCollection(pb.GetCollectionRequest(name=DOOR), timeout=30).require_liveness
    )
    events = facedb_stub.ListAuditEvents(pb.ListAuditEventsRequest(collection=DOOR), timeout=30).events
    updates = [e.detail for e in events if e.action == "update_collection"]
    assert updates[:2] == ["require_liveness True", "require_liveness False"]  # newest first
    with pytest.raises(grpc.RpcError) as caught:
        facedb_stub.UpdateCollection(pb.UpdateCollectionRequest(name="nowhere", require_liveness=True), timeout=30)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_the_audit_trail_records_scores_and_refusals(facedb_stub: Stub, door: object, eval_dir: Path) -> None:
    facedb_stub.Verify(pb.VerifyRequest(collection=DOOR, subject_id="t1", image=sample(eval_dir, "F1")), timeout=60)
    events = facedb_stub.ListAuditEvents(pb.ListAuditEventsRequest(collection=DOOR), timeout=30).events
    spoofs = [(e.action, e.detail) for e in events if e.decision == "spoof"]
    assert ("verify", spoofs[0][1]) == spoofs[0] and spoofs[0][1].startswith("liveness 0.")
    assert any(action == "enroll" and "image 0: liveness" in detail for action, detail in spoofs)
    matches = {e.detail.split(" ")[0] for e in events if e.action == "verify" and e.decision == "match"}
    assert matches == {"liveness", ""}  # scored where it was required, not where the request waived it


def test_a_requirement_the_detector_cannot_score_fails_closed(
    analyzer: LocalFaceAnalyzer, settings: Settings, tmp_path: Path, eval_dir: Path
) -> None:
    """A detector that returns no score (one from before liveness) makes a required check fail with a clear
    status, never pass as if the face were live."""

    class Unscored:
        def available_models(self) -> tuple[str, ...]:
            return analyzer.available_models()

        def analyze(
            self,
            encoded: bytes,
            models: Sequence[str],
            *,
            keep_crop: bool = False,
            liveness: bool = False,
            largest_only: bool = False,
        ) -> PhotoFaces:
            found = analyzer.analyze(encoded, models, keep_crop=keep_crop, liveness=liveness, largest_only=largest_only)
            return PhotoFaces([replace(face, liveness=None) for face in found.faces], found.found)

        def reembed(self, crops: Sequence[StoredCrop], models: Sequence[str]) -> list[Reembedded]:
            return analyzer.reembed(crops, models)

    with FaceStore(f"sqlite:///{tmp_path / 'facedb.sqlite3'}") as store:
        database = FaceDatabase(store, Unscored(), settings)
        database.start()
        try:
            database.create_collection("door", require_liveness=True)
            with pytest.raises(ModelUnavailable, match="no liveness score"):
                database.enroll("door", "t1", [(eval_dir / "liveness" / "image_T1.jpg").read_bytes()])
            database.create_collection("lobby")
            enrolled = database.enroll("lobby", "t1", [(eval_dir / "liveness" / "image_T1.jpg").read_bytes()])
            assert enrolled.face_ids  # not required: no score needed
        finally:
            database.stop()
            database.audit.close()
