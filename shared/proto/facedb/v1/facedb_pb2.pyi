import datetime

from argus.proto.common.v1 import common_pb2 as _common_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LivenessRequirement(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LIVENESS_COLLECTION_DEFAULT: _ClassVar[LivenessRequirement]
    LIVENESS_REQUIRED: _ClassVar[LivenessRequirement]
    LIVENESS_NOT_REQUIRED: _ClassVar[LivenessRequirement]

class ProbeOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROBE_OUTCOME_UNSPECIFIED: _ClassVar[ProbeOutcome]
    MATCH: _ClassVar[ProbeOutcome]
    NO_MATCH: _ClassVar[ProbeOutcome]
    NO_FACE: _ClassVar[ProbeOutcome]
    SPOOF: _ClassVar[ProbeOutcome]
LIVENESS_COLLECTION_DEFAULT: LivenessRequirement
LIVENESS_REQUIRED: LivenessRequirement
LIVENESS_NOT_REQUIRED: LivenessRequirement
PROBE_OUTCOME_UNSPECIFIED: ProbeOutcome
MATCH: ProbeOutcome
NO_MATCH: ProbeOutcome
NO_FACE: ProbeOutcome
SPOOF: ProbeOutcome

class Collection(_message.Message):
    __slots__ = ("name", "threshold", "profile", "subject_count", "face_count", "created_at", "pending_profile", "reembedded_faces", "require_liveness")
    NAME_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_COUNT_FIELD_NUMBER: _ClassVar[int]
    FACE_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    PENDING_PROFILE_FIELD_NUMBER: _ClassVar[int]
    REEMBEDDED_FACES_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_LIVENESS_FIELD_NUMBER: _ClassVar[int]
    name: str
    threshold: float
    profile: str
    subject_count: int
    face_count: int
    created_at: _timestamp_pb2.Timestamp
    pending_profile: str
    reembedded_faces: int
    require_liveness: bool
    def __init__(self, name: _Optional[str] = ..., threshold: _Optional[float] = ..., profile: _Optional[str] = ..., subject_count: _Optional[int] = ..., face_count: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., pending_profile: _Optional[str] = ..., reembedded_faces: _Optional[int] = ..., require_liveness: _Optional[bool] = ...) -> None: ...

class CreateCollectionRequest(_message.Message):
    __slots__ = ("name", "threshold", "profile", "require_liveness")
    NAME_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_LIVENESS_FIELD_NUMBER: _ClassVar[int]
    name: str
    threshold: float
    profile: str
    require_liveness: bool
    def __init__(self, name: _Optional[str] = ..., threshold: _Optional[float] = ..., profile: _Optional[str] = ..., require_liveness: _Optional[bool] = ...) -> None: ...

class GetCollectionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class UpdateCollectionRequest(_message.Message):
    __slots__ = ("name", "require_liveness")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_LIVENESS_FIELD_NUMBER: _ClassVar[int]
    name: str
    require_liveness: bool
    def __init__(self, name: _Optional[str] = ..., require_liveness: _Optional[bool] = ...) -> None: ...

class ChangeProfileRequest(_message.Message):
    __slots__ = ("collection", "profile")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    collection: str
    profile: str
    def __init__(self, collection: _Optional[str] = ..., profile: _Optional[str] = ...) -> None: ...

class ListProfilesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Profile(_message.Message):
    __slots__ = ("name", "summary", "models", "calibrated", "threshold", "model_versions", "is_default")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    CALIBRATED_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    name: str
    summary: str
    models: _containers.RepeatedScalarFieldContainer[str]
    calibrated: bool
    threshold: float
    model_versions: _containers.RepeatedScalarFieldContainer[str]
    is_default: bool
    def __init__(self, name: _Optional[str] = ..., summary: _Optional[str] = ..., models: _Optional[_Iterable[str]] = ..., calibrated: _Optional[bool] = ..., threshold: _Optional[float] = ..., model_versions: _Optional[_Iterable[str]] = ..., is_default: _Optional[bool] = ...) -> None: ...

class ListProfilesResponse(_message.Message):
    __slots__ = ("profiles",)
    PROFILES_FIELD_NUMBER: _ClassVar[int]
    profiles: _containers.RepeatedCompositeFieldContainer[Profile]
    def __init__(self, profiles: _Optional[_Iterable[_Union[Profile, _Mapping]]] = ...) -> None: ...

class ListCollectionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListCollectionsResponse(_message.Message):
    __slots__ = ("collections",)
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    collections: _containers.RepeatedCompositeFieldContainer[Collection]
    def __init__(self, collections: _Optional[_Iterable[_Union[Collection, _Mapping]]] = ...) -> None: ...

class DeleteCollectionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteCollectionResponse(_message.Message):
    __slots__ = ("deleted_subjects", "deleted_faces")
    DELETED_SUBJECTS_FIELD_NUMBER: _ClassVar[int]
    DELETED_FACES_FIELD_NUMBER: _ClassVar[int]
    deleted_subjects: int
    deleted_faces: int
    def __init__(self, deleted_subjects: _Optional[int] = ..., deleted_faces: _Optional[int] = ...) -> None: ...

class Face(_message.Message):
    __slots__ = ("face_id", "box", "detection_score", "face_size", "sharpness", "profile", "created_at", "models", "has_crop")
    FACE_ID_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    DETECTION_SCORE_FIELD_NUMBER: _ClassVar[int]
    FACE_SIZE_FIELD_NUMBER: _ClassVar[int]
    SHARPNESS_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    HAS_CROP_FIELD_NUMBER: _ClassVar[int]
    face_id: int
    box: _common_pb2.BoundingBox
    detection_score: float
    face_size: float
    sharpness: float
    profile: str
    created_at: _timestamp_pb2.Timestamp
    models: _containers.RepeatedScalarFieldContainer[str]
    has_crop: bool
    def __init__(self, face_id: _Optional[int] = ..., box: _Optional[_Union[_common_pb2.BoundingBox, _Mapping]] = ..., detection_score: _Optional[float] = ..., face_size: _Optional[float] = ..., sharpness: _Optional[float] = ..., profile: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., models: _Optional[_Iterable[str]] = ..., has_crop: _Optional[bool] = ...) -> None: ...

class Subject(_message.Message):
    __slots__ = ("collection", "subject_id", "display_name", "metadata", "faces", "created_at")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    FACES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    collection: str
    subject_id: str
    display_name: str
    metadata: _struct_pb2.Struct
    faces: _containers.RepeatedCompositeFieldContainer[Face]
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, collection: _Optional[str] = ..., subject_id: _Optional[str] = ..., display_name: _Optional[str] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., faces: _Optional[_Iterable[_Union[Face, _Mapping]]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class EnrollRequest(_message.Message):
    __slots__ = ("collection", "subject_id", "images", "display_name", "metadata", "take_largest_face", "liveness")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TAKE_LARGEST_FACE_FIELD_NUMBER: _ClassVar[int]
    LIVENESS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    subject_id: str
    images: _containers.RepeatedCompositeFieldContainer[_common_pb2.Image]
    display_name: str
    metadata: _struct_pb2.Struct
    take_largest_face: bool
    liveness: LivenessRequirement
    def __init__(self, collection: _Optional[str] = ..., subject_id: _Optional[str] = ..., images: _Optional[_Iterable[_Union[_common_pb2.Image, _Mapping]]] = ..., display_name: _Optional[str] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., take_largest_face: _Optional[bool] = ..., liveness: _Optional[_Union[LivenessRequirement, str]] = ...) -> None: ...

class EnrollResponse(_message.Message):
    __slots__ = ("subject", "face_ids", "created_subject")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    FACE_IDS_FIELD_NUMBER: _ClassVar[int]
    CREATED_SUBJECT_FIELD_NUMBER: _ClassVar[int]
    subject: Subject
    face_ids: _containers.RepeatedScalarFieldContainer[int]
    created_subject: bool
    def __init__(self, subject: _Optional[_Union[Subject, _Mapping]] = ..., face_ids: _Optional[_Iterable[int]] = ..., created_subject: _Optional[bool] = ...) -> None: ...

class ProbeFace(_message.Message):
    __slots__ = ("box", "detection_score", "faces_in_image", "liveness", "liveness_threshold")
    BOX_FIELD_NUMBER: _ClassVar[int]
    DETECTION_SCORE_FIELD_NUMBER: _ClassVar[int]
    FACES_IN_IMAGE_FIELD_NUMBER: _ClassVar[int]
    LIVENESS_FIELD_NUMBER: _ClassVar[int]
    LIVENESS_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    box: _common_pb2.BoundingBox
    detection_score: float
    faces_in_image: int
    liveness: float
    liveness_threshold: float
    def __init__(self, box: _Optional[_Union[_common_pb2.BoundingBox, _Mapping]] = ..., detection_score: _Optional[float] = ..., faces_in_image: _Optional[int] = ..., liveness: _Optional[float] = ..., liveness_threshold: _Optional[float] = ...) -> None: ...

class VerifyRequest(_message.Message):
    __slots__ = ("collection", "subject_id", "image", "liveness")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    LIVENESS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    subject_id: str
    image: _common_pb2.Image
    liveness: LivenessRequirement
    def __init__(self, collection: _Optional[str] = ..., subject_id: _Optional[str] = ..., image: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., liveness: _Optional[_Union[LivenessRequirement, str]] = ...) -> None: ...

class VerifyResponse(_message.Message):
    __slots__ = ("outcome", "match", "similarity", "threshold", "probability", "probe", "best_face_id", "detail")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    MATCH_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    PROBE_FIELD_NUMBER: _ClassVar[int]
    BEST_FACE_ID_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    outcome: ProbeOutcome
    match: bool
    similarity: float
    threshold: float
    probability: float
    probe: ProbeFace
    best_face_id: int
    detail: str
    def __init__(self, outcome: _Optional[_Union[ProbeOutcome, str]] = ..., match: _Optional[bool] = ..., similarity: _Optional[float] = ..., threshold: _Optional[float] = ..., probability: _Optional[float] = ..., probe: _Optional[_Union[ProbeFace, _Mapping]] = ..., best_face_id: _Optional[int] = ..., detail: _Optional[str] = ...) -> None: ...

class CompareRequest(_message.Message):
    __slots__ = ("image_a", "image_b", "threshold")
    IMAGE_A_FIELD_NUMBER: _ClassVar[int]
    IMAGE_B_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    image_a: _common_pb2.Image
    image_b: _common_pb2.Image
    threshold: float
    def __init__(self, image_a: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., image_b: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., threshold: _Optional[float] = ...) -> None: ...

class CompareResponse(_message.Message):
    __slots__ = ("outcome", "match", "similarity", "threshold", "probability", "face_a", "face_b", "detail")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    MATCH_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    FACE_A_FIELD_NUMBER: _ClassVar[int]
    FACE_B_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    outcome: ProbeOutcome
    match: bool
    similarity: float
    threshold: float
    probability: float
    face_a: ProbeFace
    face_b: ProbeFace
    detail: str
    def __init__(self, outcome: _Optional[_Union[ProbeOutcome, str]] = ..., match: _Optional[bool] = ..., similarity: _Optional[float] = ..., threshold: _Optional[float] = ..., probability: _Optional[float] = ..., face_a: _Optional[_Union[ProbeFace, _Mapping]] = ..., face_b: _Optional[_Union[ProbeFace, _Mapping]] = ..., detail: _Optional[str] = ...) -> None: ...

class IdentifyRequest(_message.Message):
    __slots__ = ("collection", "image", "top_k", "threshold", "liveness")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    LIVENESS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    image: _common_pb2.Image
    top_k: int
    threshold: float
    liveness: LivenessRequirement
    def __init__(self, collection: _Optional[str] = ..., image: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., top_k: _Optional[int] = ..., threshold: _Optional[float] = ..., liveness: _Optional[_Union[LivenessRequirement, str]] = ...) -> None: ...

class Candidate(_message.Message):
    __slots__ = ("subject_id", "display_name", "similarity", "probability", "face_id")
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    FACE_ID_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    display_name: str
    similarity: float
    probability: float
    face_id: int
    def __init__(self, subject_id: _Optional[str] = ..., display_name: _Optional[str] = ..., similarity: _Optional[float] = ..., probability: _Optional[float] = ..., face_id: _Optional[int] = ...) -> None: ...

class IdentifiedFace(_message.Message):
    __slots__ = ("box", "detection_score", "unknown", "candidates", "spoof", "liveness")
    BOX_FIELD_NUMBER: _ClassVar[int]
    DETECTION_SCORE_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    SPOOF_FIELD_NUMBER: _ClassVar[int]
    LIVENESS_FIELD_NUMBER: _ClassVar[int]
    box: _common_pb2.BoundingBox
    detection_score: float
    unknown: bool
    candidates: _containers.RepeatedCompositeFieldContainer[Candidate]
    spoof: bool
    liveness: float
    def __init__(self, box: _Optional[_Union[_common_pb2.BoundingBox, _Mapping]] = ..., detection_score: _Optional[float] = ..., unknown: _Optional[bool] = ..., candidates: _Optional[_Iterable[_Union[Candidate, _Mapping]]] = ..., spoof: _Optional[bool] = ..., liveness: _Optional[float] = ...) -> None: ...

class IdentifyResponse(_message.Message):
    __slots__ = ("faces", "faces_found", "threshold", "gallery_size", "faces_left_out")
    FACES_FIELD_NUMBER: _ClassVar[int]
    FACES_FOUND_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    GALLERY_SIZE_FIELD_NUMBER: _ClassVar[int]
    FACES_LEFT_OUT_FIELD_NUMBER: _ClassVar[int]
    faces: _containers.RepeatedCompositeFieldContainer[IdentifiedFace]
    faces_found: int
    threshold: float
    gallery_size: int
    faces_left_out: int
    def __init__(self, faces: _Optional[_Iterable[_Union[IdentifiedFace, _Mapping]]] = ..., faces_found: _Optional[int] = ..., threshold: _Optional[float] = ..., gallery_size: _Optional[int] = ..., faces_left_out: _Optional[int] = ...) -> None: ...

class GetSubjectRequest(_message.Message):
    __slots__ = ("collection", "subject_id")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    collection: str
    subject_id: str
    def __init__(self, collection: _Optional[str] = ..., subject_id: _Optional[str] = ...) -> None: ...

class ListSubjectsRequest(_message.Message):
    __slots__ = ("collection", "page_size", "page_token")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    collection: str
    page_size: int
    page_token: str
    def __init__(self, collection: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSubjectsResponse(_message.Message):
    __slots__ = ("subjects", "next_page_token", "total")
    SUBJECTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    subjects: _containers.RepeatedCompositeFieldContainer[Subject]
    next_page_token: str
    total: int
    def __init__(self, subjects: _Optional[_Iterable[_Union[Subject, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total: _Optional[int] = ...) -> None: ...

class DeleteFaceRequest(_message.Message):
    __slots__ = ("collection", "face_id")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    FACE_ID_FIELD_NUMBER: _ClassVar[int]
    collection: str
    face_id: int
    def __init__(self, collection: _Optional[str] = ..., face_id: _Optional[int] = ...) -> None: ...

class DeleteFaceResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DeleteSubjectRequest(_message.Message):
    __slots__ = ("collection", "subject_id")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    collection: str
    subject_id: str
    def __init__(self, collection: _Optional[str] = ..., subject_id: _Optional[str] = ...) -> None: ...

class DeleteSubjectResponse(_message.Message):
    __slots__ = ("deleted_faces",)
    DELETED_FACES_FIELD_NUMBER: _ClassVar[int]
    deleted_faces: int
    def __init__(self, deleted_faces: _Optional[int] = ...) -> None: ...

class AuditEvent(_message.Message):
    __slots__ = ("event_id", "occurred_at", "action", "key_name", "collection", "subject_id", "similarity", "threshold", "decision", "detail", "key_id", "count")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    KEY_NAME_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    event_id: int
    occurred_at: _timestamp_pb2.Timestamp
    action: str
    key_name: str
    collection: str
    subject_id: str
    similarity: float
    threshold: float
    decision: str
    detail: str
    key_id: str
    count: int
    def __init__(self, event_id: _Optional[int] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., action: _Optional[str] = ..., key_name: _Optional[str] = ..., collection: _Optional[str] = ..., subject_id: _Optional[str] = ..., similarity: _Optional[float] = ..., threshold: _Optional[float] = ..., decision: _Optional[str] = ..., detail: _Optional[str] = ..., key_id: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class ListAuditEventsRequest(_message.Message):
    __slots__ = ("collection", "since", "page_size", "page_token")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    collection: str
    since: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    def __init__(self, collection: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAuditEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[AuditEvent]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[AuditEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class PruneAuditEventsRequest(_message.Message):
    __slots__ = ("older_than_days",)
    OLDER_THAN_DAYS_FIELD_NUMBER: _ClassVar[int]
    older_than_days: int
    def __init__(self, older_than_days: _Optional[int] = ...) -> None: ...

class PruneAuditEventsResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    def __init__(self, deleted: _Optional[int] = ...) -> None: ...
