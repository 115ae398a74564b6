"""In-process cache with a TTL and LRU eviction (the embedded default)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any


class MemoryCache:
    """A thread-safe LRU with per-entry expiry. See :class:`attune.store.protocols.CacheStore`.

    Keys that concern one user start with ``user:<id>:`` so they can be dropped together.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Any | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            expires, value = entry
            if expires < time.monotonic():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return value

    def set(self, key: str, value: Any, ttl_seconds: float) -> None:
        with self._lock:
            self._entries[key] = (time.monotonic() + ttl_seconds, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def delete_prefix(self, prefix: str) -> int:
        with self._lock:
            doomed = [k for k in self._entries if k.startswith(prefix)]
            for key in doomed:
                del self._entries[key]
            return len(doomed)

    def erase_user(self, user_id: str) -> int:
        return self.delete_prefix(user_key(user_id))


def user_key(user_id: str) -> str:
    """The cache key prefix of everything cached about one user."""
    return f"user:{user_id}:"
