from argus.proto.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FaceInput(_message.Message):
    __slots__ = ("landmarked", "aligned")
    LANDMARKED_FIELD_NUMBER: _ClassVar[int]
    ALIGNED_FIELD_NUMBER: _ClassVar[int]
    landmarked: LandmarkedFace
    aligned: _common_pb2.Image
    def __init__(self, landmarked: _Optional[_Union[LandmarkedFace, _Mapping]] = ..., aligned: _Optional[_Union[_common_pb2.Image, _Mapping]] = ...) -> None: ...

class LandmarkedFace(_message.Message):
    __slots__ = ("image", "landmarks")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    LANDMARKS_FIELD_NUMBER: _ClassVar[int]
    image: _common_pb2.Image
    landmarks: _common_pb2.FaceLandmarks
    def __init__(self, image: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., landmarks: _Optional[_Union[_common_pb2.FaceLandmarks, _Mapping]] = ...) -> None: ...

class EmbedRequest(_message.Message):
    __slots__ = ("faces", "return_aligned")
    FACES_FIELD_NUMBER: _ClassVar[int]
    RETURN_ALIGNED_FIELD_NUMBER: _ClassVar[int]
    faces: _containers.RepeatedCompositeFieldContainer[FaceInput]
    return_aligned: bool
    def __init__(self, faces: _Optional[_Iterable[_Union[FaceInput, _Mapping]]] = ..., return_aligned: _Optional[bool] = ...) -> None: ...

class Embedding(_message.Message):
    __slots__ = ("values", "sharpness", "aligned_png")
    VALUES_FIELD_NUMBER: _ClassVar[int]
    SHARPNESS_FIELD_NUMBER: _ClassVar[int]
    ALIGNED_PNG_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    sharpness: float
    aligned_png: bytes
    def __init__(self, values: _Optional[_Iterable[float]] = ..., sharpness: _Optional[float] = ..., aligned_png: _Optional[bytes] = ...) -> None: ...

class EmbedResponse(_message.Message):
    __slots__ = ("embeddings", "model", "flip_augmented")
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FLIP_AUGMENTED_FIELD_NUMBER: _ClassVar[int]
    embeddings: _containers.RepeatedCompositeFieldContainer[Embedding]
    model: str
    flip_augmented: bool
    def __init__(self, embeddings: _Optional[_Iterable[_Union[Embedding, _Mapping]]] = ..., model: _Optional[str] = ..., flip_augmented: _Optional[bool] = ...) -> None: ...
