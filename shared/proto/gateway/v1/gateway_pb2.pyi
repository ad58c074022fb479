from argus.proto.common.v1 import status_pb2 as _status_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetStackStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ServiceState(_message.Message):
    __slots__ = ("name", "address", "health", "detail", "status")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    name: str
    address: str
    health: str
    detail: str
    status: _status_pb2.ServerStatus
    def __init__(self, name: _Optional[str] = ..., address: _Optional[str] = ..., health: _Optional[str] = ..., detail: _Optional[str] = ..., status: _Optional[_Union[_status_pb2.ServerStatus, _Mapping]] = ...) -> None: ...

class StackStatus(_message.Message):
    __slots__ = ("services",)
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    services: _containers.RepeatedCompositeFieldContainer[ServiceState]
    def __init__(self, services: _Optional[_Iterable[_Union[ServiceState, _Mapping]]] = ...) -> None: ...
