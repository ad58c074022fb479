"""Overload: past its bound a server refuses at once (RESOURCE_EXHAUSTED) while its health check still answers, a
call whose caller has given up is not run, and a caller's deadline bounds the calls made on its behalf."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from argus.client import FaceDbClient
from argus.config import Settings
from argus.proto.detector.v1 import detector_pb2, detector_pb2_grpc
from argus.server import CallBounds, RunningServer, ServiceInterceptor
from argus.services.facedb.server import start_facedb_server

ANSWER_S = 1.0  # refusals and health checks answer within this however busy the server is
HOLD_TIMEOUT_S = 30.0


def code_of(call: Any, *args: object) -> grpc.StatusCode:
    try:
        call(*args)
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[attr-defined]
    return grpc.StatusCode.OK


class HeldDetector(detector_pb2_grpc.DetectorServiceServicer):
    """A detector that holds each DetectFaces call until released or until the call ends, noting what it saw."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.arrived = threading.Semaphore(0)
        self.time_left: list[float] = []  # each call's time remaining when it arrived
        self.held_for: list[float] = []  # how long each call was held

    def DetectFaces(  # noqa: N802 (the gRPC method name)
        self, request: detector_pb2.DetectFacesRequest, context: grpc.ServicerContext
    ) -> detector_pb2.DetectFacesResponse:
        started = time.monotonic()
        self.time_left.append(context.time_remaining())
        self.arrived.release()
        while context.is_active() and not self.release.wait(0.01):
            pass
        self.held_for.append(time.monotonic() - started)
        return detector_pb2.DetectFacesResponse(results=[detector_pb2.ImageFaces() for _ in request.images])


@pytest.fixture
def held_facedb(settings: Settings, tmp_path: Path) -> Iterator[tuple[HeldDetector, RunningServer]]:
    """A face database with its default bounds, whose detector holds every call until told to answer."""
    detector = HeldDetector()
    detector_server = grpc.server(ThreadPoolExecutor(max_workers=64))
    detector_pb2_grpc.add_DetectorServiceServicer_to_server(detector, detector_server)
    address = f"127.0.0.1:{detector_server.add_insecure_port('127.0.0.1:0')}"
    detector_server.start()
    facedb = start_facedb_server(
        settings.model_copy(
            update={
                "detector_address": address,
                "embedder_address": address,  # never reached: the held detector finds no face
                "database_url": f"sqlite:///{tmp_path / 'facedb.sqlite3'}",
                "auth": "off",
            }
        ),
        port=0,
    )
    try:
        yield detector, facedb
    finally:
        detector.release.set()
        facedb.stop()
        detector_server.stop(0)


def test_past_its_bound_a_server_refuses_at_once_and_health_answers(
    held_facedb: tuple[HeldDetector, RunningServer], settings: Settings, images_dir: Path
) -> None:
    detector, facedb = held_facedb
    bound = settings.concurrent_calls("facedb")  # the default: nothing in the test settings sets it
    photo = (images_dir / "faces/obama.jpg").read_bytes()
    with FaceDbClient(facedb.address, timeout_s=HOLD_TIMEOUT_S) as client, ThreadPoolExecutor(4 * bound) as pool:
        holding = [pool.submit(client.compare, photo, photo) for _ in range(bound)]
        for _ in range(bound):
            assert detector.arrived.acquire(timeout=10), "the calls within the bound did not all start"

        def refused() -> tuple[grpc.StatusCode, float]:
            started = time.perf_counter()
            return code_of(client.compare, photo, photo), time.perf_counter() - started

        extra = list(pool.map(lambda _: refused(), range(3 * bound)))
        assert {code for code, _ in extra} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
        slowest = max(seconds for _, seconds in extra)
        assert slowest < ANSWER_S, f"a refusal took {slowest:.2f} s"
        assert len(detector.time_left) == bound  # refused calls did no work

        health = health_pb2_grpc.HealthStub(client.channel)
        started = time.perf_counter()
        status = health.Check(health_pb2.HealthCheckRequest(), timeout=ANSWER_S).status
        assert status == health_pb2.HealthCheckResponse.SERVING and time.perf_counter() - started < ANSWER_S

        detector.release.set()
        for call in holding:
            call.result(timeout=HOLD_TIMEOUT_S)  # the admitted calls finish normally
        client.compare(photo, photo)  # and the slots are free again


def test_the_callers_deadline_bounds_the_calls_made_on_its_behalf(
    held_facedb: tuple[HeldDetector, RunningServer], images_dir: Path
) -> None:
    detector, facedb = held_facedb
    photo = (images_dir / "faces/obama.jpg").read_bytes()
    with FaceDbClient(facedb.address, timeout_s=1.0) as client:
        assert code_of(client.compare, photo, photo) is grpc.StatusCode.DEADLINE_EXCEEDED
    waited = time.monotonic() + 10
    while not detector.held_for and time.monotonic() < waited:
        time.sleep(0.05)
    assert detector.time_left and detector.time_left[0] <= 1.0  # not facedb's own 30 s timeout
    assert detector.held_for and detector.held_for[0] < 5.0  # the detector's call ended with its caller


class _Details(NamedTuple):
    method: str
    invocation_metadata: tuple[tuple[str, str], ...] = ()


class _Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code


class _Context:
    """What the interceptor asks of a call's context, with the time the caller has left."""

    def __init__(self, time_remaining: float) -> None:
        self._time_remaining = time_remaining

    def time_remaining(self) -> float:
        return self._time_remaining

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise _Aborted(code, details)

    def code(self) -> None:
        return None


class _OpenDoor:
    """A gatekeeper that admits everybody and counts how often it was asked."""

    def __init__(self) -> None:
        self.asked = 0

    def admit(self, method: str, request: object, context: object) -> None:
        self.asked += 1


def test_a_call_whose_deadline_has_passed_is_not_run() -> None:
    ran: list[bytes] = []
    gatekeeper = _OpenDoor()
    interceptor = ServiceInterceptor(gatekeeper, CallBounds(unary=1, streams=1))  # type: ignore[arg-type]
    handler = interceptor.intercept_service(
        lambda _: grpc.unary_unary_rpc_method_handler(lambda request, context: ran.append(request)),
        _Details("/argus.facedb.v1.FaceDatabaseService/Verify"),
    )
    with pytest.raises(_Aborted) as aborted:
        handler.unary_unary(b"too late", _Context(time_remaining=0.0))
    assert aborted.value.code is grpc.StatusCode.DEADLINE_EXCEEDED
    assert ran == [] and gatekeeper.asked == 0  # neither the work nor the key check was done for nobody

    handler.unary_unary(b"in time", _Context(time_remaining=5.0))
    assert ran == [b"in time"]
