"""A time limit for fitting, set by whoever runs the fit (tuning), honoured by models
that train in steps.

Tuning runs each trial inside :func:`fit_deadline`; a model that trains in epochs,
sweeps or boosting rounds asks :func:`seconds_left` (or uses one of the callbacks here)
and stops early when time is up, keeping what it has learnt so far. So one slow trial
cannot overrun a tuning budget. Outside a deadline nothing changes: every function here
then says "no limit".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_deadline: ContextVar[float | None] = ContextVar("attune_fit_deadline", default=None)


class OutOfTime(Exception):
    """Raised inside a library's training loop to stop it when the deadline has passed."""


@contextmanager
def fit_deadline(seconds: float | None) -> Iterator[None]:
    """Fits inside the block should end within ``seconds`` from now (None: no limit).

    Nested deadlines keep the earlier one.
    """
    if seconds is None:
        yield
        return
    end = time.monotonic() + max(seconds, 0.0)
    outer = _deadline.get()
    token = _deadline.set(end if outer is None else min(outer, end))
    try:
        yield
    finally:
        _deadline.reset(token)


def seconds_left() -> float | None:
    """Seconds until the current deadline (may be negative); None without one."""
    end = _deadline.get()
    return None if end is None else end - time.monotonic()


def out_of_time() -> bool:
    left = seconds_left()
    return left is not None and left <= 0


def capped(seconds: float) -> float:
    """``seconds``, or the time left before the deadline if that is shorter (never < 0)."""
    left = seconds_left()
    return seconds if left is None else max(min(seconds, left), 0.0)


def implicit_callback() -> Callable[..., None] | None:
    """A per-iteration callback for ``implicit``'s ``fit`` that stops it at the deadline
    (by raising :class:`OutOfTime`; the factors learnt so far stay in the solver)."""
    if _deadline.get() is None:
        return None

    def stop_when_late(*_args: Any) -> None:
        if out_of_time():
            raise OutOfTime

    return stop_when_late


def lightgbm_callback() -> Callable[[Any], None] | None:
    """A LightGBM training callback that ends boosting at the deadline, keeping the
    rounds already built."""
    if _deadline.get() is None:
        return None

    def stop_when_late(env: Any) -> None:
        if out_of_time():
            import lightgbm

            raise lightgbm.callback.EarlyStopException(env.iteration, env.evaluation_result_list)

    stop_when_late.order = 40  # type: ignore[attr-defined]  (after LightGBM's own)
    return stop_when_late
