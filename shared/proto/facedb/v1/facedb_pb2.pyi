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

class EnrollMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENROLL_ALL_OR_NOTHING: _ClassVar[EnrollMode]
    ENROLL_WHAT_PASSES: _ClassVar[EnrollMode]

class PhotoStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PHOTO_STATUS_UNSPECIFIED: _ClassVar[PhotoStatus]
    PHOTO_ENROLLED: _ClassVar[PhotoStatus]
    PHOTO_ALREADY_ENROLLED: _ClassVar[PhotoStatus]
    PHOTO_NOT_ENROLLED: _ClassVar[PhotoStatus]
    PHOTO_UNREADABLE: _ClassVar[PhotoStatus]
    PHOTO_NO_FACE: _ClassVar[PhotoStatus]
    PHOTO_SEVERAL_FACES: _ClassVar[PhotoStatus]
    PHOTO_NO_FACE_AT_BOX: _ClassVar[PhotoStatus]
    PHOTO_FACE_TOO_SMALL: _ClassVar[PhotoStatus]
    PHOTO_TOO_BLURRY: _ClassVar[PhotoStatus]
    PHOTO_SPOOF: _ClassVar[PhotoStatus]

class ProbeOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROBE_OUTCOME_UNSPECIFIED: _ClassVar[ProbeOutcome]
    MATCH: _ClassVar[ProbeOutcome]
    NO_MATCH: _ClassVar[ProbeOutcome]
    NO_FACE: _ClassVar[ProbeOutcome]
    SPOOF: _ClassVar[ProbeOutcome]
    LOW_QUALITY: _ClassVar[ProbeOutcome]

class QualityFilter(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    QUALITY_FILTER_UNSPECIFIED: _ClassVar[QualityFilter]
    QUALITY_FILTER_NONE: _ClassVar[QualityFilter]
    QUALITY_FILTER_AUTO: _ClassVar[QualityFilter]
    QUALITY_FILTER_LOW: _ClassVar[QualityFilter]
    QUALITY_FILTER_MEDIUM: _ClassVar[QualityFilter]
    QUALITY_FILTER_HIGH: _ClassVar[QualityFilter]
LIVENESS_COLLECTION_DEFAULT: LivenessRequirement
LIVENESS_REQUIRED: LivenessRequirement
LIVENESS_NOT_REQUIRED: LivenessRequirement
ENROLL_ALL_OR_NOTHING: EnrollMode
ENROLL_WHAT_PASSES: EnrollMode
PHOTO_STATUS_UNSPECIFIED: PhotoStatus
PHOTO_ENROLLED: PhotoStatus
PHOTO_ALREADY_ENROLLED: PhotoStatus
PHOTO_NOT_ENROLLED: PhotoStatus
PHOTO_UNREADABLE: PhotoStatus
PHOTO_NO_FACE: PhotoStatus
PHOTO_SEVERAL_FACES: PhotoStatus
PHOTO_NO_FACE_AT_BOX: PhotoStatus
PHOTO_FACE_TOO_SMALL: PhotoStatus
PHOTO_TOO_BLURRY: PhotoStatus
PHOTO_SPOOF: PhotoStatus
PROBE_OUTCOME_UNSPECIFIED: ProbeOutcome
MATCH: ProbeOutcome
NO_MATCH: ProbeOutcome
NO_FACE: ProbeOutcome
SPOOF: ProbeOutcome
LOW_QUALITY: ProbeOutcome
QUALITY_FILTER_UNSPECIFIED: QualityFilter
QUALITY_FILTER_NONE: QualityFilter
QUALITY_FILTER_AUTO: QualityFilter
QUALITY_FILTER_LOW: QualityFilter
QUALITY_FILTER_MEDIUM: QualityFilter
QUALITY_FILTER_HIGH: QualityFilter

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
    __slots__ = ("face_id", "box", "detection_score", "face_size", "sharpness", "profile", "created_at", "models", "has_crop", "origin")
    FACE_ID_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    DETECTION_SCORE_FIELD_NUMBER: _ClassVar[int]
    FACE_SIZE_FIELD_NUMBER: _ClassVar[int]
    SHARPNESS_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    HAS_CROP_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    face_id: int
    box: _common_pb2.BoundingBox
    detection_score: float
    face_size: float
    sharpness: float
    profile: str
    created_at: _timestamp_pb2.Timestamp
    models: _containers.RepeatedScalarFieldContainer[str]
    has_crop: bool
    origin: str
    def __init__(self, face_id: _Optional[int] = ..., box: _Optional[_Union[_common_pb2.BoundingBox, _Mapping]] = ..., detection_score: _Optional[float] = ..., face_size: _Optional[float] = ..., sharpness: _Optional[float] = ..., profile: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., models: _Optional[_Iterable[str]] = ..., has_crop: _Optional[bool] = ..., origin: _Optional[str] = ...) -> None: ...

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
    __slots__ = ("collection", "subject_id", "images", "display_name", "metadata", "take_largest_face", "liveness", "photos", "mode")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TAKE_LARGEST_FACE_FIELD_NUMBER: _ClassVar[int]
    LIVENESS_FIELD_NUMBER: _ClassVar[int]
    PHOTOS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    collection: str
    subject_id: str
    images: _containers.RepeatedCompositeFieldContainer[_common_pb2.Image]
    display_name: str
    metadata: _struct_pb2.Struct
    take_largest_face: bool
    liveness: LivenessRequirement
    photos: _containers.RepeatedCompositeFieldContainer[EnrollPhoto]
    mode: EnrollMode
    def __init__(self, collection: _Optional[str] = ..., subject_id: _Optional[str] = ..., images: _Optional[_Iterable[_Union[_common_pb2.Image, _Mapping]]] = ..., display_name: _Optional[str] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., take_largest_face: _Optional[bool] = ..., liveness: _Optional[_Union[LivenessRequirement, str]] = ..., photos: _Optional[_Iterable[_Union[EnrollPhoto, _Mapping]]] = ..., mode: _Optional[_Union[EnrollMode, str]] = ...) -> None: ...

class EnrollPhoto(_message.Message):
    __slots__ = ("image", "face_box", "take_largest_face")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    FACE_BOX_FIELD_NUMBER: _ClassVar[int]
    TAKE_LARGEST_FACE_FIELD_NUMBER: _ClassVar[int]
    image: _common_pb2.Image
    face_box: _common_pb2.BoundingBox
    take_largest_face: bool
    def __init__(self, image: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., face_box: _Optional[_Union[_common_pb2.BoundingBox, _Mapping]] = ..., take_largest_face: _Optional[bool] = ...) -> None: ...

class PhotoOutcome(_message.Message):
    __slots__ = ("index", "status", "face_id", "detail", "candidate_boxes", "box")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    FACE_ID_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_BOXES_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    index: int
    status: PhotoStatus
    face_id: int
    detail: str
    candidate_boxes: _containers.RepeatedCompositeFieldContainer[_common_pb2.BoundingBox]
    box: _common_pb2.BoundingBox
    def __init__(self, index: _Optional[int] = ..., status: _Optional[_Union[PhotoStatus, str]] = ..., face_id: _Optional[int] = ..., detail: _Optional[str] = ..., candidate_boxes: _Optional[_Iterable[_Union[_common_pb2.BoundingBox, _Mapping]]] = ..., box: _Optional[_Union[_common_pb2.BoundingBox, _Mapping]] = ...) -> None: ...

class EnrollWarning(_message.Message):
    __slots__ = ("photo_index", "subject_id", "display_name", "similarity", "threshold")
    PHOTO_INDEX_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    photo_index: int
    subject_id: str
    display_name: str
    similarity: float
    threshold: float
    def __init__(self, photo_index: _Optional[int] = ..., subject_id: _Optional[str] = ..., display_name: _Optional[str] = ..., similarity: _Optional[float] = ..., threshold: _Optional[float] = ...) -> None: ...

class EnrollResponse(_message.Message):
    __slots__ = ("subject", "face_ids", "created_subject", "photos", "warnings")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    FACE_IDS_FIELD_NUMBER: _ClassVar[int]
    CREATED_SUBJECT_FIELD_NUMBER: _ClassVar[int]
    PHOTOS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    subject: Subject
    face_ids: _containers.RepeatedScalarFieldContainer[int]
    created_subject: bool
    photos: _containers.RepeatedCompositeFieldContainer[PhotoOutcome]
    warnings: _containers.RepeatedCompositeFieldContainer[EnrollWarning]
    def __init__(self, subject: _Optional[_Union[Subject, _Mapping]] = ..., face_ids: _Optional[_Iterable[int]] = ..., created_subject: _Optional[bool] = ..., photos: _Optional[_Iterable[_Union[PhotoOutcome, _Mapping]]] = ..., warnings: _Optional[_Iterable[_Union[EnrollWarning, _Mapping]]] = ...) -> None: ...

class FaceQuality(_message.Message):
    __slots__ = ("face_size", "sharpness", "detection_score", "yaw", "pitch", "below")
    FACE_SIZE_FIELD_NUMBER: _ClassVar[int]
    SHARPNESS_FIELD_NUMBER: _ClassVar[int]
    DETECTION_SCORE_FIELD_NUMBER: _ClassVar[int]
    YAW_FIELD_NUMBER: _ClassVar[int]
    PITCH_FIELD_NUMBER: _ClassVar[int]
    BELOW_FIELD_NUMBER: _ClassVar[int]
    face_size: float
    sharpness: float
    detection_score: float
    yaw: float
    pitch: float
    below: str
    def __init__(self, face_size: _Optional[float] = ..., sharpness: _Optional[float] = ..., detection_score: _Optional[float] = ..., yaw: _Optional[float] = ..., pitch: _Optional[float] = ..., below: _Optional[str] = ...) -> None: ...

class ProbeFace(_message.Message):
    __slots__ = ("box", "detection_score", "faces_in_image", "liveness", "liveness_threshold", "quality")
    BOX_FIELD_NUMBER: _ClassVar[int]
    DETECTION_SCORE_FIELD_NUMBER: _ClassVar[int]
    FACES_IN_IMAGE_FIELD_NUMBER: _ClassVar[int]
    LIVENESS_FIELD_NUMBER: _ClassVar[int]
    LIVENESS_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    box: _common_pb2.BoundingBox
    detection_score: float
    faces_in_image: int
    liveness: float
    liveness_threshold: float
    quality: FaceQuality
    def __init__(self, box: _Optional[_Union[_common_pb2.BoundingBox, _Mapping]] = ..., detection_score: _Optional[float] = ..., faces_in_image: _Optional[int] = ..., liveness: _Optional[float] = ..., liveness_threshold: _Optional[float] = ..., quality: _Optional[_Union[FaceQuality, _Mapping]] = ...) -> None: ...

class VerifyRequest(_message.Message):
    __slots__ = ("collection", "subject_id", "image", "liveness", "quality_filter")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    LIVENESS_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FILTER_FIELD_NUMBER: _ClassVar[int]
    collection: str
    subject_id: str
    image: _common_pb2.Image
    liveness: LivenessRequirement
    quality_filter: QualityFilter
    def __init__(self, collection: _Optional[str] = ..., subject_id: _Optional[str] = ..., image: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., liveness: _Optional[_Union[LivenessRequirement, str]] = ..., quality_filter: _Optional[_Union[QualityFilter, str]] = ...) -> None: ...

class VerifyResponse(_message.Message):
    __slots__ = ("outcome", "match", "similarity", "threshold", "probability", "probe", "best_face_id", "detail", "decision_id", "template_faces")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    MATCH_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    PROBE_FIELD_NUMBER: _ClassVar[int]
    BEST_FACE_ID_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FACES_FIELD_NUMBER: _ClassVar[int]
    outcome: ProbeOutcome
    match: bool
    similarity: float
    threshold: float
    probability: float
    probe: ProbeFace
    best_face_id: int
    detail: str
    decision_id: str
    template_faces: int
    def __init__(self, outcome: _Optional[_Union[ProbeOutcome, str]] = ..., match: _Optional[bool] = ..., similarity: _Optional[float] = ..., threshold: _Optional[float] = ..., probability: _Optional[float] = ..., probe: _Optional[_Union[ProbeFace, _Mapping]] = ..., best_face_id: _Optional[int] = ..., detail: _Optional[str] = ..., decision_id: _Optional[str] = ..., template_faces: _Optional[int] = ...) -> None: ...

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
    __slots__ = ("collection", "image", "top_k", "threshold", "liveness", "quality_filter")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    LIVENESS_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FILTER_FIELD_NUMBER: _ClassVar[int]
    collection: str
    image: _common_pb2.Image
    top_k: int
    threshold: float
    liveness: LivenessRequirement
    quality_filter: QualityFilter
    def __init__(self, collection: _Optional[str] = ..., image: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., top_k: _Optional[int] = ..., threshold: _Optional[float] = ..., liveness: _Optional[_Union[LivenessRequirement, str]] = ..., quality_filter: _Optional[_Union[QualityFilter, str]] = ...) -> None: ...

class Candidate(_message.Message):
    __slots__ = ("subject_id", "display_name", "similarity", "probability", "face_id", "threshold", "template_faces")
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    FACE_ID_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FACES_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    display_name: str
    similarity: float
    probability: float
    face_id: int
    threshold: float
    template_faces: int
    def __init__(self, subject_id: _Optional[str] = ..., display_name: _Optional[str] = ..., similarity: _Optional[float] = ..., probability: _Optional[float] = ..., face_id: _Optional[int] = ..., threshold: _Optional[float] = ..., template_faces: _Optional[int] = ...) -> None: ...

class IdentifiedFace(_message.Message):
    __slots__ = ("box", "detection_score", "unknown", "candidates", "spoof", "liveness", "decision_id", "low_quality", "quality")
    BOX_FIELD_NUMBER: _ClassVar[int]
    DETECTION_SCORE_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    SPOOF_FIELD_NUMBER: _ClassVar[int]
    LIVENESS_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    LOW_QUALITY_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    box: _common_pb2.BoundingBox
    detection_score: float
    unknown: bool
    candidates: _containers.RepeatedCompositeFieldContainer[Candidate]
    spoof: bool
    liveness: float
    decision_id: str
    low_quality: bool
    quality: FaceQuality
    def __init__(self, box: _Optional[_Union[_common_pb2.BoundingBox, _Mapping]] = ..., detection_score: _Optional[float] = ..., unknown: _Optional[bool] = ..., candidates: _Optional[_Iterable[_Union[Candidate, _Mapping]]] = ..., spoof: _Optional[bool] = ..., liveness: _Optional[float] = ..., decision_id: _Optional[str] = ..., low_quality: _Optional[bool] = ..., quality: _Optional[_Union[FaceQuality, _Mapping]] = ...) -> None: ...

class IdentifyResponse(_message.Message):
    __slots__ = ("faces", "faces_found", "threshold", "gallery_size", "faces_left_out", "subjects_searched")
    FACES_FIELD_NUMBER: _ClassVar[int]
    FACES_FOUND_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    GALLERY_SIZE_FIELD_NUMBER: _ClassVar[int]
    FACES_LEFT_OUT_FIELD_NUMBER: _ClassVar[int]
    SUBJECTS_SEARCHED_FIELD_NUMBER: _ClassVar[int]
    faces: _containers.RepeatedCompositeFieldContainer[IdentifiedFace]
    faces_found: int
    threshold: float
    gallery_size: int
    faces_left_out: int
    subjects_searched: int
    def __init__(self, faces: _Optional[_Iterable[_Union[IdentifiedFace, _Mapping]]] = ..., faces_found: _Optional[int] = ..., threshold: _Optional[float] = ..., gallery_size: _Optional[int] = ..., faces_left_out: _Optional[int] = ..., subjects_searched: _Optional[int] = ...) -> None: ...

class ConfirmDecisionRequest(_message.Message):
    __slots__ = ("collection", "decision_id", "subject_id")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    collection: str
    decision_id: str
    subject_id: str
    def __init__(self, collection: _Optional[str] = ..., decision_id: _Optional[str] = ..., subject_id: _Optional[str] = ...) -> None: ...

class ConfirmDecisionResponse(_message.Message):
    __slots__ = ("added", "face_id", "retired_face_id", "detail", "subject_id")
    ADDED_FIELD_NUMBER: _ClassVar[int]
    FACE_ID_FIELD_NUMBER: _ClassVar[int]
    RETIRED_FACE_ID_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    added: bool
    face_id: int
    retired_face_id: int
    detail: str
    subject_id: str
    def __init__(self, added: _Optional[bool] = ..., face_id: _Optional[int] = ..., retired_face_id: _Optional[int] = ..., detail: _Optional[str] = ..., subject_id: _Optional[str] = ...) -> None: ...

class RejectDecisionRequest(_message.Message):
    __slots__ = ("collection", "decision_id", "subject_id")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    collection: str
    decision_id: str
    subject_id: str
    def __init__(self, collection: _Optional[str] = ..., decision_id: _Optional[str] = ..., subject_id: _Optional[str] = ...) -> None: ...

class RejectDecisionResponse(_message.Message):
    __slots__ = ("subject_id", "impostor_examples")
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    IMPOSTOR_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    impostor_examples: int
    def __init__(self, subject_id: _Optional[str] = ..., impostor_examples: _Optional[int] = ...) -> None: ...

class GetSubjectRequest(_message.Message):
    __slots__ = ("collection", "subject_id")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    collection: str
    subject_id: str
    def __init__(self, collection: _Optional[str] = ..., subject_id: _Optional[str] = ...) -> None: ...

class ListSubjectsRequest(_message.Message):
    __slots__ = ("collection", "page_size", "page_token", "query")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    collection: str
    page_size: int
    page_token: str
    query: str
    def __init__(self, collection: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., query: _Optional[str] = ...) -> None: ...

class ListSubjectsResponse(_message.Message):
    __slots__ = ("subjects", "next_page_token", "total")
    SUBJECTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    subjects: _containers.RepeatedCompositeFieldContainer[Subject]
    next_page_token: str
    total: int
    def __init__(self, subjects: _Optional[_Iterable[_Union[Subject, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total: _Optional[int] = ...) -> None: ...

class GetFaceCropRequest(_message.Message):
    __slots__ = ("collection", "face_id", "max_side")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    FACE_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_SIDE_FIELD_NUMBER: _ClassVar[int]
    collection: str
    face_id: int
    max_side: int
    def __init__(self, collection: _Optional[str] = ..., face_id: _Optional[int] = ..., max_side: _Optional[int] = ...) -> None: ...

class FaceCrop(_message.Message):
    __slots__ = ("face_id", "image", "mime_type")
    FACE_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    MIME_TYPE_FIELD_NUMBER: _ClassVar[int]
    face_id: int
    image: bytes
    mime_type: str
    def __init__(self, face_id: _Optional[int] = ..., image: _Optional[bytes] = ..., mime_type: _Optional[str] = ...) -> None: ...

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
    __slots__ = ("event_id", "occurred_at", "action", "key_name", "collection", "subject_id", "similarity", "threshold", "decision", "detail", "key_id", "count", "decision_id")
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
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
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
    decision_id: str
    def __init__(self, event_id: _Optional[int] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., action: _Optional[str] = ..., key_name: _Optional[str] = ..., collection: _Optional[str] = ..., subject_id: _Optional[str] = ..., similarity: _Optional[float] = ..., threshold: _Optional[float] = ..., decision: _Optional[str] = ..., detail: _Optional[str] = ..., key_id: _Optional[str] = ..., count: _Optional[int] = ..., decision_id: _Optional[str] = ...) -> None: ...

class ListAuditEventsRequest(_message.Message):
    __slots__ = ("collection", "since", "page_size", "page_token", "until", "key", "decision", "action")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    since: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    until: _timestamp_pb2.Timestamp
    key: str
    decision: str
    action: str
    def __init__(self, collection: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., key: _Optional[str] = ..., decision: _Optional[str] = ..., action: _Optional[str] = ...) -> None: ...

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
