"""The embedder over real gRPC: landmarks from the detector, vectors that tell people apart, bad input, batching."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from argus.alignment import align_face
from argus.client import photo_face
from argus.config import Settings
from argus.messages import LANDMARK_NAMES, landmarks_array, landmarks_message
from argus.proto.common.v1 import common_pb2
from argus.proto.detector.v1 import detector_pb2, detector_pb2_grpc
from argus.proto.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from argus.services.embedder import servicer as embedder_servicer

Stub = embedder_pb2_grpc.EmbedderServiceStub
PHOTOS = ("obama", "obama2", "biden", "biden2", "deepface_img2", "deepface_img3", "deepface_img4", "deepface_img12")


@pytest.fixture(scope="module")
def faces(detector_stub: detector_pb2_grpc.DetectorServiceStub, images_dir: Path) -> dict[str, embedder_pb2.FaceInput]:
    """Each photo's most confident face, with the detector's landmarks, ready to embed."""
    images = [common_pb2.Image(data=(images_dir / f"faces/{name}.jpg").read_bytes(), name=name) for name in PHOTOS]
    response = detector_stub.DetectFaces(detector_pb2.DetectFacesRequest(images=images), timeout=60)
    found = {}
    for image, result in zip(images, response.results, strict=True):
        best = max(result.faces, key=lambda face: face.score)
        found[image.name] = landmarked(image.data, best.landmarks)
    return found


def landmarked(data: bytes, landmarks: common_pb2.FaceLandmarks) -> embedder_pb2.FaceInput:
    return embedder_pb2.FaceInput(
        landmarked=embedder_pb2.LandmarkedFace(image=common_pb2.Image(data=data), landmarks=landmarks)
    )


def embed(
    stub: Stub, *faces: embedder_pb2.FaceInput, models: tuple[str, ...] = (), return_face_crop: bool = False
) -> embedder_pb2.EmbedResponse:
    request = embedder_pb2.EmbedRequest(faces=list(faces), models=list(models), return_face_crop=return_face_crop)
    return stub.Embed(request, timeout=60)


def vectors(response: embedder_pb2.EmbedResponse, model: int = 0) -> np.ndarray:
    """One row per face: the vector of the model-th network asked for."""
    return np.array([list(embedding.vectors[model].values) for embedding in response.embeddings])


def test_landmark_order_is_the_contracts() -> None:
    # YuNet's order, which the detector's decode gives its five points in
    assert LANDMARK_NAMES == ("right_eye", "left_eye", "nose_tip", "right_mouth_corner", "left_mouth_corner")
    points = np.arange(10, dtype=np.float64).reshape(5, 2)
    np.testing.assert_array_equal(landmarks_array(landmarks_message(points)), points)


def test_embeddings_are_unit_128d_vectors(embedder_stub: Stub, faces: dict[str, embedder_pb2.FaceInput]) -> None:
    response = embed(embedder_stub, faces["obama"])
    (embedding,) = response.embeddings
    (vector,) = embedding.vectors
    assert len(vector.values) == 128
    assert abs(np.linalg.norm(vector.values) - 1) < 1e-5
    assert embedding.sharpness > 100  # a press photo, in focus
    assert embedding.face_crop_png == b"" and not embedding.HasField("face_crop_landmarks")  # only on request
    assert list(response.models) == [vector.model] and vector.model.startswith("mobilefacenet@")
    assert response.flip_augmented


def test_each_network_asked_for_gives_its_own_vector(
    embedder_stub: Stub, faces: dict[str, embedder_pb2.FaceInput]
) -> None:
    response = embed(
        embedder_stub, faces["obama"], faces["obama2"], faces["biden"], models=("dlib-resnet", "mobilefacenet")
    )
    assert [ref.split("@")[0] for ref in response.models] == ["dlib-resnet", "mobilefacenet"]
    dlib, mobilefacenet = vectors(response, 0), vectors(response, 1)
    assert dlib.shape == mobilefacenet.shape == (3, 128)
    np.testing.assert_allclose(np.linalg.norm(dlib, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(
        mobilefacenet, vectors(embed(embedder_stub, faces["obama"], faces["obama2"], faces["biden"])), atol=1e-4
    )
    # dlib's raw cosines sit high for everybody (about 0.95 same, 0.83 different), but still in the right order.
    assert float(dlib[0] @ dlib[1]) > 0.92 > float(dlib[0] @ dlib[2])


def test_the_networks_it_runs_are_listed(embedder_stub: Stub) -> None:
    listed = {m.name: m for m in embedder_stub.ListModels(embedder_pb2.ListModelsRequest(), timeout=10).models}
    assert set(listed) == {"mobilefacenet", "dlib-resnet"}  # ARGUS_EMBEDDER_MODELS' default
    assert listed["dlib-resnet"].dimension == 128 and listed["dlib-resnet"].licence == "CC0-1.0"
    assert listed["mobilefacenet"].provider == "CPUExecutionProvider"


def test_a_network_it_does_not_run_is_failed_precondition(
    embedder_stub: Stub, faces: dict[str, embedder_pb2.FaceInput]
) -> None:
    for models, code, message in [
        (("hse-faceres",), grpc.StatusCode.FAILED_PRECONDITION, "does not run hse-faceres"),
        (("nope",), grpc.StatusCode.INVALID_ARGUMENT, "unknown embedding model(s) nope"),
        (("dlib-resnet", "dlib-resnet"), grpc.StatusCode.INVALID_ARGUMENT, "named twice"),
    ]:
        with pytest.raises(grpc.RpcError) as caught:
            embed(embedder_stub, faces["obama"], models=models)
        assert caught.value.code() == code and message in caught.value.details()


@pytest.mark.parametrize(
    ("first", "second", "low", "high"),
    [
        # measured with flip augmentation: 0.735, 0.598, -0.033, 0.768, 0.455, -0.154
        ("obama", "obama2", 0.5, 1.0),
        ("biden", "biden2", 0.4, 1.0),
        ("obama", "biden", -1.0, 0.2),
        ("deepface_img2", "deepface_img4", 0.5, 1.0),
        ("deepface_img3", "deepface_img12", 0.3, 1.0),
        ("deepface_img2", "deepface_img3", -1.0, 0.2),
    ],
)
def test_same_person_is_close_and_different_people_are_not(
    embedder_stub: Stub, faces: dict[str, embedder_pb2.FaceInput], first: str, second: str, low: float, high: float
) -> None:
    a, b = vectors(embed(embedder_stub, faces[first], faces[second]))
    assert low < float(a @ b) < high


def test_many_faces_in_one_call_keep_their_order(
    embedder_stub: Stub, faces: dict[str, embedder_pb2.FaceInput], images_dir: Path
) -> None:
    order = ["biden2", "obama", "deepface_img12", "obama2", "deepface_img3", "biden", "deepface_img4", "obama"]
    together = vectors(embed(embedder_stub, *(faces[name] for name in order)))
    alone = np.concatenate([vectors(embed(embedder_stub, faces[name])) for name in order])
    np.testing.assert_allclose(together, alone, atol=1e-4)
    np.testing.assert_allclose(together[1], together[7], atol=1e-4)


def test_faces_sharing_a_photo_decode_it_once(
    embedder_stub: Stub,
    detector_stub: detector_pb2_grpc.DetectorServiceStub,
    images_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = (images_dir / "faces/deepface_couple.jpg").read_bytes()
    request = detector_pb2.DetectFacesRequest(images=[common_pb2.Image(data=data)])
    couple = detector_stub.DetectFaces(request, timeout=60).results[0].faces
    assert len(couple) == 2
    decoded = []
    original = embedder_servicer.decode_image

    def counting(data: bytes, **limits: int) -> np.ndarray:
        decoded.append(len(data))
        return original(data, **limits)

    monkeypatch.setattr(embedder_servicer, "decode_image", counting)  # the server runs in this process
    first, second = vectors(embed(embedder_stub, *(landmarked(data, face.landmarks) for face in couple)))
    assert decoded == [len(data)]
    assert float(first @ second) < 0.3  # two different people


def test_faces_pointing_to_a_photo_sent_once_embed_as_inline_ones(
    embedder_stub: Stub,
    detector_stub: detector_pb2_grpc.DetectorServiceStub,
    images_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A group photo crosses the network once, in EmbedRequest.photos; its faces point to it by index."""
    data = (images_dir / "faces/two_people.jpg").read_bytes()
    request = detector_pb2.DetectFacesRequest(images=[common_pb2.Image(data=data)])
    found = detector_stub.DetectFaces(request, timeout=60).results[0].faces
    inline = vectors(embed(embedder_stub, *(landmarked(data, face.landmarks) for face in found)))
    decoded = []
    original = embedder_servicer.decode_image

    def counting(data: bytes, **limits: int) -> np.ndarray:
        decoded.append(len(data))
        return original(data, **limits)

    monkeypatch.setattr(embedder_servicer, "decode_image", counting)
    pointing = embedder_pb2.EmbedRequest(
        faces=[photo_face(1, face.landmarks) for face in found], photos=[common_pb2.Image(data=data)]
    )
    with pytest.raises(grpc.RpcError) as caught:
        embedder_stub.Embed(pointing, timeout=60)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "face 0: photo 1 is not in the request, which holds 1" in caught.value.details()
    for face in pointing.faces:
        face.landmarked.photo = 0
    assert np.allclose(vectors(embedder_stub.Embed(pointing, timeout=60)), inline, atol=1e-6)
    assert decoded == [len(data)]


def test_a_face_crop_sent_back_embeds_exactly_the_same(
    embedder_stub: Stub, faces: dict[str, embedder_pb2.FaceInput]
) -> None:
    """What a face database stores to re-embed a face later: the crop and its landmarks give the very vectors the
    photo gave, for every network."""
    both = ("mobilefacenet", "dlib-resnet")
    response = embed(embedder_stub, faces["biden"], models=both, return_face_crop=True)
    (embedding,) = response.embeddings
    crop = cv2.imdecode(np.frombuffer(embedding.face_crop_png, np.uint8), cv2.IMREAD_COLOR)
    assert crop.shape == (256, 256, 3)
    points = landmarks_array(embedding.face_crop_landmarks)
    assert ((points > 60) & (points < 200)).all()  # the face sits in the middle, with margin for every network
    again = embed(embedder_stub, landmarked(embedding.face_crop_png, embedding.face_crop_landmarks), models=both)
    for model in range(2):
        np.testing.assert_array_equal(vectors(response, model), vectors(again, model))
    assert again.embeddings[0].sharpness == embedding.sharpness


def test_a_crop_aligned_to_the_112_template_is_accepted(
    embedder_stub: Stub, faces: dict[str, embedder_pb2.FaceInput], images_dir: Path
) -> None:
    """Crops aligned to the ArcFace template (as earlier versions stored them) still embed, with every network."""
    face = faces["biden"].landmarked
    image = cv2.imdecode(np.frombuffer(face.image.data, np.uint8), cv2.IMREAD_COLOR)
    aligned = align_face(image, landmarks_array(face.landmarks))
    png = cv2.imencode(".png", aligned)[1].tobytes()
    both = ("mobilefacenet", "dlib-resnet")
    from_crop = embed(embedder_stub, embedder_pb2.FaceInput(aligned=common_pb2.Image(data=png)), models=both)
    from_photo = embed(embedder_stub, faces["biden"], models=both)
    # Resampled twice, and the dlib chip reaches a little below the 112 crop: close, not equal (the same person's
    # other photo scores about 0.6 with MobileFaceNet).
    mobilefacenet = float(vectors(from_crop, 0)[0] @ vectors(from_photo, 0)[0])
    dlib = float(vectors(from_crop, 1)[0] @ vectors(from_photo, 1)[0])
    assert mobilefacenet > 0.95 and dlib > 0.95, (mobilefacenet, dlib)


def _bad_requests(faces: dict[str, embedder_pb2.FaceInput], settings: Settings) -> list[tuple[str, object, str]]:
    good = faces["obama"]
    photo = good.landmarked.image.data
    no_nose = common_pb2.FaceLandmarks()
    no_nose.CopyFrom(good.landmarked.landmarks)
    no_nose.ClearField("nose_tip")
    nan_eye = common_pb2.FaceLandmarks()
    nan_eye.CopyFrom(good.landmarked.landmarks)
    nan_eye.left_eye.x = float("nan")
    limit = settings.max_faces_per_embed_call
    return [
        ("no faces", [], "no faces"),
        ("neither kind", [embedder_pb2.FaceInput()], "face 0: set one of landmarked"),
        ("not an image", [good, landmarked(b"hello world", good.landmarked.landmarks)], "face 1: bytes are not"),
        ("aligned of the wrong size", [embedder_pb2.FaceInput(aligned=common_pb2.Image(data=photo))], "112x112"),
        ("no landmarks", [embedder_pb2.FaceInput(landmarked=embedder_pb2.LandmarkedFace(image=good.landmarked.image))],
         "face 0: a landmarked face needs its five landmarks"),
        ("a landmark missing", [good, good, landmarked(photo, no_nose)], "face 2: landmarks missing nose_tip"),
        ("a NaN coordinate", [landmarked(photo, nan_eye)], "face 0: landmark coordinates must be finite"),
        ("too many faces", [good] * (limit + 1), f"the limit is {limit} per call"),
    ]  # fmt: skip


def test_bad_input_is_invalid_argument_and_the_service_keeps_serving(
    embedder_stub: Stub, faces: dict[str, embedder_pb2.FaceInput], settings: Settings
) -> None:
    for label, request_faces, message in _bad_requests(faces, settings):
        with pytest.raises(grpc.RpcError) as caught:
            embed(embedder_stub, *request_faces)  # type: ignore[arg-type]
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT, label
        assert message in caught.value.details(), (label, caught.value.details())
    assert len(embed(embedder_stub, faces["obama"]).embeddings) == 1  # still serving


def test_a_call_at_the_face_limit_is_served(
    embedder_stub: Stub, faces: dict[str, embedder_pb2.FaceInput], settings: Settings
) -> None:
    limit = settings.max_faces_per_embed_call
    assert vectors(embed(embedder_stub, *[faces["obama2"]] * limit)).shape == (limit, 128)


def test_too_many_distinct_photos_is_invalid_argument(
    embedder_stub: Stub, faces: dict[str, embedder_pb2.FaceInput], settings: Settings
) -> None:
    photos = [faces[name] for name in PHOTOS] + [faces["obama"]]  # eight photos, one of them twice: allowed
    assert len(embed(embedder_stub, *photos).embeddings) == 9
    ninth = landmarked(
        cv2.imencode(".png", np.zeros((64, 64, 3), np.uint8))[1].tobytes(), faces["obama"].landmarked.landmarks
    )
    with pytest.raises(grpc.RpcError) as caught:
        embed(embedder_stub, *photos, ninth)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert (
        f"the faces come from 9 different photos; the limit is {settings.max_images_per_request}"
        in caught.value.details()
    )


def test_health_reports_serving(embedder_channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(embedder_channel)
    for service in ("", "argus.embedder.v1.EmbedderService"):
        response = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert response.status == health_pb2.HealthCheckResponse.SERVING


def _batch_stats(model: str) -> tuple[float, float]:
    total = REGISTRY.get_sample_value("argus_batch_size_sum", {"model": model}) or 0.0
    count = REGISTRY.get_sample_value("argus_batch_size_count", {"model": model}) or 0.0
    return total, count


def test_concurrent_calls_share_forward_passes(embedder_stub: Stub, faces: dict[str, embedder_pb2.FaceInput]) -> None:
    request = embedder_pb2.EmbedRequest(faces=[faces["biden2"]])
    total_before, passes_before = _batch_stats("mobilefacenet")
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: embedder_stub.Embed(request, timeout=60), range(24)))
    total_after, passes_after = _batch_stats("mobilefacenet")
    assert total_after - total_before == 24 * 2  # every face and its mirror went through the batcher once
    assert passes_after - passes_before < 24  # fewer passes than calls: calls shared passes
    first = vectors(responses[0])
    for response in responses[1:]:
        np.testing.assert_allclose(vectors(response), first, atol=1e-4)  # batching does not change results
