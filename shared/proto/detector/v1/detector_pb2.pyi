from argus.proto.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DetectionOptions(_message.Message):
    __slots__ = ("score_threshold", "nms_iou_threshold", "max_detections")
    SCORE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    NMS_IOU_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MAX_DETECTIONS_FIELD_NUMBER: _ClassVar[int]
    score_threshold: float
    nms_iou_threshold: float
    max_detections: int
    def __init__(self, score_threshold: _Optional[float] = ..., nms_iou_threshold: _Optional[float] = ..., max_detections: _Optional[int] = ...) -> None: ...

class DetectObjectsRequest(_message.Message):
    __slots__ = ("images", "options", "class_names", "class_ids")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAMES_FIELD_NUMBER: _ClassVar[int]
    CLASS_IDS_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedCompositeFieldContainer[_common_pb2.Image]
    options: DetectionOptions
    class_names: _containers.RepeatedScalarFieldContainer[str]
    class_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, images: _Optional[_Iterable[_Union[_common_pb2.Image, _Mapping]]] = ..., options: _Optional[_Union[DetectionOptions, _Mapping]] = ..., class_names: _Optional[_Iterable[str]] = ..., class_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class DetectedObject(_message.Message):
    __slots__ = ("class_id", "class_name", "score", "box")
    CLASS_ID_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    class_id: int
    class_name: str
    score: float
    box: _common_pb2.BoundingBox
    def __init__(self, class_id: _Optional[int] = ..., class_name: _Optional[str] = ..., score: _Optional[float] = ..., box: _Optional[_Union[_common_pb2.BoundingBox, _Mapping]] = ...) -> None: ...

class ImageObjects(_message.Message):
    __slots__ = ("image_name", "image_size", "objects")
    IMAGE_NAME_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    image_name: str
    image_size: _common_pb2.ImageSize
    objects: _containers.RepeatedCompositeFieldContainer[DetectedObject]
    def __init__(self, image_name: _Optional[str] = ..., image_size: _Optional[_Union[_common_pb2.ImageSize, _Mapping]] = ..., objects: _Optional[_Iterable[_Union[DetectedObject, _Mapping]]] = ...) -> None: ...

class DetectObjectsResponse(_message.Message):
    __slots__ = ("results", "model")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ImageObjects]
    model: str
    def __init__(self, results: _Optional[_Iterable[_Union[ImageObjects, _Mapping]]] = ..., model: _Optional[str] = ...) -> None: ...

class DetectFacesRequest(_message.Message):
    __slots__ = ("images", "options", "coarse_landmarks", "liveness", "largest_face_only", "face_crops")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    COARSE_LANDMARKS_FIELD_NUMBER: _ClassVar[int]
    LIVENESS_FIELD_NUMBER: _ClassVar[int]
    LARGEST_FACE_ONLY_FIELD_NUMBER: _ClassVar[int]
    FACE_CROPS_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedCompositeFieldContainer[_common_pb2.Image]
    options: DetectionOptions
    coarse_landmarks: bool
    liveness: bool
    largest_face_only: bool
    face_crops: int
    def __init__(self, images: _Optional[_Iterable[_Union[_common_pb2.Image, _Mapping]]] = ..., options: _Optional[_Union[DetectionOptions, _Mapping]] = ..., coarse_landmarks: _Optional[bool] = ..., liveness: _Optional[bool] = ..., largest_face_only: _Optional[bool] = ..., face_crops: _Optional[int] = ...) -> None: ...

class DetectedFace(_message.Message):
    __slots__ = ("box", "score", "landmarks", "liveness", "crop")
    BOX_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    LANDMARKS_FIELD_NUMBER: _ClassVar[int]
    LIVENESS_FIELD_NUMBER: _ClassVar[int]
    CROP_FIELD_NUMBER: _ClassVar[int]
    box: _common_pb2.BoundingBox
    score: float
    landmarks: _common_pb2.FaceLandmarks
    liveness: float
    crop: _common_pb2.FaceCrop
    def __init__(self, box: _Optional[_Union[_common_pb2.BoundingBox, _Mapping]] = ..., score: _Optional[float] = ..., landmarks: _Optional[_Union[_common_pb2.FaceLandmarks, _Mapping]] = ..., liveness: _Optional[float] = ..., crop: _Optional[_Union[_common_pb2.FaceCrop, _Mapping]] = ...) -> None: ...

class ImageFaces(_message.Message):
    __slots__ = ("image_name", "image_size", "faces", "faces_found")
    IMAGE_NAME_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    FACES_FIELD_NUMBER: _ClassVar[int]
    FACES_FOUND_FIELD_NUMBER: _ClassVar[int]
    image_name: str
    image_size: _common_pb2.ImageSize
    faces: _containers.RepeatedCompositeFieldContainer[DetectedFace]
    faces_found: int
    def __init__(self, image_name: _Optional[str] = ..., image_size: _Optional[_Union[_common_pb2.ImageSize, _Mapping]] = ..., faces: _Optional[_Iterable[_Union[DetectedFace, _Mapping]]] = ..., faces_found: _Optional[int] = ...) -> None: ...

class DetectFacesResponse(_message.Message):
    __slots__ = ("results", "model")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ImageFaces]
    model: str
    def __init__(self, results: _Optional[_Iterable[_Union[ImageFaces, _Mapping]]] = ..., model: _Optional[str] = ...) -> None: ...
