"""Job records and results in Redis (large results in a folder), with their life cycle and expiry.

A record is a Redis hash. Its state moves QUEUED -> RUNNING -> SUCCEEDED | FAILED | CANCELLED (RUNNING may go
back to QUEUED for a retry). When a job ends, its record and result get a time to live; results too large for
Redis are files in the result store, swept once they expire.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import cast

import redis
from redis.typing import EncodableT, FieldT

from argus.errors import DependencyUnavailable, NotFound
from argus.files import atomic_write
from argus.paging import decode_page_token, encode_page_token
from argus.queue import StreamQueue
from argus.services.jobs.changes import JobChanges, publish

PREFIX = "argus:"
INDEX = f"{PREFIX}jobs"  # sorted set of every job id by creation time, for listing
IDEMPOTENCY_TTL_S = 24 * 3600
REDIS_CONNECTIONS = 64  # per client of a process; a Redis call takes well under a millisecond
JOB_ID = re.compile(r"[0-9a-f]{32}")  # what create() hands out: uuid4().hex
PAGE_TAG = "o"  # a listing's page token carries its offset in the index (argus.paging)
MAX_OFFSET = 10**15 - 1  # a larger one is refused: ZREVRANGE would get a number beyond Redis's 64-bit range


def _owner_index(owner: str) -> str:
    """Sorted set of one owner's job ids by creation time, so a listing reads only that owner's jobs."""
    return f"{INDEX}:owner:{owner}"


@dataclass(frozen=True)
class Viewer:
    """Whose jobs a call may see. A job belongs to the API key that submitted it (`owner`, its key id); admin keys,
    and every caller when auth is off, see all jobs. Another owner's job is answered as not found, never as
    forbidden, so its existence is not revealed."""

    owner: str = ""
    sees_all: bool = False

    def may_see(self, owner: str) -> bool:
        return self.sees_all or owner == self.owner


EVERYONE = Viewer(sees_all=True)  # the workers, and callers when auth is off


class State(IntEnum):
    """Names and values match argus.jobs.v1.JobState (tests/test_jobs_enums.py checks), which the domain does not
    import."""

    QUEUED = 1
    RUNNING = 2
    SUCCEEDED = 3
    FAILED = 4
    CANCELLED = 5

    @property
    def terminal(self) -> bool:
        return self in (State.SUCCEEDED, State.FAILED, State.CANCELLED)


class Kind(IntEnum):
    """Names and values match argus.jobs.v1.JobKind (tests/test_jobs_enums.py checks)."""

    DETECTION = 1
    STYLIZATION = 2

    @property
    def stream(self) -> str:
        return f"{PREFIX}stream:{self.name.lower()}"


DEAD_LETTER_STREAM = f"{PREFIX}stream:dead"


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    kind: Kind
    state: State
    progress: float
    created_at: float
    started_at: float
    finished_at: float
    attempts: int
    error: str
    cancel_requested: bool
    expires_at: float
    result_location: str  # "", "redis" or "file"
    owner: str = ""  # the submitting key's id; "" when auth was off

    @classmethod
    def from_hash(cls, job_id: str, data: dict[str, str]) -> JobRecord:
        return cls(
            job_id=job_id,
            kind=Kind(int(data["kind"])),
            state=State(int(data["state"])),
            progress=float(data.get("progress", 0)),
            created_at=float(data.get("created_at", 0)),
            started_at=float(data.get("started_at", 0)),
            finished_at=float(data.get("finished_at", 0)),
            attempts=int(data.get("attempts", 0)),
            error=data.get("error", ""),
            cancel_requested=data.get("cancel_requested") == "1",
            expires_at=float(data.get("expires_at", 0)),
            result_location=data.get("result_location", ""),
            owner=data.get("owner", ""),
        )


@contextmanager
def redis_unavailable() -> Iterator[None]:
    """Redis down, restarting (still loading its data) or too slow to answer is DependencyUnavailable, which a
    caller of the API gets as UNAVAILABLE and may retry. The jobs API runs every call inside this; workers do not:
    they catch Redis errors themselves, keep the message pending and retry (worker.py)."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise DependencyUnavailable(f"the job queue (Redis) is unavailable: {exc}; retry shortly") from exc


def _client(url: str, *, decode_responses: bool) -> redis.Redis:
    """A client whose calls wait (up to the socket timeout) for one of its REDIS_CONNECTIONS when all are busy, as
    when a job ends and every stream watching it reads it at once, instead of failing with "Too many connections"."""
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=REDIS_CONNECTIONS,
        timeout=10,
        decode_responses=decode_responses,
        socket_timeout=10,
        health_check_interval=30,
    )
    return redis.Redis(connection_pool=pool)


def _key(job_id: str) -> str:
    return f"{PREFIX}job:{job_id}"


def _request_key(job_id: str) -> str:
    return f"{PREFIX}job:{job_id}:request"


def _result_key(job_id: str) -> str:
    return f"{PREFIX}job:{job_id}:result"


class JobStore:
    """redis-py types every reply as bytes | str whichever way a client decodes: `client` answers str, `binary`
    bytes, and each read below casts its reply to that, once."""

    def __init__(self, url: str, results_dir: Path, result_ttl_s: float, result_inline_bytes: int) -> None:
        self.client = _client(url, decode_responses=True)
        self.binary = _client(url, decode_responses=False)
        self.results_dir = results_dir
        self.result_ttl_s = result_ttl_s
        self.result_inline_bytes = result_inline_bytes
        self.changes = JobChanges(self.client)  # every change below is published on it, for WatchJob

    def queue(self, kind: Kind) -> StreamQueue:
        """The work queue of this kind's jobs; what cannot succeed goes to DEAD_LETTER_STREAM."""
        return StreamQueue(self.client, kind.stream, DEAD_LETTER_STREAM)

    # --- creating and reading -------------------------------------------------------------------------------

    def create(
        self, kind: Kind, request: bytes, idempotency_key: str = "", stream: str | None = None, owner: str = ""
    ) -> tuple[JobRecord, bool]:
        """Stores a new queued job of this owner, or returns the job an earlier submit of the same owner with the
        same idempotency key created.

        Returns (record, created). The key is claimed atomically, so two concurrent retries make one job; keys are
        scoped by owner, so another key's identical idempotency key makes a job of its own. With a stream, the job's
        message is added to it in the same MULTI/EXEC transaction as the record: Redis failing half-way can never
        leave a QUEUED job that no worker will ever be given.
        """
        job_id = uuid.uuid4().hex
        if idempotency_key:
            key = f"{PREFIX}idempotency:{owner}:{idempotency_key}"
            claimed = self.client.set(key, job_id, nx=True, ex=IDEMPOTENCY_TTL_S)
            if not claimed:
                existing = cast("str | None", self.client.get(key))
                if existing and self.client.exists(_key(existing)):
                    return self.get(existing, EVERYONE), False
                # The key names a job that was never stored (Redis failed between the two steps) or has expired:
                # this submit makes the job instead of answering NOT_FOUND to every retry for a day.
                self.client.set(key, job_id, ex=IDEMPOTENCY_TTL_S)
        now = time.time()
        fields: dict[FieldT, EncodableT] = {
            "kind": int(kind),
            "state": int(State.QUEUED),
            "created_at": now,
            "attempts": 0,
            "owner": owner,
        }
        pipe = self.binary.pipeline()  # transaction=True: MULTI ... EXEC
        pipe.set(_request_key(job_id), request)
        pipe.hset(_key(job_id), mapping=fields)
        pipe.zadd(INDEX, {job_id: now})
        pipe.zadd(_owner_index(owner), {job_id: now})
        if stream is not None:
            pipe.xadd(stream, {"job_id": job_id})
        pipe.execute()
        # The record as just written, read back as a get would (without the round trip a get would cost).
        return JobRecord.from_hash(job_id, {str(name): str(value) for name, value in fields.items()}), True

    def get(self, job_id: str, viewer: Viewer) -> JobRecord:
        """The job, if it exists and the viewer may see it; NotFound alike for both, so IDs cannot be probed."""
        if not JOB_ID.fullmatch(job_id):  # no such job can exist; and never a Redis key of another kind
            raise NotFound("no such job: a job ID is the 32 lowercase hexadecimal digits SubmitJob returned")
        data = cast("dict[str, str]", self.client.hgetall(_key(job_id)))
        if not data or not viewer.may_see(data.get("owner", "")):
            raise NotFound(f"no job {job_id}: it never existed, it finished and expired, or it is not yours")
        return JobRecord.from_hash(job_id, data)

    def request(self, job_id: str) -> bytes:
        data = cast("bytes | None", self.binary.get(_request_key(job_id)))
        if data is None:
            raise NotFound(f"job {job_id} has no request stored")
        return data

    def result(self, record: JobRecord) -> bytes | None:
        if record.result_location == "redis":
            return cast("bytes | None", self.binary.get(_result_key(record.job_id)))
        if record.result_location == "file":
            path = self.results_dir / f"{record.job_id}.result"
            return path.read_bytes() if path.is_file() else None
        return None

    def list(
        self, page_size: int, page_token: str, state: State | None, kind: Kind | None, viewer: Viewer
    ) -> tuple[list[JobRecord], str]:
        """The viewer's jobs (every job for one who sees all), newest first, `page_size` (checked at the boundary,
        argus.paging) at a time. Records that expired are dropped from the index on the way."""
        assert page_size >= 1, page_size
        offset = decode_page_token(PAGE_TAG, page_token, MAX_OFFSET)
        index = INDEX if viewer.sees_all else _owner_index(viewer.owner)
        found: list[JobRecord] = []
        while len(found) < page_size:
            ids = cast("list[str]", self.client.zrevrange(index, offset, offset + 4 * page_size - 1))
            if not ids:
                return found, ""
            pipe = self.client.pipeline()
            for job_id in ids:
                pipe.hgetall(_key(job_id))
            hashes = cast("list[dict[str, str]]", pipe.execute())
            for job_id, data in zip(ids, hashes, strict=True):
                offset += 1
                if not data:
                    self.client.zrem(index, job_id)
                    offset -= 1
                    continue
                record = JobRecord.from_hash(job_id, data)
                if (state is None or record.state == state) and (kind is None or record.kind == kind):
                    found.append(record)
                    if len(found) == page_size:
                        break
        more = self.client.zcard(index) > offset
        return found, encode_page_token(PAGE_TAG, offset) if more else ""

    # --- life cycle -----------------------------------------------------------------------------------------

    def start(self, job_id: str) -> int:
        """Marks the job running for one more attempt; returns the attempt number."""
        pipe = self.client.pipeline()
        pipe.hincrby(_key(job_id), "attempts", 1)
        pipe.hset(_key(job_id), mapping={"state": int(State.RUNNING), "started_at": time.time(), "progress": 0})
        publish(pipe, job_id)
        attempts, _, _ = pipe.execute()
        return int(attempts)

    def progress(self, job_id: str, fraction: float) -> bool:
        """Records progress; returns whether a cancel was asked for meanwhile."""
        pipe = self.client.pipeline()
        pipe.hset(_key(job_id), "progress", round(float(fraction), 4))
        pipe.hget(_key(job_id), "cancel_requested")
        publish(pipe, job_id)
        _, cancel, _ = pipe.execute()
        return cast("str | None", cancel) == "1"

    def retry_later(self, job_id: str, error: str) -> None:
        pipe = self.client.pipeline()
        pipe.hset(_key(job_id), mapping={"state": int(State.QUEUED), "error": error, "progress": 0})
        publish(pipe, job_id)
        pipe.execute()

    def succeed(self, job_id: str, result: bytes) -> None:
        """Stores the result first, then marks the job done: a job is never SUCCEEDED without its result."""
        if len(result) <= self.result_inline_bytes:
            self.binary.set(_result_key(job_id), result, ex=int(self.result_ttl_s) + 1)
            location = "redis"
        else:
            self._write_file(job_id, result)
            location = "file"
        self._finish(job_id, State.SUCCEEDED, {"progress": 1, "result_location": location, "error": ""})

    def fail(self, job_id: str, error: str) -> None:
        self._finish(job_id, State.FAILED, {"error": error})

    def cancel(self, job_id: str, viewer: Viewer) -> JobRecord:
        """A queued job ends now; a running one is flagged and ends when its worker next reports progress."""
        record = self.get(job_id, viewer)
        if record.state == State.QUEUED:
            self._finish(job_id, State.CANCELLED, {})
        elif record.state == State.RUNNING:
            self.client.hset(_key(job_id), "cancel_requested", "1")
        return self.get(job_id, viewer)

    def mark_cancelled(self, job_id: str) -> None:
        self._finish(job_id, State.CANCELLED, {})

    def _finish(self, job_id: str, state: State, fields: Mapping[FieldT, EncodableT]) -> None:
        now = time.time()
        ttl = int(self.result_ttl_s) + 1
        pipe = self.client.pipeline()
        pipe.hset(_key(job_id), mapping={**fields, "state": int(state), "finished_at": now, "expires_at": now + ttl})
        pipe.expire(_key(job_id), ttl)
        pipe.expire(_request_key(job_id), ttl)
        publish(pipe, job_id)
        pipe.execute()

    def _write_file(self, job_id: str, data: bytes) -> None:
        # Whole or not at all, so a reader never sees half a result; private: it holds what was found in people's
        # photos.
        atomic_write(self.results_dir / f"{job_id}.result", data, private=True)

    def sweep_results(self) -> int:
        """Removes result files whose job record has expired; returns how many."""
        if not self.results_dir.is_dir():
            return 0
        removed = 0
        for path in self.results_dir.glob("*.result"):
            if not self.client.exists(_key(path.stem)):
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False

    def close(self) -> None:
        self.changes.close()
        self.client.close()
        self.binary.close()
