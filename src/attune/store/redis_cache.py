"""Redis-backed cache (production): shared by every server replica.

Values are JSON. Keys about one person start with ``user:<id>:`` (see
:func:`attune.store.cache.user_key`) and are also remembered in a per-person set, so
dropping them (new events, erasure) never scans the keyspace. Dropping them also moves
the person's generation on (a counter under a digest of their id, kept for a minute),
which an answer decided before the drop must still match to be stored.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from attune.store.cache import GENERATION_SECONDS, user_key, user_of

SCAN_PAGE = 1_000
"""Keys asked for per SCAN step, and removed per UNLINK, when dropping by a prefix."""

# KEYS: entry, the person's index, their generation; ARGV: value, ttl in ms, the
# generation read before deciding ("" for none), the entry's key, the index's ttl in ms
_SET_IF_UNCHANGED = """
if (redis.call('GET', KEYS[3]) or '') ~= ARGV[3] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return 1
"""


class RedisCache:
    """See :class:`attune.store.protocols.CacheStore`."""

    def __init__(self, client: Any, prefix: str = "attune") -> None:
        self.client = client
        self.prefix = prefix
        self._set_if_unchanged = client.register_script(_SET_IF_UNCHANGED)

    def _k(self, key: str) -> str:
        return f"{self.prefix}:cache:{key}"

    def _index(self, user_id: str) -> str:
        return f"{self.prefix}:cache-index:{user_id}"

    def _generation_key(self, user_id: str) -> str:
        # a digest, not the id: the key outlives an erasure by up to a minute
        digest = hashlib.blake2b(user_id.encode(), digest_size=16).hexdigest()
        return f"{self.prefix}:cache-gen:{digest}"

    def generation(self, key: str) -> bytes:
        """The state of the person ``key`` is about (see :meth:`MemoryCache.generation`;
        a key about nobody reads one that :meth:`set` then ignores)."""
        return self.generation_from_reply(self.client.get(self._generation_key_of(key)))

    def queue_generation(self, pipe: Any, key: str) -> None:
        """Add :meth:`generation`'s read to a pipeline (reply: :meth:`generation_from_reply`)."""
        pipe.get(self._generation_key_of(key))

    def _generation_key_of(self, key: str) -> str:
        return self._generation_key(user_of(key) or "")

    @staticmethod
    def generation_from_reply(raw: bytes | None) -> bytes:
        return raw or b""

    def get(self, key: str) -> Any | None:
        return self.from_reply(self.client.get(self._k(key)))

    def queue_get(self, pipe: Any, key: str) -> None:
        """Add :meth:`get`'s read to a pipeline; its reply goes to :meth:`from_reply`."""
        pipe.get(self._k(key))

    @staticmethod
    def from_reply(raw: bytes | None) -> Any | None:
        return None if raw is None else orjson.loads(raw)

    def set(
        self, key: str, value: Any, ttl_seconds: float, generation: bytes | None = None
    ) -> bool:
        """Store ``value`` (one round trip); with ``generation`` only if the person's
        entries were not dropped since it was read. Returns whether it was stored."""
        ttl_ms = max(1, int(ttl_seconds * 1000))
        user = user_of(key)
        index_ms = max(ttl_ms, 3_600_000)
        if generation is not None and user is not None:
            keys = [self._k(key), self._index(user), self._generation_key(user)]
            args = [orjson.dumps(value), ttl_ms, generation, key, index_ms]
            return bool(self._set_if_unchanged(keys=keys, args=args))
        # no MULTI/EXEC: an index entry whose value already expired costs nothing but a
        # no-op delete later
        pipe = self.client.pipeline(transaction=False)
        pipe.set(self._k(key), orjson.dumps(value), px=ttl_ms)
        if user is not None:
            pipe.sadd(self._index(user), key)
            pipe.pexpire(self._index(user), index_ms)
        pipe.execute()
        return True

    def delete_prefix(self, prefix: str) -> int:
        """Drop the entries under ``prefix``; under one person's prefix only their own
        entries are looked at (their index), and their generation moves on."""
        user = user_of(prefix)
        if user is not None:
            index, generation = self._index(user), self._generation_key(user)
            # the generation first: an answer stored after this read of the index was
            # decided before it moved on, and is refused
            pipe = self.client.pipeline(transaction=False)
            pipe.incr(generation)
            pipe.pexpire(generation, int(GENERATION_SECONDS * 1000))
            pipe.smembers(index)
            members = [k.decode() if isinstance(k, bytes) else k for k in pipe.execute()[2]]
            doomed = [k for k in members if k.startswith(prefix)]
            if not doomed:
                return 0
            pipe = self.client.pipeline(transaction=False)
            pipe.delete(*(self._k(k) for k in doomed))
            pipe.srem(index, *doomed)
            return int(pipe.execute()[0])
        # any other prefix (everyone's lists, after an erasure): walk the keyspace, one
        # UNLINK per page of keys found rather than a round trip per key
        removed, found = 0, []
        for key in self.client.scan_iter(match=self._k(prefix) + "*", count=SCAN_PAGE):
            found.append(key)
            if len(found) == SCAN_PAGE:
                removed += int(self.client.unlink(*found))
                found = []
        if found:
            removed += int(self.client.unlink(*found))
        return removed

    def list_keys(self) -> list[str]:
        """Every live key (for audits such as the erasure test)."""
        start = len(self._k(""))
        found = self.client.scan_iter(match=self._k("*"), count=1000)
        return [(k.decode() if isinstance(k, bytes) else k)[start:] for k in found]

    def erase_user(self, user_id: str) -> int:
        return self.delete_prefix(user_key(user_id))
