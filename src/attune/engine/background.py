"""Refreshes a server repeats (a newer model version, trending counts, unavailable
items) run beside the requests, one at a time each, never inside a request."""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)


BUILD_SWITCH_SECONDS = 0.0005
FULL_PASS_HELD_OFF = 1 << 30
"""The oldest generation's threshold while building: no full pass starts."""

_building = 0
_building_lock = threading.Lock()
_thresholds: tuple[int, ...] = gc.get_threshold()
_giving_way = 0
_giving_way_lock = threading.Lock()
_switch_interval = 0.005


@contextmanager
def giving_way() -> Iterator[None]:
    """Around long CPU work beside the requests (on a background or worker thread): the
    interpreter hands the GIL over every :data:`BUILD_SWITCH_SECONDS` rather than every
    5 ms. A request gives the GIL up at each database read and would otherwise wait up
    to a whole interval to get it back from the busy thread, every time. Nestable; the
    interval is the process's, so it is restored when the last holder leaves."""
    global _giving_way, _switch_interval
    with _giving_way_lock:
        if _giving_way == 0:
            _switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(min(_switch_interval, BUILD_SWITCH_SECONDS))
        _giving_way += 1
    try:
        yield
    finally:
        with _giving_way_lock:
            _giving_way -= 1
            if _giving_way == 0:
                sys.setswitchinterval(_switch_interval)


@contextmanager
def building_long_lived() -> Iterator[None]:
    """Around building what lives until the next refresh (a catalog snapshot and its
    views, a model version's lookups): hundreds of thousands of new objects.

    Each burst of new objects sets off full passes of the cyclic garbage collector over
    every object not frozen, the half-built ones included: 100–550 ms each with the GIL
    held, during which no request of the process moves (measured at 100,000 items).
    So full passes are held off while building (the oldest generation's threshold is
    raised out of reach); the young passes go on, so the requests' cyclic garbage of
    those seconds is freed as usual and the new objects are walked a few hundred at a
    time as they age (at 100,000 items, a catalog change's longest pause 96–129 ms →
    16–30 ms). What was built is then frozen (``gc.freeze``, no walk), as the
    server freezes what it loaded at start: full passes skip it. Frozen objects are
    still freed when nothing refers to them. Use it only around a build that happens (a
    changed catalog, a new version), not around every periodic check.

    While building, the GIL changes hands sooner, as with :func:`giving_way`."""
    global _building, _thresholds
    with _building_lock:
        if _building == 0:
            _thresholds = gc.get_threshold()
            gc.set_threshold(*_thresholds[:2], FULL_PASS_HELD_OFF)
        _building += 1
    try:
        with giving_way():
            yield
    finally:
        with _building_lock:
            _building -= 1
            if _building == 0:
                if gc.isenabled():
                    gc.freeze()  # first: a full pass due now would walk all that was built
                gc.set_threshold(*_thresholds)


class BackgroundRefresh:
    """Runs ``job`` on a daemon thread unless a run of it is already going.

    A failing run is logged (``what`` names it) and ``on_error`` called, so the caller
    keeps what it had and tries again after its period."""

    def __init__(
        self,
        job: Callable[[], None],
        what: str,
        on_error: Callable[[], None] | None = None,
    ) -> None:
        self.job = job
        self.what = what
        self.on_error = on_error
        self._running = False
        self._again = False
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._running

    def start(self, again: bool = False) -> None:
        """Start a run unless one is going; with ``again``, a run already going is
        followed by one more (it may have read its source before the change that asks)."""
        with self._lock:
            if self._running:
                self._again = self._again or again
                return
            self._running = True
        threading.Thread(target=self._run, name=f"attune-{self.what}", daemon=True).start()

    def _run(self) -> None:
        finished = False
        try:
            while not finished:
                try:
                    self.job()
                except Exception:
                    log.exception("could not refresh %s; keeping what was there", self.what)
                    if self.on_error is not None:
                        self.on_error()
                with self._lock:
                    finished = not self._again
                    self._again = False
                    self._running = not finished
        finally:
            if not finished:  # the job raised past Exception: let a later start run it
                self._running = False

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no run is going; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._running:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True


class Ticker:
    """Calls ``tick`` every ``period`` seconds on a daemon thread until :meth:`stop`.

    The periodic checks (a newer model version, a changed catalog) are started by the
    requests that find them due; on an idle server nothing would start them, and the
    first requests after a quiet spell (a rollback at night) would still be answered
    with what was held before. A failing tick is logged and the next one goes on."""

    def __init__(self, tick: Callable[[], None], period: float, what: str) -> None:
        self.tick, self.period, self.what = tick, period, what
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"attune-{self.what}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.tick()
            except Exception:
                log.exception("periodic %s failed", self.what)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
