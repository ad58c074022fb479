"""The detector over real gRPC: results on real photos, bad input statuses, health, reflection, batching."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from PIL import Image
from prometheus_client import REGISTRY

from argus.proto.common.v1 import common_pb2
from argus.proto.detector.v1 import detector_pb2, detector_pb2_grpc

Stub = detector_pb2_grpc.DetectorServiceStub


def image(path: Path) -> common_pb2.Image:
    return common_pb2.Image(data=path.read_bytes(), name=path.name)


def objects_request(*images: common_pb2.Image, **fields: object) -> detector_pb2.DetectObjectsRequest:
    return detector_pb2.DetectObjectsRequest(images=list(images), **fields)  # type: ignore[arg-type]


def test_bus_gives_a_bus_and_people(detector_stub: Stub, images_dir: Path) -> None:
    response = detector_stub.DetectObjects(objects_request(image(images_dir / "objects/bus.jpg")), timeout=30)
    (result,) = response.results
    assert result.image_name == "bus.jpg"
    assert (result.image_size.width, result.image_size.height) == (810, 1080)
    names = [o.class_name for o in result.objects]
    assert names.count("bus") == 1 and names.count("person") >= 3
    bus = next(o for o in result.objects if o.class_name == "bus")
    assert bus.score > 0.8 and bus.class_id == 5
    # the bus spans most of the image's width, in source pixels
    assert bus.box.x1 < 50 and bus.box.x2 > 750 and 200 < bus.box.y1 < 260 and 700 < bus.box.y2 <= 1080
    assert response.model.startswith("yolox-nano@")


def test_two_people_give_two_faces_with_plausible_landmarks(detector_stub: Stub, images_dir: Path) -> None:
    request = detector_pb2.DetectFacesRequest(images=[image(images_dir / "faces/two_people.jpg")])
    (result,) = detector_stub.DetectFaces(request, timeout=30).results
    assert len(result.faces) == 2
    for face in result.faces:
        marks, box = face.landmarks, face.box
        assert face.score > 0.8
        # the subject's right eye is on the image's left; eyes above the nose, nose above the mouth
        assert marks.right_eye.x < marks.left_eye.x and marks.right_mouth_corner.x < marks.left_mouth_corner.x
        assert max(marks.right_eye.y, marks.left_eye.y) < marks.nose_tip.y
        assert marks.nose_tip.y < min(marks.right_mouth_corner.y, marks.left_mouth_corner.y)
        for point in (marks.right_eye, marks.left_eye, marks.nose_tip, marks.right_mouth_corner):
            assert box.x1 <= point.x <= box.x2 and box.y1 <= point.y <= box.y2
    centres = sorted((f.box.x1 + f.box.x2) / 2 for f in result.faces)
    assert centres[0] < 1126 / 2 < centres[1]  # one person each side

    coarse = detector_pb2.DetectFacesRequest(images=request.images, coarse_landmarks=True)
    (first_look,) = detector_stub.DetectFaces(coarse, timeout=30).results
    assert [f.box for f in first_look.faces] == [f.box for f in result.faces]  # the second look moves points only
    assert [f.landmarks for f in first_look.faces] != [f.landmarks for f in result.faces]


def _box_iou(a: common_pb2.BoundingBox, b: common_pb2.BoundingBox) -> float:
    inter = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1)) * max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    area = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter
    return inter / area


def _largest(faces: Sequence[detector_pb2.DetectedFace]) -> detector_pb2.DetectedFace:
    return max(faces, key=lambda f: (f.box.x2 - f.box.x1) * (f.box.y2 - f.box.y1))


def _assert_same_face(full: detector_pb2.DetectedFace, probe: detector_pb2.DetectedFace) -> None:
    """The same face: boxes overlapping by IoU 0.8 or more (0.90 measured on obama2.jpg), refined landmarks within 8% of the face's size. The second look's window
    follows the box, and YuNet's points move with the window: measured 3.8% on obama2.jpg and 5.1% on
    two_people.jpg, where the second look itself moves obama2's by 8%."""
    assert _box_iou(full.box, probe.box) > 0.8
    tolerance = 0.08 * min(full.box.x2 - full.box.x1, full.box.y2 - full.box.y1)
    for name in ("right_eye", "left_eye", "nose_tip", "right_mouth_corner", "left_mouth_corner"):
        a, b = getattr(full.landmarks, name), getattr(probe.landmarks, name)
        assert abs(a.x - b.x) < tolerance and abs(a.y - b.y) < tolerance, name


def test_largest_face_only_gives_the_largest_face_and_counts_the_others(detector_stub: Stub, images_dir: Path) -> None:
    photos = [image(images_dir / "faces/two_people.jpg"), image(images_dir / "faces/obama2.jpg")]
    full = detector_stub.DetectFaces(detector_pb2.DetectFacesRequest(images=photos), timeout=30).results
    probe = detector_stub.DetectFaces(
        detector_pb2.DetectFacesRequest(images=photos, largest_face_only=True), timeout=30
    ).results
    assert [r.faces_found for r in full] == [len(r.faces) for r in full] == [2, 1]
    assert [r.faces_found for r in probe] == [2, 1]  # counted, though only the largest comes back
    for whole, largest in zip(full, probe, strict=True):
        assert len(largest.faces) == 1
        _assert_same_face(_largest(whole.faces), largest.faces[0])


def test_a_face_too_small_for_the_shrunk_copy_is_found_in_full(detector_stub: Stub, images_dir: Path) -> None:
    """A 2400 px photo whose only face is about 100 px: at 640 px it would be 27 px, too small to rule out a larger
    face unseen (PROBE_SURE_PX), so the photo is looked at in full and the face is the full look's."""
    face = cv2.imread(str(images_dir / "faces/obama.jpg"))
    canvas = np.full((2400, 1800, 3), 128, dtype=np.uint8)
    small = cv2.resize(face, (face.shape[1] // 5, face.shape[0] // 5), interpolation=cv2.INTER_AREA)
    canvas[1500 : 1500 + small.shape[0], 900 : 900 + small.shape[1]] = small
    photo = common_pb2.Image(data=cv2.imencode(".jpg", canvas)[1].tobytes())
    (full,) = detector_stub.DetectFaces(detector_pb2.DetectFacesRequest(images=[photo]), timeout=30).results
    (probe,) = detector_stub.DetectFaces(
        detector_pb2.DetectFacesRequest(images=[photo], largest_face_only=True), timeout=30
    ).results
    assert len(full.faces) == len(probe.faces) == 1
    assert full.faces[0].box == probe.faces[0].box and full.faces[0].landmarks == probe.faces[0].landmarks


@pytest.mark.parametrize("grey", [True, False])
def test_a_sixteen_bit_png_of_a_face_finds_the_face_of_its_eight_bit_version(
    detector_stub: Stub, images_dir: Path, grey: bool
) -> None:
    """16-bit PNGs (greyscale I;16, and RGB) decode to their 8-bit values, so the same face is found in the same
    place; a greyscale one used to decode to white and find nothing."""
    eight = cv2.imread(str(images_dir / "faces/obama.jpg"))
    if grey:
        eight = cv2.cvtColor(eight, cv2.COLOR_BGR2GRAY)
    sixteen = cv2.imencode(".png", eight.astype(np.uint16) * 257)[1].tobytes()
    request = detector_pb2.DetectFacesRequest(
        images=[
            common_pb2.Image(data=cv2.imencode(".png", eight)[1].tobytes()),
            common_pb2.Image(data=sixteen),
        ]
    )
    reference, wide = detector_stub.DetectFaces(request, timeout=60).results
    assert len(reference.faces) == len(wide.faces) == 1
    assert wide.faces[0].box == reference.faces[0].box and wide.faces[0].landmarks == reference.faces[0].landmarks


def test_many_images_in_one_call_keep_their_order(detector_stub: Stub, images_dir: Path) -> None:
    paths = [images_dir / "objects" / name for name in ("dog.jpg", "bus.jpg", "zidane.jpg", "dog.jpg")]
    response = detector_stub.DetectObjects(objects_request(*map(image, paths)), timeout=30)
    assert [r.image_name for r in response.results] == [p.name for p in paths]
    assert {o.class_name for o in response.results[0].objects} >= {"dog", "bicycle"}
    assert {o.class_name for o in response.results[2].objects} >= {"person", "tie"}
    first, last = response.results[0].objects, response.results[3].objects
    assert [(o.class_id, round(o.score, 4)) for o in first] == [(o.class_id, round(o.score, 4)) for o in last]


def test_class_filter_and_options(detector_stub: Stub, images_dir: Path) -> None:
    bus = image(images_dir / "objects/bus.jpg")
    only_people = detector_stub.DetectObjects(objects_request(bus, class_names=["person"]), timeout=30)
    assert {o.class_name for o in only_people.results[0].objects} == {"person"}
    by_id = detector_stub.DetectObjects(objects_request(bus, class_ids=[5]), timeout=30)
    assert [o.class_name for o in by_id.results[0].objects] == ["bus"]
    capped = detector_stub.DetectObjects(
        objects_request(bus, options=detector_pb2.DetectionOptions(max_detections=2)), timeout=30
    )
    assert len(capped.results[0].objects) == 2
    strict = detector_stub.DetectObjects(
        objects_request(bus, options=detector_pb2.DetectionOptions(score_threshold=0.88)), timeout=30
    )
    assert [o.class_name for o in strict.results[0].objects] == ["bus"]


def test_image_without_objects_gives_an_empty_result(detector_stub: Stub) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (90, 90, 90)).save(buffer, "PNG")
    blank = common_pb2.Image(data=buffer.getvalue())
    assert list(detector_stub.DetectObjects(objects_request(blank), timeout=30).results[0].objects) == []
    faces = detector_stub.DetectFaces(detector_pb2.DetectFacesRequest(images=[blank]), timeout=30)
    assert list(faces.results[0].faces) == []


def _png_claiming(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def _bad_requests(images_dir: Path) -> list[tuple[str, detector_pb2.DetectObjectsRequest, str]]:
    jpeg = (images_dir / "objects/bus.jpg").read_bytes()
    good = common_pb2.Image(data=jpeg)
    return [
        ("not an image", objects_request(common_pb2.Image(data=b"hello world")), "not a recognisable image"),
        ("truncated jpeg", objects_request(common_pb2.Image(data=jpeg[: len(jpeg) // 3])), "truncated or corrupt"),
        ("empty bytes", objects_request(common_pb2.Image(data=b"")), "image is empty"),
        ("zero-size png", objects_request(common_pb2.Image(data=_png_claiming(0, 0))), "image 0"),
        ("decompression bomb", objects_request(common_pb2.Image(data=_png_claiming(50_000, 50_000))), "pixels"),
        ("no images", objects_request(), "no images"),
        ("batch over the limit", objects_request(*[good] * 9), "limit is 8"),
        ("unknown class", objects_request(good, class_names=["unicorn"]), "unknown class name"),
        ("class id out of range", objects_request(good, class_ids=[99]), "out of range"),
        (
            "threshold out of range",
            objects_request(good, options=detector_pb2.DetectionOptions(score_threshold=1.5)),
            "score_threshold",
        ),
        (
            "negative max detections",
            objects_request(good, options=detector_pb2.DetectionOptions(max_detections=-1)),
            "max_detections",
        ),
    ]


def test_bad_input_is_invalid_argument_and_the_service_keeps_serving(detector_stub: Stub, images_dir: Path) -> None:
    for label, request, message in _bad_requests(images_dir):
        with pytest.raises(grpc.RpcError) as caught:
            detector_stub.DetectObjects(request, timeout=30)
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT, label
        assert message in caught.value.details(), (label, caught.value.details())
    bad_faces = detector_pb2.DetectFacesRequest(images=[common_pb2.Image(data=b"\xff\xd8\xff\xe0 junk")])
    with pytest.raises(grpc.RpcError) as caught:
        detector_stub.DetectFaces(bad_faces, timeout=30)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    # still serving
    response = detector_stub.DetectObjects(objects_request(image(images_dir / "objects/dog.jpg")), timeout=30)
    assert response.results[0].objects


def test_health_reports_serving(detector_channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(detector_channel)
    for service in ("", "argus.detector.v1.DetectorService"):
        response = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert response.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as caught:
        health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5)
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND


def test_reflection_lists_the_service(detector_channel: grpc.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(detector_channel)
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
    names = {service.name for response in responses for service in response.list_services_response.service}
    assert {"argus.detector.v1.DetectorService", "grpc.health.v1.Health"} <= names


def _batch_stats(model: str) -> tuple[float, float]:
    total = REGISTRY.get_sample_value("argus_batch_size_sum", {"model": model}) or 0.0
    count = REGISTRY.get_sample_value("argus_batch_size_count", {"model": model}) or 0.0
    return total, count


def test_concurrent_calls_share_forward_passes(detector_stub: Stub, images_dir: Path) -> None:
    request = objects_request(image(images_dir / "objects/zidane.jpg"))
    total_before, passes_before = _batch_stats("yolox-nano")
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: detector_stub.DetectObjects(request, timeout=60), range(24)))
    total_after, passes_after = _batch_stats("yolox-nano")
    assert total_after - total_before == 24  # every image went through the batcher once
    assert passes_after - passes_before < 24  # and some shared a forward pass
    assert len({len(r.results[0].objects) for r in responses}) == 1  # batching does not change results


def test_metrics_count_calls_by_status(detector_stub: Stub, images_dir: Path) -> None:
    labels = {"method": "DetectObjects", "code": "INVALID_ARGUMENT"}
    before = REGISTRY.get_sample_value("argus_grpc_requests_total", labels) or 0.0
    with pytest.raises(grpc.RpcError):
        detector_stub.DetectObjects(objects_request(common_pb2.Image(data=b"junk")), timeout=30)
    assert REGISTRY.get_sample_value("argus_grpc_requests_total", labels) == before + 1
    assert (REGISTRY.get_sample_value("argus_grpc_latency_seconds_count", {"method": "DetectObjects"}) or 0) > 0
