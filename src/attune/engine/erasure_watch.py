"""Erasures made by another process reaching this one's in-process state, without Redis.

In embedded mode a server keeps each person's live session and cached answers in its
own memory. ``attune users erase`` runs in another process: it empties the database,
the model files and its own (empty) memory, and the server would go on answering from
what it holds (the cached list at once, "because you just viewed …" for the rest of the
session window). With Redis, that state is shared and erased where it lives, and the
erasure is broadcast; without it, nothing told the server.

Every erasure is in the audit log, under a keyed hash of the person's stored id (the
log holds no raw id). Before a person's list, :meth:`ErasureWatch.apply` reads the
erasures logged since its last look (one indexed read, at most every
:data:`WATCH_SECONDS`) and, when any are recent, drops the person's live session and
cached answers if one of them was theirs, once per erasure. Nobody's state is scanned:
only the person asking is hashed, and only while an erasure is recent.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

log = logging.getLogger(__name__)

WATCH_SECONDS = 1.0
"""How often the audit log is read for new erasures (at most; only when lists are asked)."""
RECENT_SECONDS = 2 * 3_600.0
"""How long an erasure can have left state behind here: live sessions end after 30 idle
minutes, cached answers within seconds; this is well past both."""


class ErasureWatch:
    """Applies erasures logged by other processes to this one's sessions and cache."""

    def __init__(self, stores: Any, action: str, workspace: str) -> None:
        self.stores = stores
        self.audit = stores.audit
        self.action, self.workspace = action, workspace
        self._lock = threading.Lock()
        self._checked_at = time.monotonic()
        self._last_id = self._newest_id()
        self._recent: dict[str, tuple[int, float]] = {}  # target → (entry id, seen at)
        self._applied: set[tuple[str, int]] = set()  # (stored id, entry id) done

    def _newest_id(self) -> int:
        newest = self.audit.list(1, workspace=self.workspace, action=self.action)
        return newest[0].id if newest else 0

    def apply(self, stored_id: str) -> bool:
        """Drop ``stored_id``'s live session and cached answers if an erasure logged since
        this process started names them and has not been applied yet; True if it did."""
        now = time.monotonic()
        if now - self._checked_at >= WATCH_SECONDS:
            self._poll(now)
        if not self._recent:
            return False
        found = self._recent.get(self.audit.user_target(stored_id))
        if found is None or (stored_id, found[0]) in self._applied:
            return False
        with self._lock:
            self._applied.add((stored_id, found[0]))
        self.stores.sessions.erase_user(stored_id)
        self.stores.cache.erase_user(stored_id)
        log.info("applied an erasure made by another process")
        return True

    def _poll(self, now: float) -> None:
        with self._lock:
            if now - self._checked_at < WATCH_SECONDS:
                return  # another thread just looked
            self._checked_at = now
            try:
                entries = self.audit.list(
                    100, workspace=self.workspace, action=self.action, after_id=self._last_id
                )
            except Exception:  # a busy or closed database: look again next time
                log.warning("could not read erasures from the audit log", exc_info=True)
                return
            for entry in entries:
                if entry.target:
                    self._recent[entry.target] = (entry.id, now)
                self._last_id = max(self._last_id, entry.id)
            for target, (_, seen) in list(self._recent.items()):
                if now - seen > RECENT_SECONDS:
                    del self._recent[target]
            kept = {entry for entry, _ in self._recent.values()}
            self._applied = {done for done in self._applied if done[1] in kept}
