"""What every Argus gRPC server has: status mapping, metrics, health checking, reflection, clean shutdown."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any, Protocol, cast

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import Counter, Histogram, start_http_server

from argus.auth import Gatekeeper, current_key
from argus.config import LOOPBACK, Settings
from argus.deadlines import serving_until
from argus.errors import ArgusError, DeadlineExceeded, Overloaded
from argus.grpc_status import status_message, status_of
from argus.keys import DenialLog, DenialSink, KeyRing
from argus.proto.common.v1 import status_pb2, status_pb2_grpc

if TYPE_CHECKING:  # the jobs and gateway servers load no model, so they need not import ONNX Runtime
    from argus.models.runtime import RunsOn

log = logging.getLogger(__name__)

REQUESTS = Counter("argus_grpc_requests_total", "RPCs handled", ["method", "code"])
LATENCY = Histogram(
    "argus_grpc_latency_seconds",
    "RPC handling time",
    ["method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def _finish(method: str, started: float, code: grpc.StatusCode) -> None:
    REQUESTS.labels(method, code.name).inc()
    LATENCY.labels(method).observe(time.perf_counter() - started)


class _StatusOfCall(Protocol):
    """ServicerContext.code(), which grpcio has (since 1.38) and types-grpcio leaves out."""

    def code(self) -> grpc.StatusCode | None: ...


def _aborted_with(context: grpc.ServicerContext) -> grpc.StatusCode | None:
    """The status the servicer itself ended the call with, if it did."""
    code = cast(_StatusOfCall, context).code()
    return code if isinstance(code, grpc.StatusCode) and code is not grpc.StatusCode.OK else None


def _status_of(context: grpc.ServicerContext, exc: Exception) -> grpc.StatusCode:
    """The status a failed call ends with: the domain error's, the one the servicer aborted with, or INTERNAL."""
    if isinstance(exc, ArgusError):
        return status_of(exc)
    return _aborted_with(context) or grpc.StatusCode.INTERNAL


def _abort(context: grpc.ServicerContext, exc: Exception, code: grpc.StatusCode, method: str) -> None:
    """Ends the call with its status and a message a person can act on; raises unless the servicer already did."""
    if isinstance(exc, ArgusError):
        context.abort(code, status_message(str(exc)))
    if _aborted_with(context) is None:
        log.exception("unexpected error in %s", method)
        context.abort(code, f"internal error in {method}; the server log has the details")


RESERVE_THREADS = 8  # beyond both bounds: health checks, reflection and refusals always find a thread


@dataclass(frozen=True)
class CallBounds:
    """How many unary calls and open response streams a server works on at once, and the threads that follow.

    Each bound refuses the excess with RESOURCE_EXHAUSTED instead of queueing it, and long-lived streams never take
    the threads unary calls need. The executor has a thread for every call both bounds admit plus a reserve, so a
    call is refused (or a health check answered) at once rather than waiting for a thread; the threads are made as
    they are needed. gRPC itself refuses calls beyond that many, so the executor's queue never grows.
    """

    unary: int
    streams: int

    @classmethod
    def of(cls, settings: Settings, service: str) -> CallBounds:
        return cls(settings.concurrent_calls(service), settings.max_open_streams)

    @property
    def threads(self) -> int:
        return self.unary + self.streams + RESERVE_THREADS


class _Slots:
    """A bound on calls in flight that refuses at once when full."""

    def __init__(self, limit: int, what: str) -> None:
        self.limit = limit
        self.refusal = f"the server is busy with {limit} {what}; retry shortly"
        self._taken = 0
        self._lock = threading.Lock()

    @property
    def full(self) -> bool:
        return self._taken >= self.limit

    def take(self) -> None:
        with self._lock:
            if self._taken >= self.limit:
                raise Overloaded(self.refusal)
            self._taken += 1

    def give_back(self) -> None:
        with self._lock:
            self._taken -= 1


def _refused(method: str, slots: _Slots) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler that refuses the call without reading its request: under overload a refusal must cost next to
    nothing, and a Verify's request is a whole photo. (Request-streaming, so the server does not wait for and parse
    the request message before the handler runs; the caller sees the status alone.)"""

    def refuse(_requests: Iterator[Any], context: grpc.ServicerContext) -> None:
        _finish(method, time.perf_counter(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, slots.refusal)

    return grpc.stream_unary_rpc_method_handler(refuse)


class ServiceInterceptor(grpc.ServerInterceptor):
    """Every call passes here: a check of its deadline, the gatekeeper (key, scope, collection, rate), the bounds
    on concurrent unary calls and open streams, the mapping of domain errors to gRPC status codes, and each call's
    code and latency in the metrics.

    Servicers stay thin: they raise InvalidInput, NotFound, ... and never touch status codes themselves.
    """

    def __init__(self, gatekeeper: Gatekeeper, bounds: CallBounds) -> None:
        self.gatekeeper = gatekeeper
        self.unary_slots = _Slots(bounds.unary, "calls")
        self.stream_slots = _Slots(bounds.streams, "open streams")

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Any], details: grpc.HandlerCallDetails
    ) -> Any:
        handler = continuation(details)
        if handler is None or details.method.startswith(("/grpc.health", "/grpc.reflection")):
            return handler
        if not (handler.unary_unary or handler.unary_stream):
            return handler
        method = details.method.rsplit("/", 1)[-1]
        slots = self.unary_slots if handler.unary_unary else self.stream_slots
        if slots.full:  # decided here, before the request is read; a call that gets past may still be refused
            return _refused(method, slots)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(handler.unary_unary, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return grpc.unary_stream_rpc_method_handler(
            self._stream(handler.unary_stream, method),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    @contextmanager
    def _admitted(self, method: str, request: Any, context: grpc.ServicerContext, slots: _Slots) -> Iterator[None]:
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:  # the caller has given up: nobody would read the answer
            raise DeadlineExceeded(f"the deadline passed before {method} started; it was not run")
        key = self.gatekeeper.admit(method, request, context)
        slots.take()
        token = current_key.set(key)
        try:
            with serving_until(remaining):  # what this call asks of other services ends with it
                yield
        finally:
            current_key.reset(token)
            slots.give_back()

    def _unary(self, behaviour: Callable[..., Any], method: str) -> Callable[..., Any]:
        def call(request: Any, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                with self._admitted(method, request, context, self.unary_slots):
                    return behaviour(request, context)
            except Exception as exc:
                code = _status_of(context, exc)
                _abort(context, exc, code, method)
                raise
            finally:
                _finish(method, started, code)

        return call

    def _stream(self, behaviour: Callable[..., Iterator[Any]], method: str) -> Callable[..., Iterator[Any]]:
        def call(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                with self._admitted(method, request, context, self.stream_slots):
                    yield from behaviour(request, context)
            except Exception as exc:
                code = _status_of(context, exc)
                _abort(context, exc, code, method)
                raise
            finally:
                _finish(method, started, code)

        return call


@dataclass
class ServiceBinding:
    """One gRPC service to host: its full name (for health and reflection) and how to register it."""

    full_name: str
    register: Callable[[grpc.Server], None]
    on_stop: list[Callable[[], None]] = field(default_factory=list)
    models: dict[str, RunsOn] = field(default_factory=dict)  # model ref -> where and how it really runs
    on_denials: list[DenialSink] = field(default_factory=list)  # where refused calls are recorded besides the log

    @property
    def service(self) -> str:
        """The short name settings know the service by: "facedb" for argus.facedb.v1.FaceDatabaseService."""
        return self.full_name.split(".")[1]


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    health: health.HealthServicer
    bindings: list[ServiceBinding]
    _stopped: threading.Event = field(default_factory=threading.Event)
    _finished: threading.Event = field(default_factory=threading.Event)
    health_server: grpc.Server | None = None  # the health-only plaintext port, when ARGUS_HEALTH_PORT is set

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ["", *(binding.full_name for binding in self.bindings)]:
            self.health.set(name, status)

    def stop(self, grace_s: float = 5.0) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        try:
            self.set_serving(False)
            self.server.stop(grace_s).wait()
            if self.health_server is not None:
                self.health_server.stop(0).wait()
            for binding in self.bindings:
                for hook in binding.on_stop:
                    hook()
        finally:
            self._finished.set()

    def wait(self) -> None:
        """Until the server has stopped and every stop hook has run (a snapshot saved, the audit trail flushed):
        a process that exits when this returns loses nothing."""
        self._finished.wait()


class StatusServicer(status_pb2_grpc.StatusServiceServicer):
    """What this process serves and runs on, as the console's status page and an operator's checks read it."""

    def __init__(self, bindings: list[ServiceBinding], auth: str) -> None:
        self.status = status_pb2.ServerStatus(
            services=[binding.full_name for binding in bindings],
            models=[
                status_pb2.LoadedModel(ref=ref, provider=runs.provider, precision=runs.precision)
                for binding in bindings
                for ref, runs in binding.models.items()
            ],
            auth=auth,
            version=release(),
        )

    def GetServerStatus(  # noqa: N802 (the proto's name)
        self, request: status_pb2.GetServerStatusRequest, context: grpc.ServicerContext
    ) -> status_pb2.ServerStatus:
        return self.status


def release() -> str:
    """The Argus release installed."""
    try:
        return version("argus")
    except PackageNotFoundError:
        return "unknown"


_metrics_started: set[int] = set()


def add_port(server: grpc.Server, settings: Settings, port: int) -> int:
    """TLS when a certificate is configured (mutual TLS with a client CA), plaintext otherwise."""
    address = f"{settings.host}:{port}"
    if not settings.tls_cert_file:
        return server.add_insecure_port(address)
    if not settings.tls_key_file:
        raise ValueError("ARGUS_TLS_CERT_FILE is set but ARGUS_TLS_KEY_FILE is not")
    client_ca = settings.tls_client_ca_file.read_bytes() if settings.tls_client_ca_file else None
    credentials = grpc.ssl_server_credentials(
        [(settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )
    return server.add_secure_port(address, credentials)


def start_health_server(settings: Settings, health_servicer: health.HealthServicer) -> grpc.Server | None:
    """The health protocol alone on a plaintext port of its own (ARGUS_HEALTH_PORT), with threads of its own: for
    probes that cannot speak TLS (the kubelet's) or hold an API key, answering whatever the main port is busy with.
    It serves nothing but the serving status."""
    if not settings.health_port:
        return None
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="health"))
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if server.add_insecure_port(f"{settings.host}:{settings.health_port}") == 0:
        raise OSError(f"could not bind the health port {settings.host}:{settings.health_port}")
    server.start()
    return server


CONNECTION_AGE_MS = 5 * 60 * 1000


def start_server(settings: Settings, bindings: list[ServiceBinding], port: int) -> RunningServer:
    """Starts a server hosting the bindings plus health checking and reflection; port 0 picks a free one."""
    denials = DenialLog(settings.denial_report_s, [sink for binding in bindings for sink in binding.on_denials])
    gatekeeper = Gatekeeper(KeyRing(settings.resolved_keys_file), settings.auth == "required", denials)
    for binding in bindings:
        gatekeeper.announce(binding.full_name)
    bindings[0].on_stop.insert(0, denials.close)  # the last refusals are reported before the bindings close
    bounds = CallBounds.of(settings, bindings[0].service)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=bounds.threads, thread_name_prefix="grpc"),
        interceptors=[ServiceInterceptor(gatekeeper, bounds)],
        maximum_concurrent_rpcs=bounds.threads,
        options=[
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            ("grpc.so_reuseport", 0),
            # Clients re-resolve a DNS name only when a connection closes: a GOAWAY every few minutes lets them find
            # replicas added since. No grace limit, so calls and streams in flight finish on the old connection.
            ("grpc.max_connection_age_ms", CONNECTION_AGE_MS),
        ],
    )
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for binding in bindings:
        binding.register(server)
    status_service = status_pb2.DESCRIPTOR.services_by_name["StatusService"].full_name
    status_pb2_grpc.add_StatusServiceServicer_to_server(StatusServicer(bindings, settings.auth), server)
    reflection.enable_server_reflection(
        [binding.full_name for binding in bindings] + [status_service, health.SERVICE_NAME, reflection.SERVICE_NAME],
        server,
    )
    bound = add_port(server, settings, port)
    if bound == 0:
        raise OSError(f"could not bind {settings.host}:{port}; is another process using the port?")
    server.start()
    if settings.metrics_port and settings.metrics_port not in _metrics_started:
        start_http_server(settings.metrics_port, addr=settings.host)
        _metrics_started.add(settings.metrics_port)
    running = RunningServer(
        server, bound, health_servicer, bindings, health_server=start_health_server(settings, health_servicer)
    )
    running.set_serving(True)
    return running


def run_until_signalled(running: RunningServer, name: str) -> None:
    """Blocks until SIGINT or SIGTERM, then reports NOT_SERVING and drains in-flight calls before exiting."""

    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        if stopping.is_set():
            return  # a second signal while draining changes nothing
        stopping.set()
        log.info("%s: signal %d, shutting down", name, signum)
        threading.Thread(target=running.stop, daemon=True).start()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    running.wait()
    running.server.wait_for_termination(timeout=10)
