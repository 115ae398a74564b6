"""The in-process event bus: who wants to hear about accepted events (embedded mode)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from attune.store.protocols import EventRow

log = logging.getLogger(__name__)

Listener = Callable[[Sequence[EventRow]], None]


class EventBus:
    """Calls every subscriber, in order, with each batch of newly stored events.

    A failing subscriber is logged and skipped: the events are already durable, and
    one broken listener must not stop the others.
    """

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def publish(self, rows: Sequence[EventRow]) -> None:
        if not rows:
            return
        for listener in self._listeners:
            try:
                listener(rows)
            except Exception:
                log.exception("event listener %r failed", listener)
