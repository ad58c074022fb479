"""Auth is a mode, not a guess from the keys file: with ARGUS_AUTH=required, no active key refuses every call, a keys
file that goes missing or cannot be parsed keeps the keys last read, and every change is logged. Key names are
unique and one word. Over a real jobs server re-reading a keys file of its own."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from argus.client import JobsClient
from argus.config import Settings
from argus.errors import AlreadyExists, InvalidInput
from argus.keys import RELOAD_S, KeyRing
from argus.server import RunningServer
from argus.supervisor import quickstart_auth, up

Outcome = tuple[grpc.StatusCode, str]


def outcome(address: str, key: str | None) -> Outcome:
    """What ListStyles (any jobs key opens it) answers with this key."""
    with JobsClient(address, api_key=key) as client:
        try:
            client.styles()
        except grpc.RpcError as error:
            return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


def settled(address: str, key: str | None, wanted: grpc.StatusCode) -> Outcome:
    """The answer once the server has had time to re-read the keys file (it looks at most once a RELOAD_S)."""
    deadline = time.monotonic() + RELOAD_S + 5
    while True:
        answer = outcome(address, key)
        if answer[0] is wanted or time.monotonic() > deadline:
            return answer
        time.sleep(0.1)


@pytest.fixture
def keyring(tmp_path: Path) -> KeyRing:
    return KeyRing(tmp_path / "keys.json")


@pytest.fixture
def serve(jobs_settings: Settings, keyring: KeyRing) -> Iterator[Callable[..., RunningServer]]:
    """Starts jobs servers on the keyring's file, in the mode asked for (required unless told)."""
    from argus.services.jobs.server import start_jobs_server

    started: list[RunningServer] = []

    def start(auth: str = "required") -> RunningServer:
        started.append(start_jobs_server(jobs_settings.model_copy(update={"keys_file": keyring.path, "auth": auth}), 0))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def errors(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and text in r.getMessage()]


def test_revoking_the_last_key_refuses_every_call(
    serve: Callable[..., RunningServer], keyring: KeyRing, caplog: pytest.LogCaptureFixture
) -> None:
    _, key = keyring.create("only", ["jobs"], [], 0.0)
    server = serve()
    assert outcome(server.address, key)[0] is grpc.StatusCode.OK
    assert outcome(server.address, None)[0] is grpc.StatusCode.UNAUTHENTICATED
    with caplog.at_level(logging.INFO):
        keyring.revoke("only")
        assert settled(server.address, key, grpc.StatusCode.UNAUTHENTICATED)[0] is grpc.StatusCode.UNAUTHENTICATED
        code, details = outcome(server.address, None)  # it once opened every port
    assert code is grpc.StatusCode.UNAUTHENTICATED and "no API key is active" in details
    assert errors(caplog, "every call is refused")
    assert any("revoked or removed only" in record.getMessage() for record in caplog.records)


def test_a_keys_file_emptied_refuses_every_call(serve: Callable[..., RunningServer], keyring: KeyRing) -> None:
    _, key = keyring.create("only", ["jobs"], [], 0.0)
    server = serve()
    assert outcome(server.address, key)[0] is grpc.StatusCode.OK
    keyring.path.write_text(json.dumps({"keys": []}))
    assert settled(server.address, key, grpc.StatusCode.UNAUTHENTICATED)[0] is grpc.StatusCode.UNAUTHENTICATED
    assert outcome(server.address, None)[0] is grpc.StatusCode.UNAUTHENTICATED


def test_a_keys_file_gone_or_corrupt_keeps_the_last_good_keys(
    serve: Callable[..., RunningServer], keyring: KeyRing, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    _, key = keyring.create("only", ["jobs"], [], 0.0)
    good = keyring.path.read_text()
    server = serve()
    with caplog.at_level(logging.INFO):
        keyring.path.rename(tmp_path / "moved.json")
        time.sleep(RELOAD_S + 0.2)
        for _ in range(3):
            assert outcome(server.address, key)[0] is grpc.StatusCode.OK
            assert outcome(server.address, None)[0] is grpc.StatusCode.UNAUTHENTICATED
        assert len(errors(caplog, "is gone")) == 1  # once, not once a call

        keyring.path.write_text('{"keys": [{"key_id": ')  # a half-written file
        time.sleep(RELOAD_S + 0.2)
        for _ in range(3):
            assert outcome(server.address, key)[0] is grpc.StatusCode.OK  # once INTERNAL
            assert outcome(server.address, None)[0] is grpc.StatusCode.UNAUTHENTICATED
        assert len(errors(caplog, "cannot be read")) == 1

        keyring.path.write_text(good)
        _, second = keyring.create("second", ["jobs"], [], 0.0)
        assert settled(server.address, second, grpc.StatusCode.OK)[0] is grpc.StatusCode.OK
    assert any("readable again" in record.getMessage() for record in caplog.records)


def test_a_corrupt_keys_file_at_start_refuses_every_call(
    serve: Callable[..., RunningServer], keyring: KeyRing, caplog: pytest.LogCaptureFixture
) -> None:
    keyring.path.write_text("not json")
    with caplog.at_level(logging.INFO):
        server = serve()
        assert outcome(server.address, None)[0] is grpc.StatusCode.UNAUTHENTICATED
        assert outcome(server.address, "argus_deadbeef_secret")[0] is grpc.StatusCode.UNAUTHENTICATED
    assert errors(caplog, "cannot be read") and errors(caplog, "every call is refused")


def test_auth_off_checks_no_key_and_says_so(
    serve: Callable[..., RunningServer], keyring: KeyRing, caplog: pytest.LogCaptureFixture
) -> None:
    keyring.create("someone", ["jobs"], [], 0.0)
    with caplog.at_level(logging.WARNING):
        server = serve("off")
    assert outcome(server.address, None)[0] is grpc.StatusCode.OK
    assert any("AUTH IS OFF" in r.getMessage() and "not checked" in r.getMessage() for r in caplog.records)


def test_auth_is_required_unless_set_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARGUS_AUTH", raising=False)
    assert Settings().auth == "required"
    monkeypatch.setenv("ARGUS_AUTH", "off")
    assert Settings().auth == "off"
    monkeypatch.setenv("ARGUS_AUTH", "maybe")
    with pytest.raises(ValueError):
        Settings()


def test_argus_up_is_open_only_on_loopback_before_the_first_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ARGUS_AUTH", raising=False)
    keys = tmp_path / "keys.json"
    laptop = Settings(keys_file=keys, host="127.0.0.1", data_dir=tmp_path)
    assert quickstart_auth(laptop) == "off"
    exposed = laptop.model_copy(update={"host": "0.0.0.0"})
    assert quickstart_auth(exposed) is None
    assert up(exposed) == 1  # refuses before starting anything
    assert quickstart_auth(Settings(keys_file=keys, host="0.0.0.0", auth="off")) == "off"  # said explicitly
    KeyRing(keys).create("admin", ["admin"], [], 0.0)
    assert quickstart_auth(laptop) == "required"
    keys.write_text("{")
    assert quickstart_auth(laptop) == "required"  # a broken file fails closed


@pytest.mark.parametrize("name", ["", "two words", "door\nadmin", "tab\there", "x" * 65, "naïve", "a/b"])
def test_key_names_are_one_word(keyring: KeyRing, name: str) -> None:
    with pytest.raises(InvalidInput, match="key name"):
        keyring.create(name, ["verify"], [], 0.0)
    assert keyring.keys() == []


def test_key_names_are_unique_among_active_keys(keyring: KeyRing) -> None:
    first, _ = keyring.create("door", ["verify"], [], 0.0)
    with pytest.raises(AlreadyExists, match="door"):
        keyring.create("door", ["admin"], [], 0.0)
    stored = keyring.keys()
    assert [key.name for key in stored] == ["door"]
    keyring.revoke("door")
    second, _ = keyring.create("door", ["verify"], [], 0.0)  # a revoked key's name may be given again
    assert keyring.revoke("door").key_id == second.key_id != first.key_id


def test_keys_commands_refuse_duplicates_and_write_key_files(tmp_path: Path) -> None:
    env = {"ARGUS_KEYS_FILE": str(tmp_path / "keys.json"), "PATH": "/usr/bin:/bin"}

    def argus(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "argus.cli.main", "keys", *args], env=env, capture_output=True, text=True, timeout=60
        )

    output = tmp_path / "facedb.key"
    made = argus("create", "facedb", "--scope", "detect", "--output", str(output))
    assert made.returncode == 0, made.stderr
    key = output.read_text().strip()
    assert key.startswith("argus_") and key not in made.stdout and output.stat().st_mode & 0o077 == 0
    again = argus("create", "facedb", "--scope", "admin")
    assert again.returncode == 2 and "already named 'facedb'" in again.stderr
    assert argus("create", "other", "--scope", "detect", "--output", str(output)).returncode == 2  # never overwrites
    assert argus("create", "bad name", "--scope", "detect").returncode == 2
    assert [k["name"] for k in json.loads(argus("list", "--json").stdout)] == ["facedb"]
    (tmp_path / "keys.json").write_text("{")
    broken = argus("create", "third", "--scope", "detect")
    assert broken.returncode == 2 and "cannot be read" in broken.stderr
    assert (tmp_path / "keys.json").read_text() == "{"  # left as it was, not replaced by one key
