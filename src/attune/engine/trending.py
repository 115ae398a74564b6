"""What is trending: items whose recent interest is well above their usual level.

Counted live from the event store (distinct people per item), so an item that took off
an hour ago shows up without waiting for a retrain. The window ends at the newest event
(for live traffic that is now; for an imported history, its last day). Each item's
count in the window is compared with what its count over the preceding baseline
(``BASELINE_WINDOWS`` windows) predicts, as a Poisson z-score; items seen by fewer
than ``min_people`` people in the window are ignored. Results are cached for
``refresh_seconds``; a stale list is recomputed on a background thread while callers go
on with it (the counts scan the window's events: a second or more at millions of
events, which inside a request would stall every request of the process).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from functools import partial

from attune.engine.background import BackgroundRefresh
from attune.store.protocols import EventStore

log = logging.getLogger(__name__)

BASELINE_WINDOWS = 7
WINDOWS = {"1h": 3_600.0, "24h": 86_400.0, "7d": 7 * 86_400.0}


@dataclass(frozen=True, slots=True)
class TrendingItem:
    item_id: str
    score: float
    people: int  # distinct people in the window
    expected: float  # what the baseline predicted


class TrendingTracker:
    def __init__(
        self, events: EventStore, refresh_seconds: float = 60.0, min_people: int = 3
    ) -> None:
        self.events = events
        self.refresh_seconds = refresh_seconds
        self.min_people = min_people
        self._cache: dict[str, tuple[float, list[TrendingItem]]] = {}
        self._lock = threading.Lock()
        self._recompute = {
            window: BackgroundRefresh(
                partial(self._recompute_now, window),
                f"trending-{window}",
                partial(self._retry_later, window),
            )
            for window in WINDOWS
        }

    def top(self, n: int, window: str = "24h") -> list[TrendingItem]:
        """The ``n`` most trending items over ``window`` (a key of :data:`WINDOWS`).

        The first call per window computes the list; later ones get the cached list,
        starting a background recomputation once it is ``refresh_seconds`` old."""
        cached = self._cache.get(window)
        if cached is None:
            with self._lock:
                cached = self._cache.get(window)
                if cached is None:
                    cached = self._cache[window] = (
                        time.monotonic(),
                        self._compute(WINDOWS[window]),
                    )
        elif time.monotonic() - cached[0] >= self.refresh_seconds:
            self._recompute[window].start()
        return cached[1][:n]

    def ready(self, window: str = "24h") -> bool:
        """Whether :meth:`top` answers ``window`` from its cache (else its first call
        counts the window's events, a second or more at millions of events)."""
        return window in self._cache

    def _recompute_now(self, window: str) -> None:
        found = self._compute(WINDOWS[window])
        with self._lock:
            self._cache[window] = (time.monotonic(), found)

    def _retry_later(self, window: str) -> None:
        """Keep the last list for another period (a failing store is not hammered)."""
        with self._lock:
            last = self._cache.get(window)
            self._cache[window] = (time.monotonic(), last[1] if last else [])

    def _compute(self, length: float) -> list[TrendingItem]:
        end = self.events.latest_timestamp()
        if end is None:
            return []
        end = min(end, time.time()) + 1e-6
        start = end - length
        recent = self.events.item_counts(start, end)
        baseline = self.events.item_counts(start - BASELINE_WINDOWS * length, start)
        found = []
        for item, people in recent.items():
            if people < self.min_people:
                continue
            expected = baseline.get(item, 0) / BASELINE_WINDOWS
            score = (people - expected) / math.sqrt(expected + 1.0)
            if score > 0:
                found.append(TrendingItem(item, score, people, expected))
        found.sort(key=lambda t: (-t.score, t.item_id))
        return found
