"""Jobs belong to the key that submitted them: other keys can neither see, watch, cancel nor replay them; admin keys
see every job. Against a real jobs API and redis-server with a keys file of its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from argus.client import JobsClient
from argus.config import Settings
from argus.keys import KeyRing
from argus.proto.jobs.v1 import jobs_pb2
from argus.server import RunningServer


@pytest.fixture
def owners(jobs_settings: Settings, tmp_path: Path) -> Iterator[dict[str, JobsClient]]:
    """A jobs API requiring keys, and a client for each of two jobs keys and an admin key."""
    from argus.services.jobs.server import start_jobs_server

    keyring = KeyRing(tmp_path / "keys.json")
    made = {name: keyring.create(name, [scope], [], 0.0)[1] for name, scope in (("alice", "jobs"), ("bob", "jobs"))}
    made["boss"] = keyring.create("boss", ["admin"], [], 0.0)[1]
    running: RunningServer = start_jobs_server(
        jobs_settings.model_copy(update={"keys_file": keyring.path, "auth": "required"}), port=0
    )
    clients = {name: JobsClient(running.address, timeout_s=10, api_key=key) for name, key in made.items()}
    yield clients
    for client in clients.values():
        client.close()
    running.stop()


def _code(call: object, *args: object) -> grpc.StatusCode:
    try:
        call(*args)  # type: ignore[operator]
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def test_another_keys_jobs_are_not_found(owners: dict[str, JobsClient], images_dir: Path) -> None:
    alice, bob, boss = owners["alice"], owners["bob"], owners["boss"]
    photo = images_dir / "objects/dog.jpg"
    hers = alice.submit_detection([photo], idempotency_key="upload-1")
    assert hers.owner  # the submitting key's id, for an admin to see whose job it is

    # Bob cannot read, watch, cancel or list Alice's job: to him it does not exist.
    assert _code(bob.get, hers.job_id) is grpc.StatusCode.NOT_FOUND
    assert _code(lambda job_id: list(bob.watch(job_id)), hers.job_id) is grpc.StatusCode.NOT_FOUND
    assert _code(bob.cancel, hers.job_id) is grpc.StatusCode.NOT_FOUND
    assert alice.get(hers.job_id).state == jobs_pb2.QUEUED  # Bob's cancel did nothing
    assert bob.list().jobs == []

    # The same idempotency key from Bob makes a job of Bob's own, not a handle on Alice's.
    his = bob.submit_detection([photo], idempotency_key="upload-1")
    assert his.job_id != hers.job_id and his.owner != hers.owner
    assert alice.submit_detection([photo], idempotency_key="upload-1").job_id == hers.job_id

    assert [job.job_id for job in alice.list().jobs] == [hers.job_id]
    assert [job.job_id for job in bob.list().jobs] == [his.job_id]
    # An admin key sees and manages every job.
    assert {job.job_id for job in boss.list().jobs} == {hers.job_id, his.job_id}
    assert boss.get(hers.job_id).owner == hers.owner
    assert boss.cancel(his.job_id).state == jobs_pb2.CANCELLED


def test_job_ids_are_validated_before_reaching_redis(owners: dict[str, JobsClient], images_dir: Path) -> None:
    job = owners["alice"].submit_detection([images_dir / "objects/dog.jpg"])
    # "<id>:request" names the job's stored request, a Redis string: once it gave INTERNAL (WRONGTYPE).
    for bad in (f"{job.job_id}:request", f"{job.job_id}:result", "*", "x" * 10_000, job.job_id.upper()):
        for call in (owners["alice"].get, owners["boss"].get, owners["alice"].cancel):
            with pytest.raises(grpc.RpcError) as caught:
                call(bad)
            assert caught.value.code() is grpc.StatusCode.NOT_FOUND, bad[:80]
            assert len(caught.value.details()) < 200  # never an echo of what was sent
