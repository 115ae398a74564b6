"""Redis-backed cache (production): shared by every server replica.

Values are JSON. Keys about one person start with ``user:<id>:`` (see
:func:`attune.store.cache.user_key`) and are also remembered in a per-person set, so
dropping them (new events, erasure) never scans the keyspace.
"""

from __future__ import annotations

from typing import Any

import orjson

from attune.store.cache import USER_PREFIX, user_key, user_of


class RedisCache:
    """See :class:`attune.store.protocols.CacheStore`."""

    def __init__(self, client: Any, prefix: str = "attune") -> None:
        self.client = client
        self.prefix = prefix

    def _k(self, key: str) -> str:
        return f"{self.prefix}:cache:{key}"

    def _index(self, user_id: str) -> str:
        return f"{self.prefix}:cache-index:{user_id}"

    def get(self, key: str) -> Any | None:
        return self.from_reply(self.client.get(self._k(key)))

    def queue_get(self, pipe: Any, key: str) -> None:
        """Add :meth:`get`'s read to a pipeline; its reply goes to :meth:`from_reply`."""
        pipe.get(self._k(key))

    @staticmethod
    def from_reply(raw: bytes | None) -> Any | None:
        return None if raw is None else orjson.loads(raw)

    def set(self, key: str, value: Any, ttl_seconds: float) -> None:
        ttl_ms = max(1, int(ttl_seconds * 1000))
        # one round trip, no MULTI/EXEC: an index entry whose value already expired
        # costs nothing but a no-op delete later
        pipe = self.client.pipeline(transaction=False)
        pipe.set(self._k(key), orjson.dumps(value), px=ttl_ms)
        user = user_of(key)
        if user is not None:
            pipe.sadd(self._index(user), key)
            pipe.pexpire(self._index(user), max(ttl_ms, 3_600_000))
        pipe.execute()

    def delete_prefix(self, prefix: str) -> int:
        user = user_of(prefix)
        if user is not None and prefix == f"{USER_PREFIX}{user}:":
            members = self.client.smembers(self._index(user))
            doomed = [self._k(k.decode() if isinstance(k, bytes) else k) for k in members]
            removed = int(self.client.delete(*doomed)) if doomed else 0
            self.client.delete(self._index(user))
            return removed
        removed = 0
        for key in self.client.scan_iter(match=self._k(prefix) + "*", count=1000):
            removed += int(self.client.delete(key))
        return removed

    def list_keys(self) -> list[str]:
        """Every live key (for audits such as the erasure test)."""
        start = len(self._k(""))
        found = self.client.scan_iter(match=self._k("*"), count=1000)
        return [(k.decode() if isinstance(k, bytes) else k)[start:] for k in found]

    def erase_user(self, user_id: str) -> int:
        return self.delete_prefix(user_key(user_id))
