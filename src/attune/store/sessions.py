"""Live session state: each person's most recent events, kept where reads are cheapest.

Fed by the event bus as events are accepted, read by the decision engine on the next
request. In-process by default (:class:`MemorySessionStore`); shared between server
replicas through Redis when ``ATTUNE_REDIS_URL`` is set (:class:`RedisSessionStore`).
The durable history stays in the event store: this is a fast, bounded view of "now".
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import orjson

RECENT_EVENTS = 50
"""Events kept per person."""

IDLE_SECONDS = 24 * 3600.0
"""A person's state is dropped after this long without events."""


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """One live event: what the person did to which item, when (UTC seconds)."""

    item_id: str
    type: str
    timestamp: float


class MemorySessionStore:
    """Recent events per person in this process, LRU-bounded in people."""

    def __init__(self, max_users: int = 200_000, keep: int = RECENT_EVENTS) -> None:
        self.max_users = max_users
        self.keep = keep
        self._state: OrderedDict[str, tuple[float, deque[SessionEvent]]] = OrderedDict()
        self._lock = threading.Lock()

    def record(self, user_id: str, events: Sequence[SessionEvent]) -> None:
        now = time.monotonic()
        with self._lock:
            entry = self._state.get(user_id)
            recent = entry[1] if entry else deque(maxlen=self.keep)
            recent.extend(sorted(events, key=lambda e: e.timestamp))
            self._state[user_id] = (now, recent)
            self._state.move_to_end(user_id)
            while len(self._state) > self.max_users:
                self._state.popitem(last=False)

    def recent(self, user_id: str) -> list[SessionEvent]:
        """The person's live events, oldest first (empty if none or idle too long)."""
        with self._lock:
            entry = self._state.get(user_id)
            if entry is None:
                return []
            if time.monotonic() - entry[0] > IDLE_SECONDS:
                del self._state[user_id]
                return []
            return list(entry[1])

    def erase_user(self, user_id: str) -> int:
        with self._lock:
            return 1 if self._state.pop(user_id, None) is not None else 0


class RedisSessionStore:
    """Recent events per person in a Redis list (newest first), expiring when idle."""

    def __init__(self, client: Any, prefix: str = "attune", keep: int = RECENT_EVENTS) -> None:
        self.client = client
        self.prefix = prefix
        self.keep = keep

    def _key(self, user_id: str) -> str:
        return f"{self.prefix}:session:{user_id}"

    def record(self, user_id: str, events: Sequence[SessionEvent]) -> None:
        if not events:
            return
        key = self._key(user_id)
        ordered = sorted(events, key=lambda e: e.timestamp)
        pipe = self.client.pipeline()
        pipe.lpush(key, *(orjson.dumps(asdict(e)) for e in ordered))
        pipe.ltrim(key, 0, self.keep - 1)
        pipe.expire(key, int(IDLE_SECONDS))
        pipe.execute()

    def recent(self, user_id: str) -> list[SessionEvent]:
        return self.from_reply(self.client.lrange(self._key(user_id), 0, self.keep - 1))

    def queue_recent(self, pipe: Any, user_id: str) -> None:
        """Add :meth:`recent`'s read to a pipeline; its reply goes to :meth:`from_reply`."""
        pipe.lrange(self._key(user_id), 0, self.keep - 1)

    @staticmethod
    def from_reply(raw: list[bytes]) -> list[SessionEvent]:
        return [SessionEvent(**orjson.loads(r)) for r in reversed(raw)]

    def erase_user(self, user_id: str) -> int:
        return int(self.client.delete(self._key(user_id)))
