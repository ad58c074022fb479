"""What a key can see and what a refusal leaves behind, over a real face database requiring keys: a key limited to
collections sees those only (listings, the audit trail, error messages), audit events name the key by id, and
refused calls reach the log and the audit trail counted per key and reason, never one row per call."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from argus.client import FaceDbClient
from argus.config import Settings
from argus.keys import ANONYMOUS, ApiKey, KeyRing
from argus.server import RunningServer
from argus.services.facedb import audit
from argus.services.facedb.audit import AuditLog
from argus.services.facedb.storage import FaceStore


@pytest.fixture(scope="module")
def keyring(tmp_path_factory: pytest.TempPathFactory) -> KeyRing:
    return KeyRing(tmp_path_factory.mktemp("trail-keys") / "keys.json")


@pytest.fixture(scope="module")
def keys(keyring: KeyRing) -> dict[str, tuple[ApiKey, str]]:
    return {
        "boss": keyring.create("boss", ["admin"], [], 0.0),
        "alpha-admin": keyring.create("alpha-admin", ["admin"], ["alpha", "ghost"], 0.0),
        "reader": keyring.create("reader", ["verify"], [], 0.0),
    }


@pytest.fixture(scope="module")
def start_facedb(
    facedb_settings: Settings, keyring: KeyRing, keys: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[float], tuple[RunningServer, str]]]:
    """Starts a face database requiring keys, with refusals reported every report_s; returns it and its URL."""
    from argus.services.facedb.server import start_facedb_server

    started: list[RunningServer] = []

    def start(report_s: float) -> tuple[RunningServer, str]:
        url = f"sqlite:///{tmp_path_factory.mktemp('trail') / 'facedb.sqlite3'}"
        update = {"keys_file": keyring.path, "auth": "required", "database_url": url, "denial_report_s": report_s}
        started.append(start_facedb_server(facedb_settings.model_copy(update=update), port=0))
        return started[-1], url

    yield start
    for server in started:
        server.stop()


def code_of(call: Callable[..., object], *args: object, **kwargs: object) -> grpc.StatusCode:
    try:
        call(*args, **kwargs)
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def test_a_collection_limited_key_sees_its_collections_only(
    start_facedb: Callable[[float], tuple[RunningServer, str]], keys: dict[str, tuple[ApiKey, str]], images_dir: Path
) -> None:
    server, _ = start_facedb(60)
    obama = images_dir / "faces/obama.jpg"
    with FaceDbClient(server.address, api_key=keys["boss"][1]) as boss:
        for name in ("alpha", "bravo"):
            boss.create_collection(name)
            boss.enroll(name, "obama", [obama])
        assert {event.collection for event in boss.audit_events().events} >= {"alpha", "bravo"}
    with FaceDbClient(server.address, api_key=keys["alpha-admin"][1]) as limited:
        assert [collection.name for collection in limited.list_collections()] == ["alpha"]
        events = limited.audit_events().events  # once every collection's
        assert events and {event.collection for event in events} == {"alpha"}
        assert code_of(limited.audit_events, collection="bravo") is grpc.StatusCode.PERMISSION_DENIED
        assert code_of(limited.get_collection, "bravo") is grpc.StatusCode.PERMISSION_DENIED
        assert code_of(limited.get_collection, "charlie") is grpc.StatusCode.PERMISSION_DENIED  # exists or not
        with pytest.raises(grpc.RpcError) as missing:
            limited.get_collection("ghost")  # a collection it may use, but that does not exist
    assert missing.value.code() is grpc.StatusCode.NOT_FOUND
    assert "alpha" not in missing.value.details() and "bravo" not in missing.value.details()
    assert "ListCollections" in missing.value.details()


def test_audit_events_name_the_key_by_id(
    start_facedb: Callable[[float], tuple[RunningServer, str]], keys: dict[str, tuple[ApiKey, str]]
) -> None:
    server, _ = start_facedb(60)
    boss, secret = keys["boss"]
    with FaceDbClient(server.address, api_key=secret) as client:
        client.create_collection("short-lived")
        client.delete_collection("short-lived")
        (event,) = client.audit_events(collection="short-lived").events
    assert (event.action, event.key_id, event.key_name, event.count) == ("delete_collection", boss.key_id, "boss", 1)


def test_refusals_are_counted_per_key_and_reason(
    start_facedb: Callable[[float], tuple[RunningServer, str]],
    keys: dict[str, tuple[ApiKey, str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A flood of refusals within one report interval leaves one event (and one log line) per key and reason."""
    server, url = start_facedb(3600)  # nothing is reported before the server stops
    reader, limited = keys["reader"][0], keys["alpha-admin"][0]
    calls: dict[tuple[str, str], tuple[str | None, Callable[[FaceDbClient], object], int]] = {
        (ANONYMOUS, "no_key"): (None, FaceDbClient.list_collections, 30),
        (ANONYMOUS, "unknown_key"): ("argus_deadbeef_secret", FaceDbClient.list_collections, 4),
        (reader.key_id, "scope"): (keys["reader"][1], lambda client: client.create_collection("nope"), 6),
        (limited.key_id, "collection"): (keys["alpha-admin"][1], lambda client: client.get_collection("bravo"), 2),
    }
    for key, call, times in calls.values():
        with FaceDbClient(server.address, api_key=key) as client:
            for _ in range(times):
                assert code_of(call, client) in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
    with caplog.at_level(logging.WARNING):
        server.stop()  # reports what is pending before the database closes
    store = FaceStore(url)
    try:
        events, _ = AuditLog(store).list()
    finally:
        store.close()
    denied = [event for event in events if event.action == audit.DENIED]
    assert {(event.key_id, event.decision): event.count for event in denied} == {
        pair: times for pair, (_, _, times) in calls.items()
    }
    scope = next(event for event in denied if event.decision == "scope")
    assert scope.key_name == "reader" and "CreateCollection" in scope.detail
    logged = [record.getMessage() for record in caplog.records if record.getMessage().startswith("auth: key ")]
    assert len(logged) == len(calls) and any("30 calls refused" in line for line in logged)


def test_refusals_are_reported_while_the_server_runs(
    start_facedb: Callable[[float], tuple[RunningServer, str]], keys: dict[str, tuple[ApiKey, str]]
) -> None:
    server, _ = start_facedb(0.3)
    with FaceDbClient(server.address) as anonymous:
        for _ in range(5):
            assert code_of(anonymous.list_collections) is grpc.StatusCode.UNAUTHENTICATED
    with FaceDbClient(server.address, api_key=keys["boss"][1]) as boss:
        deadline = time.monotonic() + 10
        while True:
            counts: Counter[str] = Counter()
            for event in boss.audit_events().events:
                if event.action == audit.DENIED:
                    counts[f"{event.key_id}/{event.decision}"] += event.count
            if counts[f"{ANONYMOUS}/no_key"] == 5 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert counts == {f"{ANONYMOUS}/no_key": 5}
    with FaceDbClient(server.address, api_key=keys["alpha-admin"][1]) as limited:
        assert all(event.action != audit.DENIED for event in limited.audit_events().events)  # of no collection of its


def test_a_limited_key_prunes_its_collections_events_only(tmp_path: Path) -> None:
    store = FaceStore(f"sqlite:///{tmp_path / 'facedb.sqlite3'}")
    store.migrate()
    try:
        log = AuditLog(store)
        for collection in ("alpha", "bravo"):
            log.record(audit.ENROLL, collection, subject="obama")
        later = datetime.now(UTC) + timedelta(days=1)
        assert log.prune(later, collections=["alpha"]) == 1
        assert [event.collection for event in log.list()[0]] == ["bravo"]
    finally:
        store.close()


def test_an_event_names_the_actor_it_is_given_not_the_call_context(
    tmp_path: Path, keys: dict[str, tuple[ApiKey, str]]
) -> None:
    """The audit trail is domain code: the server layer passes the acting key in; the interceptor's context variable
    is never read there."""
    from argus.auth import current_key

    store = FaceStore(f"sqlite:///{tmp_path / 'facedb.sqlite3'}")
    store.migrate()
    try:
        log = AuditLog(store)
        boss, _ = keys["boss"]
        token = current_key.set(keys["reader"][0])
        try:
            log.record(audit.ENROLL, "alpha", actor=audit.Actor(boss.key_id, boss.name), subject="obama")
            log.record(audit.VERIFY, "alpha", subject="obama")
        finally:
            current_key.reset(token)
        events, more = log.list()
        assert [(event.action, event.key_id, event.key_name) for event in events] == [
            (audit.VERIFY, "", ""),
            (audit.ENROLL, boss.key_id, "boss"),
        ]
        assert more is None
    finally:
        store.close()
