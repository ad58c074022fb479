"""Typed Python clients over the generated stubs; the CLI is built on them."""

from __future__ import annotations

import builtins
import json
import threading
from collections import namedtuple
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, Self, TypeVar

import grpc

from argus import importer
from argus.config import DEFAULT_ADDRESSES, Settings
from argus.messages import PHOTO_OUTCOMES_KEY, landmarks_message
from argus.proto.common.v1 import common_pb2
from argus.proto.detector.v1 import detector_pb2, detector_pb2_grpc
from argus.proto.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from argus.proto.facedb.v1 import facedb_pb2, facedb_pb2_grpc
from argus.proto.jobs.v1 import jobs_pb2, jobs_pb2_grpc

ImageSource = bytes | str | Path
Stub = TypeVar("Stub")


def liveness_requirement(require_live: bool | None) -> facedb_pb2.LivenessRequirement:
    """True: required, False: waived, None: the collection's default (LivenessRequirement)."""
    if require_live is None:
        return facedb_pb2.LIVENESS_COLLECTION_DEFAULT
    return facedb_pb2.LIVENESS_REQUIRED if require_live else facedb_pb2.LIVENESS_NOT_REQUIRED


# QualityFilter by name, as the SDK and CLI take it.
QUALITY_FILTERS: dict[str, facedb_pb2.QualityFilter] = {
    "none": facedb_pb2.QUALITY_FILTER_NONE,
    "auto": facedb_pb2.QUALITY_FILTER_AUTO,
    "low": facedb_pb2.QUALITY_FILTER_LOW,
    "medium": facedb_pb2.QUALITY_FILTER_MEDIUM,
    "high": facedb_pb2.QUALITY_FILTER_HIGH,
}


def quality_filter(name: str | None) -> facedb_pb2.QualityFilter:
    """A QualityFilter from its name (none, auto, low, medium, high); None: the server's default (AUTO)."""
    if name is None:
        return facedb_pb2.QUALITY_FILTER_UNSPECIFIED
    try:
        return QUALITY_FILTERS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown quality filter {name!r}; use one of {', '.join(QUALITY_FILTERS)}") from None


Box = tuple[float, float, float, float]

# An import's Enroll worth another try after a pause (the server restarting or busy, another call creating the same
# subject), and the answers wrong for every photo alike (the key, the collection): those stop it.
IMPORT_RETRIES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ALREADY_EXISTS,
    }
)
IMPORT_STOPS = frozenset(
    {grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.NOT_FOUND}
)

# The photo statuses that say a photo was refused (not enrolled for a reason of its own).
REFUSED_STATUSES = frozenset(
    {
        facedb_pb2.PHOTO_UNREADABLE,
        facedb_pb2.PHOTO_NO_FACE,
        facedb_pb2.PHOTO_SEVERAL_FACES,
        facedb_pb2.PHOTO_NO_FACE_AT_BOX,
        facedb_pb2.PHOTO_FACE_TOO_SMALL,
        facedb_pb2.PHOTO_TOO_BLURRY,
        facedb_pb2.PHOTO_SPOOF,
    }
)


def refused_photos(error: grpc.RpcError) -> list[facedb_pb2.PhotoOutcome] | None:
    """Every photo's outcome of an all-or-nothing Enroll refused for its photos; None for any other error."""
    trailing_metadata: Callable[[], Any] | None = getattr(error, "trailing_metadata", None)
    entries: Iterable[tuple[str, str | bytes]] = (trailing_metadata() if trailing_metadata else None) or ()
    for key, value in entries:
        if key == PHOTO_OUTCOMES_KEY and isinstance(value, bytes):
            return list(facedb_pb2.EnrollResponse.FromString(value).photos)
    return None


@dataclass(frozen=True)
class Photo:
    """One photo to enroll, with the face to take where it shows several: the one at `face_box` (x1, y1, x2, y2 in
    its pixels, as DetectFaces gives them), or the largest."""

    image: ImageSource
    face_box: Box | None = None
    take_largest_face: bool = False

    def message(self) -> facedb_pb2.EnrollPhoto:
        photo = facedb_pb2.EnrollPhoto(image=image_message(self.image), take_largest_face=self.take_largest_face)
        if self.face_box is not None:
            x1, y1, x2, y2 = self.face_box
            photo.face_box.CopyFrom(common_pb2.BoundingBox(x1=x1, y1=y1, x2=x2, y2=y2))
        return photo


@dataclass(frozen=True)
class Tls:
    """How a client reaches a TLS server: the CA to trust (else the system's), and for mutual TLS its own
    certificate and key."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Tls | None:
        if not (settings.tls_ca_file or settings.tls_client_cert_file):
            return None
        return cls(settings.tls_ca_file, settings.tls_client_cert_file, settings.tls_client_key_file)

    def credentials(self) -> grpc.ChannelCredentials:
        def read(path: Path | None) -> bytes | None:
            return path.read_bytes() if path else None

        return grpc.ssl_channel_credentials(read(self.ca_file), read(self.key_file), read(self.cert_file))


class _ApiKey(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Sends the API key with every call, as 'authorization: Bearer <key>' metadata."""

    def __init__(self, api_key: str) -> None:
        self.metadata = ("authorization", f"Bearer {api_key}")

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        return _CallDetails(
            details.method, details.timeout, [*(details.metadata or ()), self.metadata], details.credentials,
            details.wait_for_ready, details.compression,
        )  # fmt: skip

    def intercept_unary_unary(self, continuation: Any, details: grpc.ClientCallDetails, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: grpc.ClientCallDetails, request: Any) -> Any:
        return continuation(self._details(details), request)


class _CallDetails(
    namedtuple("_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")),
    grpc.ClientCallDetails,
):
    pass


# The calls that change nothing (a Verify or Identify writes only its audit record, and only with a decision), so
# one that ends UNAVAILABLE (no replica reached, one draining at shutdown, one cut off from its own dependencies) is
# sent again, to the next replica. Writes are never resent: an Enroll that failed after its commit would enroll the
# photos twice, a resent Delete* or CreateCollection would answer NOT_FOUND or ALREADY_EXISTS for its own success, a
# resent ChangeProfile to the profile just asked for would cancel it; an UpdateCollection would be safe to resend,
# but its audit event would be written twice. SubmitJob is safe to resend with the same idempotency_key, but the
# channel cannot tell a call with one from a call without: the caller resends it.
RETRIED_READS = {
    "argus.detector.v1.DetectorService": ("DetectObjects", "DetectFaces"),
    "argus.embedder.v1.EmbedderService": ("Embed", "ListModels"),
    "argus.facedb.v1.FaceDatabaseService": (
        "GetCollection", "ListCollections", "ListProfiles", "Verify", "Compare", "Identify", "GetSubject",
        "ListSubjects", "GetFaceCrop", "ListAuditEvents",
    ),
    "argus.jobs.v1.JobsService": ("GetJob", "WatchJob", "ListJobs", "ListStyles"),
}  # fmt: skip
# Three attempts in all, resent after a random pause of up to 50, then 100 ms, all within the call's deadline: enough
# to step past a replica that is going away, few enough that a stack that is down fails fast.
RETRY_POLICY = {
    "maxAttempts": 3,
    "initialBackoff": "0.05s",
    "maxBackoff": "0.5s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}
# round_robin: every address the name resolves to (a headless Service's pods, a compose service's replicas) gets a
# connection and calls take turns over the ready ones; gRPC's default (pick_first) would send them all to one.
SERVICE_CONFIG = {
    "loadBalancingConfig": [{"round_robin": {}}],
    "methodConfig": [
        {
            "name": [
                {"service": service, "method": method}
                for service, methods in RETRIED_READS.items()
                for method in methods
            ],
            "retryPolicy": RETRY_POLICY,
        }
    ],
}
CHANNEL_OPTIONS = (
    ("grpc.service_config", json.dumps(SERVICE_CONFIG)),
    ("grpc.enable_retries", 1),
    # A call is resent from a copy kept until it is answered; gRPC keeps 256 KiB by default, less than a photo, and
    # does not retry what it did not keep. Keep up to the largest message a server accepts by default.
    ("grpc.per_rpc_retry_buffer_size", Settings.model_fields["max_message_bytes"].default),
)


def open_channel(address: str, *, api_key: str | None = None, tls: Tls | None = None) -> grpc.Channel:
    """A channel to an Argus service: TLS when tls is given, the API key on every call when one is given; balanced
    over every address the name resolves to (`dns:///argus-facedb-headless:50053`, `ipv4:10.0.0.1:50053,10.0.0.2:50053`)
    and reads resent on UNAVAILABLE (SERVICE_CONFIG)."""
    channel = (
        grpc.secure_channel(address, tls.credentials(), options=CHANNEL_OPTIONS)
        if tls
        else grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
    )
    return grpc.intercept_channel(channel, _ApiKey(api_key)) if api_key else channel


def client_options(settings: Settings) -> dict[str, Any]:
    """What a process's own settings say about reaching the others: its API key and TLS."""
    return {"api_key": settings.resolved_api_key, "tls": Tls.from_settings(settings)}


Landmarks = common_pb2.FaceLandmarks | Sequence[Sequence[float]]


def image_message(source: ImageSource) -> common_pb2.Image:
    """An Image message from encoded bytes or a file path (the file name travels as the image's name)."""
    if isinstance(source, bytes):
        return common_pb2.Image(data=source)
    path = Path(source)
    return common_pb2.Image(data=path.read_bytes(), name=path.name)


class ServiceClient(Generic[Stub]):
    """What a client of any Argus service has: a channel (TLS, the API key on every call), the service's stub over
    it, a deadline for every call (timeout_s), and an end (close, or a `with` block). Subclasses add the calls."""

    default_address: ClassVar[str]  # where `argus up` serves the service
    open_stub: Callable[[grpc.Channel], Stub]  # the generated stub class

    def __init__(
        self,
        address: str | None = None,
        timeout_s: float = 30.0,
        *,
        api_key: str | None = None,
        tls: Tls | None = None,
    ) -> None:
        self.channel = open_channel(address or self.default_address, api_key=api_key, tls=tls)
        self.stub = self.open_stub(self.channel)
        self.timeout_s = timeout_s

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class DetectorClient(ServiceClient[detector_pb2_grpc.DetectorServiceStub]):
    """Calls a DetectorService. Every call has a deadline; errors arrive as grpc.RpcError with the status."""

    default_address = DEFAULT_ADDRESSES["detector"]
    open_stub = detector_pb2_grpc.DetectorServiceStub

    def detect_objects(
        self,
        images: Sequence[ImageSource],
        *,
        score_threshold: float = 0.0,
        nms_iou_threshold: float = 0.0,
        max_detections: int = 0,
        classes: Iterable[str | int] = (),
    ) -> detector_pb2.DetectObjectsResponse:
        classes = list(classes)
        request = detector_pb2.DetectObjectsRequest(
            images=[image_message(image) for image in images],
            options=detector_pb2.DetectionOptions(
                score_threshold=score_threshold,
                nms_iou_threshold=nms_iou_threshold,
                max_detections=max_detections,
            ),
            class_names=[c for c in classes if isinstance(c, str)],
            class_ids=[c for c in classes if isinstance(c, int)],
        )
        return self.stub.DetectObjects(request, timeout=self.timeout_s)

    def detect_faces(
        self,
        images: Sequence[ImageSource],
        *,
        score_threshold: float = 0.0,
        nms_iou_threshold: float = 0.0,
        max_detections: int = 0,
        liveness: bool = False,
        largest_only: bool = False,
        face_crops: int = 0,
        timeout_s: float | None = None,
    ) -> detector_pb2.DetectFacesResponse:
        """`liveness`: score each face's liveness too (DetectedFace.liveness). `largest_only`: each photo's largest
        face alone, found faster on a large photo (DetectFacesRequest.largest_face_only). `face_crops`: the face
        crops of that many of each photo's largest faces (DetectedFace.crop), to embed without the photo."""
        request = detector_pb2.DetectFacesRequest(
            images=[image_message(image) for image in images],
            liveness=liveness,
            largest_face_only=largest_only,
            face_crops=face_crops,
            options=detector_pb2.DetectionOptions(
                score_threshold=score_threshold,
                nms_iou_threshold=nms_iou_threshold,
                max_detections=max_detections,
            ),
        )
        return self.stub.DetectFaces(request, timeout=timeout_s or self.timeout_s)


def landmarked_face(image: ImageSource, landmarks: Landmarks) -> embedder_pb2.FaceInput:
    """A FaceInput from a photo and its five landmarks: a FaceLandmarks message (as DetectFaces returns it) or
    five (x, y) points in the order right eye, left eye, nose tip, right mouth corner, left mouth corner."""
    if not isinstance(landmarks, common_pb2.FaceLandmarks):
        landmarks = landmarks_message(landmarks)
    return embedder_pb2.FaceInput(
        landmarked=embedder_pb2.LandmarkedFace(image=image_message(image), landmarks=landmarks)
    )


def photo_face(photo: int, landmarks: Landmarks) -> embedder_pb2.FaceInput:
    """A FaceInput for a face of the call's photos[photo] (see EmbedderClient.embed), with its five landmarks."""
    if not isinstance(landmarks, common_pb2.FaceLandmarks):
        landmarks = landmarks_message(landmarks)
    return embedder_pb2.FaceInput(landmarked=embedder_pb2.LandmarkedFace(photo=photo, landmarks=landmarks))


def cropped_face(crop: common_pb2.FaceCrop) -> embedder_pb2.FaceInput:
    """A FaceInput from the face crop a detector cut (DetectedFace.crop, with DetectFacesRequest.face_crops)."""
    return embedder_pb2.FaceInput(crop=crop)


def aligned_face(crop: ImageSource) -> embedder_pb2.FaceInput:
    """A FaceInput from a 112x112 crop already aligned to the ArcFace template."""
    return embedder_pb2.FaceInput(aligned=image_message(crop))


class EmbedderClient(ServiceClient[embedder_pb2_grpc.EmbedderServiceStub]):
    """Calls an EmbedderService. Every call has a deadline; errors arrive as grpc.RpcError with the status."""

    default_address = DEFAULT_ADDRESSES["embedder"]
    open_stub = embedder_pb2_grpc.EmbedderServiceStub

    def embed(
        self,
        faces: Sequence[embedder_pb2.FaceInput],
        *,
        models: Sequence[str] = (),
        return_face_crop: bool = False,
        timeout_s: float | None = None,
        photos: Sequence[ImageSource] = (),
    ) -> embedder_pb2.EmbedResponse:
        """Embeds many faces in one call (they share forward passes) with each of these networks (none: the
        server's first); one embedding per face, in order, holding one vector per network. Faces made with
        photo_face point into `photos`, so a photo of many faces is sent once."""
        request = embedder_pb2.EmbedRequest(
            faces=list(faces),
            photos=[image_message(photo) for photo in photos],
            models=list(models),
            return_face_crop=return_face_crop,
        )
        return self.stub.Embed(request, timeout=timeout_s or self.timeout_s)

    def embed_landmarked(
        self,
        image: ImageSource,
        landmarks: Landmarks,
        *,
        models: Sequence[str] = (),
        return_face_crop: bool = False,
    ) -> embedder_pb2.EmbedResponse:
        return self.embed([landmarked_face(image, landmarks)], models=models, return_face_crop=return_face_crop)

    def embed_aligned(self, crops: Sequence[ImageSource], *, models: Sequence[str] = ()) -> embedder_pb2.EmbedResponse:
        return self.embed([aligned_face(crop) for crop in crops], models=models)

    def list_models(self) -> embedder_pb2.ListModelsResponse:
        return self.stub.ListModels(embedder_pb2.ListModelsRequest(), timeout=self.timeout_s)


class FaceDbClient(ServiceClient[facedb_pb2_grpc.FaceDatabaseServiceStub]):
    """Calls a FaceDatabaseService: enrollment, verification, identification and subject management."""

    default_address = DEFAULT_ADDRESSES["facedb"]
    open_stub = facedb_pb2_grpc.FaceDatabaseServiceStub

    def create_collection(
        self, name: str, threshold: float = 0.0, profile: str = "", *, require_liveness: bool = False
    ) -> facedb_pb2.Collection:
        """A new collection; threshold 0 and profile "" take the server's calibrated defaults; `require_liveness`:
        its Verify, Identify and Enroll require a live face unless a request says otherwise."""
        request = facedb_pb2.CreateCollectionRequest(
            name=name, threshold=threshold, profile=profile, require_liveness=require_liveness
        )
        return self.stub.CreateCollection(request, timeout=self.timeout_s)

    def get_collection(self, name: str) -> facedb_pb2.Collection:
        return self.stub.GetCollection(facedb_pb2.GetCollectionRequest(name=name), timeout=self.timeout_s)

    def update_collection(self, name: str, *, require_liveness: bool | None = None) -> facedb_pb2.Collection:
        """Changes the settings given (admin); None keeps one as it is."""
        request = facedb_pb2.UpdateCollectionRequest(name=name, require_liveness=require_liveness)
        return self.stub.UpdateCollection(request, timeout=self.timeout_s)

    def change_profile(self, collection: str, profile: str) -> facedb_pb2.Collection:
        """Starts re-embedding the collection for another profile; get_collection shows the progress."""
        request = facedb_pb2.ChangeProfileRequest(collection=collection, profile=profile)
        return self.stub.ChangeProfile(request, timeout=self.timeout_s)

    def list_profiles(self) -> list[facedb_pb2.Profile]:
        return list(self.stub.ListProfiles(facedb_pb2.ListProfilesRequest(), timeout=self.timeout_s).profiles)

    def list_collections(self) -> list[facedb_pb2.Collection]:
        response = self.stub.ListCollections(facedb_pb2.ListCollectionsRequest(), timeout=self.timeout_s)
        return list(response.collections)

    def delete_collection(self, name: str) -> facedb_pb2.DeleteCollectionResponse:
        return self.stub.DeleteCollection(facedb_pb2.DeleteCollectionRequest(name=name), timeout=self.timeout_s)

    def enroll(
        self,
        collection: str,
        subject_id: str,
        images: Sequence[ImageSource | Photo],
        *,
        display_name: str = "",
        metadata: dict[str, Any] | None = None,
        take_largest_face: bool = False,
        require_live: bool | None = None,
        what_passes: bool = False,
    ) -> facedb_pb2.EnrollResponse:
        """Adds one or more photos of one person (a `Photo` says which face to take where it shows several). Each
        photo gets its own outcome in the answer; by default all are enrolled or, if any is refused, none (the call
        fails with INVALID_ARGUMENT); `what_passes` enrolls those that pass and answers why the others did not."""
        # With any Photo, all go as `photos`, so the answer numbers them in the order given.
        chosen = any(isinstance(image, Photo) for image in images)
        request = facedb_pb2.EnrollRequest(
            collection=collection,
            subject_id=subject_id,
            images=[] if chosen else [image_message(image) for image in images if not isinstance(image, Photo)],
            photos=[(i if isinstance(i, Photo) else Photo(i)).message() for i in images] if chosen else [],
            display_name=display_name,
            take_largest_face=take_largest_face,
            liveness=liveness_requirement(require_live),
            mode=facedb_pb2.ENROLL_WHAT_PASSES if what_passes else facedb_pb2.ENROLL_ALL_OR_NOTHING,
        )
        if metadata:
            request.metadata.update(metadata)
        return self.stub.Enroll(request, timeout=self.timeout_s)

    def verify(
        self,
        collection: str,
        subject_id: str,
        image: ImageSource,
        *,
        require_live: bool | None = None,
        quality: str | None = None,
    ) -> facedb_pb2.VerifyResponse:
        """`require_live`: True requires a live face (a spoof answers SPOOF), False waives it, None leaves it to
        the collection. `quality`: the quality filter (none, auto, low, medium, high; None: auto)."""
        request = facedb_pb2.VerifyRequest(
            collection=collection,
            subject_id=subject_id,
            image=image_message(image),
            liveness=liveness_requirement(require_live),
            quality_filter=quality_filter(quality),
        )
        return self.stub.Verify(request, timeout=self.timeout_s)

    def compare(self, image_a: ImageSource, image_b: ImageSource, threshold: float = 0.0) -> facedb_pb2.CompareResponse:
        request = facedb_pb2.CompareRequest(
            image_a=image_message(image_a), image_b=image_message(image_b), threshold=threshold
        )
        return self.stub.Compare(request, timeout=self.timeout_s)

    def identify(
        self,
        collection: str,
        image: ImageSource,
        *,
        top_k: int = 1,
        threshold: float = 0.0,
        require_live: bool | None = None,
        quality: str | None = None,
    ) -> facedb_pb2.IdentifyResponse:
        request = facedb_pb2.IdentifyRequest(
            collection=collection,
            image=image_message(image),
            top_k=top_k,
            threshold=threshold,
            liveness=liveness_requirement(require_live),
            quality_filter=quality_filter(quality),
        )
        return self.stub.Identify(request, timeout=self.timeout_s)

    def import_photos(
        self,
        collection: str,
        items: Iterable[importer.ImportItem],
        *,
        journal: importer.Journal | None = None,
        concurrency: int = 4,
        take_largest_face: bool = False,
        max_bytes: int = 20 * 1024 * 1024,
        progress: Callable[[importer.PhotoResult | None], None] | None = None,
        stop: threading.Event | None = None,
    ) -> importer.ImportSummary:
        """Bulk import (argus.importer): one Enroll per photo (ENROLL_WHAT_PASSES), `concurrency` in flight,
        resumable from the journal, never storing a photo twice. A photo of several faces is refused with their
        boxes unless take_largest_face (the largest is sometimes a bystander). A wrong collection or key stops it
        before any photo (ImportStopped)."""
        try:
            self.get_collection(collection)
        except grpc.RpcError as error:
            raise importer.ImportStopped(f"{error.code().name}: {error.details()}") from None

        def enroll(item: importer.ImportItem, data: bytes) -> facedb_pb2.EnrollResponse:
            try:
                return self.enroll(
                    collection,
                    item.subject,
                    [data],
                    display_name=item.display_name,
                    take_largest_face=take_largest_face,
                    what_passes=True,
                )
            except grpc.RpcError as error:
                code, details = error.code(), error.details()
                if code in IMPORT_STOPS:
                    raise importer.ImportStopped(f"{code.name}: {details}") from None
                if code in IMPORT_RETRIES:
                    raise importer.Transient(code.name) from None
                raise importer.PhotoRefused(f"{code.name.lower()}: {details}") from None

        return importer.import_photos(
            enroll,
            items,
            journal=journal,
            concurrency=concurrency,
            max_bytes=max_bytes,
            progress=progress,
            stop=stop,
        )

    def confirm_decision(
        self, collection: str, decision_id: str, subject_id: str = ""
    ) -> facedb_pb2.ConfirmDecisionResponse:
        """The answer `decision_id` was about `subject_id` (empty: the subject it named): its face may join the
        subject's template."""
        request = facedb_pb2.ConfirmDecisionRequest(
            collection=collection, decision_id=decision_id, subject_id=subject_id
        )
        return self.stub.ConfirmDecision(request, timeout=self.timeout_s)

    def reject_decision(
        self, collection: str, decision_id: str, subject_id: str = ""
    ) -> facedb_pb2.RejectDecisionResponse:
        """The probe of `decision_id` was not `subject_id` (empty: the subject the answer named)."""
        request = facedb_pb2.RejectDecisionRequest(
            collection=collection, decision_id=decision_id, subject_id=subject_id
        )
        return self.stub.RejectDecision(request, timeout=self.timeout_s)

    def get_subject(self, collection: str, subject_id: str) -> facedb_pb2.Subject:
        request = facedb_pb2.GetSubjectRequest(collection=collection, subject_id=subject_id)
        return self.stub.GetSubject(request, timeout=self.timeout_s)

    def list_subjects(
        self, collection: str, *, page_size: int = 0, page_token: str = ""
    ) -> facedb_pb2.ListSubjectsResponse:
        request = facedb_pb2.ListSubjectsRequest(collection=collection, page_size=page_size, page_token=page_token)
        return self.stub.ListSubjects(request, timeout=self.timeout_s)

    def iter_subjects(self, collection: str, page_size: int = 100) -> Iterator[facedb_pb2.Subject]:
        """Every subject of a collection, fetching page after page."""
        token = ""
        while True:
            page = self.list_subjects(collection, page_size=page_size, page_token=token)
            yield from page.subjects
            token = page.next_page_token
            if not token:
                return

    def delete_face(self, collection: str, face_id: int) -> None:
        self.stub.DeleteFace(
            facedb_pb2.DeleteFaceRequest(collection=collection, face_id=face_id), timeout=self.timeout_s
        )

    def delete_subject(self, collection: str, subject_id: str) -> int:
        request = facedb_pb2.DeleteSubjectRequest(collection=collection, subject_id=subject_id)
        return self.stub.DeleteSubject(request, timeout=self.timeout_s).deleted_faces

    def audit_events(
        self, *, collection: str = "", since_s: float | None = None, page_size: int = 0, page_token: str = ""
    ) -> facedb_pb2.ListAuditEventsResponse:
        """The audit trail, newest first; since_s is a Unix time."""
        request = facedb_pb2.ListAuditEventsRequest(collection=collection, page_size=page_size, page_token=page_token)
        if since_s is not None:
            request.since.FromNanoseconds(int(since_s * 1e9))
        return self.stub.ListAuditEvents(request, timeout=self.timeout_s)

    def prune_audit_events(self, older_than_days: int) -> int:
        request = facedb_pb2.PruneAuditEventsRequest(older_than_days=older_than_days)
        return self.stub.PruneAuditEvents(request, timeout=self.timeout_s).deleted


class JobsClient(ServiceClient[jobs_pb2_grpc.JobsServiceStub]):
    """Calls a JobsService: submit detection or stylization jobs, follow them, fetch their results."""

    default_address = DEFAULT_ADDRESSES["jobs"]
    open_stub = jobs_pb2_grpc.JobsServiceStub

    def submit(self, request: jobs_pb2.SubmitJobRequest) -> jobs_pb2.Job:
        return self.stub.SubmitJob(request, timeout=self.timeout_s)

    def submit_detection(
        self,
        images: Sequence[ImageSource],
        *,
        objects: bool = True,
        faces: bool = False,
        classes: Iterable[str | int] = (),
        idempotency_key: str = "",
    ) -> jobs_pb2.Job:
        classes = list(classes)
        job = jobs_pb2.DetectionJob(
            images=[image_message(image) for image in images],
            objects=objects,
            faces=faces,
            class_names=[c for c in classes if isinstance(c, str)],
            class_ids=[c for c in classes if isinstance(c, int)],
        )
        return self.submit(jobs_pb2.SubmitJobRequest(detection=job, idempotency_key=idempotency_key))

    def submit_stylization(
        self,
        content: ImageSource,
        *,
        style: str | None = None,
        style_image: ImageSource | None = None,
        strength: float | None = None,
        output_format: jobs_pb2.ImageFormat = jobs_pb2.JPEG,
        max_size: int = 0,
        idempotency_key: str = "",
    ) -> jobs_pb2.Job:
        """A fixed style by name, or any image as the style (with a strength from 0 to 1)."""
        job = jobs_pb2.StylizationJob(content=image_message(content), output_format=output_format, max_size=max_size)
        if style is not None:
            job.style_name = style
        if style_image is not None:
            job.style_image.CopyFrom(image_message(style_image))
        if strength is not None:
            job.strength = strength
        return self.submit(jobs_pb2.SubmitJobRequest(stylization=job, idempotency_key=idempotency_key))

    def get(self, job_id: str, *, include_result: bool = False) -> jobs_pb2.Job:
        request = jobs_pb2.GetJobRequest(job_id=job_id, include_result=include_result)
        return self.stub.GetJob(request, timeout=self.timeout_s)

    def watch(
        self, job_id: str, *, include_result: bool = False, timeout_s: float | None = None
    ) -> Iterator[jobs_pb2.Job]:
        """The job each time it changes, ending with its terminal state."""
        request = jobs_pb2.GetJobRequest(job_id=job_id, include_result=include_result)
        yield from self.stub.WatchJob(request, timeout=timeout_s or self.timeout_s)

    def wait(self, job_id: str, timeout_s: float = 300.0) -> jobs_pb2.Job:
        """Blocks until the job ends; returns it with its result."""
        last = None
        for job in self.watch(job_id, include_result=True, timeout_s=timeout_s):
            last = job
        return last if last is not None else self.get(job_id, include_result=True)

    def cancel(self, job_id: str) -> jobs_pb2.Job:
        return self.stub.CancelJob(jobs_pb2.GetJobRequest(job_id=job_id), timeout=self.timeout_s)

    def list(
        self,
        *,
        state: jobs_pb2.JobState | str = jobs_pb2.JOB_STATE_UNSPECIFIED,
        kind: jobs_pb2.JobKind | str = jobs_pb2.JOB_KIND_UNSPECIFIED,
        page_size: int = 0,
        page_token: str = "",
    ) -> jobs_pb2.ListJobsResponse:
        """One page of jobs, newest first; state and kind (a value or its name) narrow it down."""
        request = jobs_pb2.ListJobsRequest(state=state, kind=kind, page_size=page_size, page_token=page_token)
        return self.stub.ListJobs(request, timeout=self.timeout_s)

    def styles(self) -> builtins.list[jobs_pb2.Style]:  # `list` is a method here
        return list(self.stub.ListStyles(jobs_pb2.ListStylesRequest(), timeout=self.timeout_s).styles)


class Argus:
    """One client for the whole stack, with the addresses `argus up` serves on by default.

    >>> with Argus() as argus:
    ...     argus.faces.enroll("staff", "1234", ["alice.jpg"], display_name="Alice")
    ...     argus.faces.verify("staff", "1234", "door.jpg").match
    ...     argus.detector.detect_objects(["street.jpg"])
    ...     argus.jobs.wait(argus.jobs.submit_stylization("photo.jpg", style="mosaic").job_id)

    Each call has a deadline (timeout_s); errors arrive as grpc.RpcError carrying the status code.
    """

    def __init__(
        self,
        *,
        detector: str = DEFAULT_ADDRESSES["detector"],
        embedder: str = DEFAULT_ADDRESSES["embedder"],
        facedb: str = DEFAULT_ADDRESSES["facedb"],
        jobs: str = DEFAULT_ADDRESSES["jobs"],
        timeout_s: float = 30.0,
        api_key: str | None = None,
        tls: Tls | None = None,
    ) -> None:
        self.detector = DetectorClient(detector, timeout_s, api_key=api_key, tls=tls)
        self.embedder = EmbedderClient(embedder, timeout_s, api_key=api_key, tls=tls)
        self.faces = FaceDbClient(facedb, timeout_s, api_key=api_key, tls=tls)
        self.jobs = JobsClient(jobs, timeout_s, api_key=api_key, tls=tls)

    # The everyday calls, at the top level.
    def enroll(
        self, collection: str, subject_id: str, images: Sequence[ImageSource | Photo], **options: Any
    ) -> facedb_pb2.EnrollResponse:
        return self.faces.enroll(collection, subject_id, images, **options)

    def verify(self, collection: str, subject_id: str, image: ImageSource, **options: Any) -> facedb_pb2.VerifyResponse:
        return self.faces.verify(collection, subject_id, image, **options)

    def identify(self, collection: str, image: ImageSource, **options: Any) -> facedb_pb2.IdentifyResponse:
        return self.faces.identify(collection, image, **options)

    def compare(self, image_a: ImageSource, image_b: ImageSource) -> facedb_pb2.CompareResponse:
        return self.faces.compare(image_a, image_b)

    def confirm_decision(
        self, collection: str, decision_id: str, subject_id: str = ""
    ) -> facedb_pb2.ConfirmDecisionResponse:
        return self.faces.confirm_decision(collection, decision_id, subject_id)

    def reject_decision(
        self, collection: str, decision_id: str, subject_id: str = ""
    ) -> facedb_pb2.RejectDecisionResponse:
        return self.faces.reject_decision(collection, decision_id, subject_id)

    def detect(self, images: Sequence[ImageSource], **options: Any) -> detector_pb2.DetectObjectsResponse:
        return self.detector.detect_objects(images, **options)

    def detect_faces(self, images: Sequence[ImageSource], **options: Any) -> detector_pb2.DetectFacesResponse:
        return self.detector.detect_faces(images, **options)

    def submit_and_wait(self, request: jobs_pb2.SubmitJobRequest, timeout_s: float = 300.0) -> jobs_pb2.Job:
        """Submits a job and blocks until it ends; the returned job carries its result."""
        return self.jobs.wait(self.jobs.submit(request).job_id, timeout_s)

    def close(self) -> None:
        for client in (self.detector, self.embedder, self.faces, self.jobs):
            client.close()

    def __enter__(self) -> Argus:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
