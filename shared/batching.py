"""A dynamic batcher in the manner of Triton's: requests that arrive together share one forward pass.

Each submitted item waits at most `max_queue_delay` for others with the same input shape; a batch goes as soon as
it holds `max_batch_size` items or its oldest item has waited long enough. Items a caller hands over together (a
face and its mirror image, a photo's faces) are queued as one submission. A submission that finds nothing else
queued goes at once when nothing suggests company is coming: it arrived after a quiet spell (nothing arrived in
the `max_queue_delay` before it), or the last pass served a single submission (one caller at a time, such as a
detection followed by its second look). Waiting then would only add to every call's latency; while passes serve
several callers, items wait for company as before. The queue is bounded: a submission that would take it past
`max_queue_size` waiting items fails whole with Overloaded instead of growing without end.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from prometheus_client import Gauge, Histogram

from argus.errors import Overloaded

if TYPE_CHECKING:
    from argus.config import Settings
    from argus.models.runtime import OnnxModel

BATCH_SIZE = Histogram(
    "argus_batch_size", "Items per forward pass", ["model"], buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)
)
QUEUE_DEPTH = Gauge("argus_batch_queue_depth", "Items waiting for a forward pass", ["model"])
QUEUE_WAIT = Histogram(
    "argus_batch_queue_wait_seconds",
    "Time an item waited before its forward pass",
    ["model"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
)

RunBatch = Callable[[np.ndarray], Sequence[np.ndarray]]


@dataclass
class _Pending:
    item: np.ndarray
    enqueued: float
    after_quiet: bool  # nothing arrived in the max_queue_delay before its submission: no company to wait for
    submission: object  # the items handed over together share this token
    future: Future[list[np.ndarray]] = field(default_factory=Future)


class DynamicBatcher:
    def __init__(
        self,
        run_batch: RunBatch,
        *,
        name: str,
        max_batch_size: int,
        max_queue_delay_s: float,
        max_queue_size: int,
    ) -> None:
        self._run_batch = run_batch
        self.name = name
        self.max_batch_size = max_batch_size
        self.max_queue_delay_s = max_queue_delay_s
        self.max_queue_size = max_queue_size
        self._pending: list[_Pending] = []
        self._last_arrival = -float("inf")
        self._last_pass_submissions = 0  # how many callers' submissions the last pass served
        self._cond = threading.Condition()
        self._closed = False
        self._worker = threading.Thread(target=self._loop, name=f"batcher-{name}", daemon=True)
        self._worker.start()

    @classmethod
    def for_model(cls, model: OnnxModel, settings: Settings, *, max_batch_size: int | None = None) -> DynamicBatcher:
        """A batcher over a model's forward pass, sized by the settings."""
        return cls(
            model.run,
            name=model.spec.name,
            max_batch_size=max_batch_size or settings.max_batch_size,
            max_queue_delay_s=settings.max_queue_delay_ms / 1000,
            max_queue_size=settings.max_queue_size,
        )

    def submit(self, item: np.ndarray) -> Future[list[np.ndarray]]:
        """Queues one item (no batch axis); the future gives that item's outputs (no batch axis)."""
        return self.submit_many([item])[0]

    def submit_many(self, items: Sequence[np.ndarray]) -> list[Future[list[np.ndarray]]]:
        """Queues items handed over together, all or none; a future per item, in order. Alone after a quiet spell
        they go at once (up to max_batch_size per pass) instead of waiting for each other."""
        now = time.monotonic()
        submission = object()
        with self._cond:
            if self._closed:
                raise Overloaded(f"{self.name} is shutting down")
            if len(self._pending) + len(items) > self.max_queue_size:
                raise Overloaded(
                    f"{self.name} has {len(self._pending)} items waiting and this call brings {len(items)} "
                    f"(limit {self.max_queue_size}); retry later"
                )
            after_quiet = now - self._last_arrival > self.max_queue_delay_s
            self._last_arrival = now
            pending = [_Pending(item, now, after_quiet, submission) for item in items]
            self._pending.extend(pending)
            QUEUE_DEPTH.labels(self.name).set(len(self._pending))
            self._cond.notify()
        return [one.future for one in pending]

    def __call__(self, item: np.ndarray) -> list[np.ndarray]:
        return self.submit(item).result()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._worker.join(timeout=10)

    def _next_batch(self) -> list[_Pending] | None:
        with self._cond:
            while True:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending:
                    return None  # closed and drained
                first = self._pending[0]
                same_shape = [p for p in self._pending if p.item.shape == first.item.shape]
                wait = first.enqueued + self.max_queue_delay_s - time.monotonic()
                one_caller = all(p.submission is first.submission for p in self._pending)
                alone = one_caller and (first.after_quiet or self._last_pass_submissions <= 1)
                if len(same_shape) >= self.max_batch_size or wait <= 0 or alone or self._closed:
                    batch = same_shape[: self.max_batch_size]
                    self._last_pass_submissions = len({id(p.submission) for p in batch})
                    taken = {id(p) for p in batch}
                    self._pending = [p for p in self._pending if id(p) not in taken]
                    QUEUE_DEPTH.labels(self.name).set(len(self._pending))
                    return batch
                self._cond.wait(wait)

    def _loop(self) -> None:
        while (batch := self._next_batch()) is not None:
            started = time.monotonic()
            for pending in batch:
                QUEUE_WAIT.labels(self.name).observe(started - pending.enqueued)
            BATCH_SIZE.labels(self.name).observe(len(batch))
            try:
                # A batch of one is a view of its item: stacking would copy a tensor of megabytes for nothing.
                inputs = batch[0].item[None] if len(batch) == 1 else np.stack([p.item for p in batch])
                outputs = self._run_batch(inputs)
            except Exception as exc:  # the callers get the error; the batcher keeps serving
                for pending in batch:
                    pending.future.set_exception(exc)
                continue
            for index, pending in enumerate(batch):
                pending.future.set_result([output[index] for output in outputs])
