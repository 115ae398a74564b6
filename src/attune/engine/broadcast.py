"""Changes reaching every server process at once, over Redis pub/sub.

With several processes or replicas on one Redis (``attune serve --workers N``), each
holds its own models and its own view of the catalog. Two kinds of change must not wait
for each process to notice on its own, and travel on a channel per workspace:

* **Erasures** (``<prefix>:erasure:<workspace>``). The process that erases a person
  forgets them in its own loaded models and schedules the durable new version; every
  other process would keep serving what its models learned from the person until that
  version is published and loaded. The erasing process publishes the erasure (the
  person's stored id and the history read before their events were deleted), and every
  process applies it to the models it holds for that workspace, at once and without a
  job of its own (the origin's job publishes the version for all).
* **Catalog writes** (``<prefix>:catalog:<workspace>``). An item written or deleted
  through one process reaches that process's next list at once; the others would see it
  at their next catalog check (every few seconds), offering meanwhile an item sold out
  or deleted a moment ago. The writing process publishes which items it wrote (whether
  each may be shown) and deleted, and every process applies that to its lists and
  re-reads its catalog now (:meth:`attune.engine.decide.DecisionEngine.catalog_written`).

Pub/sub messages are delivered to the processes subscribed at that moment and stored
nowhere, so nothing about an erased person stays in Redis. A process that is not
subscribed then (starting, reconnecting) catches up as before: with the newly published
version, or at its next catalog check.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import astuple
from typing import Any, Protocol

from attune.store.factory import Stores
from attune.store.protocols import HistoryEvent
from attune.store.redis_cache import RedisCache

log = logging.getLogger(__name__)

FORMAT = 1
"""Version of the message layouts; messages of another version are ignored."""
KINDS = ("erasure", "catalog")


class CatalogWriter(Protocol):
    """What a subscriber needs from a :class:`attune.engine.recommend.RecommendationService`."""

    def catalog_written(
        self, shown: Mapping[str, bool] | None = None, deleted: Sequence[str] = ()
    ) -> None: ...


class HeldModels(Protocol):
    """What a subscriber needs from a :class:`attune.engine.model_holder.ModelHolder`."""

    def refresh(self) -> object: ...

    def forget_user(
        self, user_id: str, history: Sequence[HistoryEvent], *, durable: bool = True
    ) -> dict[str, str]: ...


class BadMessage(ValueError):
    """A message on a broadcast channel that this process cannot apply."""


def encode(origin: str, workspace: str, user_id: str, history: Sequence[HistoryEvent]) -> str:
    return json.dumps(
        {
            "format": FORMAT,
            "origin": origin,
            "workspace": workspace,
            "user_id": user_id,
            "history": [list(astuple(e)) for e in history],
        }
    )


def decode(data: Any) -> tuple[str, str, str, list[HistoryEvent]]:
    """(origin, workspace, user id, history) of a message, or :class:`BadMessage`."""
    try:
        body = json.loads(data)
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise BadMessage("not an erasure message of this format")
        origin, workspace, user_id = body["origin"], body["workspace"], body["user_id"]
        if not all(isinstance(v, str) and v for v in (origin, workspace, user_id)):
            raise BadMessage("origin, workspace and user_id must be strings")
        history = [_event(row) for row in body["history"]]
    except (TypeError, KeyError, ValueError, UnicodeDecodeError) as exc:
        raise BadMessage(type(exc).__name__) from None
    return origin, workspace, user_id, history


def _event(row: Any) -> HistoryEvent:
    """An event from its row: item, type, value, time and (in newer messages) context."""
    item_id, type_, value, timestamp, *rest = row
    context = rest[0] if len(rest) == 1 else None
    if not isinstance(item_id, str) or not isinstance(type_, str) or len(rest) > 1:
        raise BadMessage("item_id and type must be strings, and at most a context follows")
    if context is not None and not isinstance(context, dict):
        raise BadMessage("an event's context must be an object")
    value = None if value is None else float(value)
    return HistoryEvent(item_id, type_, value, float(timestamp), context)


def encode_catalog(
    origin: str, workspace: str, shown: Mapping[str, bool], deleted: Iterable[str]
) -> str:
    return json.dumps(
        {
            "format": FORMAT,
            "origin": origin,
            "workspace": workspace,
            "shown": dict(shown),
            "deleted": list(deleted),
        }
    )


def decode_catalog(data: Any) -> tuple[str, str, dict[str, bool], list[str]]:
    """(origin, workspace, shown, deleted) of a catalog message, or :class:`BadMessage`."""
    try:
        body = json.loads(data)
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise BadMessage("not a catalog message of this format")
        origin, workspace = body["origin"], body["workspace"]
        shown, deleted = body["shown"], body["deleted"]
        if not all(isinstance(v, str) and v for v in (origin, workspace)):
            raise BadMessage("origin and workspace must be strings")
        if not isinstance(shown, dict) or not all(
            isinstance(k, str) and isinstance(v, bool) for k, v in shown.items()
        ):
            raise BadMessage("shown must map item ids to true or false")
        if not isinstance(deleted, list) or not all(isinstance(i, str) for i in deleted):
            raise BadMessage("deleted must be a list of item ids")
    except (TypeError, KeyError, ValueError, UnicodeDecodeError) as exc:
        raise BadMessage(type(exc).__name__) from None
    return origin, workspace, shown, deleted


class ServerBroadcast:
    """Publishes this process's erasures and catalog writes, and applies the others'.

    Args:
        client: a ``redis.Redis`` client (the stores' own).
        prefix: the namespace of Attune's Redis keys; channels are
            ``<prefix>:<kind>:<workspace>`` (kinds: :data:`KINDS`).
        poll_seconds: how often the subscriber thread looks up from waiting (to stop).
    """

    def __init__(self, client: Any, prefix: str, *, poll_seconds: float = 0.5) -> None:
        self.client = client
        self.prefix = prefix
        self.poll_seconds = poll_seconds
        self.origin = uuid.uuid4().hex  # this process (app), to skip its own messages
        self.received = 0
        """Erasures from other processes applied here (for tests and metrics)."""
        self.catalog_received = 0
        """Catalog writes from other processes applied here."""
        self._holders: dict[str, HeldModels] = {}
        self._writers: dict[str, CatalogWriter] = {}
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def for_stores(cls, stores: Stores) -> ServerBroadcast | None:
        """A broadcast over the Redis the stores' cache lives in; None without Redis."""
        cache = stores.cache
        if not isinstance(cache, RedisCache):
            return None
        return cls(cache.client, cache.prefix)

    def channel(self, workspace: str, kind: str = "erasure") -> str:
        return f"{self.prefix}:{kind}:{workspace}"

    def attach(
        self, workspace: str, holder: HeldModels, writer: CatalogWriter | None = None
    ) -> None:
        """Apply other processes' erasures in ``workspace`` to ``holder``'s models, and
        their catalog writes to ``writer``'s lists."""
        self._holders[workspace] = holder
        if writer is not None:
            self._writers[workspace] = writer

    # -- this process's catalog writes --------------------------------------------------------

    def publish_catalog(
        self, workspace: str, shown: Mapping[str, bool] | None = None, deleted: Sequence[str] = ()
    ) -> int:
        """Tell the other processes which items were written (whether each may be shown)
        and deleted; how many subscribers got it. Never raises: the write is done, and
        the others see it at their next catalog check."""
        try:
            message = encode_catalog(self.origin, workspace, shown or {}, deleted)
            return int(self.client.publish(self.channel(workspace, "catalog"), message))
        except Exception:
            log.exception("could not broadcast a catalog write; other processes catch up later")
            return 0

    # -- this process's erasures ------------------------------------------------------------

    def publish(self, workspace: str, user_id: str, history: Sequence[HistoryEvent]) -> int:
        """Tell the other processes to forget the person; how many subscribers got it.

        Never raises: the erasure itself is done, and the published version reaches a
        process this message missed.
        """
        if not history:
            return 0
        try:
            message = encode(self.origin, workspace, user_id, history)
            return int(self.client.publish(self.channel(workspace), message))
        except Exception:
            log.exception("could not broadcast an erasure; other processes catch up later")
            return 0

    def forgetting(self, workspace: str, holder: HeldModels) -> BroadcastingModels:
        """``holder`` for erasure: forgets here, and in every other process at once."""
        return BroadcastingModels(self, workspace, holder)

    # -- the subscriber ----------------------------------------------------------------------

    def start(self, wait_seconds: float = 5.0) -> bool:
        """Start the subscriber thread; True once it is subscribed (within the wait)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name="attune-broadcast-subscriber", daemon=True
            )
            self._thread.start()
        if self._subscribed.wait(wait_seconds):
            return True
        log.warning("not subscribed to broadcasts yet; the subscriber keeps trying")
        return False

    def stop(self, wait_seconds: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(wait_seconds)
            self._thread = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def subscribed(self) -> bool:
        return self._subscribed.is_set()

    def _run(self) -> None:
        patterns = [f"{_glob_escape(self.prefix)}:{kind}:*" for kind in KINDS]
        delay = 0.5
        while not self._stop.is_set():
            pubsub = None
            try:
                pubsub = self.client.pubsub()
                pubsub.psubscribe(*patterns)
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=self.poll_seconds)
                    if message is None:
                        continue
                    if message["type"] == "psubscribe":
                        if int(message["data"]) >= len(patterns):  # every pattern confirmed
                            self._subscribed.set()
                            delay = 0.5
                    elif message["type"] == "pmessage":
                        self._handle(message["channel"], message["data"])
            except Exception:
                self._subscribed.clear()
                log.exception("broadcast subscription failed; reconnecting in %.1f s", delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 30.0)
            finally:
                if pubsub is not None:
                    _close_quietly(pubsub)
        self._subscribed.clear()

    def _handle(self, channel: Any, data: Any) -> None:
        """Apply one message; a bad one is logged (never its content) and skipped."""
        name = channel.decode() if isinstance(channel, bytes) else str(channel)
        if name.startswith(f"{self.prefix}:catalog:"):
            self._handle_catalog(name, data)
            return
        try:
            origin, workspace, user_id, history = decode(data)
            if name != self.channel(workspace):
                raise BadMessage("workspace does not match the channel")
        except BadMessage as exc:
            log.warning("ignored a malformed erasure message (%s)", exc)
            return
        if origin == self.origin:
            return
        holder = self._holders.get(workspace)
        if holder is None:  # this process has not opened that workspace: nothing held
            return
        try:
            holder.refresh()  # forget in the newest champion, not one about to be replaced
            holder.forget_user(user_id, history, durable=False)
            self.received += 1
        except Exception:
            log.exception("could not apply an erasure from another process")

    def _handle_catalog(self, channel: str, data: Any) -> None:
        try:
            origin, workspace, shown, deleted = decode_catalog(data)
            if channel != self.channel(workspace, "catalog"):
                raise BadMessage("workspace does not match the channel")
        except BadMessage as exc:
            log.warning("ignored a malformed catalog message (%s)", exc)
            return
        writer = self._writers.get(workspace)
        if origin == self.origin or writer is None:
            return
        try:
            writer.catalog_written(shown, deleted)
            self.catalog_received += 1
        except Exception:
            log.exception("could not apply a catalog write from another process")


class BroadcastingModels:
    """The erasure side of a model holder: forgets here and broadcasts the erasure."""

    def __init__(self, broadcast: ServerBroadcast, workspace: str, holder: HeldModels) -> None:
        self.broadcast = broadcast
        self.workspace = workspace
        self.holder = holder

    def forget_user(self, user_id: str, history: Sequence[HistoryEvent]) -> dict[str, str]:
        # the others start at once, while this process forgets in its own models
        self.broadcast.publish(self.workspace, user_id, history)
        return self.holder.forget_user(user_id, history)


def _glob_escape(text: str) -> str:
    """``text`` matched literally in a Redis glob pattern."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def _close_quietly(pubsub: Any) -> None:
    try:
        pubsub.close()
    except Exception:
        log.debug("closing the broadcast subscription failed", exc_info=True)
