"""API keys with scopes, collection limits and rates; the bound on concurrent calls; TLS and mutual TLS.
Everything over real gRPC servers started with a keys file of their own."""

from __future__ import annotations

import datetime
import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from argus.client import DetectorClient, FaceDbClient, JobsClient, Tls, open_channel
from argus.config import Settings
from argus.keys import KeyRing
from argus.models.store import ModelStore
from argus.proto.jobs.v1 import jobs_pb2
from argus.server import RunningServer


@pytest.fixture(scope="module")
def keyring(tmp_path_factory: pytest.TempPathFactory) -> KeyRing:
    return KeyRing(tmp_path_factory.mktemp("keys") / "keys.json")


@pytest.fixture(scope="module")
def keys(keyring: KeyRing) -> dict[str, str]:
    """The full key strings, by role."""
    made = {}
    for name, scopes, collections, rate in (
        ("admin", ["admin"], [], 0.0),
        ("door", ["verify"], ["door"], 0.0),
        ("enroller", ["enroll"], [], 0.0),
        ("internal", ["detect"], [], 0.0),
        ("jobs", ["jobs"], [], 0.0),
        ("slow", ["detect"], [], 2.0),
        ("revoked", ["admin"], [], 0.0),
    ):
        _, made[name] = keyring.create(name, scopes, collections, rate)
    keyring.revoke("revoked")
    return made


@pytest.fixture(scope="module")
def secured(
    settings: Settings,
    store: ModelStore,
    keyring: KeyRing,
    keys: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, RunningServer]]:
    """Detector, embedder, facedb (calling the other two with its own key) and jobs API, all requiring keys."""
    from argus.services.detector.server import start_detector_server
    from argus.services.embedder.server import start_embedder_server
    from argus.services.facedb.server import start_facedb_server

    secure = settings.model_copy(update={"keys_file": keyring.path, "auth": "required"})
    servers = {
        "detector": start_detector_server(secure, store, port=0),
        "embedder": start_embedder_server(secure, store, port=0),
    }
    facedb_settings = secure.model_copy(
        update={
            "detector_address": servers["detector"].address,
            "embedder_address": servers["embedder"].address,
            "api_key": keys["internal"],
            "database_url": f"sqlite:///{tmp_path_factory.mktemp('securedb') / 'facedb.sqlite3'}",
        }
    )
    servers["facedb"] = start_facedb_server(facedb_settings, port=0)
    yield servers
    for server in servers.values():
        server.stop()


def code_of(call: object, *args: object, **kwargs: object) -> grpc.StatusCode:
    try:
        call(*args, **kwargs)  # type: ignore[operator]
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def test_missing_wrong_malformed_and_revoked_keys_are_unauthenticated(
    secured: dict[str, RunningServer], keys: dict[str, str], images_dir: Path
) -> None:
    bus = images_dir / "objects/bus.jpg"
    address = secured["detector"].address
    for key in (None, "argus_deadbeef_not-the-secret", "hello", keys["revoked"], keys["internal"][:-2] + "xx"):
        with DetectorClient(address, api_key=key) as client:
            assert code_of(client.detect_objects, [bus]) is grpc.StatusCode.UNAUTHENTICATED, key
    with pytest.raises(grpc.RpcError) as caught, DetectorClient(address) as client:
        client.detect_objects([bus])
    assert "authorization: Bearer" in caught.value.details()
    with DetectorClient(address, api_key=keys["internal"]) as client:
        assert client.detect_objects([bus]).results[0].objects


def test_scopes_and_collections_decide_what_a_key_may_do(
    secured: dict[str, RunningServer], keys: dict[str, str], images_dir: Path
) -> None:
    faces = images_dir / "faces"
    address = secured["facedb"].address
    with FaceDbClient(address, api_key=keys["admin"]) as admin:
        admin.create_collection("door")
        admin.create_collection("office")
    with FaceDbClient(address, api_key=keys["enroller"]) as enroller:
        assert code_of(enroller.create_collection, "lobby") is grpc.StatusCode.PERMISSION_DENIED
        enroller.enroll("door", "obama", [faces / "obama.jpg"])  # facedb's own key reaches detector and embedder
        enroller.enroll("office", "obama", [faces / "obama.jpg"])
        assert code_of(enroller.verify, "door", "obama", faces / "obama2.jpg") is grpc.StatusCode.PERMISSION_DENIED
    with FaceDbClient(address, api_key=keys["door"]) as door:
        assert door.verify("door", "obama", faces / "obama2.jpg").match
        assert code_of(door.verify, "office", "obama", faces / "obama2.jpg") is grpc.StatusCode.PERMISSION_DENIED
        assert code_of(door.enroll, "door", "mallory", [faces / "biden.jpg"]) is grpc.StatusCode.PERMISSION_DENIED
        assert code_of(door.delete_subject, "door", "obama") is grpc.StatusCode.PERMISSION_DENIED
    with DetectorClient(secured["detector"].address, api_key=keys["jobs"]) as jobs_key:
        assert code_of(jobs_key.detect_faces, [faces / "obama.jpg"]) is grpc.StatusCode.PERMISSION_DENIED


def test_decisions_enrollments_and_deletions_are_audited(
    secured: dict[str, RunningServer], keys: dict[str, str], images_dir: Path
) -> None:
    faces = images_dir / "faces"
    address = secured["facedb"].address
    with FaceDbClient(address, api_key=keys["admin"]) as admin:
        admin.create_collection("audited")
        admin.enroll("audited", "biden", [faces / "biden.jpg"])
        admin.verify("audited", "biden", faces / "biden2.jpg")
        admin.verify("audited", "biden", faces / "obama.jpg")
        admin.identify("audited", faces / "two_people.jpg")
        admin.delete_subject("audited", "biden")
        events = list(admin.audit_events(collection="audited").events)
        assert [e.action for e in events][::-1] == [
            "enroll",
            "verify",
            "verify",
            "identify",
            "identify",
            "delete_subject",
        ]
        enroll, match, no_match = events[::-1][:3]
        assert enroll.key_name == "admin" and enroll.subject_id == "biden"
        assert match.decision == "match" and match.similarity > match.threshold > 0
        assert no_match.decision == "no_match" and no_match.similarity < no_match.threshold
        assert sorted(e.decision for e in events if e.action == "identify") == ["identified", "unknown"]
        paged = admin.audit_events(collection="audited", page_size=4)
        assert len(paged.events) == 4 and paged.next_page_token
        assert admin.prune_audit_events(older_than_days=1) == 0  # all of it is from today
    with FaceDbClient(address, api_key=keys["door"]) as door:
        assert code_of(door.audit_events) is grpc.StatusCode.PERMISSION_DENIED  # admin only


def test_rate_limits_give_resource_exhausted(
    secured: dict[str, RunningServer], keys: dict[str, str], images_dir: Path
) -> None:
    with DetectorClient(secured["detector"].address, api_key=keys["slow"]) as client:
        codes = [code_of(client.detect_faces, [images_dir / "faces/obama.jpg"]) for _ in range(6)]
    assert codes[0] is grpc.StatusCode.OK
    assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes  # 2 a second, burst 2: six quick calls cannot all pass
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}


def test_health_needs_no_key(secured: dict[str, RunningServer]) -> None:
    with grpc.insecure_channel(secured["facedb"].address) as channel:
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5).status
    assert status == health_pb2.HealthCheckResponse.SERVING


def test_keys_file_never_holds_a_usable_key(keyring: KeyRing, keys: dict[str, str]) -> None:
    stored = keyring.path.read_text()
    assert all(key.split("_")[2] not in stored for key in keys.values())
    assert keyring.path.stat().st_mode & 0o077 == 0  # readable by its owner only


def test_keys_commands(tmp_path: Path) -> None:
    env = {"ARGUS_KEYS_FILE": str(tmp_path / "keys.json"), "PATH": "/usr/bin:/bin"}

    def argus(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "argus.cli.main", "keys", *args], env=env, capture_output=True, text=True, timeout=60
        )

    created = json.loads(
        argus("create", "door-7", "--scope", "verify", "--collection", "door", "--rate", "5", "--json").stdout
    )
    assert created["key"].startswith(f"argus_{created['key_id']}_") and created["scopes"] == ["verify"]
    listed = json.loads(argus("list", "--json").stdout)
    assert [(k["name"], k["collections"], k["revoked"]) for k in listed] == [("door-7", ["door"], "")]
    assert "secret_sha256" not in listed[0]
    assert argus("revoke", "door-7").returncode == 0
    assert json.loads(argus("list", "--json").stdout)[0]["revoked"]
    assert argus("create", "x", "--scope", "root").returncode == 2  # not a scope


def test_auth_off_is_said_loudly(settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from argus.services.jobs.server import start_jobs_server

    with caplog.at_level(logging.WARNING):
        server = start_jobs_server(settings.model_copy(update={"keys_file": tmp_path / "none.json"}), port=0)
    server.stop()
    assert any("AUTH IS OFF" in record.getMessage() for record in caplog.records)


def test_concurrent_calls_are_bounded(jobs_settings: Settings, images_dir: Path) -> None:
    from argus.services.jobs.server import start_jobs_server

    server = start_jobs_server(
        jobs_settings.model_copy(update={"max_concurrent_calls": 1, "max_open_streams": 1, "auth": "off"}), port=0
    )
    try:
        with JobsClient(server.address) as client:
            job = client.submit_detection([images_dir / "objects/dog.jpg"])  # no worker: it stays queued
            watching = client.stub.WatchJob(jobs_pb2.GetJobRequest(job_id=job.job_id), timeout=10)
            assert next(watching).state  # the stream now holds the only stream slot
            assert code_of(lambda: next(client.watch(job.job_id))) is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert code_of(client.get, job.job_id) is grpc.StatusCode.OK  # streams never take a unary call's slot
            watching.cancel()
            deadline = time.monotonic() + 5
            while code_of(lambda: next(client.watch(job.job_id))) is not grpc.StatusCode.OK:
                assert time.monotonic() < deadline
                time.sleep(0.05)
    finally:
        server.stop()


# --- TLS ----------------------------------------------------------------------------------------------------------


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[0].subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files."""
    folder = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("argus test CA", ca_key, None, ca=True)
    files = {"ca": folder / "ca.pem"}
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for role in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(f"argus {role}", key, (ca, ca_key), ca=False)
        files[f"{role}_cert"] = folder / f"{role}.pem"
        files[f"{role}_key"] = folder / f"{role}.key"
        files[f"{role}_cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files[f"{role}_key"].write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return files


def _health(address: str, tls: Tls | None) -> grpc.StatusCode:
    with open_channel(address, tls=tls) as channel:
        return code_of(health_pb2_grpc.HealthStub(channel).Check, health_pb2.HealthCheckRequest(), timeout=3)


def test_tls_and_mutual_tls(jobs_settings: Settings, pki: dict[str, Path]) -> None:
    from argus.services.jobs.server import start_jobs_server

    tls_settings = jobs_settings.model_copy(
        update={"tls_cert_file": pki["server_cert"], "tls_key_file": pki["server_key"]}
    )
    server = start_jobs_server(tls_settings, port=0)
    try:
        assert _health(server.address, Tls(ca_file=pki["ca"])) is grpc.StatusCode.OK
        assert _health(server.address, None) is grpc.StatusCode.UNAVAILABLE  # plaintext cannot talk to it
    finally:
        server.stop()
    mutual = start_jobs_server(tls_settings.model_copy(update={"tls_client_ca_file": pki["ca"]}), port=0)
    try:
        assert _health(mutual.address, Tls(ca_file=pki["ca"])) is grpc.StatusCode.UNAVAILABLE  # no client certificate
        client_tls = Tls(ca_file=pki["ca"], cert_file=pki["client_cert"], key_file=pki["client_key"])
        assert _health(mutual.address, client_tls) is grpc.StatusCode.OK
        with JobsClient(mutual.address, tls=client_tls) as client:
            assert {style.name for style in client.styles()} >= {"candy", "mosaic"}
    finally:
        mutual.stop()


def test_the_gateway_serves_tls_and_calls_the_services_over_tls(jobs_settings: Settings, pki: dict[str, Path]) -> None:
    """The gateway's HTTPS takes the services' own TLS settings, mutual TLS included, and it reaches a TLS-only
    service with the client settings."""
    import http.client
    import ssl

    from argus.services.gateway.server import start_gateway
    from argus.services.jobs.server import start_jobs_server

    tls_settings = jobs_settings.model_copy(
        update={
            "tls_cert_file": pki["server_cert"],
            "tls_key_file": pki["server_key"],
            "tls_client_ca_file": pki["ca"],
            "tls_ca_file": pki["ca"],
            "tls_client_cert_file": pki["client_cert"],
            "tls_client_key_file": pki["client_key"],
        }
    )
    jobs = start_jobs_server(tls_settings, port=0)
    gateway = start_gateway(tls_settings.model_copy(update={"jobs_address": jobs.address}), 0)
    try:
        assert gateway.url.startswith("https://")

        def post(context: ssl.SSLContext | None) -> tuple[int, bytes]:
            connection = (
                http.client.HTTPSConnection("127.0.0.1", gateway.port, context=context, timeout=10)
                if context
                else http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
            )
            try:
                connection.request(
                    "POST", "/argus.jobs.v1.JobsService/ListStyles", b"{}", {"Content-Type": "application/json"}
                )
                response = connection.getresponse()
                return response.status, response.read()
            finally:
                connection.close()

        trusted = ssl.create_default_context(cafile=str(pki["ca"]))
        with pytest.raises((ssl.SSLError, ConnectionError)):
            post(trusted)  # no client certificate: the handshake is refused
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            post(None)  # plaintext HTTP to a TLS port
        trusted.load_cert_chain(pki["client_cert"], pki["client_key"])
        status, body = post(trusted)
        assert status == 200 and b"mosaic" in body  # through to the TLS-only jobs service
    finally:
        gateway.stop()
        jobs.stop()
