"""The HTTP gateway against real services with auth required: every RPC callable as JSON with the same keys, scopes
and status codes as gRPC; bad requests (JSON, sizes, content types, slow bodies) refused with a clear 4xx and
nothing lost; WatchJob streamed; the stack's status; the console's files served safely."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from argus.config import Settings
from argus.keys import KeyRing
from argus.proto.common.v1 import status_pb2, status_pb2_grpc
from argus.server import RunningServer
from argus.services.gateway.server import RunningGateway, start_gateway

FACEDB = "/argus.facedb.v1.FaceDatabaseService"
JOBS = "/argus.jobs.v1.JobsService"
BODY_TIMEOUT_S = 2.0


class Http:
    """A small HTTP client for the gateway: one connection per call, as curl makes them."""

    def __init__(self, gateway: RunningGateway) -> None:
        self.port = gateway.port

    def request(
        self,
        path: str,
        body: bytes | Iterator[bytes] = b"",
        *,
        key: str | None = None,
        content_type: str = "application/json",
        method: str = "POST",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        sent = {"Content-Type": content_type, **(headers or {})}
        if key is not None:
            sent["Authorization"] = f"Bearer {key}"
        chunked = not isinstance(body, bytes)
        connection.request(method, path, body=body, headers=sent, encode_chunked=chunked)
        response = connection.getresponse()
        answer = (response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        connection.close()
        return answer

    def call(self, path: str, message: dict[str, Any], key: str | None) -> tuple[int, dict[str, Any]]:
        status, _headers, body = self.request(path, json.dumps(message).encode(), key=key)
        return status, json.loads(body) if body else {}


def photo(path: Path) -> dict[str, str]:
    return {"data": base64.b64encode(path.read_bytes()).decode()}


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[KeyRing, dict[str, str]]:
    keyring = KeyRing(tmp_path_factory.mktemp("gateway-keys") / "keys.json")
    made = {
        "admin": keyring.create("admin", ["admin"], [], 0.0)[1],
        "enroller": keyring.create("enroller", ["enroll"], [], 0.0)[1],
        "door": keyring.create("door", ["verify"], ["lobby"], 0.0)[1],
        "jobs": keyring.create("jobs", ["jobs"], [], 0.0)[1],
    }
    return keyring, made


@pytest.fixture(scope="module")
def stack(
    facedb_settings: Settings,
    keys: tuple[KeyRing, dict[str, str]],
    redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    detector_server: RunningServer,
    embedder_server: RunningServer,
) -> Iterator[tuple[RunningGateway, RunningServer]]:
    from argus.services.facedb.server import start_facedb_server
    from argus.services.jobs.server import start_jobs_server

    keyring, _made = keys
    folder = tmp_path_factory.mktemp("gateway")
    settings = facedb_settings.model_copy(
        update={
            "auth": "required",
            "keys_file": keyring.path,
            "database_url": f"sqlite:///{folder / 'facedb.sqlite3'}",
            "redis_url": redis_url,
            "results_dir": folder / "results",
            "max_message_bytes": 4 * 1024 * 1024,
            "gateway_body_timeout_s": BODY_TIMEOUT_S,
        }
    )
    facedb = start_facedb_server(settings, port=0)
    jobs = start_jobs_server(settings, port=0)
    console = folder / "console"
    (console / "assets").mkdir(parents=True)
    (console / "index.html").write_text("<!doctype html><title>Argus</title>")
    (console / "assets" / "app-1234.js").write_text("console.log('argus')")
    gateway_settings = settings.model_copy(update={"facedb_address": facedb.address, "jobs_address": jobs.address})
    gateway = start_gateway(gateway_settings, 0, console_dir=console)
    yield gateway, facedb
    gateway.stop()
    jobs.stop()
    facedb.stop()


@pytest.fixture(scope="module")
def client(stack: tuple[RunningGateway, RunningServer]) -> Http:
    return Http(stack[0])


@pytest.fixture(scope="module")
def lobby(client: Http, keys: tuple[KeyRing, dict[str, str]], images_dir: Path) -> dict[str, str]:
    """A collection with Obama enrolled, made over HTTP with the admin key."""
    made = keys[1]
    status, collection = client.call(f"{FACEDB}/CreateCollection", {"name": "lobby"}, made["admin"])
    assert status == 200, collection
    status, enrolled = client.call(
        f"{FACEDB}/Enroll",
        {
            "collection": "lobby",
            "subjectId": "obama",
            "displayName": "Barack Obama",
            "photos": [{"image": photo(images_dir / "faces/obama.jpg")}],
        },
        made["enroller"],
    )
    assert status == 200, enrolled
    return made


def faces_in(client: Http, key: str) -> int:
    status, collection = client.call(f"{FACEDB}/GetCollection", {"name": "lobby"}, key)
    assert status == 200, collection
    return int(collection.get("faceCount", 0))


def test_verify_and_identify_as_json(client: Http, lobby: dict[str, str], images_dir: Path) -> None:
    door = lobby["door"]
    status, match = client.call(
        f"{FACEDB}/Verify",
        {"collection": "lobby", "subjectId": "obama", "image": photo(images_dir / "faces/obama2.jpg")},
        door,
    )
    assert status == 200, match
    assert match["outcome"] == "MATCH" and match["decisionId"]
    status, other = client.call(
        f"{FACEDB}/Verify",
        {"collection": "lobby", "subjectId": "obama", "image": photo(images_dir / "faces/biden2.jpg")},
        door,
    )
    assert status == 200 and other["outcome"] == "NO_MATCH", other
    status, found = client.call(
        f"{FACEDB}/Identify", {"collection": "lobby", "image": photo(images_dir / "faces/obama2.jpg")}, door
    )
    assert status == 200, found
    assert found["faces"][0]["candidates"][0]["subjectId"] == "obama"


def test_the_services_keys_and_scopes_hold_over_http(client: Http, lobby: dict[str, str], images_dir: Path) -> None:
    verify = {"collection": "lobby", "subjectId": "obama", "image": photo(images_dir / "faces/obama2.jpg")}
    status, refused = client.call(f"{FACEDB}/Verify", verify, None)
    assert status == 401 and refused["code"] == "unauthenticated"
    assert "API key is required" in refused["message"]
    status, refused = client.call(f"{FACEDB}/Verify", verify, "not-a-key")
    assert status == 401 and refused["code"] == "unauthenticated"
    # a verify key may not enroll, nor use a collection it was not given
    status, refused = client.call(
        f"{FACEDB}/Enroll",
        {"collection": "lobby", "subjectId": "x", "photos": [{"image": verify["image"]}]},
        lobby["door"],
    )
    assert status == 403 and refused["code"] == "permission_denied", refused
    status, refused = client.call(f"{FACEDB}/Verify", {**verify, "collection": "garage"}, lobby["door"])
    assert status == 403 and "garage" in refused["message"]
    # x-api-key is accepted as over gRPC
    code, _headers, body = client.request(
        f"{FACEDB}/GetCollection", b'{"name": "lobby"}', headers={"x-api-key": lobby["door"]}
    )
    assert code == 200, body


def test_status_codes_follow_the_services(client: Http, lobby: dict[str, str]) -> None:
    status, missing = client.call(
        f"{FACEDB}/GetSubject", {"collection": "lobby", "subjectId": "nobody"}, lobby["admin"]
    )
    assert status == 404 and missing["code"] == "not_found", missing
    status, bad = client.call(f"{FACEDB}/CreateCollection", {"name": "no spaces"}, lobby["admin"])
    assert status == 400 and bad["code"] == "invalid_argument" and "not valid" in bad["message"]
    status, again = client.call(f"{FACEDB}/CreateCollection", {"name": "lobby"}, lobby["admin"])
    assert status == 409 and again["code"] == "already_exists"


def test_an_all_or_nothing_enroll_refusal_carries_each_photos_outcome(
    client: Http, lobby: dict[str, str], images_dir: Path
) -> None:
    status, refused = client.call(
        f"{FACEDB}/Enroll",
        {"collection": "lobby", "subjectId": "nobody", "photos": [{"image": photo(images_dir / "style/amber.jpg")}]},
        lobby["enroller"],
    )
    assert status == 400, refused
    (detail,) = refused["details"]
    assert detail["type"] == "argus.facedb.v1.EnrollResponse"
    from argus.proto.facedb.v1 import facedb_pb2

    outcome = facedb_pb2.EnrollResponse.FromString(base64.b64decode(detail["value"] + "=="))
    assert [p.status for p in outcome.photos] == [facedb_pb2.PHOTO_NO_FACE]


def test_bad_requests_get_a_clear_4xx_and_lose_nothing(client: Http, lobby: dict[str, str], images_dir: Path) -> None:
    admin = lobby["admin"]
    before = faces_in(client, admin)
    enroll = f"{FACEDB}/Enroll"
    cases: list[tuple[bytes | Iterator[bytes], str, int, str]] = [
        (b'{"collection": "lobby", "subjectId": ', "application/json", 400, "invalid_argument"),
        (b'{"collection": "lobby", "subjectID": "typo"}', "application/json", 400, "invalid_argument"),
        (b'{"collection": "lobby"}', "text/plain", 415, ""),
        (b"\x00\x00\x00\x00\x05hello", "application/grpc", 415, "invalid_argument"),
        (b"not a protobuf message at all", "application/proto", 400, "invalid_argument"),
        (b"x" * (5 * 1024 * 1024), "application/json", 413, "resource_exhausted"),  # Content-Length over the limit
        (iter([b"x" * (1 << 20)] * 5), "application/json", 413, "resource_exhausted"),  # chunked, no length
    ]
    for body, content_type, status, code in cases:
        got, _headers, answer = client.request(enroll, body, key=admin, content_type=content_type)
        assert got == status, (content_type, answer[:200])
        if code:
            assert json.loads(answer)["code"] == code, answer[:200]
    got, _headers, answer = client.request(f"{FACEDB}/NoSuchMethod", b"{}", key=admin)
    assert got == 404
    assert faces_in(client, admin) == before
    # and the gateway still serves a good call
    status, enrolled = client.call(
        enroll,
        {"collection": "lobby", "subjectId": "biden", "photos": [{"image": photo(images_dir / "faces/biden.jpg")}]},
        lobby["enroller"],
    )
    assert status == 200, enrolled
    assert faces_in(client, admin) == before + 1


def test_a_body_slower_than_the_bound_is_refused(client: Http) -> None:
    with socket.create_connection(("127.0.0.1", client.port), timeout=30) as sock:
        sock.sendall(
            f"POST {FACEDB}/GetCollection HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: 100\r\n\r\n{".encode()
        )
        started = time.monotonic()
        answer = b""
        while b"arrive" not in answer and (chunk := sock.recv(4096)):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert time.monotonic() - started < BODY_TIMEOUT_S + 5
    assert b"did not arrive within 2 s" in answer


def _connect_frames(body: bytes) -> list[tuple[int, dict[str, Any]]]:
    """The (flags, JSON) envelopes of a Connect streaming response."""
    frames = []
    while body:
        flags, size = struct.unpack(">BI", body[:5])
        frames.append((flags, json.loads(body[5 : 5 + size])))
        body = body[5 + size :]
    return frames


def test_watch_job_streams_over_http(client: Http, lobby: dict[str, str], images_dir: Path) -> None:
    status, job = client.call(
        f"{JOBS}/SubmitJob",
        {"detection": {"images": [photo(images_dir / "objects/bus.jpg")]}},
        lobby["jobs"],
    )
    assert status == 200, job
    status, cancelled = client.call(f"{JOBS}/CancelJob", {"jobId": job["jobId"]}, lobby["jobs"])
    assert status == 200, cancelled
    request = json.dumps({"jobId": job["jobId"]}).encode()
    got, headers, body = client.request(
        f"{JOBS}/WatchJob",
        struct.pack(">BI", 0, len(request)) + request,
        key=lobby["jobs"],
        content_type="application/connect+json",
    )
    assert got == 200 and headers["content-type"] == "application/connect+json"
    frames = _connect_frames(body)
    assert frames[0][1]["state"] == "CANCELLED"
    assert frames[-1] == (2, {}) or frames[-1][0] == 2  # the end-of-stream frame, no error in it
    assert "error" not in frames[-1][1]
    # a key without the jobs scope is refused in the stream's end frame
    got, _headers, body = client.request(
        f"{JOBS}/WatchJob",
        struct.pack(">BI", 0, len(request)) + request,
        key=lobby["door"],
        content_type="application/connect+json",
    )
    assert _connect_frames(body)[-1][1]["error"]["code"] == "permission_denied"


def test_stack_status_names_every_service_and_its_models(client: Http, lobby: dict[str, str]) -> None:
    status, stack = client.call("/argus.gateway.v1.GatewayService/GetStackStatus", {}, lobby["door"])
    assert status == 200, stack
    states = {s["name"]: s for s in stack["services"]}
    assert set(states) == {"detector", "embedder", "facedb", "jobs"}
    assert all(s["health"] == "SERVING" for s in states.values()), states
    assert "argus.facedb.v1.FaceDatabaseService" in states["facedb"]["status"]["services"]
    assert states["facedb"]["status"]["auth"] == "required"
    providers = {m["provider"] for s in states.values() for m in s["status"].get("models", [])}
    assert "CPUExecutionProvider" in providers
    status, refused = client.call("/argus.gateway.v1.GatewayService/GetStackStatus", {}, "not-a-key")
    assert status == 401 and refused["code"] == "unauthenticated"


def test_server_status_over_grpc_takes_any_key(
    stack: tuple[RunningGateway, RunningServer], lobby: dict[str, str]
) -> None:
    with grpc.insecure_channel(stack[1].address) as channel:
        stub = status_pb2_grpc.StatusServiceStub(channel)
        status = stub.GetServerStatus(
            status_pb2.GetServerStatusRequest(), metadata=[("authorization", f"Bearer {lobby['jobs']}")]
        )
        assert status.version and status.auth == "required"
        with pytest.raises(grpc.RpcError) as refused:
            stub.GetServerStatus(status_pb2.GetServerStatusRequest())
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_the_console_is_served_with_a_strict_policy(client: Http) -> None:
    status, headers, body = client.request("/", method="GET")
    assert status == 200 and body.startswith(b"<!doctype html>")
    assert "default-src 'self'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff" and headers["cache-control"] == "no-cache"
    status, headers, body = client.request("/assets/app-1234.js", method="GET")
    assert status == 200 and headers["content-type"].startswith("text/javascript")
    assert "immutable" in headers["cache-control"]
    for escape in ("/../../../etc/passwd", "/assets/../../test_gateway.py", "/%2e%2e/%2e%2e/etc/passwd", "/missing"):
        status, _headers, _body = client.request(escape, method="GET")
        assert status == 404, escape
    status, _headers, body = client.request("/healthz", method="GET")
    assert status == 200 and body == b"ok\n"
    status, _headers, body = client.request("/openapi.json", method="GET")
    assert status == 200 and f"{FACEDB}/Verify" in json.loads(body)["paths"]


def test_face_crops_are_for_keys_that_keep_the_gallery(client: Http, lobby: dict[str, str]) -> None:
    status, subject = client.call(f"{FACEDB}/GetSubject", {"collection": "lobby", "subjectId": "obama"}, lobby["admin"])
    assert status == 200, subject
    face_id = subject["faces"][0]["faceId"]
    status, crop = client.call(
        f"{FACEDB}/GetFaceCrop", {"collection": "lobby", "faceId": face_id, "maxSide": 48}, lobby["enroller"]
    )
    assert status == 200, crop
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(base64.b64decode(crop["image"])))
    assert image.format == "JPEG" and max(image.size) == 48 and crop["mimeType"] == "image/jpeg"
    status, refused = client.call(f"{FACEDB}/GetFaceCrop", {"collection": "lobby", "faceId": face_id}, lobby["door"])
    assert status == 403 and refused["code"] == "permission_denied"
    for bad, code in (({"faceId": face_id, "maxSide": 4096}, 400), ({"faceId": "999999"}, 404)):
        status, refused = client.call(f"{FACEDB}/GetFaceCrop", {"collection": "lobby", **bad}, lobby["enroller"])
        assert status == code, refused


def test_subjects_are_searched_by_id_or_name(client: Http, lobby: dict[str, str]) -> None:
    def search(query: str) -> tuple[list[str], int]:
        status, page = client.call(f"{FACEDB}/ListSubjects", {"collection": "lobby", "query": query}, lobby["door"])
        assert status == 200, page
        return [s["subjectId"] for s in page.get("subjects", [])], int(page.get("total", 0))

    assert search("BARACK") == (["obama"], 1)  # the display name, ignoring case
    assert search("bam") == (["obama"], 1)  # part of the ID
    assert search("%") == ([], 0)  # LIKE's wildcards match only themselves
    status, refused = client.call(f"{FACEDB}/ListSubjects", {"collection": "lobby", "query": "x" * 300}, lobby["door"])
    assert status == 400 and "query" in refused["message"]


def test_the_audit_trail_is_filtered_by_key_decision_action_and_time(
    client: Http, lobby: dict[str, str], images_dir: Path
) -> None:
    verify = {"collection": "lobby", "subjectId": "obama", "image": photo(images_dir / "faces/obama2.jpg")}
    assert client.call(f"{FACEDB}/Verify", verify, lobby["door"])[0] == 200

    def events(wait: bool = False, **filters: Any) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + (10 if wait else 0)  # the trail is written a moment after the answer
        while True:
            status, page = client.call(f"{FACEDB}/ListAuditEvents", {"collection": "lobby", **filters}, lobby["admin"])
            assert status == 200, page
            found = page.get("events", [])
            if found or time.monotonic() >= deadline:
                return found
            time.sleep(0.2)

    door_verifies = events(wait=True, key="door", action="verify", decision="match")
    assert door_verifies and all(e["keyName"] == "door" and e["decision"] == "match" for e in door_verifies)
    assert all(e["action"] == "enroll" for e in events(action="enroll"))
    assert events(key="door", action="enroll") == []
    assert events(until="2000-01-01T00:00:00Z") == []
    status, refused = client.call(
        f"{FACEDB}/ListAuditEvents",
        {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        lobby["admin"],
    )
    assert status == 400 and "until" in refused["message"]
    status, refused = client.call(f"{FACEDB}/ListAuditEvents", {"collection": "lobby"}, lobby["door"])
    assert status == 403


def test_grpc_web_is_served_from_the_same_handlers(client: Http, lobby: dict[str, str]) -> None:
    from argus.proto.facedb.v1 import facedb_pb2

    request = facedb_pb2.GetCollectionRequest(name="lobby").SerializeToString()
    status, headers, body = client.request(
        f"{FACEDB}/GetCollection",
        struct.pack(">BI", 0, len(request)) + request,
        key=lobby["door"],
        content_type="application/grpc-web+proto",
    )
    assert status == 200 and headers["content-type"].startswith("application/grpc-web")
    flags, size = struct.unpack(">BI", body[:5])
    assert flags == 0 and facedb_pb2.Collection.FromString(body[5 : 5 + size]).name == "lobby"
    assert b"grpc-status:0" in body[5 + size :].replace(b" ", b"")  # the trailers frame
