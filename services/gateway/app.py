"""The gateway's ASGI application: Connect endpoints, the console's files, and the bounds every request meets first.

Before a request reaches the Connect handlers its body is read here, within a size (ARGUS_MAX_MESSAGE_BYTES, from
Content-Length before a byte is read), a time (ARGUS_GATEWAY_BODY_TIMEOUT_S) and a budget of bytes held across all
requests (ARGUS_GATEWAY_BODY_BYTES_IN_FLIGHT): what a request costs the gateway never grows past those, whatever a
caller sends. Refusals are Connect errors (a JSON body with a code and a message), as every other answer here is.
"""

from __future__ import annotations

import asyncio
import json
import logging
import mimetypes
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from contextlib import asynccontextmanager
from http import HTTPStatus
from pathlib import Path
from typing import Any

from connectrpc.compat import google_protobuf_binary_codec, google_protobuf_json_codec
from connectrpc.server import ConnectASGIApplication

from argus.config import Settings
from argus.services.gateway.forwarding import GatewayEndpoint, Upstreams, forwarding_endpoints
from argus.services.gateway.stack import stack_status_endpoint

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

CONSOLE_DIR = Path(__file__).resolve().parent / "console" / "dist"
BUDGET_WAIT_S = 10.0  # how long a request waits for room in the body budget before it is refused
HEALTH_PATH = "/healthz"
OPENAPI_PATH = "/openapi.json"
OPENAPI_DOCUMENT = Path(__file__).resolve().parent / "openapi.json"  # generated from the protos (openapi.py)

# The console loads nothing from elsewhere and may not be framed; API answers are never sniffed as another type.
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
CONSOLE_POLICY = (
    b"default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; style-src 'self'; "
    b"script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


class RequestRefused(Exception):
    """A request refused before any handler saw it, with the HTTP status and Connect code it is answered with."""

    def __init__(self, status: HTTPStatus, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class BodyBudget:
    """Request body bytes the gateway holds at once. A request takes its share before reading its body (its
    Content-Length, or the most a body may be) and gives it back when answered."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held = 0
        self._room = asyncio.Condition()

    @asynccontextmanager
    async def reserve(self, size: int) -> AsyncIterator[None]:
        async with self._room:
            try:
                await asyncio.wait_for(self._room.wait_for(lambda: self._held + size <= self.limit), BUDGET_WAIT_S)
            except TimeoutError:
                raise RequestRefused(
                    HTTPStatus.SERVICE_UNAVAILABLE,
                    "unavailable",
                    f"the gateway is holding {self._held} bytes of request bodies; retry shortly",
                ) from None
            self._held += size
        try:
            yield
        finally:
            async with self._room:
                self._held -= size
                self._room.notify_all()


class ConnectEndpoints(ConnectASGIApplication[Upstreams]):
    """The Connect protocol's handlers for a fixed set of endpoints (the forwarded services and the gateway's own)."""

    @property
    def path(self) -> str:
        return "/"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


async def send_error(send: Send, refused: RequestRefused) -> None:
    body = json.dumps({"code": refused.code, "message": str(refused)}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": refused.status.value,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class GatewayApp:
    """Routes a request: an RPC path to the Connect handlers (its body bounded first), /healthz, or the console."""

    def __init__(self, settings: Settings, console_dir: Path = CONSOLE_DIR) -> None:
        self.settings = settings
        self.console_dir = console_dir
        self.upstreams = Upstreams(settings)
        self.endpoints: dict[str, GatewayEndpoint] = {
            **forwarding_endpoints(self.upstreams),
            **stack_status_endpoint(self.upstreams),
        }
        self.connect = ConnectEndpoints(
            service=self.upstreams,
            endpoints=lambda _upstreams: self.endpoints,
            read_max_bytes=settings.max_message_bytes,
            # Unknown JSON fields are refused: a misspelt field is an error a caller sees, not a default applied.
            codecs=[google_protobuf_binary_codec(), google_protobuf_json_codec(ignore_unknown_fields=False)],
        )
        self.budget = BodyBudget(settings.gateway_body_bytes_in_flight)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # websockets: nothing here speaks them
        try:
            if scope["path"] in self.endpoints:
                await self._rpc(scope, receive, send)
            elif scope["method"] not in ("GET", "HEAD"):
                raise RequestRefused(HTTPStatus.NOT_FOUND, "not_found", f"no RPC at {scope['path']!r}")
            elif scope["path"] == HEALTH_PATH:
                await self._respond(send, HTTPStatus.OK, b"ok\n", b"text/plain; charset=utf-8")
            elif scope["path"] == OPENAPI_PATH:
                await self._respond(send, HTTPStatus.OK, OPENAPI_DOCUMENT.read_bytes(), b"application/json")
            else:
                await self._console(scope, send)
        except RequestRefused as refused:
            await send_error(send, refused)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.upstreams.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _rpc(self, scope: Scope, receive: Receive, send: Send) -> None:
        content_type = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
        if content_type.startswith("application/grpc") and not content_type.startswith("application/grpc-web"):
            raise RequestRefused(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                "invalid_argument",
                "gRPC over HTTP/2 is served on the services' own gRPC ports; here: Connect, gRPC-Web and JSON",
            )
        limit = self.settings.max_message_bytes
        length = _content_length(scope)
        if length is not None and length > limit:
            raise RequestRefused(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                "resource_exhausted",
                f"the request body is {length} bytes; the limit is {limit} (ARGUS_MAX_MESSAGE_BYTES)",
            )
        async with self.budget.reserve(limit if length is None else length):
            body = await self._read_body(receive, limit)
            await self.connect(scope, _replay(body, receive), send)

    async def _read_body(self, receive: Receive, limit: int) -> bytes:
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.settings.gateway_body_timeout_s):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise RequestRefused(HTTPStatus.BAD_REQUEST, "canceled", "the caller went away")
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        raise RequestRefused(
                            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                            "resource_exhausted",
                            f"the request body is over {limit} bytes (ARGUS_MAX_MESSAGE_BYTES)",
                        )
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError:
            raise RequestRefused(
                HTTPStatus.REQUEST_TIMEOUT,
                "deadline_exceeded",
                f"the request body did not arrive within {self.settings.gateway_body_timeout_s:g} s",
            ) from None

    async def _console(self, scope: Scope, send: Send) -> None:
        index = self.console_dir / "index.html"
        if not index.is_file():
            raise RequestRefused(
                HTTPStatus.SERVICE_UNAVAILABLE,
                "unavailable",
                "the console is not built: `make install` builds it (npm ci && npm run build in "
                "services/gateway/console)",
            )
        path = scope["path"]
        found = index if path == "/" else _inside(self.console_dir, path)
        if found is None:
            raise RequestRefused(HTTPStatus.NOT_FOUND, "not_found", f"nothing at {path!r}")
        content_type = mimetypes.guess_type(found.name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type == "application/javascript":
            content_type += "; charset=utf-8"
        # Vite names every asset by its content: those never change; the page that names them always may.
        cache = b"no-cache" if found == index else b"public, max-age=31536000, immutable"
        body = found.read_bytes() if scope["method"] == "GET" else b""
        await self._respond(
            send,
            HTTPStatus.OK,
            body,
            content_type.encode(),
            [(b"cache-control", cache), (b"content-security-policy", CONSOLE_POLICY)],
            length=found.stat().st_size,
        )

    async def _respond(
        self,
        send: Send,
        status: HTTPStatus,
        body: bytes,
        content_type: bytes,
        headers: list[tuple[bytes, bytes]] | None = None,
        length: int | None = None,
    ) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status.value,
                "headers": [
                    (b"content-type", content_type),
                    (b"content-length", str(len(body) if length is None else length).encode()),
                    *SECURITY_HEADERS,
                    *(headers or []),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    value = _header(scope, b"content-length")
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        raise RequestRefused(HTTPStatus.BAD_REQUEST, "invalid_argument", "Content-Length is not a number") from None
    if length < 0:
        raise RequestRefused(HTTPStatus.BAD_REQUEST, "invalid_argument", "Content-Length is negative")
    return length


def _inside(root: Path, url_path: str) -> Path | None:
    """The file a URL path names under root, or None when it names none there (or would leave root)."""
    candidate = (root / url_path.lstrip("/")).resolve()
    if not candidate.is_relative_to(root.resolve()) or not candidate.is_file():
        return None
    return candidate


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive() that hands over the body already read, then the caller's own (which reports a disconnect)."""
    pending: Iterator[Message] = iter([{"type": "http.request", "body": body, "more_body": False}])

    async def replayed() -> Message:
        message = next(pending, None)
        return message if message is not None else await receive()

    return replayed
