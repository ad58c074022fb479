"""The JobsService: queues jobs, reports on them, streams their progress. It translates; the checks are in
requests.py, the records in store.py."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from typing import ParamSpec, TypeVar

import grpc
import redis

from argus.auth import current_key
from argus.config import Settings
from argus.keys import ADMIN
from argus.proto.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from argus.services.jobs.changes import FALLBACK_POLL_S
from argus.services.jobs.requests import list_query, validate
from argus.services.jobs.store import (
    EVERYONE,
    JobRecord,
    JobStore,
    Kind,
    State,
    Viewer,
    redis_unavailable,
)
from argus.services.stylizer.styles import ARBITRARY, STYLES

log = logging.getLogger(__name__)

_Args = ParamSpec("_Args")
_Answer = TypeVar("_Answer")


def _unavailable_without_redis(method: Callable[_Args, _Answer]) -> Callable[_Args, _Answer]:
    """A unary RPC run inside redis_unavailable(): Redis being down reaches the caller as UNAVAILABLE."""

    @functools.wraps(method)
    def call(*args: _Args.args, **kwargs: _Args.kwargs) -> _Answer:
        with redis_unavailable():
            return method(*args, **kwargs)

    return call


def caller_viewer() -> Viewer:
    """The calling key owns what it submits and sees only that; admin keys, and everyone when auth is off, see all."""
    key = current_key.get()
    if key is None:
        return EVERYONE
    return Viewer(owner=key.key_id, sees_all=ADMIN in key.scopes)


STYLE_IMAGE = "(style image)"  # how ListStyles names the arbitrary style: it is asked for with an image, not a name


class JobsServicer(jobs_pb2_grpc.JobsServiceServicer):
    def __init__(self, store: JobStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.queues = {kind: store.queue(kind) for kind in Kind}
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
            kind=record.kind.name,  # the proto enums have the same names (tests/test_jobs_enums.py)
            state=record.state.name,
            progress=record.progress,
            attempts=record.attempts,
            error=record.error,
            owner=record.owner,
        )
        for stamp, seconds in (
            (job.created_at, record.created_at),
            (job.started_at, record.started_at),
            (job.finished_at, record.finished_at),
            (job.expires_at, record.expires_at),
        ):
            if seconds:  # 0: not yet, and the field stays unset
                stamp.FromNanoseconds(int(seconds * 1e9))
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
        query = list_query(request)
        records, token = self.store.list(query.page_size, request.page_token, query.state, query.kind, caller_viewer())
        return jobs_pb2.ListJobsResponse(
            jobs=[self._message(record, include_result=False) for record in records], next_page_token=token
        )

    def ListStyles(
        self, request: jobs_pb2.ListStylesRequest, context: grpc.ServicerContext
    ) -> jobs_pb2.ListStylesResponse:
        return jobs_pb2.ListStylesResponse(
            styles=[
                jobs_pb2.Style(
                    name=STYLE_IMAGE if style.name == ARBITRARY else style.name,
                    kind=style.kind,
                    model=style.model,
                    licence=style.licence,
                )
                for style in STYLES
            ]
        )
