from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetServerStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LoadedModel(_message.Message):
    __slots__ = ("ref", "provider", "precision")
    REF_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    ref: str
    provider: str
    precision: str
    def __init__(self, ref: _Optional[str] = ..., provider: _Optional[str] = ..., precision: _Optional[str] = ...) -> None: ...

class ServerStatus(_message.Message):
    __slots__ = ("services", "models", "auth", "version")
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    AUTH_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    services: _containers.RepeatedScalarFieldContainer[str]
    models: _containers.RepeatedCompositeFieldContainer[LoadedModel]
    auth: str
    version: str
    def __init__(self, services: _Optional[_Iterable[str]] = ..., models: _Optional[_Iterable[_Union[LoadedModel, _Mapping]]] = ..., auth: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...
