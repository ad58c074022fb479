"""Galleries that get better with use, over real gRPC with API keys: each photo's own enrollment outcome, the face
to take, repeated photos stored once, duplicate-person warnings, subjects scored as templates, feedback on
decisions (ConfirmDecision, RejectDecision) with its scopes, and the quality filter."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest

from argus.client import FaceDbClient, Photo, refused_photos
from argus.config import Settings
from argus.keys import KeyRing
from argus.proto.common.v1 import common_pb2
from argus.proto.facedb.v1 import facedb_pb2 as pb
from argus.server import RunningServer
from argus.services.facedb.calibration import load_calibration

ROOM, OTHER = "room", "other-room"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[KeyRing, dict[str, str]]:
    ring = KeyRing(tmp_path_factory.mktemp("feedback-keys") / "keys.json")
    made = {}
    for name, scopes, collections in (
        ("admin", ["admin"], []),
        ("kiosk", ["verify"], [ROOM]),
        ("desk", ["enroll"], [ROOM]),
        ("elsewhere", ["enroll"], [OTHER]),
    ):
        _, made[name] = ring.create(name, scopes, collections, 0.0)
    return ring, made


@pytest.fixture(scope="module")
def server(
    facedb_settings: Settings, keys: tuple[KeyRing, dict[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    from argus.services.facedb.server import start_facedb_server

    settings = facedb_settings.model_copy(
        update={
            "keys_file": keys[0].path,
            "auth": "required",
            "database_url": f"sqlite:///{tmp_path_factory.mktemp('feedback-db') / 'facedb.sqlite3'}",
        }
    )
    running = start_facedb_server(settings, port=0)
    yield running
    running.stop()


def client(server: RunningServer, keys: tuple[KeyRing, dict[str, str]], role: str) -> FaceDbClient:
    return FaceDbClient(server.address, api_key=keys[1][role], timeout_s=60)


@pytest.fixture(scope="module")
def admin(server: RunningServer, keys: tuple[KeyRing, dict[str, str]]) -> Iterator[FaceDbClient]:
    with client(server, keys, "admin") as made:
        made.create_collection(ROOM)
        made.create_collection(OTHER)
        yield made


def face(images_dir: Path, name: str) -> Path:
    return images_dir / "faces" / f"{name}.jpg"


def refused(call: object, *args: object, **kwargs: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    return caught.value


def test_each_photo_has_its_own_outcome(admin: FaceDbClient, images_dir: Path, tmp_path: Path) -> None:
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 128, np.uint8))
    # All or nothing (the default): refused, and the trailing metadata says which photo and why.
    error = refused(admin.enroll, ROOM, "ann", [face(images_dir, "obama"), blank])
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT and "image 1: no face found" in error.details()
    outcomes = refused_photos(error)
    assert outcomes is not None
    assert [o.status for o in outcomes] == [pb.PHOTO_NOT_ENROLLED, pb.PHOTO_NO_FACE]
    assert refused(admin.get_subject, ROOM, "ann").code() is grpc.StatusCode.NOT_FOUND
    # What passes: the good photo is enrolled, the other reported.
    answer = admin.enroll(ROOM, "ann", [face(images_dir, "obama"), blank], what_passes=True)
    assert [o.status for o in answer.photos] == [pb.PHOTO_ENROLLED, pb.PHOTO_NO_FACE]
    assert answer.face_ids == [answer.photos[0].face_id] and answer.created_subject
    # The same photo again, alone or twice in one call, is stored once: a retried or resumed import is harmless.
    again = admin.enroll(ROOM, "ann", [face(images_dir, "obama"), face(images_dir, "obama")])
    assert [o.status for o in again.photos] == [pb.PHOTO_ALREADY_ENROLLED] * 2
    assert again.photos[0].face_id == answer.face_ids[0] and not again.face_ids
    assert len(admin.get_subject(ROOM, "ann").faces) == 1
    # Nothing passes: no subject is made.
    nothing = admin.enroll(ROOM, "nobody", [blank], what_passes=True)
    assert not nothing.HasField("subject") and nothing.photos[0].status == pb.PHOTO_NO_FACE
    admin.delete_subject(ROOM, "ann")


def test_the_caller_says_which_face_to_take(admin: FaceDbClient, images_dir: Path) -> None:
    two = face(images_dir, "two_people")
    answer = admin.enroll(ROOM, "pick", [two], what_passes=True)
    (outcome,) = answer.photos
    assert outcome.status == pb.PHOTO_SEVERAL_FACES and len(outcome.candidate_boxes) >= 2
    chosen = outcome.candidate_boxes[1]
    box = (chosen.x1, chosen.y1, chosen.x2, chosen.y2)
    taken = admin.enroll(ROOM, "pick", [Photo(two, face_box=box)])
    assert taken.photos[0].status == pb.PHOTO_ENROLLED
    assert (taken.photos[0].box.x1, taken.photos[0].box.y2) == (chosen.x1, chosen.y2)
    stored = admin.get_subject(ROOM, "pick").faces[0].box
    assert abs(stored.x1 - chosen.x1) < 1e-3
    nowhere = admin.enroll(ROOM, "pick2", [Photo(two, face_box=(0, 0, 5, 5))], what_passes=True)
    assert nowhere.photos[0].status == pb.PHOTO_NO_FACE_AT_BOX and nowhere.photos[0].candidate_boxes
    error = refused(admin.enroll, ROOM, "pick2", [Photo(two, face_box=(10, 10, 5, 5))])
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT and "face_box" in error.details()
    largest = admin.enroll(ROOM, "pick3", [Photo(two, take_largest_face=True)])
    assert largest.photos[0].status == pb.PHOTO_ENROLLED
    for subject in ("pick", "pick3"):
        admin.delete_subject(ROOM, subject)


def test_enrolling_a_known_face_under_another_id_warns(admin: FaceDbClient, images_dir: Path) -> None:
    admin.enroll(ROOM, "obama", [face(images_dir, "obama")], display_name="Barack Obama")
    answer = admin.enroll(ROOM, "barack", [face(images_dir, "obama2")])
    (warning,) = answer.warnings
    assert warning.subject_id == "obama" and warning.display_name == "Barack Obama"
    assert warning.similarity >= warning.threshold and answer.face_ids  # warned, not refused
    assert not admin.enroll(ROOM, "joe", [face(images_dir, "biden")]).warnings
    admin.delete_subject(ROOM, "barack")


def test_confirm_grows_the_template_and_reject_vetoes_the_impostor(
    admin: FaceDbClient, server: RunningServer, keys: tuple[KeyRing, dict[str, str]], images_dir: Path
) -> None:
    calibration = load_calibration(Settings(), "mobilefacenet+dlib")
    with client(server, keys, "kiosk") as kiosk, client(server, keys, "desk") as desk:
        admin.enroll(ROOM, "bo", [face(images_dir, "obama")])
        first = kiosk.verify(ROOM, "bo", face(images_dir, "obama2"))
        assert first.match and first.template_faces == 1 and len(first.decision_id) == 32
        assert first.threshold == pytest.approx(calibration.threshold_for(1), abs=1e-6)
        # The kiosk may decide but not teach: feedback needs the enroll scope, in the decision's collection.
        assert refused(kiosk.confirm_decision, ROOM, first.decision_id).code() is grpc.StatusCode.PERMISSION_DENIED
        with client(server, keys, "elsewhere") as elsewhere:
            error = refused(elsewhere.confirm_decision, ROOM, first.decision_id)
            assert error.code() is grpc.StatusCode.PERMISSION_DENIED
            assert refused(elsewhere.confirm_decision, OTHER, first.decision_id).code() is grpc.StatusCode.NOT_FOUND
        confirmed = desk.confirm_decision(ROOM, first.decision_id)
        assert confirmed.added and confirmed.subject_id == "bo" and confirmed.face_id
        faces = admin.get_subject(ROOM, "bo").faces
        assert [f.origin for f in faces] == ["enroll", "feedback"] and not faces[1].has_crop
        again = desk.confirm_decision(ROOM, first.decision_id)
        assert not again.added and "near duplicate" in again.detail
        second = kiosk.verify(ROOM, "bo", face(images_dir, "obama2"))
        assert second.template_faces == 2
        assert second.threshold == pytest.approx(calibration.threshold_for(2), abs=1e-6)
        # A stranger wrongly let in is rejected: the same face is then taken for the impostor, not for the subject.
        stranger = kiosk.verify(ROOM, "bo", face(images_dir, "biden"))
        rejected = desk.reject_decision(ROOM, stranger.decision_id)
        assert rejected.subject_id == "bo" and rejected.impostor_examples == 1
        after = kiosk.verify(ROOM, "bo", face(images_dir, "biden"))
        assert not after.match and "rejected as an impostor" in after.detail
        assert kiosk.verify(ROOM, "bo", face(images_dir, "obama2")).match  # the subject still gets in
        trail = admin.audit_events(collection=ROOM, page_size=50).events
        by_action = {(e.action, e.decision_id) for e in trail}
        assert ("verify", first.decision_id) in by_action and ("confirm_decision", first.decision_id) in by_action
        assert ("reject_decision", stranger.decision_id) in by_action


def test_identify_answers_carry_decisions_and_unknowns_need_a_name(admin: FaceDbClient, images_dir: Path) -> None:
    admin.enroll(ROOM, "joe", [face(images_dir, "biden")])
    answer = admin.identify(ROOM, face(images_dir, "biden2"))
    (found,) = answer.faces
    assert not found.unknown and found.candidates[0].subject_id == "joe" and len(found.decision_id) == 32
    best = found.candidates[0]
    assert best.template_faces == 1 and best.similarity >= best.threshold
    assert answer.subjects_searched == admin.get_collection(ROOM).subject_count
    admin.delete_subject(ROOM, "joe")
    stranger = admin.identify(ROOM, face(images_dir, "biden2")).faces[0]
    assert stranger.unknown
    error = refused(admin.confirm_decision, ROOM, stranger.decision_id)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT and "named nobody" in error.details()
    admin.enroll(ROOM, "joe", [face(images_dir, "biden")])
    assert admin.confirm_decision(ROOM, stranger.decision_id, "joe").added
    # Deleting the subject deletes the decisions that named it: feedback on them finds nothing.
    named = admin.identify(ROOM, face(images_dir, "biden2")).faces[0]
    admin.delete_subject(ROOM, "joe")
    assert refused(admin.reject_decision, ROOM, named.decision_id).code() is grpc.StatusCode.NOT_FOUND


def test_feedback_refuses_bad_input(admin: FaceDbClient) -> None:
    for decision, code in (
        ("", grpc.StatusCode.INVALID_ARGUMENT),
        ("not-a-decision", grpc.StatusCode.INVALID_ARGUMENT),
        ("0" * 32, grpc.StatusCode.NOT_FOUND),
        ("A" * 32, grpc.StatusCode.INVALID_ARGUMENT),
    ):
        assert refused(admin.confirm_decision, ROOM, decision).code() is code, decision
        assert refused(admin.reject_decision, ROOM, decision).code() is code, decision
    assert refused(admin.confirm_decision, "no-such", "0" * 32).code() is grpc.StatusCode.NOT_FOUND
    assert refused(admin.confirm_decision, ROOM, "0" * 32, "x" * 200).code() is grpc.StatusCode.INVALID_ARGUMENT


def test_confirming_for_a_subject_that_does_not_exist_is_not_found(admin: FaceDbClient, images_dir: Path) -> None:
    admin.enroll(ROOM, "bo2", [face(images_dir, "obama")])
    decision = admin.verify(ROOM, "bo2", face(images_dir, "obama2")).decision_id
    assert refused(admin.confirm_decision, ROOM, decision, "ghost").code() is grpc.StatusCode.NOT_FOUND
    admin.delete_subject(ROOM, "bo2")


def test_the_quality_filter_reports_filtered_faces_as_such(
    admin: FaceDbClient, images_dir: Path, tmp_path: Path
) -> None:
    admin.enroll(ROOM, "q", [face(images_dir, "obama")])
    blurred = tmp_path / "blurred.png"
    cv2.imwrite(str(blurred), cv2.GaussianBlur(cv2.imread(str(face(images_dir, "obama2"))), (0, 0), 6))
    strict = admin.verify(ROOM, "q", blurred, quality="high")
    assert strict.outcome == pb.LOW_QUALITY and not strict.match and strict.probe.quality.below
    assert "quality filter" in strict.detail and not strict.decision_id
    assert admin.verify(ROOM, "q", blurred, quality="none").outcome in (pb.MATCH, pb.NO_MATCH)
    assert admin.verify(ROOM, "q", face(images_dir, "obama2")).outcome == pb.MATCH  # AUTO passes a good photo
    (filtered,) = admin.identify(ROOM, blurred, quality="high").faces
    assert filtered.low_quality and not filtered.unknown and not filtered.candidates
    assert filtered.quality.below and not filtered.decision_id
    with pytest.raises(ValueError):
        admin.verify(ROOM, "q", blurred, quality="fancy")
    admin.delete_subject(ROOM, "q")


def test_unknown_enums_are_refused(admin: FaceDbClient, images_dir: Path) -> None:
    """A value of a newer client's enum this server does not know is INVALID_ARGUMENT, never a guess."""
    image = common_pb2.Image(data=face(images_dir, "obama").read_bytes())
    for call, request in (
        (admin.stub.Enroll, pb.EnrollRequest(collection=ROOM, subject_id="x", images=[image], mode=7)),
        (admin.stub.Verify, pb.VerifyRequest(collection=ROOM, subject_id="obama", image=image, quality_filter=42)),
        (admin.stub.Identify, pb.IdentifyRequest(collection=ROOM, image=image, quality_filter=42)),
    ):
        error = refused(call, request, timeout=60)
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT and "unknown" in error.details()


def test_theoutcomes_trailer_stays_within_the_metadata_limit() -> None:
    """32 photos of a crowd each refused with 64 candidate boxes would be 50 KB: over gRPC's 8 KiB metadata limit
    the client would get INTERNAL instead of the refusal. The boxes go first, then the words, never the statuses."""
    from argus.messages import MAX_OUTCOMES_BYTES
    from argus.services.facedb.database import PhotoOutcome, PhotoStatus
    from argus.services.facedb.servicer import outcomes_trailer

    boxes = tuple((float(i), 2.0, float(i) + 40.5, 60.25) for i in range(64))
    crowd = [PhotoOutcome(i, PhotoStatus.SEVERAL_FACES, detail="x" * 120, candidates=boxes) for i in range(32)]
    trailer = outcomes_trailer(crowd)
    assert 0 < len(trailer) <= MAX_OUTCOMES_BYTES
    decoded = pb.EnrollResponse.FromString(trailer).photos
    assert [p.status for p in decoded] == [pb.PHOTO_SEVERAL_FACES] * 32 and not decoded[0].candidate_boxes
    few = outcomes_trailer(crowd[:1])
    assert len(pb.EnrollResponse.FromString(few).photos[0].candidate_boxes) == 64  # kept whenever they fit


def test_with_feedback_off_nothing_is_kept(
    analyzer: object, settings: Settings, tmp_path: Path, images_dir: Path
) -> None:
    """ARGUS_FEEDBACK_RETENTION_S=0: answers still carry a decision id for the audit trail, nothing of the probe is
    kept, and feedback says why it cannot be had."""
    from argus.errors import InvalidInput
    from argus.services.facedb.database import FaceDatabase
    from argus.services.facedb.storage import FaceStore

    store = FaceStore(f"sqlite:///{tmp_path / 'facedb.sqlite3'}")
    database = FaceDatabase(store, analyzer, settings.model_copy(update={"feedback_retention_s": 0}))  # type: ignore[arg-type]
    database.start()
    database.create_collection("off")
    database.enroll("off", "bo", [face(images_dir, "obama").read_bytes()])
    decision = database.verify("off", "bo", face(images_dir, "obama2").read_bytes())
    assert decision.match and len(decision.decision_id) == 32
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT COUNT(*) FROM decisions").scalar() == 0
    with pytest.raises(InvalidInput, match="feedback is off"):
        database.confirm_decision("off", decision.decision_id)
    database.stop()
    store.close()


def test_a_collection_that_requires_liveness_is_not_taught_by_an_unchecked_probe(
    admin: FaceDbClient, images_dir: Path
) -> None:
    """Enroll there refuses a face not found live; a confirmed decision must not be a way around it."""
    admin.create_collection("door", require_liveness=True)
    admin.enroll("door", "bo", [face(images_dir, "obama")], require_live=False)  # waived for the test photo
    unchecked = admin.verify("door", "bo", face(images_dir, "obama2"), require_live=False)
    assert unchecked.match and unchecked.decision_id
    confirmed = admin.confirm_decision("door", unchecked.decision_id)
    assert not confirmed.added and "requires a live face" in confirmed.detail
    assert len(admin.get_subject("door", "bo").faces) == 1
    admin.delete_collection("door")
