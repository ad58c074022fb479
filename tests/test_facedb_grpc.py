"""The face database over real gRPC, on SQLite and on PostgreSQL: the whole enroll / verify / identify story,
deletion that really forgets, and bad input that gets a clear status."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image

from argus.proto.common.v1 import common_pb2
from argus.proto.facedb.v1 import facedb_pb2 as pb
from argus.proto.facedb.v1 import facedb_pb2_grpc

Stub = facedb_pb2_grpc.FaceDatabaseServiceStub
COLLECTION = "staff"


def photo(images_dir: Path, name: str) -> common_pb2.Image:
    return common_pb2.Image(data=(images_dir / "faces" / f"{name}.jpg").read_bytes(), name=name)


def encoded(image_bgr: np.ndarray) -> common_pb2.Image:
    return common_pb2.Image(data=cv2.imencode(".png", image_bgr)[1].tobytes())


def blank() -> common_pb2.Image:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), (128, 128, 128)).save(buffer, "JPEG")
    return common_pb2.Image(data=buffer.getvalue())


def status_of(call: object, *args: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, timeout=30)  # type: ignore[operator]
    return caught.value.code(), caught.value.details()


@pytest.fixture(scope="module")
def enrolled(facedb_stub: Stub, images_dir: Path) -> dict[str, pb.EnrollResponse]:
    """A collection with Obama and Biden enrolled from one photo each."""
    facedb_stub.CreateCollection(pb.CreateCollectionRequest(name=COLLECTION), timeout=30)
    people = {}
    for subject_id, name, picture in (("1234", "Barack Obama", "obama"), ("5678", "Joe Biden", "biden")):
        request = pb.EnrollRequest(
            collection=COLLECTION, subject_id=subject_id, display_name=name, images=[photo(images_dir, picture)]
        )
        request.metadata.update({"team": "executive"})
        people[subject_id] = facedb_stub.Enroll(request, timeout=60)
    return people


def test_enrollment_with_one_photo(enrolled: dict[str, pb.EnrollResponse]) -> None:
    obama = enrolled["1234"]
    assert obama.created_subject and len(obama.face_ids) == 1
    assert obama.subject.display_name == "Barack Obama"
    assert dict(obama.subject.metadata) == {"team": "executive"}
    face = obama.subject.faces[0]
    assert face.face_id == obama.face_ids[0] and face.face_size > 50 and face.detection_score > 0.6
    assert face.profile == "mobilefacenet+dlib" and [m.split("@")[0] for m in face.models] == [
        "mobilefacenet",
        "dlib-resnet",
    ]
    assert face.has_crop


def test_verify_match_and_non_match(facedb_stub: Stub, enrolled: object, images_dir: Path) -> None:
    same = facedb_stub.Verify(
        pb.VerifyRequest(collection=COLLECTION, subject_id="1234", image=photo(images_dir, "obama2")), timeout=30
    )
    assert same.outcome == pb.MATCH and same.match
    assert same.similarity > same.threshold and same.probability > 0.5
    assert same.probe.faces_in_image == 1 and same.best_face_id > 0
    other = facedb_stub.Verify(
        pb.VerifyRequest(collection=COLLECTION, subject_id="1234", image=photo(images_dir, "biden2")), timeout=30
    )
    assert other.outcome == pb.NO_MATCH and not other.match
    assert other.similarity < other.threshold and other.probability < 0.5
    assert same.threshold == other.threshold > 0


def test_verify_without_a_face_says_so(facedb_stub: Stub, enrolled: object) -> None:
    response = facedb_stub.Verify(pb.VerifyRequest(collection=COLLECTION, subject_id="1234", image=blank()), timeout=30)
    assert response.outcome == pb.NO_FACE and not response.match
    assert "no face" in response.detail and not response.HasField("probe")


def test_compare_needs_no_database(facedb_stub: Stub, images_dir: Path) -> None:
    same = facedb_stub.Compare(
        pb.CompareRequest(image_a=photo(images_dir, "biden"), image_b=photo(images_dir, "biden2")), timeout=30
    )
    assert same.outcome == pb.MATCH and same.similarity > 0.4
    different = facedb_stub.Compare(
        pb.CompareRequest(image_a=photo(images_dir, "obama"), image_b=photo(images_dir, "biden")), timeout=30
    )
    assert different.outcome == pb.NO_MATCH and abs(different.similarity) < 0.2
    missing = facedb_stub.Compare(pb.CompareRequest(image_a=photo(images_dir, "obama"), image_b=blank()), timeout=30)
    assert missing.outcome == pb.NO_FACE and missing.detail == "no face was found in image_b"


def test_identify_names_each_face_in_a_group_photo(facedb_stub: Stub, enrolled: object, images_dir: Path) -> None:
    request = pb.IdentifyRequest(collection=COLLECTION, image=photo(images_dir, "two_people"), top_k=2)
    response = facedb_stub.Identify(request, timeout=30)
    assert response.faces_found == 2 and response.gallery_size == 2
    by_position = sorted(response.faces, key=lambda face: face.box.x1)
    assert [face.candidates[0].subject_id for face in by_position] == ["1234", "5678"]  # Obama left, Biden right
    for face in by_position:
        assert not face.unknown
        assert len(face.candidates) == 2 and face.candidates[0].similarity > face.candidates[1].similarity
    assert by_position[0].candidates[0].display_name == "Barack Obama"


def test_identify_says_unknown_for_a_stranger(facedb_stub: Stub, enrolled: object, images_dir: Path) -> None:
    response = facedb_stub.Identify(
        pb.IdentifyRequest(collection=COLLECTION, image=photo(images_dir, "deepface_img2")), timeout=30
    )
    (face,) = response.faces
    assert face.unknown
    assert face.candidates[0].similarity < response.threshold
    # 1:K asks more than 1:1: the open-set threshold for this gallery is at least the verification one
    staff = next(
        c
        for c in facedb_stub.ListCollections(pb.ListCollectionsRequest(), timeout=30).collections
        if c.name == COLLECTION
    )
    assert response.threshold >= staff.threshold


def test_identify_without_faces_is_an_empty_answer(facedb_stub: Stub, enrolled: object) -> None:
    response = facedb_stub.Identify(pb.IdentifyRequest(collection=COLLECTION, image=blank()), timeout=30)
    assert response.faces_found == 0 and list(response.faces) == []


def test_enrollment_rejects_unusable_photos_and_stores_nothing(
    facedb_stub: Stub, enrolled: object, images_dir: Path
) -> None:
    def enroll(*images: common_pb2.Image, **fields: object) -> tuple[grpc.StatusCode, str]:
        request = pb.EnrollRequest(collection=COLLECTION, subject_id="new-person", images=list(images), **fields)  # type: ignore[arg-type]
        return status_of(facedb_stub.Enroll, request)

    obama = cv2.imread(str(images_dir / "faces/obama.jpg"))
    tiny = cv2.resize(obama, (obama.shape[1] // 12, obama.shape[0] // 12), interpolation=cv2.INTER_AREA)
    blurred = cv2.GaussianBlur(obama, (0, 0), 12)
    cases = [
        ((blank(),), "image 0: no face found"),
        ((photo(images_dir, "two_people"),), "image 0: 2 faces found"),
        ((encoded(tiny),), "px; at least"),
        ((encoded(blurred),), "too blurry"),
        ((photo(images_dir, "obama"), blank()), "image 1: no face found"),
        ((common_pb2.Image(data=b"not a photo"),), "image 0: "),
    ]
    for images, message in cases:
        code, details = enroll(*images)
        assert code is grpc.StatusCode.INVALID_ARGUMENT, details
        assert message in details, details
    assert status_of(facedb_stub.GetSubject, pb.GetSubjectRequest(collection=COLLECTION, subject_id="new-person"))[
        0
    ] is (grpc.StatusCode.NOT_FOUND)


def test_take_largest_face_enrolls_from_a_group_photo(facedb_stub: Stub, enrolled: object, images_dir: Path) -> None:
    request = pb.EnrollRequest(
        collection=COLLECTION, subject_id="group", images=[photo(images_dir, "two_people")], take_largest_face=True
    )
    response = facedb_stub.Enroll(request, timeout=60)
    assert len(response.face_ids) == 1
    facedb_stub.DeleteSubject(pb.DeleteSubjectRequest(collection=COLLECTION, subject_id="group"), timeout=30)


def test_more_photos_extend_a_subject(facedb_stub: Stub, enrolled: object, images_dir: Path) -> None:
    request = pb.EnrollRequest(collection=COLLECTION, subject_id="5678", images=[photo(images_dir, "biden2")])
    response = facedb_stub.Enroll(request, timeout=60)
    assert not response.created_subject and len(response.subject.faces) == 2
    assert response.subject.display_name == "Joe Biden"  # kept: the request left it empty
    listed = facedb_stub.ListCollections(pb.ListCollectionsRequest(), timeout=30)
    staff = next(c for c in listed.collections if c.name == COLLECTION)
    assert staff.face_count >= 3 and staff.subject_count >= 2


def test_subjects_are_listed_page_by_page(facedb_stub: Stub, enrolled: object) -> None:
    seen, token = [], ""
    while True:
        page = facedb_stub.ListSubjects(
            pb.ListSubjectsRequest(collection=COLLECTION, page_size=1, page_token=token), timeout=30
        )
        seen += [s.subject_id for s in page.subjects]
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == sorted(set(seen)) and {"1234", "5678"} <= set(seen)
    assert page.total == len(seen)


def test_deleting_a_subject_forgets_them_everywhere(facedb_stub: Stub, enrolled: object, images_dir: Path) -> None:
    facedb_stub.Enroll(
        pb.EnrollRequest(collection=COLLECTION, subject_id="temp", images=[photo(images_dir, "deepface_img2")]),
        timeout=60,
    )
    probe = pb.IdentifyRequest(collection=COLLECTION, image=photo(images_dir, "deepface_img4"), top_k=5)
    assert facedb_stub.Identify(probe, timeout=30).faces[0].candidates[0].subject_id == "temp"
    deleted = facedb_stub.DeleteSubject(pb.DeleteSubjectRequest(collection=COLLECTION, subject_id="temp"), timeout=30)
    assert deleted.deleted_faces == 1
    after = facedb_stub.Identify(probe, timeout=30).faces[0]
    assert "temp" not in [c.subject_id for c in after.candidates] and after.unknown
    verify = pb.VerifyRequest(collection=COLLECTION, subject_id="temp", image=photo(images_dir, "deepface_img4"))
    assert status_of(facedb_stub.Verify, verify)[0] is grpc.StatusCode.NOT_FOUND


def test_deleting_a_face(facedb_stub: Stub, enrolled: object, images_dir: Path) -> None:
    response = facedb_stub.Enroll(
        pb.EnrollRequest(collection=COLLECTION, subject_id="img3", images=[photo(images_dir, "deepface_img3")]),
        timeout=60,
    )
    (face_id,) = response.face_ids
    facedb_stub.DeleteFace(pb.DeleteFaceRequest(collection=COLLECTION, face_id=face_id), timeout=30)
    subject = facedb_stub.GetSubject(pb.GetSubjectRequest(collection=COLLECTION, subject_id="img3"), timeout=30)
    assert list(subject.faces) == []
    probe = facedb_stub.Identify(
        pb.IdentifyRequest(collection=COLLECTION, image=photo(images_dir, "deepface_img3"), top_k=5), timeout=30
    )
    assert all(c.face_id != face_id for c in probe.faces[0].candidates)
    again = pb.DeleteFaceRequest(collection=COLLECTION, face_id=face_id)
    assert status_of(facedb_stub.DeleteFace, again)[0] is grpc.StatusCode.NOT_FOUND


def test_bad_requests_get_clear_statuses(facedb_stub: Stub, enrolled: object, images_dir: Path) -> None:
    obama2 = photo(images_dir, "obama2")
    cases = [
        (facedb_stub.Verify, pb.VerifyRequest(collection=COLLECTION, subject_id="nobody", image=obama2), grpc.StatusCode.NOT_FOUND, "nobody"),
        (facedb_stub.Verify, pb.VerifyRequest(collection="nowhere", subject_id="1234", image=obama2), grpc.StatusCode.NOT_FOUND, "nowhere"),
        (facedb_stub.Verify, pb.VerifyRequest(collection=COLLECTION, subject_id="", image=obama2), grpc.StatusCode.INVALID_ARGUMENT, "subject_id is empty"),
        (facedb_stub.Verify, pb.VerifyRequest(collection=COLLECTION, subject_id="x" * 129, image=obama2), grpc.StatusCode.INVALID_ARGUMENT, "limit is 128"),
        (facedb_stub.Verify, pb.VerifyRequest(collection=COLLECTION, subject_id="1234", image=common_pb2.Image(data=b"junk")), grpc.StatusCode.INVALID_ARGUMENT, "not a recognisable image"),
        (facedb_stub.Identify, pb.IdentifyRequest(collection=COLLECTION, image=obama2, top_k=101), grpc.StatusCode.INVALID_ARGUMENT, "top_k"),
        (facedb_stub.Identify, pb.IdentifyRequest(collection=COLLECTION, image=obama2, top_k=-1), grpc.StatusCode.INVALID_ARGUMENT, "top_k"),
        (facedb_stub.Identify, pb.IdentifyRequest(collection=COLLECTION, image=obama2, threshold=2.0), grpc.StatusCode.INVALID_ARGUMENT, "threshold"),
        (facedb_stub.Identify, pb.IdentifyRequest(collection="nowhere", image=obama2), grpc.StatusCode.NOT_FOUND, "nowhere"),
        (facedb_stub.Enroll, pb.EnrollRequest(collection=COLLECTION, subject_id="someone"), grpc.StatusCode.INVALID_ARGUMENT, "no images"),
        (facedb_stub.Enroll, pb.EnrollRequest(collection="nowhere", subject_id="someone", images=[obama2]), grpc.StatusCode.NOT_FOUND, "nowhere"),
        (facedb_stub.CreateCollection, pb.CreateCollectionRequest(name=COLLECTION), grpc.StatusCode.ALREADY_EXISTS, COLLECTION),
        (facedb_stub.CreateCollection, pb.CreateCollectionRequest(name="bad name!"), grpc.StatusCode.INVALID_ARGUMENT, "not valid"),
        (facedb_stub.ListSubjects, pb.ListSubjectsRequest(collection=COLLECTION, page_token="garbage"), grpc.StatusCode.INVALID_ARGUMENT, "token"),
        (facedb_stub.ListSubjects, pb.ListSubjectsRequest(collection=COLLECTION, page_size=5000), grpc.StatusCode.INVALID_ARGUMENT, "page_size"),
        (facedb_stub.DeleteSubject, pb.DeleteSubjectRequest(collection=COLLECTION, subject_id="nobody"), grpc.StatusCode.NOT_FOUND, "nobody"),
    ]  # fmt: skip
    for call, request, code, message in cases:
        got, details = status_of(call, request)
        assert got is code, (request, got, details)
        assert message in details, (request, details)
    # and it keeps serving
    verify = pb.VerifyRequest(collection=COLLECTION, subject_id="1234", image=obama2)
    assert facedb_stub.Verify(verify, timeout=30).match


def test_health_and_collection_lifecycle(facedb_server: object, facedb_stub: Stub, images_dir: Path) -> None:
    channel = grpc.insecure_channel(facedb_server.address)  # type: ignore[attr-defined]
    status = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service="argus.facedb.v1.FaceDatabaseService"), timeout=5
    )
    channel.close()
    assert status.status == health_pb2.HealthCheckResponse.SERVING
    created = facedb_stub.CreateCollection(pb.CreateCollectionRequest(name="visitors", threshold=0.5), timeout=30)
    assert created.threshold == pytest.approx(0.5)
    facedb_stub.Enroll(
        pb.EnrollRequest(collection="visitors", subject_id="v1", images=[photo(images_dir, "biden")]), timeout=60
    )
    deleted = facedb_stub.DeleteCollection(pb.DeleteCollectionRequest(name="visitors"), timeout=30)
    assert (deleted.deleted_subjects, deleted.deleted_faces) == (1, 1)
    names = [c.name for c in facedb_stub.ListCollections(pb.ListCollectionsRequest(), timeout=30).collections]
    assert "visitors" not in names


def test_profiles_are_listed_with_their_calibration(facedb_stub: Stub) -> None:
    profiles = {p.name: p for p in facedb_stub.ListProfiles(pb.ListProfilesRequest(), timeout=30).profiles}
    assert set(profiles) == {"mobilefacenet", "dlib", "mobilefacenet+dlib", "mobilefacenet+dlib+faceres"}
    default = profiles["mobilefacenet+dlib"]
    assert default.is_default and default.calibrated and 0 < default.threshold < 1
    assert list(default.models) == ["mobilefacenet", "dlib-resnet"]
    assert [m.split("@")[0] for m in default.model_versions] == ["mobilefacenet", "dlib-resnet"]
    assert sum(p.is_default for p in profiles.values()) == 1


def test_a_collection_is_re_embedded_for_another_profile_in_the_background(facedb_stub: Stub, images_dir: Path) -> None:
    import time

    created = facedb_stub.CreateCollection(pb.CreateCollectionRequest(name="moving", profile="dlib"), timeout=30)
    assert created.profile == "dlib" and created.pending_profile == ""
    for subject_id, picture in (("obama", "obama"), ("biden", "biden")):
        facedb_stub.Enroll(
            pb.EnrollRequest(collection="moving", subject_id=subject_id, images=[photo(images_dir, picture)]),
            timeout=60,
        )
    request = pb.VerifyRequest(collection="moving", subject_id="obama", image=photo(images_dir, "obama2"))
    before = facedb_stub.Verify(request, timeout=30)
    assert before.match and before.threshold > 0.8  # dlib's raw cosines run high

    started = facedb_stub.ChangeProfile(
        pb.ChangeProfileRequest(collection="moving", profile="mobilefacenet"), timeout=30
    )
    assert started.profile == "dlib" and started.pending_profile == "mobilefacenet"
    deadline = time.monotonic() + 60
    while (current := facedb_stub.GetCollection(pb.GetCollectionRequest(name="moving"), timeout=30)).pending_profile:
        assert 0 <= current.reembedded_faces <= current.face_count == 2
        assert time.monotonic() < deadline, "the re-embedding did not finish"
        time.sleep(0.1)
    assert current.profile == "mobilefacenet" and current.threshold < 0.5
    after = facedb_stub.Verify(request, timeout=30)
    assert after.match and after.threshold == current.threshold and after.similarity != before.similarity
    subject = facedb_stub.GetSubject(pb.GetSubjectRequest(collection="moving", subject_id="obama"), timeout=30)
    assert subject.faces[0].profile == "mobilefacenet" and subject.faces[0].models[0].startswith("mobilefacenet@")


def test_profile_changes_are_checked(facedb_stub: Stub, enrolled: object) -> None:
    change = facedb_stub.ChangeProfile
    assert status_of(change, pb.ChangeProfileRequest(collection=COLLECTION, profile="nope"))[0] == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    code, details = status_of(change, pb.ChangeProfileRequest(collection=COLLECTION))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "name the profile" in details
    code, details = status_of(change, pb.ChangeProfileRequest(collection="nowhere", profile="dlib"))
    assert code == grpc.StatusCode.NOT_FOUND
    code, details = status_of(facedb_stub.CreateCollection, pb.CreateCollectionRequest(name="x", profile="nope"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "unknown embedding profile" in details
