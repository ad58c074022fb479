from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Image(_message.Message):
    __slots__ = ("data", "name")
    DATA_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    name: str
    def __init__(self, data: _Optional[bytes] = ..., name: _Optional[str] = ...) -> None: ...

class BoundingBox(_message.Message):
    __slots__ = ("x1", "y1", "x2", "y2")
    X1_FIELD_NUMBER: _ClassVar[int]
    Y1_FIELD_NUMBER: _ClassVar[int]
    X2_FIELD_NUMBER: _ClassVar[int]
    Y2_FIELD_NUMBER: _ClassVar[int]
    x1: float
    y1: float
    x2: float
    y2: float
    def __init__(self, x1: _Optional[float] = ..., y1: _Optional[float] = ..., x2: _Optional[float] = ..., y2: _Optional[float] = ...) -> None: ...

class Point(_message.Message):
    __slots__ = ("x", "y")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ...) -> None: ...

class FaceLandmarks(_message.Message):
    __slots__ = ("right_eye", "left_eye", "nose_tip", "right_mouth_corner", "left_mouth_corner")
    RIGHT_EYE_FIELD_NUMBER: _ClassVar[int]
    LEFT_EYE_FIELD_NUMBER: _ClassVar[int]
    NOSE_TIP_FIELD_NUMBER: _ClassVar[int]
    RIGHT_MOUTH_CORNER_FIELD_NUMBER: _ClassVar[int]
    LEFT_MOUTH_CORNER_FIELD_NUMBER: _ClassVar[int]
    right_eye: Point
    left_eye: Point
    nose_tip: Point
    right_mouth_corner: Point
    left_mouth_corner: Point
    def __init__(self, right_eye: _Optional[_Union[Point, _Mapping]] = ..., left_eye: _Optional[_Union[Point, _Mapping]] = ..., nose_tip: _Optional[_Union[Point, _Mapping]] = ..., right_mouth_corner: _Optional[_Union[Point, _Mapping]] = ..., left_mouth_corner: _Optional[_Union[Point, _Mapping]] = ...) -> None: ...

class FaceCrop(_message.Message):
    __slots__ = ("bgr", "landmarks")
    BGR_FIELD_NUMBER: _ClassVar[int]
    LANDMARKS_FIELD_NUMBER: _ClassVar[int]
    bgr: bytes
    landmarks: FaceLandmarks
    def __init__(self, bgr: _Optional[bytes] = ..., landmarks: _Optional[_Union[FaceLandmarks, _Mapping]] = ...) -> None: ...

class ImageSize(_message.Message):
    __slots__ = ("width", "height")
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    width: int
    height: int
    def __init__(self, width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...
