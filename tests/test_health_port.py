"""The health-only plaintext port: what a kubelet probe reaches when the API ports serve TLS only and want keys."""

from __future__ import annotations

import subprocess
import sys

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from argus.config import Settings
from argus.proto.jobs.v1 import jobs_pb2, jobs_pb2_grpc


def test_the_health_port_answers_health_and_nothing_else(jobs_settings: Settings, free_port: int) -> None:
    from argus.services.jobs.server import start_jobs_server

    running = start_jobs_server(jobs_settings.model_copy(update={"health_port": free_port}), port=0)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{free_port}") as channel:
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
            named = health_pb2.HealthCheckRequest(service="argus.jobs.v1.JobsService")
            assert health_pb2_grpc.HealthStub(channel).Check(named, timeout=5).status == answer.status
            with pytest.raises(grpc.RpcError) as caught:  # the API itself is not served here
                jobs_pb2_grpc.JobsServiceStub(channel).ListStyles(jobs_pb2.ListStylesRequest(), timeout=5)
            assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED
        # What the containers' health checks run: plaintext even where the settings name a CA for TLS.
        checked = subprocess.run(
            [sys.executable, "-m", "argus.cli.main", "health", "--plaintext", "--address", f"127.0.0.1:{free_port}"],
            capture_output=True,
            text=True,
            timeout=60,
            env={"ARGUS_TLS_CA_FILE": "/nonexistent/ca.crt", "PATH": "/usr/bin:/bin"},
        )
        assert checked.returncode == 0 and checked.stdout.strip() == "SERVING", checked.stderr
        running.set_serving(False)
        with grpc.insecure_channel(f"127.0.0.1:{free_port}") as channel:
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING  # one status, both ports
    finally:
        running.stop()
    with grpc.insecure_channel(f"127.0.0.1:{free_port}") as channel, pytest.raises(grpc.RpcError):
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
