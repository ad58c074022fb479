"""The clients' channel policy (argus.client.SERVICE_CONFIG) against real gRPC servers on free ports: calls spread
over every address a name resolves to, a read that one replica answers UNAVAILABLE is resent to another, and a
write is never resent. An `ipv4:` list stands for what DNS returns for a headless Service or a scaled compose
service: the resolver is the only difference."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

from argus.client import RETRIED_READS, RETRY_POLICY, DetectorClient, FaceDbClient
from argus.proto.detector.v1 import detector_pb2, detector_pb2_grpc
from argus.proto.embedder.v1 import embedder_pb2
from argus.proto.facedb.v1 import facedb_pb2, facedb_pb2_grpc
from argus.proto.jobs.v1 import jobs_pb2

# The calls that change something, so are never resent by the channel (argus.client says why, one by one).
WRITES = {
    "argus.facedb.v1.FaceDatabaseService": {
        "CreateCollection", "ChangeProfile", "UpdateCollection", "DeleteCollection", "Enroll", "DeleteFace",
        "DeleteSubject", "PruneAuditEvents", "ConfirmDecision", "RejectDecision",
    },
    "argus.jobs.v1.JobsService": {"SubmitJob", "CancelJob"},
}  # fmt: skip
CALLS = 40


class Replica(detector_pb2_grpc.DetectorServiceServicer, facedb_pb2_grpc.FaceDatabaseServiceServicer):
    """One replica of a service: counts the calls it gets and, when sick, answers every one UNAVAILABLE (as a
    replica draining at shutdown or cut off from its dependencies does)."""

    def __init__(self, name: str, *, sick: bool = False) -> None:
        self.name = name
        self.sick = sick
        self.calls: Counter[str] = Counter()

    def _answer(self, method: str, context: grpc.ServicerContext) -> None:
        self.calls[method] += 1
        if self.sick:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"{self.name} is going away")

    def DetectFaces(  # noqa: N802 (the gRPC method name)
        self, request: Any, context: grpc.ServicerContext
    ) -> detector_pb2.DetectFacesResponse:
        self._answer("DetectFaces", context)
        return detector_pb2.DetectFacesResponse(model=self.name)

    def Verify(  # noqa: N802 (the gRPC method name)
        self, request: Any, context: grpc.ServicerContext
    ) -> facedb_pb2.VerifyResponse:
        self._answer("Verify", context)
        return facedb_pb2.VerifyResponse()

    def Enroll(  # noqa: N802 (the gRPC method name)
        self, request: Any, context: grpc.ServicerContext
    ) -> facedb_pb2.EnrollResponse:
        self._answer("Enroll", context)
        return facedb_pb2.EnrollResponse()


@pytest.fixture
def replicas(request: pytest.FixtureRequest) -> Iterator[tuple[str, list[Replica]]]:
    """Two replicas on free ports, and the one address that names both. Parametrised with which are sick."""
    sick: tuple[bool, bool] = getattr(request, "param", (False, False))
    made = [Replica(name, sick=ill) for name, ill in zip(("a", "b"), sick, strict=True)]
    servers, ports = [], []
    for replica in made:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        detector_pb2_grpc.add_DetectorServiceServicer_to_server(replica, server)
        facedb_pb2_grpc.add_FaceDatabaseServiceServicer_to_server(replica, server)
        ports.append(server.add_insecure_port("127.0.0.1:0"))
        server.start()
        servers.append(server)
    yield "ipv4:" + ",".join(f"127.0.0.1:{port}" for port in ports), made
    for server in servers:
        server.stop(None)


def _warm(client: DetectorClient | FaceDbClient) -> None:
    """Waits until the channel has a connection (round_robin then brings up the other within milliseconds)."""
    grpc.channel_ready_future(client.channel).result(timeout=5)


def test_calls_spread_over_every_address(replicas: tuple[str, list[Replica]]) -> None:
    address, (a, b) = replicas
    with DetectorClient(address, timeout_s=5) as client:
        _warm(client)
        answered = Counter(client.detect_faces([b"x"]).model for _ in range(CALLS))
    assert answered == {"a": a.calls["DetectFaces"], "b": b.calls["DetectFaces"]}
    assert min(answered["a"], answered["b"]) >= CALLS // 4, answered  # round_robin: about half each


@pytest.mark.parametrize("replicas", [(True, False)], indirect=True)
def test_a_read_answered_unavailable_is_resent_to_another_replica(replicas: tuple[str, list[Replica]]) -> None:
    address, (sick, healthy) = replicas
    photo = bytes(1024 * 1024)  # over gRPC's default retry buffer (256 KiB): a photo is resent too
    with DetectorClient(address, timeout_s=5) as client:
        _warm(client)
        answered = Counter(client.detect_faces([photo]).model for _ in range(CALLS))
    assert answered == {"b": CALLS}  # every call succeeded, on the healthy replica
    assert sick.calls["DetectFaces"] >= CALLS // 4  # ... though many were sent to the sick one first
    assert healthy.calls["DetectFaces"] == CALLS


@pytest.mark.parametrize("replicas", [(True, True)], indirect=True)
def test_a_write_is_never_resent_and_a_read_at_most_max_attempts(replicas: tuple[str, list[Replica]]) -> None:
    address, (a, b) = replicas
    with FaceDbClient(address, timeout_s=5) as client:
        _warm(client)
        with pytest.raises(grpc.RpcError) as write:
            client.enroll("staff", "1", [b"x"])
        assert write.value.code() == grpc.StatusCode.UNAVAILABLE
        assert a.calls["Enroll"] + b.calls["Enroll"] == 1
        with pytest.raises(grpc.RpcError) as read:
            client.verify("staff", "1", b"x")
        assert read.value.code() == grpc.StatusCode.UNAVAILABLE  # every replica down: it fails, and fast
    assert a.calls["Verify"] + b.calls["Verify"] == RETRY_POLICY["maxAttempts"]


def test_every_call_is_classified_as_a_read_or_a_write() -> None:
    """A new RPC must be put on one side: resent on UNAVAILABLE, or not."""
    for module in (detector_pb2, embedder_pb2, facedb_pb2, jobs_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            methods = {method.name for method in service.methods}
            reads, writes = set(RETRIED_READS.get(service.full_name, ())), WRITES.get(service.full_name, set())
            assert not reads & writes and reads | writes == methods, service.full_name
