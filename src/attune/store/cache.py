"""In-process cache with a TTL and LRU eviction (the embedded default)."""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict
from typing import Any
from urllib.parse import quote

USER_PREFIX = "user:"
GENERATION_SECONDS = 60.0
"""How long the in-process cache remembers that a person's entries were dropped: an
answer decided longer ago than this and stored only now could slip through."""


class MemoryCache:
    """A thread-safe LRU with per-entry expiry. See :class:`attune.store.protocols.CacheStore`.

    Keys that concern one user start with ``user:<id>:`` (:func:`user_key`); they are
    indexed per user, so dropping one person's entries costs what they hold, not a scan.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._by_user: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        # person → (generation, when): bumped whenever their entries are dropped; each
        # generation is new for the whole cache, so a forgotten one never comes back
        self._generations: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self._counter = itertools.count(1)

    def get(self, key: str) -> Any | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            expires, value = entry
            if expires < time.monotonic():
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return value

    def generation(self, key: str) -> int:
        """The state of the person ``key`` is about (0 for keys about nobody): read it
        before deciding what to store under ``key`` and pass it to :meth:`set`."""
        user = user_of(key)
        with self._lock:
            return self._generation_of(user) if user is not None else 0

    def set(self, key: str, value: Any, ttl_seconds: float, generation: int | None = None) -> bool:
        """Store ``value``; with ``generation`` (from :meth:`generation`), only if the
        person's entries were not dropped since (an event or a preference change made
        the value stale while it was being decided). Returns whether it was stored."""
        user = user_of(key)
        with self._lock:
            stale = user is not None and self._generation_of(user) != generation
            if generation is not None and stale:
                return False
            self._entries[key] = (time.monotonic() + ttl_seconds, value)
            self._entries.move_to_end(key)
            if user is not None:
                self._by_user.setdefault(user, set()).add(key)
            while len(self._entries) > self.max_entries:
                self._drop(next(iter(self._entries)))
            return True

    def _drop(self, key: str) -> None:
        self._entries.pop(key, None)
        user = user_of(key)
        if user is not None and user in self._by_user:
            self._by_user[user].discard(key)
            if not self._by_user[user]:
                del self._by_user[user]

    def delete_prefix(self, prefix: str) -> int:
        """Drop the entries under ``prefix``. Under one person's prefix (``user:<id>:…``)
        only their own entries are looked at, and their generation moves on."""
        with self._lock:
            user = user_of(prefix)
            if user is not None:
                doomed = [k for k in self._by_user.get(user, ()) if k.startswith(prefix)]
                self._bump(user)
            else:
                doomed = [k for k in self._entries if k.startswith(prefix)]
            for key in doomed:
                self._drop(key)
            return len(doomed)

    def _generation_of(self, user: str) -> int:
        found = self._generations.get(user)
        return found[0] if found is not None else 0

    def _bump(self, user: str) -> None:
        now = time.monotonic()
        self._generations[user] = (next(self._counter), now)
        self._generations.move_to_end(user)
        while self._generations:
            oldest, (_, when) = next(iter(self._generations.items()))
            if now - when <= GENERATION_SECONDS:
                break
            del self._generations[oldest]

    def list_keys(self) -> list[str]:
        """Every live key (for audits such as the erasure test)."""
        with self._lock:
            return list(self._entries)

    def erase_user(self, user_id: str) -> int:
        return self.delete_prefix(user_key(user_id))


def user_key(user_id: str) -> str:
    """The cache key prefix of everything cached about one user (the id percent-escaped,
    so ids holding ``:`` cannot collide with another person's prefix)."""
    return f"{USER_PREFIX}{quote(user_id, safe='')}:"


def user_of(key: str) -> str | None:
    """The escaped user id of a ``user:<id>:…`` key or prefix; None for other keys."""
    if not key.startswith(USER_PREFIX):
        return None
    rest = key[len(USER_PREFIX) :]
    end = rest.find(":")
    return rest[:end] if end >= 0 else None
