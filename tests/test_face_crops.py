"""Face crops cut by the detector: the crop the embedder would cut from the same photo, pixel for pixel, embedded to
the same vectors bit for bit, so the face database hands faces on without sending or decoding the photo again."""

from __future__ import annotations

from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest

from argus.alignment import FACE_CROP_SIZE, face_crop
from argus.client import cropped_face, photo_face
from argus.config import FACES_PER_IMAGE, Settings
from argus.imaging import decode_image
from argus.messages import landmarks_array
from argus.proto.common.v1 import common_pb2
from argus.proto.detector.v1 import detector_pb2, detector_pb2_grpc
from argus.proto.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from argus.services.facedb import remote_analysis
from argus.services.facedb.remote_analysis import RemoteFaceAnalyzer

DetectorStub = detector_pb2_grpc.DetectorServiceStub
EmbedderStub = embedder_pb2_grpc.EmbedderServiceStub


def _detect(stub: DetectorStub, photo: bytes, **fields: object) -> detector_pb2.ImageFaces:
    request = detector_pb2.DetectFacesRequest(images=[common_pb2.Image(data=photo)], **fields)
    (result,) = stub.DetectFaces(request, timeout=30).results
    return result


def _pixels(crop: common_pb2.FaceCrop) -> np.ndarray:
    return np.frombuffer(crop.bgr, dtype=np.uint8).reshape(FACE_CROP_SIZE, FACE_CROP_SIZE, 3)


@pytest.fixture(scope="module")
def crowd(images_dir: Path) -> bytes:
    """Six faces: two_people.jpg three times side by side."""
    pair = cv2.imread(str(images_dir / "faces" / "two_people.jpg"))
    return bytes(cv2.imencode(".jpg", np.hstack([pair] * 3), [cv2.IMWRITE_JPEG_QUALITY, 95])[1])


def test_the_crops_are_the_ones_cut_from_the_decoded_photo(
    detector_stub: DetectorStub, images_dir: Path, settings: Settings
) -> None:
    photo = (images_dir / "faces" / "two_people.jpg").read_bytes()
    result = _detect(detector_stub, photo, face_crops=FACES_PER_IMAGE)
    assert len(result.faces) == 2 and all(face.HasField("crop") for face in result.faces)
    image = decode_image(photo, max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels)
    for face in result.faces:
        expected = face_crop(image, landmarks_array(face.landmarks))
        np.testing.assert_array_equal(_pixels(face.crop), expected.image)
        np.testing.assert_allclose(landmarks_array(face.crop.landmarks), expected.landmarks, atol=1e-4)
    assert not any(face.HasField("crop") for face in _detect(detector_stub, photo).faces)  # only when asked


def test_only_the_largest_faces_are_cut_and_the_count_is_bounded(detector_stub: DetectorStub, images_dir: Path) -> None:
    photo = (images_dir / "faces" / "two_people.jpg").read_bytes()
    one = _detect(detector_stub, photo, face_crops=1)
    areas = [(f.box.x2 - f.box.x1) * (f.box.y2 - f.box.y1) for f in one.faces]
    assert [face.HasField("crop") for face in one.faces] == [area == max(areas) for area in areas]
    for asked in (-1, FACES_PER_IMAGE + 1):
        with pytest.raises(grpc.RpcError) as caught:
            _detect(detector_stub, photo, face_crops=asked)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"0 to {FACES_PER_IMAGE} per photo" in (caught.value.details() or "")


def test_a_crop_embeds_bit_for_bit_as_its_photo(
    detector_stub: DetectorStub, embedder_stub: EmbedderStub, images_dir: Path
) -> None:
    photo = (images_dir / "faces" / "obama2.jpg").read_bytes()
    (face,) = _detect(detector_stub, photo, largest_face_only=True, face_crops=1).faces
    models = ["mobilefacenet", "dlib-resnet"]
    from_photo, from_crop = (
        embedder_stub.Embed(
            embedder_pb2.EmbedRequest(faces=[face_input], photos=photos, models=models, return_face_crop=True),
            timeout=30,
        ).embeddings[0]
        for face_input, photos in (
            (photo_face(0, face.landmarks), [common_pb2.Image(data=photo)]),
            (cropped_face(face.crop), []),
        )
    )
    assert [list(v.values) for v in from_crop.vectors] == [list(v.values) for v in from_photo.vectors]
    assert from_crop.sharpness == from_photo.sharpness and from_crop.face_crop_png == from_photo.face_crop_png


def test_a_bad_crop_is_invalid_argument(
    detector_stub: DetectorStub, embedder_stub: EmbedderStub, images_dir: Path
) -> None:
    photo = (images_dir / "faces" / "obama.jpg").read_bytes()
    (face,) = _detect(detector_stub, photo, face_crops=1).faces
    short = common_pb2.FaceCrop(bgr=face.crop.bgr[:-1], landmarks=face.crop.landmarks)
    no_points = common_pb2.FaceCrop(bgr=face.crop.bgr)
    not_finite = common_pb2.FaceCrop()
    not_finite.CopyFrom(face.crop)
    not_finite.landmarks.nose_tip.x = float("nan")
    for crop, message in (
        (short, "196608 bytes; got 196607"),
        (no_points, "needs the five landmarks"),
        (not_finite, "must be finite"),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            embedder_stub.Embed(embedder_pb2.EmbedRequest(faces=[cropped_face(crop)]), timeout=30)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in (caught.value.details() or ""), caught.value.details()


def test_the_face_database_sends_crops_not_the_photo(
    facedb_settings: Settings, images_dir: Path, crowd: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    analyzer = RemoteFaceAnalyzer(facedb_settings)
    sent: list[tuple[list[str], int]] = []
    embed = analyzer.embedder.embed

    def recording(faces: list[embedder_pb2.FaceInput], **options: object) -> embedder_pb2.EmbedResponse:
        photos = options.get("photos") or []
        sent.append(([face.WhichOneof("face") or "" for face in faces], len(photos)))  # type: ignore[arg-type]
        return embed(faces, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(analyzer.embedder, "embed", recording)
    try:
        photo = (images_dir / "faces" / "obama2.jpg").read_bytes()
        models = ("mobilefacenet", "dlib-resnet")
        probe = analyzer.analyze(photo, models, largest_only=True)
        assert sent == [(["crop"], 0)]  # one face, as the crop, and no photo
        with monkeypatch.context() as uncut:  # as with a detector from before face crops: the photo goes
            uncut.setattr(remote_analysis, "FACES_PER_IMAGE", 0)
            sent.clear()
            as_before = analyzer.analyze(photo, models, largest_only=True)
            assert sent == [(["landmarked"], 1)]
        np.testing.assert_array_equal(probe.faces[0].parts, as_before.faces[0].parts)
        sent.clear()
        many = analyzer.analyze(crowd, models)  # more faces than the detector cuts: the photo, once
        assert len(many.faces) > FACES_PER_IMAGE
        assert sent and all(kinds == ["landmarked"] * len(kinds) and photos == 1 for kinds, photos in sent)
    finally:
        analyzer.close()
