"""Property-based fuzzing with hypothesis.

- Image decoding: random bytes, and real JPEG, PNG, WebP and BMP files truncated and mutated, only ever give an
  image or InvalidInput.
- Every RPC of the detector, embedder, face database and jobs services, with random and malformed fields (random
  bytes as images, empty, huge and unusual strings, NaN, infinite and negative thresholds, any integer for sizes and
  counts, forged page tokens), answers OK or one of the documented codes, never INTERNAL or UNKNOWN, always within
  its deadline; and the server is still serving afterwards.

The runs are bounded: a number of examples per test, a deadline on every call. Hypothesis replays a failure it
found before (its database, .hypothesis/) before trying new examples.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import grpc
import numpy as np
import pytest
import redis
from google.protobuf import text_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, example, given
from hypothesis import settings as fuzz_settings
from hypothesis import strategies as st
from PIL import Image

from argus.config import Settings
from argus.errors import InvalidInput
from argus.imaging import decode_image
from argus.proto.common.v1 import common_pb2
from argus.proto.detector.v1 import detector_pb2, detector_pb2_grpc
from argus.proto.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from argus.proto.facedb.v1 import facedb_pb2, facedb_pb2_grpc
from argus.proto.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from argus.server import RunningServer

CALL_TIMEOUT_S = 20.0
ALLOWED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
# FUZZ_SCALE=20 multiplies every test's examples, to fuzz longer by hand than CI does.
SCALE = int(os.environ.get("FUZZ_SCALE", "1"))
FUZZ = fuzz_settings(
    max_examples=60 * SCALE,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)

# --- seeds: real photos, small, in every accepted format --------------------------------------------------------


def _images_dir() -> Path | None:
    mirror = Settings().models_mirror
    return None if mirror is None else mirror.parent / "images"


def _encode(image: np.ndarray, extension: str) -> bytes:
    ok, buffer = cv2.imencode(extension, image)
    assert ok, extension
    return buffer.tobytes()


def _small(path: Path, width: int) -> np.ndarray:
    image = cv2.imread(str(path))
    height = round(image.shape[0] * width / image.shape[1])
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def _seeds() -> dict[str, bytes]:
    folder = _images_dir()
    if folder is None or not folder.is_dir():
        return {}
    face = _small(folder / "faces/obama.jpg", 240)
    scene = _small(folder / "objects/bus.jpg", 200)
    exif = io.BytesIO()  # a JPEG with an EXIF orientation, so exif_transpose has something to parse
    pil = Image.fromarray(cv2.cvtColor(scene, cv2.COLOR_BGR2RGB))
    tags = pil.getexif()
    tags[0x0112] = 6
    pil.save(exif, "JPEG", exif=tags.tobytes())
    return {
        "real.jpg": (folder / "faces/deepface_img12.jpg").read_bytes(),  # the file itself, as a camera wrote it
        "face.jpg": _encode(face, ".jpg"),
        "face.png": _encode(face, ".png"),
        "scene.webp": _encode(scene, ".webp"),
        "scene.bmp": _encode(scene, ".bmp"),
        "scene-exif.jpg": exif.getvalue(),
        "aligned.png": _encode(cv2.resize(face, (112, 112)), ".png"),
        "grey.png": _encode(cv2.cvtColor(scene, cv2.COLOR_BGR2GRAY), ".png"),
        "rgba.png": _encode(cv2.cvtColor(scene, cv2.COLOR_BGR2BGRA), ".png"),
        "16bit.png": _encode(scene.astype(np.uint16) * 257, ".png"),
    }


SEEDS = _seeds()
FACE = SEEDS.get("face.jpg", b"")
MAX_PIXELS = 4_000_000
MAX_BYTES = 1 << 20


# Drawn by name: a strategy over the bytes themselves would carry megabytes in its repr.
seed_files = st.sampled_from(sorted(SEEDS) or [""]).map(lambda name: SEEDS.get(name, b""))


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A real image file, truncated and with bytes changed, inserted, deleted or repeated; mostly in its header."""
    data = bytearray(draw(seed_files))
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        end = len(data) - 1
        position = draw(st.one_of(st.integers(0, min(end, 1023)), st.integers(0, end)))
        operation = draw(st.sampled_from(["truncate", "set", "insert", "delete", "repeat"]))
        if operation == "truncate":
            del data[position:]
        elif operation == "set":
            data[position] = draw(st.integers(0, 255))
        elif operation == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=16))
        elif operation == "delete":
            del data[position : position + draw(st.integers(1, 64))]
        else:
            data[position:position] = data[position : position + draw(st.integers(1, 256))]
    return bytes(data)


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims a size its data does not have: a decompression bomb's header."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


# --- decode_image -------------------------------------------------------------------------------------------------


def check_decoded(data: bytes) -> None:
    try:
        image = decode_image(data, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS)
    except InvalidInput:
        return
    assert isinstance(image, np.ndarray) and image.dtype == np.uint8
    assert image.ndim == 3 and image.shape[2] == 3 and image.shape[0] > 0 and image.shape[1] > 0
    assert image.shape[0] * image.shape[1] <= MAX_PIXELS


def test_seeds_are_there() -> None:
    assert SEEDS, "the shared images (../shared/images beside the checkout) are missing"
    for name, data in SEEDS.items():
        check_decoded(data)
        assert decode_image(data, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS).size, name


@FUZZ
@given(data=st.binary(max_size=4096))
@example(data=b"")
@example(data=b"\x89PNG\r\n\x1a\n")
@example(data=b"\xff\xd8\xff")
@example(data=b"BM" + b"\0" * 60)
@example(data=b"RIFF\0\0\0\0WEBPVP8 ")
@example(data=b"GIF89a\x01\x00\x01\x00\x00\x00\x00;")
@example(data=_png_claiming(100_000, 100_000))
@example(data=_png_claiming(0, 10))
@example(data=_png_claiming(2**31 - 1, 2**31 - 1))
def test_decode_random_bytes(data: bytes) -> None:
    check_decoded(data)


@fuzz_settings(FUZZ, max_examples=300 * SCALE)
@given(data=mutated())
def test_decode_mutated_real_images(data: bytes) -> None:
    check_decoded(data)


# --- strategies for request fields ------------------------------------------------------------------------------

huge_text = st.builds(lambda c, n: c * n, st.characters(codec="utf-8"), st.integers(1_000, 20_000))
odd_text = st.sampled_from(
    [
        "",
        " ",
        "\t\n",
        "\x00",
        "a\x00b",
        "fuzz\x00",
        "名前",
        "💥" * 40,
        "../../etc/passwd",
        "%s%n",
        "' OR 1=1 --",
        "a" * 129,
    ]
)
texts = st.one_of(st.text(max_size=40), odd_text, huge_text)
floats32 = st.one_of(
    st.floats(width=32),
    st.floats(0, 1, width=32),  # the valid range of most thresholds, so that calls get past their checks too
    st.sampled_from([0.0, -0.0, float("nan"), float("inf"), float("-inf"), -1.0, 1.0, 1.5]),
)
int32 = st.one_of(st.integers(-(2**31), 2**31 - 1), st.sampled_from([0, -1, 1, 2**31 - 1, -(2**31)]))


def int32_around(low: int, high: int) -> st.SearchStrategy[int]:
    """Any 32-bit integer, often one in or near the field's valid range, so that calls also get past that check."""
    return st.one_of(st.integers(low, high), int32)


int64 = st.one_of(st.integers(-(2**63), 2**63 - 1), st.sampled_from([0, -1, 1, 2**63 - 1]))
image_bytes = st.one_of(
    st.binary(max_size=512),
    mutated(),
    seed_files,
    st.just(b""),
)
images = st.builds(common_pb2.Image, data=image_bytes, name=texts)


def _token(prefix: str) -> st.SearchStrategy[str]:
    """Page tokens forged the way this server makes them, with any number behind the prefix."""
    numbers = st.one_of(
        st.integers(-(10**30), 10**30).map(str),
        st.sampled_from(["", "-1", "+5", " 5", "5_000", "1e3", "0x10", "9" * 40, "١٢"]),
    )
    encoded = numbers.map(lambda n: base64.urlsafe_b64encode(f"{prefix}{n}".encode()).decode())
    return encoded | encoded.map(lambda token: token.rstrip("="))  # padded (jobs) and unpadded (facedb)


page_tokens = st.one_of(texts, _token("s"), _token("o"), st.just("=="))
json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def describe(request: Any) -> str:
    text = text_format.MessageToString(request, as_utf8=True)
    return text if len(text) < 1500 else text[:1500] + f"... ({len(text)} characters)"


def call(stub: Any, method: str, request: Any) -> grpc.StatusCode:
    """One call with a deadline; fails the test on an undocumented status code (a deadline missed included)."""
    try:
        answer = getattr(stub, method)(request, timeout=CALL_TIMEOUT_S)
        if method == "WatchJob":
            list(answer)
        return grpc.StatusCode.OK
    except grpc.RpcError as error:
        code = error.code()  # type: ignore[attr-defined]
        details = error.details()  # type: ignore[attr-defined]
        assert code in ALLOWED, f"{method} answered {code.name}: {details}\nrequest:\n{describe(request)}"
        return code


def assert_serving(address: str) -> None:
    with grpc.insecure_channel(address) as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


# --- detector -----------------------------------------------------------------------------------------------------

options = st.builds(
    detector_pb2.DetectionOptions,
    score_threshold=floats32,
    nms_iou_threshold=floats32,
    max_detections=int32_around(-1, 400),
)
class_names = st.lists(st.one_of(texts, st.sampled_from(["person", " Bus ", "DOG", "traffic light"])), max_size=4)
detector_calls = st.one_of(
    st.tuples(
        st.just("DetectObjects"),
        st.builds(
            detector_pb2.DetectObjectsRequest,
            images=st.lists(images, max_size=3) | st.lists(images, min_size=9, max_size=10),
            options=options,
            class_names=class_names,
            class_ids=st.lists(int32_around(-1, 81), max_size=4),
        ),
    ),
    st.tuples(
        st.just("DetectFaces"),
        st.builds(detector_pb2.DetectFacesRequest, images=st.lists(images, max_size=3), options=options),
    ),
)


def test_detector_rpcs(detector_server: RunningServer, detector_stub: detector_pb2_grpc.DetectorServiceStub) -> None:
    @FUZZ
    @given(rpc=detector_calls)
    def fuzz(rpc: tuple[str, Any]) -> None:
        call(detector_stub, *rpc)

    fuzz()
    assert_serving(detector_server.address)
    found = detector_stub.DetectFaces(
        detector_pb2.DetectFacesRequest(images=[common_pb2.Image(data=FACE)]), timeout=CALL_TIMEOUT_S
    )
    assert len(found.results[0].faces) == 1


# --- embedder -----------------------------------------------------------------------------------------------------

points = st.one_of(st.none(), st.builds(common_pb2.Point, x=floats32, y=floats32))


@st.composite
def landmarks(draw: st.DrawFn) -> common_pb2.FaceLandmarks:
    message = common_pb2.FaceLandmarks()
    for name in ("right_eye", "left_eye", "nose_tip", "right_mouth_corner", "left_mouth_corner"):
        point = draw(points)
        if point is not None:
            getattr(message, name).CopyFrom(point)
    return message


@st.composite
def face_inputs(draw: st.DrawFn) -> embedder_pb2.FaceInput:
    kind = draw(st.sampled_from(["landmarked", "landmarked-no-points", "aligned", "none"]))
    if kind == "landmarked":
        return embedder_pb2.FaceInput(
            landmarked=embedder_pb2.LandmarkedFace(image=draw(images), landmarks=draw(landmarks()))
        )
    if kind == "landmarked-no-points":
        return embedder_pb2.FaceInput(landmarked=embedder_pb2.LandmarkedFace(image=draw(images)))
    if kind == "aligned":
        return embedder_pb2.FaceInput(aligned=draw(images))
    return embedder_pb2.FaceInput()


embedder_calls = st.tuples(
    st.just("Embed"),
    st.builds(
        embedder_pb2.EmbedRequest,
        faces=st.lists(face_inputs(), max_size=4) | st.lists(face_inputs(), min_size=33, max_size=34),
        return_face_crop=st.booleans(),
        models=st.lists(st.sampled_from(["mobilefacenet", "dlib-resnet", "hse-faceres", ""]) | texts, max_size=3),
    ),
)


def test_embedder_rpcs(embedder_server: RunningServer, embedder_stub: embedder_pb2_grpc.EmbedderServiceStub) -> None:
    @FUZZ
    @given(rpc=embedder_calls)
    def fuzz(rpc: tuple[str, Any]) -> None:
        call(embedder_stub, *rpc)

    fuzz()
    assert_serving(embedder_server.address)
    aligned = embedder_pb2.FaceInput(aligned=common_pb2.Image(data=SEEDS["aligned.png"]))
    assert len(embedder_stub.Embed(embedder_pb2.EmbedRequest(faces=[aligned]), timeout=CALL_TIMEOUT_S).embeddings) == 1


# --- face database ------------------------------------------------------------------------------------------------

COLLECTION = "fuzz"
SUBJECT = "alice"
profiles = st.sampled_from(["", "mobilefacenet", "dlib", "mobilefacenet+dlib", "mobilefacenet+dlib+faceres"]) | texts
collections = st.one_of(st.just(COLLECTION), texts, st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,70}\Z"))
subject_ids = st.one_of(st.just(SUBJECT), texts)
face_images = st.one_of(images, st.just(common_pb2.Image(data=FACE)))


@st.composite
def enroll_requests(draw: st.DrawFn) -> facedb_pb2.EnrollRequest:
    request = facedb_pb2.EnrollRequest(
        collection=draw(collections),
        subject_id=draw(subject_ids),
        images=draw(st.lists(face_images, max_size=3) | st.lists(face_images, min_size=9, max_size=10)),
        display_name=draw(texts),
        take_largest_face=draw(st.booleans()),
    )
    metadata = draw(st.none() | st.dictionaries(st.text(max_size=10), json_values, max_size=4))
    if metadata is not None:
        request.metadata.update(metadata)
    return request


@st.composite
def audit_requests(draw: st.DrawFn) -> facedb_pb2.ListAuditEventsRequest:
    request = facedb_pb2.ListAuditEventsRequest(
        collection=draw(st.just("") | collections),
        page_size=draw(int32_around(-1, 1001)),
        page_token=draw(page_tokens),
    )
    if draw(st.booleans()):
        request.since.seconds = draw(st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(0, 2**32)))
        request.since.nanos = draw(st.one_of(st.integers(0, 999_999_999), int32))
    return request


facedb_calls = st.one_of(
    st.tuples(
        st.just("CreateCollection"),
        st.builds(facedb_pb2.CreateCollectionRequest, name=texts | collections, threshold=floats32, profile=profiles),
    ),
    st.tuples(st.just("ListCollections"), st.just(facedb_pb2.ListCollectionsRequest())),
    st.tuples(st.just("GetCollection"), st.builds(facedb_pb2.GetCollectionRequest, name=collections)),
    st.tuples(
        st.just("ChangeProfile"),
        st.builds(facedb_pb2.ChangeProfileRequest, collection=collections, profile=profiles),
    ),
    st.tuples(st.just("ListProfiles"), st.just(facedb_pb2.ListProfilesRequest())),
    st.tuples(
        st.just("DeleteCollection"),
        st.builds(facedb_pb2.DeleteCollectionRequest, name=texts.filter(lambda name: name != COLLECTION)),
    ),
    st.tuples(st.just("Enroll"), enroll_requests()),
    st.tuples(
        st.just("Verify"),
        st.builds(facedb_pb2.VerifyRequest, collection=collections, subject_id=subject_ids, image=face_images),
    ),
    st.tuples(
        st.just("Compare"),
        st.builds(facedb_pb2.CompareRequest, image_a=face_images, image_b=face_images, threshold=floats32),
    ),
    st.tuples(
        st.just("Identify"),
        st.builds(
            facedb_pb2.IdentifyRequest,
            collection=collections,
            image=face_images,
            top_k=int32_around(-1, 101),
            threshold=floats32,
        ),
    ),
    st.tuples(
        st.just("GetSubject"),
        st.builds(facedb_pb2.GetSubjectRequest, collection=collections, subject_id=subject_ids),
    ),
    st.tuples(
        st.just("ListSubjects"),
        st.builds(
            facedb_pb2.ListSubjectsRequest,
            collection=collections,
            page_size=int32_around(-1, 1001),
            page_token=page_tokens,
        ),
    ),
    st.tuples(
        st.just("DeleteFace"),
        st.builds(facedb_pb2.DeleteFaceRequest, collection=collections, face_id=int64 | st.integers(1, 20)),
    ),
    st.tuples(
        st.just("DeleteSubject"),
        st.builds(facedb_pb2.DeleteSubjectRequest, collection=collections, subject_id=subject_ids),
    ),
    st.tuples(st.just("ListAuditEvents"), audit_requests()),
    st.tuples(
        st.just("PruneAuditEvents"),
        st.builds(facedb_pb2.PruneAuditEventsRequest, older_than_days=int32_around(-1, 1_000_000)),
    ),
)


def _forged(text: str, pad: bool = False) -> str:
    token = base64.urlsafe_b64encode(text.encode()).decode()
    return token if pad else token.rstrip("=")


def _enroll_with(**fields: Any) -> facedb_pb2.EnrollRequest:
    """A valid enrollment of a new subject (a usable photo) but for the fields given."""
    metadata = fields.pop("metadata", None)
    request = facedb_pb2.EnrollRequest(
        collection=COLLECTION,
        subject_id=fields.pop("subject_id", "bob"),
        images=[common_pb2.Image(data=FACE)],
        **fields,
    )
    if metadata is not None:
        request.metadata.update(metadata)
    return request


def test_facedb_rpcs(facedb_server: RunningServer, facedb_stub: facedb_pb2_grpc.FaceDatabaseServiceStub) -> None:
    if call(facedb_stub, "CreateCollection", facedb_pb2.CreateCollectionRequest(name=COLLECTION)) is grpc.StatusCode.OK:
        enroll = facedb_pb2.EnrollRequest(
            collection=COLLECTION, subject_id=SUBJECT, images=[common_pb2.Image(data=FACE)]
        )
        facedb_stub.Enroll(enroll, timeout=CALL_TIMEOUT_S)

    @fuzz_settings(FUZZ, max_examples=100 * SCALE)
    @given(rpc=facedb_calls)
    @example(rpc=("Enroll", _enroll_with(subject_id="nul\x00")))  # was INTERNAL on PostgreSQL
    @example(rpc=("Enroll", _enroll_with(display_name="\x00")))
    @example(rpc=("Enroll", _enroll_with(metadata={"\x00": "\x00", "nested": [{"\x00": None}]})))
    @example(rpc=("Enroll", _enroll_with(metadata={"x": float("inf")})))  # was INTERNAL: inf is no JSON
    @example(rpc=("Enroll", _enroll_with(metadata={"x": float("nan")})))
    @example(rpc=("DeleteCollection", facedb_pb2.DeleteCollectionRequest(name="\x00")))  # was INTERNAL on PostgreSQL
    @example(rpc=("GetSubject", facedb_pb2.GetSubjectRequest(collection=COLLECTION, subject_id="\x00")))
    @example(
        rpc=("ListSubjects", facedb_pb2.ListSubjectsRequest(collection=COLLECTION, page_token=_forged("s" + "9" * 40)))
    )
    @example(
        rpc=("ListSubjects", facedb_pb2.ListSubjectsRequest(collection=COLLECTION, page_token=_forged("s2147483648")))
    )
    @example(rpc=("PruneAuditEvents", facedb_pb2.PruneAuditEventsRequest(older_than_days=2**31 - 1)))  # was INTERNAL
    @example(rpc=("ListAuditEvents", facedb_pb2.ListAuditEventsRequest(since={"nanos": -1})))  # was INTERNAL
    @example(rpc=("ListAuditEvents", facedb_pb2.ListAuditEventsRequest(since={"seconds": 2**62})))
    @example(rpc=("ListAuditEvents", facedb_pb2.ListAuditEventsRequest(collection="\x00")))
    @example(rpc=("DeleteFace", facedb_pb2.DeleteFaceRequest(collection=COLLECTION, face_id=2**63 - 1)))
    @example(rpc=("DeleteFace", facedb_pb2.DeleteFaceRequest(collection=COLLECTION, face_id=-(2**63))))
    def fuzz(rpc: tuple[str, Any]) -> None:
        call(facedb_stub, *rpc)

    fuzz()
    assert_serving(facedb_server.address)
    compared = facedb_stub.Compare(
        facedb_pb2.CompareRequest(image_a=common_pb2.Image(data=FACE), image_b=common_pb2.Image(data=FACE)),
        timeout=CALL_TIMEOUT_S,
    )
    assert compared.outcome == facedb_pb2.MATCH


# --- jobs ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_jobs_server(
    settings: Settings, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """A jobs API of this module's own, on a Redis database no other test uses (no worker: jobs stay queued)."""
    from argus.services.jobs.server import start_jobs_server

    url = redis_url.rsplit("/", 1)[0] + "/7"
    redis.Redis.from_url(url).flushdb()
    jobs_settings = settings.model_copy(update={"redis_url": url, "results_dir": tmp_path_factory.mktemp("results")})
    running = start_jobs_server(jobs_settings, port=0)
    yield running
    running.stop()
    redis.Redis.from_url(url).flushdb()


@st.composite
def stylization_jobs(draw: st.DrawFn) -> jobs_pb2.StylizationJob:
    job = jobs_pb2.StylizationJob(
        content=draw(images), output_format=draw(int32_around(-1, 4)), max_size=draw(int32_around(-1, 4097))
    )
    style = draw(st.sampled_from(["name", "known", "image", "none"]))
    if style == "name":
        job.style_name = draw(texts)
    elif style == "known":
        job.style_name = draw(st.sampled_from(["candy", "mosaic", "rain-princess", "udnie", "arbitrary"]))
    elif style == "image":
        job.style_image.CopyFrom(draw(images))
    if draw(st.booleans()):
        job.strength = draw(floats32)
    return job


detection_jobs = st.builds(
    jobs_pb2.DetectionJob,
    images=st.lists(images, max_size=3),
    options=options,
    objects=st.booleans(),
    faces=st.booleans(),
    class_names=class_names,
    class_ids=st.lists(int32_around(-1, 81), max_size=3),
)


@st.composite
def submit_requests(draw: st.DrawFn) -> jobs_pb2.SubmitJobRequest:
    request = jobs_pb2.SubmitJobRequest(idempotency_key=draw(st.just("") | texts))
    kind = draw(st.sampled_from(["detection", "stylization", "none"]))
    if kind == "detection":
        request.detection.CopyFrom(draw(detection_jobs))
    elif kind == "stylization":
        request.stylization.CopyFrom(draw(stylization_jobs()))
    return request


job_ids = st.one_of(texts, st.text(alphabet="0123456789abcdef", min_size=32, max_size=32))
jobs_calls = st.one_of(
    st.tuples(st.just("SubmitJob"), submit_requests()),
    st.tuples(st.just("GetJob"), st.builds(jobs_pb2.GetJobRequest, job_id=job_ids, include_result=st.booleans())),
    st.tuples(st.just("WatchJob"), st.builds(jobs_pb2.GetJobRequest, job_id=job_ids, include_result=st.booleans())),
    st.tuples(st.just("CancelJob"), st.builds(jobs_pb2.GetJobRequest, job_id=job_ids)),
    st.tuples(
        st.just("ListJobs"),
        st.builds(
            jobs_pb2.ListJobsRequest,
            state=int32_around(-1, 6),
            kind=int32_around(-1, 3),
            page_size=int32_around(-1, 1001),
            page_token=page_tokens,
        ),
    ),
    st.tuples(st.just("ListStyles"), st.just(jobs_pb2.ListStylesRequest())),
)


def test_jobs_rpcs(fuzz_jobs_server: RunningServer) -> None:
    with grpc.insecure_channel(fuzz_jobs_server.address) as channel:
        stub = jobs_pb2_grpc.JobsServiceStub(channel)
        queued = stub.SubmitJob(
            jobs_pb2.SubmitJobRequest(detection=jobs_pb2.DetectionJob(images=[common_pb2.Image(data=FACE)])),
            timeout=CALL_TIMEOUT_S,
        )
        cancelled = stub.CancelJob(jobs_pb2.GetJobRequest(job_id=queued.job_id), timeout=CALL_TIMEOUT_S)
        assert cancelled.state == jobs_pb2.CANCELLED

        @fuzz_settings(FUZZ, max_examples=100 * SCALE)
        @given(rpc=jobs_calls, known=st.booleans())
        @example(  # was INTERNAL: Redis refused the offset
            rpc=("ListJobs", jobs_pb2.ListJobsRequest(page_token=_forged("o" + "9" * 40, pad=True))), known=False
        )
        @example(rpc=("ListJobs", jobs_pb2.ListJobsRequest(page_token=_forged("o-5", pad=True))), known=False)
        def fuzz(rpc: tuple[str, Any], known: bool) -> None:
            method, request = rpc
            if known and isinstance(request, jobs_pb2.GetJobRequest):
                request.job_id = cancelled.job_id  # a job that exists (and has ended, so WatchJob returns)
            call(stub, method, request)

        fuzz()
        assert_serving(fuzz_jobs_server.address)
        assert stub.GetJob(jobs_pb2.GetJobRequest(job_id=queued.job_id), timeout=CALL_TIMEOUT_S).job_id == queued.job_id
