"""Per-key token buckets, in process.

Each key has a bucket of ``burst`` tokens that refills at ``rate`` tokens per second; a
request takes one. With several replicas each enforces its own bucket, so a key's
effective limit is the per-process limit times the number of replicas.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucketLimiter:
    """Token buckets keyed by API key id.

    Args:
        clock: monotonic seconds (injectable for tests).
        max_keys: buckets kept at most; the least recently refilled are dropped first
            (a dropped bucket starts full again, which only ever errs towards allowing).
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000
    ) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)
        self._lock = threading.Lock()

    def acquire(self, key: str, rate: float, burst: int) -> float:
        """Take one token for ``key``; returns 0 if allowed, else seconds until one is."""
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.pop(key, (float(burst), now))
            tokens = min(float(burst), tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                wait = 0.0
            else:
                self._buckets[key] = (tokens, now)
                wait = (1.0 - tokens) / rate
            if len(self._buckets) > self._max_keys:
                del self._buckets[next(iter(self._buckets))]
        return wait

    def forget(self, key: str) -> None:
        with self._lock:
            self._buckets.pop(key, None)
