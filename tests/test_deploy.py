"""docker-compose.yml and the Kubernetes manifests, checked against what the Compose specification and Kubernetes
require (this machine has no Docker engine or cluster to run them): every Argus service is there, with gRPC health
checks, GPU reservations where inference runs, the volumes the data needs, and facedb in replicas that clients
balance over."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from argus.config import Settings
from argus.supervisor import SERVICES

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_TOP_LEVEL = {"version", "name", "services", "networks", "volumes", "configs", "secrets", "include"}
DEFAULTS = Settings()
GRPC_SERVICES = {
    spec.name: getattr(DEFAULTS, spec.port_setting) for spec in SERVICES if spec.port_setting and not spec.http
}
INFERENCE = {"detector", "embedder", "stylizer", "detection-worker"}
HEALTH_PORT = 8086
SCALED_IN_COMPOSE = {"facedb"}  # `docker compose up --scale facedb=2`


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
        # The health-only plaintext port: the gRPC ports themselves serve TLS only.
        health = ["CMD", "argus", "health", "--plaintext", "--address", f"127.0.0.1:{HEALTH_PORT}"]
        assert service["healthcheck"]["test"] == health, name
        assert service["environment"]["ARGUS_HEALTH_PORT"] == str(HEALTH_PORT), name
        host_port = "" if name in SCALED_IN_COMPOSE else port  # replicas: each on a host port of its own
        assert f"127.0.0.1:{host_port}:{port}" in service["ports"], name
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


def test_facedb_scales_in_compose_and_clients_reach_every_replica() -> None:
    """Replicas of facedb share nothing fixed (host port, container name), follow one PostgreSQL (SQLite is one
    process's), and every Argus client in the stack dials a service's name, which Docker's DNS resolves to each
    replica, through gRPC's dns resolver (so round_robin sees them all)."""
    services = compose()["services"]
    for name in SCALED_IN_COMPOSE:
        assert "container_name" not in services[name], name
        assert all(published.split(":")[1] == "" for published in services[name]["ports"]), name
    assert services["facedb"]["environment"]["ARGUS_DATABASE_URL"].startswith("postgresql://")
    for spec in SERVICES:
        environment = services[spec.name]["environment"]
        for name, port in GRPC_SERVICES.items():
            assert environment[f"ARGUS_{name.upper()}_ADDRESS"] == f"dns:///{name}:{port}", (spec.name, name)


def _secret_file(document: dict[str, Any], service: dict[str, Any], path: str) -> str:
    """The file in ./secrets that a service reads at `path` (/run/secrets/NAME), checking that it is mounted."""
    name = path.removeprefix("/run/secrets/")
    assert path.startswith("/run/secrets/") and name in service["secrets"], path
    source = document["secrets"][name]["file"]
    assert source.startswith("./secrets/"), source
    return source


def test_compose_is_secure_by_default() -> None:
    """Keys required, TLS on every gRPC port, a database password, loopback-only published ports, all from secret
    files that are never committed."""
    document = compose()
    services = document["services"]
    for spec in SERVICES:
        service = services[spec.name]
        environment = service["environment"]
        assert environment["ARGUS_AUTH"] == "required", spec.name
        Settings.model_validate({"auth": environment["ARGUS_AUTH"]})  # a value the services accept
        for setting in ("ARGUS_KEYS_FILE", "ARGUS_TLS_CERT_FILE", "ARGUS_TLS_KEY_FILE", "ARGUS_TLS_CA_FILE"):
            _secret_file(document, service, environment[setting])
        for published in service.get("ports", []):
            assert published.startswith("127.0.0.1:"), (spec.name, published)
    facedb = services["facedb"]["environment"]
    _secret_file(document, services["facedb"], facedb["ARGUS_API_KEY_FILE"])
    _secret_file(document, services["facedb"], facedb["ARGUS_DATABASE_PASSWORD_FILE"])
    postgres = services["postgres"]
    assert "POSTGRES_HOST_AUTH_METHOD" not in postgres["environment"]
    assert _secret_file(document, postgres, postgres["environment"]["POSTGRES_PASSWORD_FILE"]) == "./secrets/" + (
        "postgres_password"
    )
    assert "ports" not in postgres and "ports" not in services["redis"]  # reachable only inside the stack
    assert "/secrets/" in (ROOT / ".gitignore").read_text().splitlines()
    assert "ARGUS_AUTH=required" in (ROOT / "deploy/Dockerfile").read_text()


def test_kubernetes_is_secure_by_default() -> None:
    objects = kubernetes_objects()
    # Secrets are made by the operator, never shipped with a placeholder that `kubectl apply` would make real.
    assert not any(item["kind"] == "Secret" for item in objects)
    config = next(item for item in objects if item["kind"] == "ConfigMap")["data"]
    assert config["ARGUS_AUTH"] == "required" and config["ARGUS_HEALTH_PORT"] == str(HEALTH_PORT)
    for name, workload in workloads(objects).items():
        pod = workload["spec"]["template"]["spec"]
        secrets = {volume["name"]: volume["secret"]["secretName"] for volume in pod["volumes"] if "secret" in volume}
        (container,) = pod["containers"]
        mounted = {
            mount["mountPath"]: secrets[mount["name"]]
            for mount in container["volumeMounts"]
            if mount["name"] in secrets
        }
        for setting, secret in (
            ("ARGUS_KEYS_FILE", "argus-keys"),
            ("ARGUS_TLS_CERT_FILE", "argus-tls"),
            ("ARGUS_TLS_KEY_FILE", "argus-tls"),
            ("ARGUS_TLS_CA_FILE", "argus-tls"),
        ):
            folder = config[setting].rsplit("/", 1)[0]
            assert mounted.get(folder) == secret, (name, setting)
        if name in GRPC_SERVICES:  # probed on the health port: the kubelet's gRPC probe cannot speak TLS
            assert container["readinessProbe"]["grpc"]["port"] == HEALTH_PORT, name
    facedb = workloads(objects)["facedb"]["spec"]["template"]["spec"]["containers"][0]
    assert {"secretRef": {"name": "argus-database"}} in facedb["envFrom"]
    (key_file,) = [item["value"] for item in facedb["env"] if item["name"] == "ARGUS_API_KEY_FILE"]
    assert key_file.startswith("/etc/argus/facedb-key/")


def kubernetes_objects() -> list[dict[str, Any]]:
    return [
        document
        for path in sorted((ROOT / "deploy/k8s").glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]


def workloads(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each service's Deployment, or StatefulSet (facedb: a volume per replica), by service name."""
    return {
        item["metadata"]["name"].removeprefix("argus-"): item
        for item in objects
        if item["kind"] in {"Deployment", "StatefulSet"}
    }


def _selects(selector: dict[str, str], workload: dict[str, Any]) -> bool:
    return selector.items() <= workload["spec"]["template"]["metadata"]["labels"].items()


def test_kubernetes_manifests_cover_the_stack_with_grpc_probes_and_scaling() -> None:
    objects = kubernetes_objects()
    for item in objects:
        assert {"apiVersion", "kind", "metadata"} <= set(item) and item["metadata"]["name"].startswith("argus-")
    deployments = workloads(objects)
    assert set(deployments) == {spec.name for spec in SERVICES}
    for name, port in GRPC_SERVICES.items():
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        assert container["readinessProbe"]["grpc"]["port"] == HEALTH_PORT, name
        assert container["livenessProbe"]["grpc"]["port"] == HEALTH_PORT, name
        assert {"name": "grpc", "containerPort": port} in container["ports"], name
        assert _selects(deployments[name]["spec"]["selector"]["matchLabels"], deployments[name])
    services = {item["metadata"]["name"].removeprefix("argus-") for item in objects if item["kind"] == "Service"}
    assert services == set(GRPC_SERVICES) | {f"{name}-headless" for name in GRPC_SERVICES} | {"gateway"}
    (gateway,) = deployments["gateway"]["spec"]["template"]["spec"]["containers"]
    assert {"name": "http", "containerPort": DEFAULTS.gateway_port} in gateway["ports"]
    assert gateway["readinessProbe"]["tcpSocket"]["port"] == "http"
    scaled = {
        item["spec"]["scaleTargetRef"]["name"].removeprefix("argus-")
        for item in objects
        if item["kind"] == "HorizontalPodAutoscaler"
    }
    assert {"detector", "embedder", "jobs", "stylizer", "detection-worker"} <= scaled  # stateless: scale out
    config = next(item for item in objects if item["kind"] == "ConfigMap")
    # the database and Redis are external dependencies, configured, not deployed here
    assert "ARGUS_REDIS_URL" in config["data"] and "ARGUS_DATABASE_URL" not in config["data"]  # a Secret's
    stateful = [item["metadata"]["name"] for item in objects if item["kind"] == "StatefulSet"]
    assert stateful == ["argus-facedb"]  # a snapshot volume per replica; PostgreSQL and Redis are not deployed here


def test_kubernetes_runs_facedb_in_replicas_that_clients_balance_over() -> None:
    """At least two facedb replicas, never both taken down at once, each in traffic only once its indexes have caught
    up; a headless Service per gRPC API, so the name resolves to every ready pod, and clients dialing it by gRPC's
    dns resolver (round_robin over what it returns)."""
    objects = kubernetes_objects()
    everything = workloads(objects)
    facedb = everything["facedb"]
    assert facedb["spec"]["replicas"] >= 2
    (budget,) = [item for item in objects if item["kind"] == "PodDisruptionBudget"]
    assert budget["apiVersion"] == "policy/v1"
    selector = budget["spec"]["selector"]["matchLabels"]
    assert [name for name, workload in everything.items() if _selects(selector, workload)] == ["facedb"]
    assert budget["spec"].get("maxUnavailable") == 1 or budget["spec"].get("minAvailable") == 1
    (container,) = facedb["spec"]["template"]["spec"]["containers"]
    for probe in ("startupProbe", "readinessProbe"):  # the health-only port; SERVING once caught up
        assert container[probe]["grpc"] == {"port": HEALTH_PORT}, probe
    # the snapshots: on a volume of the replica's own, at ARGUS_DATA_DIR
    (claim,) = facedb["spec"]["volumeClaimTemplates"]
    assert {"name": claim["metadata"]["name"], "mountPath": "/data"} in container["volumeMounts"]
    assert "ARGUS_DATA_DIR=/data" in (ROOT / "deploy/Dockerfile").read_text()
    services = {item["metadata"]["name"]: item["spec"] for item in objects if item["kind"] == "Service"}
    assert facedb["spec"]["serviceName"] == "argus-facedb-headless"
    config = next(item for item in objects if item["kind"] == "ConfigMap")["data"]
    for name, port in GRPC_SERVICES.items():
        headless = services[f"argus-{name}-headless"]
        assert headless["clusterIP"] == "None" and _selects(headless["selector"], everything[name]), name
        assert headless["ports"] == [{"name": "grpc", "port": port, "targetPort": "grpc"}], name
        assert config[f"ARGUS_{name.upper()}_ADDRESS"] == f"dns:///argus-{name}-headless:{port}", name
