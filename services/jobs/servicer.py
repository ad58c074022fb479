"""The JobsService: checks and queues jobs, reports on them, streams their progress."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc
import redis
from google.protobuf import timestamp_pb2

from argus.auth import ADMIN, current_key
from argus.config import Settings
from argus.errors import InvalidInput
from argus.models.manifest import MANIFEST
from argus.proto.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from argus.queue import StreamQueue
from argus.services.jobs.changes import FALLBACK_POLL_S
from argus.services.jobs.handlers import STYLE_PREFIX, fixed_style_names, validate
from argus.services.jobs.store import (
    DEAD_LETTER_STREAM,
    EVERYONE,
    JobRecord,
    JobStore,
    Kind,
    State,
    Viewer,
    redis_unavailable,
)

log = logging.getLogger(__name__)

_Rpc = TypeVar("_Rpc", bound=Callable[..., Any])


def _unavailable_without_redis(method: _Rpc) -> _Rpc:
    """A unary RPC run inside redis_unavailable(): Redis being down reaches the caller as UNAVAILABLE."""

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        with redis_unavailable():
            return method(*args, **kwargs)

    return call  # type: ignore[return-value]


def caller_viewer() -> Viewer:
    """The calling key owns what it submits and sees only that; admin keys, and everyone when auth is off, see all."""
    key = current_key.get()
    if key is None:
        return EVERYONE
    return Viewer(owner=key.key_id, sees_all=ADMIN in key.scopes)


def _timestamp(seconds: float) -> timestamp_pb2.Timestamp | None:
    if not seconds:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


class JobsServicer(jobs_pb2_grpc.JobsServiceServicer):
    def __init__(self, store: JobStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.queues = {kind: StreamQueue(store.client, kind.stream, DEAD_LETTER_STREAM) for kind in Kind}
        # The consumer groups are made on the first submit when Redis is down now: the API starts regardless (its
        # health says NOT_SERVING until Redis answers) instead of crashing at start.
        self._groups_ready = False
        try:
            self._ensure_groups()
        except redis.RedisError as exc:
            log.warning("Redis is not reachable at start (%s); the queues will be set up on the first submit", exc)

    def _ensure_groups(self) -> None:
        if not self._groups_ready:
            for queue in self.queues.values():
                queue.ensure_group()
            self._groups_ready = True

    def _message(self, record: JobRecord, include_result: bool) -> jobs_pb2.Job:
        job = jobs_pb2.Job(
            job_id=record.job_id,
            kind=int(record.kind),
            state=int(record.state),
            progress=record.progress,
            created_at=_timestamp(record.created_at),
            started_at=_timestamp(record.started_at),
            finished_at=_timestamp(record.finished_at),
            attempts=record.attempts,
            error=record.error,
            expires_at=_timestamp(record.expires_at),
            owner=record.owner,
        )
        if include_result and record.state == State.SUCCEEDED:
            data = self.store.result(record)
            if data is not None:
                if record.kind == Kind.DETECTION:
                    job.detection.ParseFromString(data)
                else:
                    job.stylization.ParseFromString(data)
        return job

    @_unavailable_without_redis
    def SubmitJob(self, request: jobs_pb2.SubmitJobRequest, context: grpc.ServicerContext) -> jobs_pb2.Job:
        kind = validate(request, self.settings)
        self._ensure_groups()
        record, _ = self.store.create(
            kind,
            request.SerializeToString(),
            request.idempotency_key,
            stream=self.queues[kind].stream,
            owner=caller_viewer().owner,
        )
        return self._message(record, include_result=False)

    @_unavailable_without_redis
    def GetJob(self, request: jobs_pb2.GetJobRequest, context: grpc.ServicerContext) -> jobs_pb2.Job:
        return self._message(self.store.get(request.job_id, caller_viewer()), request.include_result)

    def WatchJob(self, request: jobs_pb2.GetJobRequest, context: grpc.ServicerContext) -> Iterator[jobs_pb2.Job]:
        """Reads the job when a change of it is published (or FALLBACK_POLL_S passes) and sleeps in between, so an
        open stream costs no CPU."""
        last = None
        viewer = caller_viewer()
        with self.store.changes.watching(request.job_id) as changed:
            context.add_callback(changed.set)  # a cancelled stream wakes at once and gives back its slot
            while context.is_active():
                changed.clear()  # before the read: a change during it wakes the next wait
                with redis_unavailable():
                    record = self.store.get(request.job_id, viewer)
                    seen = (record.state, record.progress, record.attempts, record.error)
                    message = None
                    if seen != last:
                        message = self._message(record, request.include_result and record.state.terminal)
                if message is not None:
                    last = seen
                    yield message
                if record.state.terminal:
                    return
                changed.wait(FALLBACK_POLL_S)

    @_unavailable_without_redis
    def CancelJob(self, request: jobs_pb2.GetJobRequest, context: grpc.ServicerContext) -> jobs_pb2.Job:
        return self._message(self.store.cancel(request.job_id, caller_viewer()), include_result=False)

    @_unavailable_without_redis
    def ListJobs(self, request: jobs_pb2.ListJobsRequest, context: grpc.ServicerContext) -> jobs_pb2.ListJobsResponse:
        if request.state and request.state not in State._value2member_map_:
            raise InvalidInput(f"unknown job state {request.state}")
        if request.kind and request.kind not in Kind._value2member_map_:
            raise InvalidInput(f"unknown job kind {request.kind}")
        records, token = self.store.list(
            request.page_size,
            request.page_token,
            State(request.state) if request.state else None,
            Kind(request.kind) if request.kind else None,
            caller_viewer(),
        )
        return jobs_pb2.ListJobsResponse(
            jobs=[self._message(record, include_result=False) for record in records], next_page_token=token
        )

    def ListStyles(
        self, request: jobs_pb2.ListStylesRequest, context: grpc.ServicerContext
    ) -> jobs_pb2.ListStylesResponse:
        styles = [
            jobs_pb2.Style(
                name=name,
                kind="fixed",
                model=MANIFEST[STYLE_PREFIX + name].ref,
                licence=MANIFEST[STYLE_PREFIX + name].licence,
            )
            for name in fixed_style_names()
        ]
        arbitrary = MANIFEST.get("magenta-style-transfer")
        if arbitrary is not None:
            styles.append(
                jobs_pb2.Style(name="(style image)", kind="arbitrary", model=arbitrary.ref, licence=arbitrary.licence)
            )
        return jobs_pb2.ListStylesResponse(styles=styles)
