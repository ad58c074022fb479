"""Job change notifications: the store publishes a job's id on Redis whenever its state or progress changes, and
one listener per process wakes the WatchJob streams waiting on that job.

An open stream then costs a sleeping thread, not a Redis read every few milliseconds. Pub/sub delivers at most
once: a notification published while the listener is reconnecting is lost, so the listener wakes every stream
when it (re)subscribes and streams read their job again after FALLBACK_POLL_S regardless.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import redis

log = logging.getLogger(__name__)

CHANNEL = "argus:job-changes"  # messages are job ids
FALLBACK_POLL_S = 2.0  # a stream reads its job at least this often, notification or not
_RECONNECT_S = 1.0


def publish(pipe: redis.client.Pipeline, job_id: str) -> None:
    """Adds the notification to a pipeline that changes the job, so it is sent with the change itself."""
    pipe.publish(CHANNEL, job_id)


class JobChanges:
    """Wakes the streams watching a job when it changes. The listener thread starts with the first watcher."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._watchers: dict[str, set[threading.Event]] = {}
        self._listener: threading.Thread | None = None
        self._stopped = threading.Event()

    @contextmanager
    def watching(self, job_id: str) -> Iterator[threading.Event]:
        """An event set whenever the job may have changed; the watcher clears it before each read of the job."""
        changed = threading.Event()
        with self._lock:
            self._watchers.setdefault(job_id, set()).add(changed)
            if self._listener is None:
                self._listener = threading.Thread(target=self._listen, name="job-changes", daemon=True)
                self._listener.start()
        try:
            yield changed
        finally:
            with self._lock:
                waiting = self._watchers.get(job_id)
                if waiting is not None:
                    waiting.discard(changed)
                    if not waiting:
                        del self._watchers[job_id]

    def _wake(self, job_id: str | None) -> None:
        """Wakes the watchers of one job, or of every job (None) when notifications may have been missed."""
        with self._lock:
            if job_id is None:
                events = [event for waiting in self._watchers.values() for event in waiting]
            else:
                events = list(self._watchers.get(job_id, ()))
        for event in events:
            event.set()

    def _listen(self) -> None:
        while not self._stopped.is_set():
            pubsub = self.client.pubsub()  # type: ignore[no-untyped-call]  # redis-py leaves pubsub() unannotated
            try:
                pubsub.subscribe(CHANNEL)
                while not self._stopped.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":  # subscribed: whatever changed before is read again
                        self._wake(None)
                    elif message["type"] == "message":
                        self._wake(message["data"])
            except redis.RedisError as exc:
                log.warning("job change notifications interrupted (%s); streams poll until they are back", exc)
                self._stopped.wait(_RECONNECT_S)
            finally:
                pubsub.close()

    def close(self) -> None:
        self._stopped.set()
        if self._listener is not None:
            self._listener.join(timeout=5)
