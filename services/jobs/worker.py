"""A worker takes jobs of one kind from the queue, runs them, stores the result, and only then acknowledges.

At-least-once: a worker that dies mid-job leaves its message pending, and a live worker reclaims it after the
visibility timeout. A job that keeps failing ends FAILED and is copied with its error to the dead-letter stream.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable

import redis
from prometheus_client import Counter, Histogram

from argus.errors import ArgusError, InvalidInput
from argus.queue import Message
from argus.services.jobs.store import EVERYONE, JobStore, Kind, State

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 60  # how often a worker removes expired result files

JOBS_DONE = Counter("argus_jobs_finished_total", "Jobs finished by this worker", ["kind", "state"])
JOB_SECONDS = Histogram(
    "argus_job_seconds", "Time running a job", ["kind"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
)

# A handler runs one job: its stored request in, its serialised result out. It reports progress (0 to 1) through
# the callback, which raises JobCancelled when the job was cancelled meanwhile.
Handler = Callable[[bytes, Callable[[float], None]], bytes]


class JobCancelled(Exception):
    """Raised inside a handler when its job was cancelled while running."""


class Worker:
    def __init__(
        self,
        kind: Kind,
        handler: Handler,
        store: JobStore,
        *,
        visibility_timeout_s: float,
        max_attempts: int,
        consumer: str | None = None,
    ) -> None:
        self.kind = kind
        self.handler = handler
        self.store = store
        self.queue = store.queue(kind)
        self.visibility_timeout_s = visibility_timeout_s
        self.max_attempts = max_attempts
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self, poll_s: float = 1.0) -> None:
        """Works until stop(); rides out Redis going away and coming back."""
        log.info("%s worker %s started", self.kind.name.lower(), self.consumer)
        ensured = False
        last_sweep = 0.0
        while not self._stop.is_set():
            try:
                if not ensured:
                    self.queue.ensure_group()
                    ensured = True
                messages = self.queue.reclaim(self.consumer, self.visibility_timeout_s)
                messages = messages or self.queue.take(self.consumer, block_s=poll_s)
                for message in messages:
                    self.process(message)
                if time.monotonic() - last_sweep > SWEEP_INTERVAL_S:
                    self.store.sweep_results()
                    last_sweep = time.monotonic()
            except (redis.RedisError, OSError) as exc:
                log.warning("redis or the result store unavailable (%s); retrying", exc)
                ensured = False
                self._stop.wait(1.0)
        log.info("%s worker %s stopped", self.kind.name.lower(), self.consumer)

    def process(self, message: Message) -> None:
        job_id = message.fields.get("job_id", "")
        try:
            record = self.store.get(job_id, EVERYONE)
        except ArgusError:
            self.queue.ack(message.message_id)  # expired or unknown: nothing left to do
            return
        if record.state.terminal:
            self.queue.ack(message.message_id)  # cancelled while queued, or a duplicate delivery
            return
        if record.cancel_requested:
            self.store.mark_cancelled(job_id)
            self.queue.ack(message.message_id)
            return
        attempt = self.store.start(job_id)
        if attempt > self.max_attempts:
            self._give_up(message, job_id, f"gave up after {self.max_attempts} attempts; last error: {record.error}")
            return
        started = time.perf_counter()
        heartbeat = threading.Event()
        beating = threading.Thread(target=self._heartbeat, args=(message.message_id, heartbeat), daemon=True)
        beating.start()
        try:
            result = self.handler(self.store.request(job_id), self._progress(job_id))
        except JobCancelled:
            self.store.mark_cancelled(job_id)
            self.queue.ack(message.message_id)
            JOBS_DONE.labels(self.kind.name, State.CANCELLED.name).inc()
            return
        except redis.RedisError:
            # Redis went away mid-job (a progress report failed): not the job's fault, so it is neither recorded as
            # the job's error nor dead-lettered on a last attempt. The message stays pending; run() waits for
            # Redis, and the job is reclaimed after the visibility timeout.
            raise
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.warning("job %s attempt %d failed: %s", job_id, attempt, error)
            if attempt >= self.max_attempts or isinstance(exc, InvalidInput):  # bad input stays bad: no retry
                self._give_up(message, job_id, error)
            else:
                self.store.retry_later(job_id, error)
                self.queue.put({"job_id": job_id})
                self.queue.ack(message.message_id)
            return
        finally:
            heartbeat.set()
            beating.join()
            JOB_SECONDS.labels(self.kind.name).observe(time.perf_counter() - started)
        self.store.succeed(job_id, result)
        self.queue.ack(message.message_id)
        JOBS_DONE.labels(self.kind.name, State.SUCCEEDED.name).inc()

    def _give_up(self, message: Message, job_id: str, error: str) -> None:
        self.store.fail(job_id, error)
        self.queue.dead_letter(message, error)
        JOBS_DONE.labels(self.kind.name, State.FAILED.name).inc()
        log.error("job %s failed for good and was dead-lettered: %s", job_id, error)

    def _progress(self, job_id: str) -> Callable[[float], None]:
        def report(fraction: float) -> None:
            if self.store.progress(job_id, fraction):
                raise JobCancelled(job_id)

        return report

    def _heartbeat(self, message_id: str, done: threading.Event) -> None:
        """Keeps the claim on a long job fresh, so only a dead worker's job is reclaimed."""
        while not done.wait(self.visibility_timeout_s / 3):
            try:
                self.queue.touch(self.consumer, message_id)
            except redis.RedisError as exc:
                log.warning("heartbeat for %s failed: %s", message_id, exc)
