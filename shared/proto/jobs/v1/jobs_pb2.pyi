import datetime

from argus.proto.common.v1 import common_pb2 as _common_pb2
from argus.proto.detector.v1 import detector_pb2 as _detector_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_KIND_UNSPECIFIED: _ClassVar[JobKind]
    DETECTION: _ClassVar[JobKind]
    STYLIZATION: _ClassVar[JobKind]

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    QUEUED: _ClassVar[JobState]
    RUNNING: _ClassVar[JobState]
    SUCCEEDED: _ClassVar[JobState]
    FAILED: _ClassVar[JobState]
    CANCELLED: _ClassVar[JobState]

class ImageFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IMAGE_FORMAT_UNSPECIFIED: _ClassVar[ImageFormat]
    JPEG: _ClassVar[ImageFormat]
    PNG: _ClassVar[ImageFormat]
    WEBP: _ClassVar[ImageFormat]
JOB_KIND_UNSPECIFIED: JobKind
DETECTION: JobKind
STYLIZATION: JobKind
JOB_STATE_UNSPECIFIED: JobState
QUEUED: JobState
RUNNING: JobState
SUCCEEDED: JobState
FAILED: JobState
CANCELLED: JobState
IMAGE_FORMAT_UNSPECIFIED: ImageFormat
JPEG: ImageFormat
PNG: ImageFormat
WEBP: ImageFormat

class DetectionJob(_message.Message):
    __slots__ = ("images", "options", "objects", "faces", "class_names", "class_ids")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    FACES_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAMES_FIELD_NUMBER: _ClassVar[int]
    CLASS_IDS_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedCompositeFieldContainer[_common_pb2.Image]
    options: _detector_pb2.DetectionOptions
    objects: bool
    faces: bool
    class_names: _containers.RepeatedScalarFieldContainer[str]
    class_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, images: _Optional[_Iterable[_Union[_common_pb2.Image, _Mapping]]] = ..., options: _Optional[_Union[_detector_pb2.DetectionOptions, _Mapping]] = ..., objects: _Optional[bool] = ..., faces: _Optional[bool] = ..., class_names: _Optional[_Iterable[str]] = ..., class_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class StylizationJob(_message.Message):
    __slots__ = ("content", "style_name", "style_image", "strength", "output_format", "max_size")
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    STYLE_NAME_FIELD_NUMBER: _ClassVar[int]
    STYLE_IMAGE_FIELD_NUMBER: _ClassVar[int]
    STRENGTH_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    MAX_SIZE_FIELD_NUMBER: _ClassVar[int]
    content: _common_pb2.Image
    style_name: str
    style_image: _common_pb2.Image
    strength: float
    output_format: ImageFormat
    max_size: int
    def __init__(self, content: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., style_name: _Optional[str] = ..., style_image: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., strength: _Optional[float] = ..., output_format: _Optional[_Union[ImageFormat, str]] = ..., max_size: _Optional[int] = ...) -> None: ...

class SubmitJobRequest(_message.Message):
    __slots__ = ("detection", "stylization", "idempotency_key")
    DETECTION_FIELD_NUMBER: _ClassVar[int]
    STYLIZATION_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    detection: DetectionJob
    stylization: StylizationJob
    idempotency_key: str
    def __init__(self, detection: _Optional[_Union[DetectionJob, _Mapping]] = ..., stylization: _Optional[_Union[StylizationJob, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class DetectionResult(_message.Message):
    __slots__ = ("objects", "faces")
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    FACES_FIELD_NUMBER: _ClassVar[int]
    objects: _detector_pb2.DetectObjectsResponse
    faces: _detector_pb2.DetectFacesResponse
    def __init__(self, objects: _Optional[_Union[_detector_pb2.DetectObjectsResponse, _Mapping]] = ..., faces: _Optional[_Union[_detector_pb2.DetectFacesResponse, _Mapping]] = ...) -> None: ...

class StylizationResult(_message.Message):
    __slots__ = ("image", "size", "model")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    image: _common_pb2.Image
    size: _common_pb2.ImageSize
    model: str
    def __init__(self, image: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., size: _Optional[_Union[_common_pb2.ImageSize, _Mapping]] = ..., model: _Optional[str] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("job_id", "kind", "state", "progress", "created_at", "started_at", "finished_at", "attempts", "error", "detection", "stylization", "expires_at", "owner")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DETECTION_FIELD_NUMBER: _ClassVar[int]
    STYLIZATION_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    kind: JobKind
    state: JobState
    progress: float
    created_at: _timestamp_pb2.Timestamp
    started_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    attempts: int
    error: str
    detection: DetectionResult
    stylization: StylizationResult
    expires_at: _timestamp_pb2.Timestamp
    owner: str
    def __init__(self, job_id: _Optional[str] = ..., kind: _Optional[_Union[JobKind, str]] = ..., state: _Optional[_Union[JobState, str]] = ..., progress: _Optional[float] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., attempts: _Optional[int] = ..., error: _Optional[str] = ..., detection: _Optional[_Union[DetectionResult, _Mapping]] = ..., stylization: _Optional[_Union[StylizationResult, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., owner: _Optional[str] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id", "include_result")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_RESULT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    include_result: bool
    def __init__(self, job_id: _Optional[str] = ..., include_result: _Optional[bool] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("state", "kind", "page_size", "page_token")
    STATE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    state: JobState
    kind: JobKind
    page_size: int
    page_token: str
    def __init__(self, state: _Optional[_Union[JobState, str]] = ..., kind: _Optional[_Union[JobKind, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListStylesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Style(_message.Message):
    __slots__ = ("name", "kind", "model", "licence")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LICENCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    model: str
    licence: str
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., model: _Optional[str] = ..., licence: _Optional[str] = ...) -> None: ...

class ListStylesResponse(_message.Message):
    __slots__ = ("styles",)
    STYLES_FIELD_NUMBER: _ClassVar[int]
    styles: _containers.RepeatedCompositeFieldContainer[Style]
    def __init__(self, styles: _Optional[_Iterable[_Union[Style, _Mapping]]] = ...) -> None: ...
