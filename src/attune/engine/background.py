"""Refreshes a server repeats (a newer model version, trending counts, unavailable
items) run beside the requests, one at a time each, never inside a request."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class BackgroundRefresh:
    """Runs ``job`` on a daemon thread unless a run of it is already going.

    A failing run is logged (``what`` names it) and ``on_error`` called, so the caller
    keeps what it had and tries again after its period."""

    def __init__(
        self, job: Callable[[], None], what: str, on_error: Callable[[], None] | None = None
    ) -> None:
        self.job = job
        self.what = what
        self.on_error = on_error
        self._running = False
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        with self._lock:
            if self._running:
                return
            self._running = True
        threading.Thread(target=self._run, name=f"attune-{self.what}", daemon=True).start()

    def _run(self) -> None:
        try:
            self.job()
        except Exception:
            log.exception("could not refresh %s; keeping what was there", self.what)
            if self.on_error is not None:
                self.on_error()
        finally:
            self._running = False

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no run is going; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._running:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True
