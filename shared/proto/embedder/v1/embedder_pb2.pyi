from argus.proto.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FaceInput(_message.Message):
    __slots__ = ("landmarked", "aligned", "crop")
    LANDMARKED_FIELD_NUMBER: _ClassVar[int]
    ALIGNED_FIELD_NUMBER: _ClassVar[int]
    CROP_FIELD_NUMBER: _ClassVar[int]
    landmarked: LandmarkedFace
    aligned: _common_pb2.Image
    crop: _common_pb2.FaceCrop
    def __init__(self, landmarked: _Optional[_Union[LandmarkedFace, _Mapping]] = ..., aligned: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., crop: _Optional[_Union[_common_pb2.FaceCrop, _Mapping]] = ...) -> None: ...

class LandmarkedFace(_message.Message):
    __slots__ = ("image", "photo", "landmarks")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    PHOTO_FIELD_NUMBER: _ClassVar[int]
    LANDMARKS_FIELD_NUMBER: _ClassVar[int]
    image: _common_pb2.Image
    photo: int
    landmarks: _common_pb2.FaceLandmarks
    def __init__(self, image: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., photo: _Optional[int] = ..., landmarks: _Optional[_Union[_common_pb2.FaceLandmarks, _Mapping]] = ...) -> None: ...

class EmbedRequest(_message.Message):
    __slots__ = ("faces", "photos", "return_face_crop", "models")
    FACES_FIELD_NUMBER: _ClassVar[int]
    PHOTOS_FIELD_NUMBER: _ClassVar[int]
    RETURN_FACE_CROP_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    faces: _containers.RepeatedCompositeFieldContainer[FaceInput]
    photos: _containers.RepeatedCompositeFieldContainer[_common_pb2.Image]
    return_face_crop: bool
    models: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, faces: _Optional[_Iterable[_Union[FaceInput, _Mapping]]] = ..., photos: _Optional[_Iterable[_Union[_common_pb2.Image, _Mapping]]] = ..., return_face_crop: _Optional[bool] = ..., models: _Optional[_Iterable[str]] = ...) -> None: ...

class ModelVector(_message.Message):
    __slots__ = ("model", "values")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    model: str
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, model: _Optional[str] = ..., values: _Optional[_Iterable[float]] = ...) -> None: ...

class Embedding(_message.Message):
    __slots__ = ("vectors", "sharpness", "face_crop_png", "face_crop_landmarks")
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    SHARPNESS_FIELD_NUMBER: _ClassVar[int]
    FACE_CROP_PNG_FIELD_NUMBER: _ClassVar[int]
    FACE_CROP_LANDMARKS_FIELD_NUMBER: _ClassVar[int]
    vectors: _containers.RepeatedCompositeFieldContainer[ModelVector]
    sharpness: float
    face_crop_png: bytes
    face_crop_landmarks: _common_pb2.FaceLandmarks
    def __init__(self, vectors: _Optional[_Iterable[_Union[ModelVector, _Mapping]]] = ..., sharpness: _Optional[float] = ..., face_crop_png: _Optional[bytes] = ..., face_crop_landmarks: _Optional[_Union[_common_pb2.FaceLandmarks, _Mapping]] = ...) -> None: ...

class EmbedResponse(_message.Message):
    __slots__ = ("embeddings", "models", "flip_augmented")
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    FLIP_AUGMENTED_FIELD_NUMBER: _ClassVar[int]
    embeddings: _containers.RepeatedCompositeFieldContainer[Embedding]
    models: _containers.RepeatedScalarFieldContainer[str]
    flip_augmented: bool
    def __init__(self, embeddings: _Optional[_Iterable[_Union[Embedding, _Mapping]]] = ..., models: _Optional[_Iterable[str]] = ..., flip_augmented: _Optional[bool] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class EmbeddingModelInfo(_message.Message):
    __slots__ = ("name", "version", "dimension", "licence", "provider", "precision")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    LICENCE_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    dimension: int
    licence: str
    provider: str
    precision: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., dimension: _Optional[int] = ..., licence: _Optional[str] = ..., provider: _Optional[str] = ..., precision: _Optional[str] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[EmbeddingModelInfo]
    def __init__(self, models: _Optional[_Iterable[_Union[EmbeddingModelInfo, _Mapping]]] = ...) -> None: ...
