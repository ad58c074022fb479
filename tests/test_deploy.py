"""docker-compose.yml and the Kubernetes manifests, checked against what the Compose specification and Kubernetes
require (this machine has no Docker engine or cluster to run them): every Argus service is there, with gRPC health
checks, GPU reservations where inference runs, and the volumes the data needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from argus.config import Settings
from argus.supervisor import SERVICES

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_TOP_LEVEL = {"version", "name", "services", "networks", "volumes", "configs", "secrets", "include"}
DEFAULTS = Settings()
GRPC_SERVICES = {spec.name: getattr(DEFAULTS, spec.port_setting) for spec in SERVICES if spec.port_setting}
INFERENCE = {"detector", "embedder", "stylizer", "detection-worker"}


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_follows_the_specification() -> None:
    document = compose()
    assert {key for key in document if not key.startswith("x-")} <= COMPOSE_TOP_LEVEL  # x-: extension fields
    services = document["services"]
    assert set(services) == {spec.name for spec in SERVICES} | {"redis", "postgres"}
    declared_volumes = set(document["volumes"])
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        command = service.get("command", [])
        assert isinstance(command, list | str), name
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            assert source in declared_volumes, (name, volume)
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services and condition["condition"] in {"service_started", "service_healthy"}
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], (name, dependency)


def test_every_grpc_service_has_a_health_check_on_the_grpc_health_protocol() -> None:
    services = compose()["services"]
    for name, port in GRPC_SERVICES.items():
        service = services[name]
        assert service["healthcheck"]["test"] == ["CMD", "argus", "health", "--address", f"127.0.0.1:{port}"], name
        assert f"{port}:{port}" in service["ports"], name
        assert f"argus serve {name}" in " ".join(service["command"]), name


def test_inference_services_reserve_a_gpu() -> None:
    services = compose()["services"]
    for name in INFERENCE:
        devices = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}], name
    assert "deploy" not in services["facedb"] and "deploy" not in services["jobs"]


def test_state_lives_in_volumes() -> None:
    services = compose()["services"]
    assert "database:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert "redis:/data" in services["redis"]["volumes"] and "--appendonly" in services["redis"]["command"]
    for name in ("jobs", "stylizer", "detection-worker"):
        assert "results:/results" in services[name]["volumes"], name
    environment = services["facedb"]["environment"]
    assert (
        environment["ARGUS_DATABASE_URL"].startswith("postgresql://")
        and "postgres:5432" in environment["ARGUS_DATABASE_URL"]
    )


def kubernetes_objects() -> list[dict[str, Any]]:
    return [
        document
        for path in sorted((ROOT / "deploy/k8s").glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]


def test_kubernetes_manifests_cover_the_stack_with_grpc_probes_and_scaling() -> None:
    objects = kubernetes_objects()
    for item in objects:
        assert {"apiVersion", "kind", "metadata"} <= set(item) and item["metadata"]["name"].startswith("argus-")
    deployments = {
        item["metadata"]["name"].removeprefix("argus-"): item for item in objects if item["kind"] == "Deployment"
    }
    assert set(deployments) == {spec.name for spec in SERVICES}
    for name, port in GRPC_SERVICES.items():
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        assert container["readinessProbe"]["grpc"]["port"] == port, name
        assert container["livenessProbe"]["grpc"]["port"] == port, name
        selector = deployments[name]["spec"]["selector"]["matchLabels"]
        assert selector.items() <= deployments[name]["spec"]["template"]["metadata"]["labels"].items()
    services = {item["metadata"]["name"].removeprefix("argus-") for item in objects if item["kind"] == "Service"}
    assert services == set(GRPC_SERVICES)
    scaled = {
        item["spec"]["scaleTargetRef"]["name"].removeprefix("argus-")
        for item in objects
        if item["kind"] == "HorizontalPodAutoscaler"
    }
    assert {"detector", "embedder", "jobs", "stylizer", "detection-worker"} <= scaled  # stateless: scale out
    config = next(item for item in objects if item["kind"] == "ConfigMap")
    # the database and Redis are external dependencies, configured, not deployed here
    assert {"ARGUS_DATABASE_URL", "ARGUS_REDIS_URL"} <= set(config["data"]) or any(
        item["kind"] == "Secret" and "ARGUS_DATABASE_URL" in item.get("stringData", {}) for item in objects
    )
    assert not any(item["kind"] == "StatefulSet" for item in objects)
