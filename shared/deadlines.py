"""The deadline of the call being served, so that the calls a server makes on its behalf give up with its caller."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from argus.errors import DeadlineExceeded

_deadline: ContextVar[float | None] = ContextVar("argus_call_deadline", default=None)  # time.monotonic() value


@contextmanager
def serving_until(remaining_s: float | None) -> Iterator[None]:
    """Within this block, downstream calls end when the call being served, with remaining_s left, must end."""
    token = _deadline.set(None if remaining_s is None else time.monotonic() + remaining_s)
    try:
        yield
    finally:
        _deadline.reset(token)


def time_left(timeout_s: float) -> float:
    """The timeout for a downstream call: timeout_s, cut to what the caller being served has left.

    Raises DeadlineExceeded when nothing is left: the caller has given up, so the work is not worth starting.
    """
    deadline = _deadline.get()
    if deadline is None:
        return timeout_s
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlineExceeded("the caller's deadline passed before the work could be done")
    return min(timeout_s, left)
