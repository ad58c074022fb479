"""The dynamic batcher: concurrent items share passes, shapes never mix, the queue is bounded, errors stay local."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from argus.batching import DynamicBatcher
from argus.errors import Overloaded


class Recorder:
    """A fake model: doubles its input and remembers each batch's shape."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.batches: list[tuple[int, ...]] = []
        self.gate = gate
        self.entered = threading.Event()

    def __call__(self, batch: np.ndarray) -> list[np.ndarray]:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(5)
        self.batches.append(batch.shape)
        return [batch * 2, batch.sum(axis=tuple(range(1, batch.ndim)))]


def make(
    run: Recorder, max_batch_size: int = 4, max_queue_delay_s: float = 0.2, max_queue_size: int = 16
) -> DynamicBatcher:
    return DynamicBatcher(
        run,
        name="test",
        max_batch_size=max_batch_size,
        max_queue_delay_s=max_queue_delay_s,
        max_queue_size=max_queue_size,
    )


def busy(batcher: DynamicBatcher, run: Recorder, gate: threading.Event) -> None:
    """Puts the batcher's runner in a pass (an item of its own shape, held at the gate), so that the items submitted
    next arrive under load, as concurrent callers' do, and queue together until the gate opens."""
    batcher.submit(np.zeros(1, dtype=np.float32))
    assert run.entered.wait(5)


def test_items_submitted_together_share_one_pass_and_get_their_own_outputs() -> None:
    gate = threading.Event()
    run = Recorder(gate)
    batcher = make(run)
    try:
        busy(batcher, run, gate)
        futures = [batcher.submit(np.full((2, 3), i, dtype=np.float32)) for i in range(4)]
        gate.set()
        results = [f.result(timeout=5) for f in futures]
    finally:
        batcher.close()
    assert run.batches == [(1, 1), (4, 2, 3)]
    for i, (doubled, total) in enumerate(results):
        np.testing.assert_array_equal(doubled, np.full((2, 3), 2 * i))
        assert total == 6 * i


def test_batches_never_exceed_the_maximum() -> None:
    gate = threading.Event()
    run = Recorder(gate)
    batcher = make(run, max_batch_size=3)
    try:
        busy(batcher, run, gate)
        futures = [batcher.submit(np.zeros(2)) for _ in range(7)]
        gate.set()
        for future in futures:
            future.result(timeout=5)
    finally:
        batcher.close()
    assert sorted(shape[0] for shape in run.batches[1:]) == [1, 3, 3]


def test_an_item_alone_after_a_quiet_spell_goes_at_once() -> None:
    """Nothing arrived in the queue delay before it: no company is coming, so it does not wait for any (a delay of
    5 s would fail the 2 s timeout)."""
    run = Recorder()
    batcher = make(run, max_queue_delay_s=5.0)
    try:
        doubled, _ = batcher.submit(np.ones(3)).result(timeout=2)
    finally:
        batcher.close()
    np.testing.assert_array_equal(doubled, [2, 2, 2])
    assert run.batches == [(1, 3)]


def test_items_handed_over_together_after_a_quiet_spell_go_at_once_in_one_pass() -> None:
    """A face and its mirror image, submitted together: nothing else is coming, so they share one pass without
    waiting for company (a delay of 5 s would fail the 2 s timeout)."""
    run = Recorder()
    batcher = make(run, max_queue_delay_s=5.0)
    try:
        futures = batcher.submit_many([np.full(3, i, dtype=np.float32) for i in range(3)])
        results = [future.result(timeout=2) for future in futures]
    finally:
        batcher.close()
    assert run.batches == [(3, 3)]
    for i, (doubled, _) in enumerate(results):
        np.testing.assert_array_equal(doubled, [2 * i] * 3)


def test_a_submission_that_would_overfill_the_queue_is_refused_whole() -> None:
    gate = threading.Event()
    run = Recorder(gate)
    batcher = make(run, max_batch_size=1, max_queue_delay_s=0, max_queue_size=3)
    try:
        busy(batcher, run, gate)
        kept = batcher.submit_many([np.zeros(2), np.zeros(2)])
        with pytest.raises(Overloaded, match="brings 2"):
            batcher.submit_many([np.zeros(2), np.zeros(2)])  # 2 waiting + 2 > 3: none of the two is queued
        gate.set()
        for future in kept:
            future.result(timeout=5)
    finally:
        gate.set()
        batcher.close()
    assert run.batches == [(1, 1), (1, 2), (1, 2)]


def test_a_callers_next_item_goes_at_once_when_the_last_pass_served_it_alone() -> None:
    """One caller at a time (a detection and then its second look, close behind): the last pass served a single
    submission, so the next does not wait for company that is not coming (a delay of 5 s would fail the timeout)."""
    run = Recorder()
    batcher = make(run, max_queue_delay_s=5.0)
    try:
        batcher.submit(np.ones(3)).result(timeout=2)
        batcher.submit(np.ones(4)).result(timeout=2)  # within the delay of the one before, yet at once
    finally:
        batcher.close()
    assert run.batches == [(1, 3), (1, 4)]


def test_items_wait_for_company_while_passes_serve_several_callers() -> None:
    """Under load (the last pass served two callers, and the next item arrives within the queue delay of the one
    before) an item waits for others, and the next one to come shares its pass."""
    gate = threading.Event()
    run = Recorder(gate)
    batcher = make(run, max_batch_size=2, max_queue_delay_s=0.5)
    try:
        busy(batcher, run, gate)
        pair = [batcher.submit(np.ones(3)), batcher.submit(np.ones(3))]  # two callers: one full pass of two
        gate.set()
        for future in pair:
            future.result(timeout=5)
        first = batcher.submit(np.ones(3))  # close behind a pass of two callers: waits
        time.sleep(0.05)
        second = batcher.submit(np.ones(3))
        first.result(timeout=5), second.result(timeout=5)
    finally:
        gate.set()
        batcher.close()
    assert run.batches == [(1, 1), (2, 3), (2, 3)]


def test_a_waiting_item_waits_at_most_the_queue_delay() -> None:
    run = Recorder()
    batcher = make(run, max_queue_delay_s=0.01)
    try:
        batcher(np.ones(3))
        doubled, _ = batcher(np.ones(3))  # within the delay of the one before: it waits, 10 ms at most
    finally:
        batcher.close()
    np.testing.assert_array_equal(doubled, [2, 2, 2])
    assert run.batches == [(1, 3), (1, 3)]


def test_different_shapes_go_in_different_batches() -> None:
    gate = threading.Event()
    run = Recorder(gate)
    batcher = make(run)
    try:
        busy(batcher, run, gate)
        futures = [batcher.submit(np.zeros(shape)) for shape in [(2, 2), (3, 3), (2, 2), (3, 3)]]
        gate.set()
        for future in futures:
            future.result(timeout=5)
    finally:
        batcher.close()
    assert sorted(run.batches[1:]) == [(2, 2, 2), (2, 3, 3)]


def test_concurrent_callers_are_batched() -> None:
    run = Recorder()
    batcher = make(run, max_batch_size=8, max_queue_delay_s=0.05)
    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: batcher(np.full(4, i)), range(32)))
    finally:
        batcher.close()
    assert sum(shape[0] for shape in run.batches) == 32
    assert max(shape[0] for shape in run.batches) > 1


def test_full_queue_is_overloaded_not_unbounded() -> None:
    gate = threading.Event()
    run = Recorder(gate)
    batcher = make(run, max_batch_size=1, max_queue_delay_s=0, max_queue_size=2)
    try:
        first = batcher.submit(np.zeros(1))
        assert run.entered.wait(5)  # the worker took it and now blocks on the gate
        queued = [batcher.submit(np.zeros(1)) for _ in range(2)]
        with pytest.raises(Overloaded, match="limit 2"):
            batcher.submit(np.zeros(1))
        gate.set()
        for future in [first, *queued]:
            future.result(timeout=5)
    finally:
        gate.set()
        batcher.close()


def test_a_failing_pass_fails_its_callers_and_the_batcher_keeps_serving() -> None:
    calls = []

    def flaky(batch: np.ndarray) -> list[np.ndarray]:
        calls.append(batch.shape)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return [batch]

    batcher = DynamicBatcher(flaky, name="flaky", max_batch_size=2, max_queue_delay_s=0.01, max_queue_size=8)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            batcher(np.zeros(1))
        (out,) = batcher(np.ones(1))
    finally:
        batcher.close()
    np.testing.assert_array_equal(out, [1])
