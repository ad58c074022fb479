"""The OpenAPI 3.1 document of the gateway's HTTP/JSON API, generated from the protos, never written by hand.

Every path is an RPC the gateway serves (`POST /package.Service/Method`, a JSON body), every schema a message in
the proto3 JSON mapping (lowerCamelCase names, 64-bit integers and bytes as strings, enums by name, Timestamps as
RFC 3339), every description the proto's own comment. Run `python -m argus.services.gateway.openapi` after editing
a .proto file (`make protos` does); a test regenerates it and compares it with the committed file.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor_pb2 import FieldDescriptorProto as Field

from argus.protogen import PROTO_ROOT, proto_files
from argus.server import release
from argus.services.gateway.app import OPENAPI_DOCUMENT
from argus.services.gateway.forwarding import FORWARDED
from argus.services.gateway.stack import GATEWAY_SERVICE

SCALARS: dict[int, dict[str, Any]] = {
    Field.TYPE_DOUBLE: {"type": "number"},
    Field.TYPE_FLOAT: {"type": "number"},
    Field.TYPE_INT32: {"type": "integer", "format": "int32"},
    Field.TYPE_SINT32: {"type": "integer", "format": "int32"},
    Field.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    Field.TYPE_UINT32: {"type": "integer", "format": "int32", "minimum": 0},
    Field.TYPE_FIXED32: {"type": "integer", "format": "int32", "minimum": 0},
    # proto3 JSON writes 64-bit integers as strings (JavaScript's numbers stop at 2^53) and reads either.
    Field.TYPE_INT64: {"type": ["string", "integer"], "format": "int64"},
    Field.TYPE_SINT64: {"type": ["string", "integer"], "format": "int64"},
    Field.TYPE_SFIXED64: {"type": ["string", "integer"], "format": "int64"},
    Field.TYPE_UINT64: {"type": ["string", "integer"], "format": "int64"},
    Field.TYPE_FIXED64: {"type": ["string", "integer"], "format": "int64"},
    Field.TYPE_BOOL: {"type": "boolean"},
    Field.TYPE_STRING: {"type": "string"},
    Field.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
}
WELL_KNOWN: dict[str, dict[str, Any]] = {
    ".google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    ".google.protobuf.Struct": {"type": "object"},
    ".google.protobuf.Value": {},
    ".google.protobuf.Any": {"type": "object", "properties": {"type": {"type": "string"}, "value": {"type": "string"}}},
}
CONNECT_ERROR = {
    "type": "object",
    "description": "A Connect error: the gRPC status's code (snake_case) and message; details where the service "
    "adds them (an all-or-nothing Enroll's photo outcomes, as argus.facedb.v1.EnrollResponse).",
    "properties": {
        "code": {"type": "string", "examples": ["invalid_argument", "unauthenticated", "permission_denied"]},
        "message": {"type": "string"},
        "details": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"type": {"type": "string"}, "value": {"type": "string", "contentEncoding": "base64"}},
            },
        },
    },
}
# The HTTP statuses of Connect's mapping that a caller of this API meets, with what each means here.
STATUSES = {
    "400": "invalid_argument: the request or an image in it is not acceptable; the message says which rule",
    "401": "unauthenticated: no API key, or not an active one",
    "403": "permission_denied: the key lacks the scope, or may not use that collection",
    "404": "not_found",
    "408": "the request body did not arrive within ARGUS_GATEWAY_BODY_TIMEOUT_S",
    "409": "already_exists",
    "413": "the body is over ARGUS_MAX_MESSAGE_BYTES",
    "415": "not JSON or binary protobuf (or gRPC over HTTP/2, which the gRPC ports serve)",
    "429": "resource_exhausted: the service is at its bound on concurrent calls, or the key at its rate; retry",
    "503": "unavailable: a service is down or restarting, or the gateway holds too many bodies; retry",
    "504": "deadline_exceeded: the Connect-Timeout-Ms passed",
}


def descriptor_set(proto_root: Path = PROTO_ROOT) -> descriptor_pb2.FileDescriptorSet:
    """The protos with their comments, as protoc reads them."""
    from grpc_tools import protoc  # dev dependencies: only needed to regenerate

    include = Path(protoc.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "protos.pb"
        args = [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{proto_root}",
            f"-I{include}",
            "--include_imports",
            "--include_source_info",
            f"--descriptor_set_out={out}",
            *(str(p.relative_to(proto_root)) for p in proto_files(proto_root)),
        ]
        subprocess.run(args, check=True)
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


class _Comments:
    """The leading comment of each element of the protos, by the element's full name."""

    def __init__(self, files: descriptor_pb2.FileDescriptorSet) -> None:
        self.by_name: dict[str, str] = {}
        for file in files.file:
            comments = {tuple(loc.path): loc.leading_comments.strip() for loc in file.source_code_info.location}
            prefix = f".{file.package}"
            for i, message in enumerate(file.message_type):
                self._message(comments, (4, i), f"{prefix}.{message.name}", message)
            for i, enum in enumerate(file.enum_type):
                self._add(comments, (5, i), f"{prefix}.{enum.name}")
            for i, service in enumerate(file.service):
                for j, method in enumerate(service.method):
                    self._add(comments, (6, i, 2, j), f"{prefix}.{service.name}/{method.name}")

    def _add(self, comments: dict[tuple[int, ...], str], path: tuple[int, ...], name: str) -> None:
        if comments.get(path):
            self.by_name[name] = " ".join(comments[path].split())

    def _message(
        self,
        comments: dict[tuple[int, ...], str],
        path: tuple[int, ...],
        name: str,
        message: descriptor_pb2.DescriptorProto,
    ) -> None:
        self._add(comments, path, name)
        for i, field in enumerate(message.field):
            self._add(comments, (*path, 2, i), f"{name}.{field.name}")
        for i, nested in enumerate(message.nested_type):
            self._message(comments, (*path, 3, i), f"{name}.{nested.name}", nested)
        for i, enum in enumerate(message.enum_type):
            self._add(comments, (*path, 4, i), f"{name}.{enum.name}")


class _Schemas:
    """JSON schemas of the messages and enums the API's methods reach, collected as they are referred to."""

    def __init__(self, files: descriptor_pb2.FileDescriptorSet, comments: _Comments) -> None:
        self.comments = comments
        self.messages: dict[str, descriptor_pb2.DescriptorProto] = {}
        self.enums: dict[str, descriptor_pb2.EnumDescriptorProto] = {}
        for file in files.file:
            self._index(f".{file.package}", file.message_type, file.enum_type)
        self.components: dict[str, dict[str, Any]] = {}

    def _index(self, prefix: str, messages: Any, enums: Any) -> None:
        for enum in enums:
            self.enums[f"{prefix}.{enum.name}"] = enum
        for message in messages:
            name = f"{prefix}.{message.name}"
            self.messages[name] = message
            self._index(name, message.nested_type, message.enum_type)

    def ref(self, type_name: str) -> dict[str, Any]:
        if type_name in WELL_KNOWN:
            return dict(WELL_KNOWN[type_name])
        key = type_name.lstrip(".")
        if key not in self.components:
            self.components[key] = {}  # taken before filling it: a message may refer to itself
            self.components[key] = self._enum(type_name) if type_name in self.enums else self._message(type_name)
        return {"$ref": f"#/components/schemas/{key}"}

    def _described(self, schema: dict[str, Any], name: str) -> dict[str, Any]:
        if name in self.comments.by_name:
            schema["description"] = self.comments.by_name[name]
        return schema

    def _enum(self, type_name: str) -> dict[str, Any]:
        values = [value.name for value in self.enums[type_name].value]
        return self._described({"type": "string", "enum": values}, type_name)

    def _message(self, type_name: str) -> dict[str, Any]:
        message = self.messages[type_name]
        if message.options.map_entry:
            raise AssertionError("map entries are inlined by _field")
        properties = {field.json_name: self._field(type_name, field) for field in message.field}
        schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
        return self._described(schema, type_name)

    def _field(self, owner: str, field: Field) -> dict[str, Any]:
        entry = self.messages.get(field.type_name)
        schema: dict[str, Any]
        if entry is not None and entry.options.map_entry:
            schema = {"type": "object", "additionalProperties": self._single(entry.field[1])}
        elif field.label == Field.LABEL_REPEATED:
            schema = {"type": "array", "items": self._single(field)}
        else:
            schema = self._single(field)
        if "$ref" in schema and f"{owner}.{field.name}" in self.comments.by_name:
            schema = {"allOf": [schema]}  # a $ref takes no siblings in older readers: describe around it
        return self._described(schema, f"{owner}.{field.name}")

    def _single(self, field: Field) -> dict[str, Any]:
        if field.type in (Field.TYPE_MESSAGE, Field.TYPE_ENUM):
            return self.ref(field.type_name)
        return dict(SCALARS[field.type])


def _operation(
    schemas: _Schemas, comments: _Comments, service: descriptor_pb2.ServiceDescriptorProto, package: str, method: Any
) -> dict[str, Any]:
    full = f".{package}.{service.name}/{method.name}"
    streaming = method.server_streaming
    response_type = "application/connect+json" if streaming else "application/json"
    summary = comments.by_name.get(full, "")
    if streaming:
        summary += (
            " A server stream: the request is one Connect envelope (a flags byte, a 4-byte big-endian length, the "
            "JSON) with Content-Type application/connect+json; each answer is an envelope, the last (flags 2) the "
            "stream's end, with its error if any."
        )
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ConnectError"}}}
    operation: dict[str, Any] = {
        "operationId": f"{service.name}_{method.name}",
        "tags": [f"{package}.{service.name}"],
        "requestBody": {
            "required": True,
            "content": {
                ("application/connect+json" if streaming else "application/json"): {
                    "schema": schemas.ref(method.input_type)
                }
            },
        },
        "responses": {
            "200": {
                "description": "The answer.",
                "content": {response_type: {"schema": schemas.ref(method.output_type)}},
            },
            **{status: {"description": meaning, "content": error} for status, meaning in STATUSES.items()},
        },
    }
    if summary.strip():
        operation["description"] = summary.strip()
    return operation


def document(files: descriptor_pb2.FileDescriptorSet | None = None) -> dict[str, Any]:
    files = files or descriptor_set()
    comments = _Comments(files)
    schemas = _Schemas(files, comments)
    served = {service.full_name for service in FORWARDED.values()} | {GATEWAY_SERVICE.full_name}
    paths: dict[str, Any] = {}
    for file in files.file:
        for service in file.service:
            if f"{file.package}.{service.name}" not in served:
                continue
            for method in service.method:
                path = f"/{file.package}.{service.name}/{method.name}"
                paths[path] = {"post": _operation(schemas, comments, service, file.package, method)}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Argus HTTP API",
            "version": release(),
            "description": "The Connect protocol's JSON form of Argus's gRPC services: POST a JSON message to "
            "/package.Service/Method with `Authorization: Bearer <key>`. Generated from the protos.",
        },
        "security": [{"apiKey": []}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
            "schemas": {"ConnectError": CONNECT_ERROR, **dict(sorted(schemas.components.items()))},
        },
    }


def render(files: descriptor_pb2.FileDescriptorSet | None = None) -> str:
    return json.dumps(document(files), indent=1, sort_keys=False) + "\n"


def main() -> int:
    OPENAPI_DOCUMENT.write_text(render())
    print(f"wrote {OPENAPI_DOCUMENT.relative_to(PROTO_ROOT.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
