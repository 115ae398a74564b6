"""The serving face of the decision engine: cached answers, live updates, logging.

:class:`RecommendationService` is what the API and the CLI call. It asks the
:class:`~attune.engine.decide.DecisionEngine` for lists, caches each person's answers
per (placement, filters, context bucket, model version) for a few seconds, drops that
cache the moment the person does something (or changes preferences), feeds their live
session state from the event bus, and logs every answer it gives (recommendation id,
items with scores and positions, placement, model version) for attribution, export and
erasure.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from time import monotonic
from typing import Any

import orjson

from attune.engine.decide import (
    DecisionEngine,
    DecisionRequest,
    Recommendation,
    ScoredItem,
    new_recommendation_id,
    with_clock,
)
from attune.engine.erasure_watch import ErasureWatch
from attune.engine.lookups import placement_digest
from attune.engine.model_holder import ModelHolder
from attune.engine.trending import TrendingItem
from attune.errors import AttuneError
from attune.lru import Lru
from attune.store.cache import GENERATION_SECONDS, user_key
from attune.store.factory import Stores
from attune.store.protocols import EventRow
from attune.store.sessions import SessionEvent

__all__ = ["Recommendation", "RecommendationService", "ScoredItem"]

log = logging.getLogger(__name__)

CACHE_SECONDS = 30.0
"""How long one person's answer is reused (their own events drop it at once)."""
SLOW_DECISION_SECONDS = GENERATION_SECONDS / 2
"""An answer that took longer than this to decide is not cached: the caches remember a
person's generation for :data:`~attune.store.cache.GENERATION_SECONDS` only, so a change
that landed early in a longer decision might no longer be there to refuse it."""
CatalogAnnouncer = Callable[[Mapping[str, bool] | None, Sequence[str]], object]
"""Tells other server processes which items were written (shown or not) and deleted."""
DIGESTS_KEPT = 4_096
"""Distinct (version, catalog, placement, filter, context…) cache-key digests remembered."""


class RecommendationLog:
    """Writes answered recommendations in the background, in batches.

    Requests never wait for the database, and do not wake the writer one by one: the
    first row of a batch wakes it, it lets rows gather for ``interval`` seconds (or until
    ``batch`` are waiting) and writes them in one transaction. :meth:`flush` waits for
    everything queued (the CLI and tests call it; the server calls it on shutdown).
    """

    def __init__(
        self, store: Any, batch: int = 500, interval: float = 0.05, max_pending: int = 100_000
    ) -> None:
        self.store = store
        self.batch = batch
        self.interval = interval
        self.max_pending = max_pending
        self._pending: deque[dict[str, Any]] = deque()
        self._in_flight = 0
        self._flushing = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def record(self, rec: Recommendation, user_id: str | None, context: Mapping[str, str]) -> None:
        row = {
            "recommendation_id": rec.recommendation_id,
            "user_id": user_id,
            "placement": rec.placement,
            "model_version": rec.model_version,
            "items": [
                {"item_id": it.item_id, "score": it.score, "source": it.source, "position": k + 1}
                for k, it in enumerate(rec.items)
            ],
            "context": dict(context),
            "created_at": time.time(),
        }
        with self._cond:
            if len(self._pending) >= self.max_pending:  # a stuck database must not stall answers
                log.warning("recommendation log queue full; dropping a log row")
                return
            self._pending.append(row)
            if len(self._pending) == 1 or len(self._pending) >= self.batch:
                self._cond.notify_all()
        self._ensure_thread()

    def _ensure_thread(self) -> None:
        thread = self._thread
        if thread is None or not thread.is_alive():
            with self._cond:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(
                        target=self._run, name="attune-recommendation-log", daemon=True
                    )
                    self._thread.start()

    def _ready(self) -> bool:
        return bool(self._flushing) or len(self._pending) >= self.batch

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._pending))
                self._cond.wait_for(self._ready, timeout=self.interval)  # let a batch gather
                rows = [self._pending.popleft() for _ in range(min(self.batch, len(self._pending)))]
                self._in_flight = len(rows)
            self._write(rows)

    def _write(self, rows: list[dict[str, Any]]) -> None:
        try:
            self.store.add(rows)
        except Exception:
            log.exception("could not write %d recommendation log rows", len(rows))
        finally:
            with self._cond:
                self._in_flight = 0
                self._cond.notify_all()

    def flush(self) -> None:
        """Block until every queued row is written."""
        with self._cond:
            if not self._pending and not self._in_flight:
                return
        self._ensure_thread()
        with self._cond:
            self._flushing += 1
            self._cond.notify_all()
            try:
                self._cond.wait_for(lambda: not self._pending and not self._in_flight)
            finally:
                self._flushing -= 1


class RecommendationService:
    """Personalised lists, similar items, re-ranking and trending, cached and logged."""

    def __init__(
        self, stores: Stores, models: ModelHolder, settings: Any = None, log_answers: bool = True
    ) -> None:
        self.stores = stores
        self.engine = DecisionEngine(stores, models, settings)
        self.filters = self.engine.filters
        self.log = RecommendationLog(stores.recommendation_logs)
        self.log_answers = log_answers
        self.cache_seconds = float(getattr(settings, "recommendation_cache_seconds", CACHE_SECONDS))
        self._digests = Lru(DIGESTS_KEPT)  # cache-key ingredients → their digest
        self.announce_catalog: CatalogAnnouncer | None = None
        """Tells the other server processes of a catalog write (set with Redis)."""
        self.erasures: ErasureWatch | None = None
        """Applies other processes' erasures to in-process state (set without Redis)."""

    # -- lists ---------------------------------------------------------------------------

    def for_user(
        self,
        user_id: str,
        n: int | None = None,
        filter_text: str | None = None,
        *,
        placement: str | None = None,
        context: Mapping[str, str] | None = None,
        explain: bool = True,
    ) -> Recommendation:
        """The list for ``user_id``: never an item they already had (including events
        accepted a moment ago), filtered, diversified and explained per the placement
        (``explain=False``: the same list, its reasons not all worked out)."""
        request = DecisionRequest(
            user_id, n, placement, filter_text, dict(context or {}), explain=explain
        )
        if self.erasures is not None:
            self.erasures.apply(user_id)
        key = self._cache_key(request)
        cached = generation = None
        started = monotonic()
        if self.cache_seconds > 0:
            # the generation is read before anything the decision reads: an event or a
            # preference change accepted while deciding moves it on, and the answer,
            # right when decided but stale now, is not stored
            cached, request.session, generation = self.stores.cached_and_recent(key, user_id)
        if cached is not None:
            rec = _from_cache(cached)
        else:
            rec = self.engine.for_user(request)
            if self.cache_seconds > 0 and monotonic() - started <= SLOW_DECISION_SECONDS:
                try:
                    self.stores.cache.set(key, _to_cache(rec), self.cache_seconds, generation)
                except TypeError:  # not JSON (orjson.JSONEncodeError): answer, do not cache
                    log.exception("could not cache a recommendation answer")
        return self._answered(rec, user_id, request.context)

    def for_users(
        self,
        user_ids: Sequence[str],
        n: int,
        chunk: int = 256,
        filter_text: str | None = None,
        *,
        placement: str | None = None,
        context: Mapping[str, str] | None = None,
    ) -> list[Recommendation]:
        """:meth:`for_user` for many people (batch exports), scored in chunks."""
        out: list[Recommendation] = []
        for start in range(0, len(user_ids), chunk):
            part = list(user_ids[start : start + chunk])
            recs = self.engine.for_people(
                part, n, placement=placement, filter_text=filter_text, context=context
            )
            out += [self._answered(r, u, context or {}) for u, r in zip(part, recs, strict=True)]
        return out

    def similar(
        self,
        item_id: str,
        n: int,
        filter_text: str | None = None,
        *,
        user_id: str | None = None,
        placement: str | None = None,
        context: Mapping[str, str] | None = None,
        explain: bool = True,
    ) -> Recommendation:
        """Items similar to ``item_id`` (personalised when ``user_id`` is given)."""
        request = DecisionRequest(
            user_id, n, placement, filter_text, dict(context or {}), anchor=item_id, explain=explain
        )
        if self.erasures is not None and user_id:
            self.erasures.apply(user_id)
        return self._answered(self.engine.similar(request), user_id, request.context)

    def rank(
        self,
        user_id: str | None,
        candidates: Sequence[str],
        n: int | None = None,
        filter_text: str | None = None,
        *,
        placement: str | None = None,
        context: Mapping[str, str] | None = None,
        explain: bool = True,
    ) -> Recommendation:
        """``candidates`` re-ordered for the person (filtered ones left out)."""
        request = DecisionRequest(
            user_id,
            n,
            placement,
            filter_text,
            dict(context or {}),
            candidates=list(candidates),
            explain=explain,
        )
        if self.erasures is not None and user_id:
            self.erasures.apply(user_id)
        return self._answered(self.engine.rank(request), user_id, request.context)

    def trending(
        self,
        n: int,
        window: str = "24h",
        filter_text: str | None = None,
        context: Mapping[str, str] | None = None,
    ) -> list[TrendingItem]:
        """The ``n`` most trending items that may be shown: available, matching the
        filter (``context.*`` names bound), offered in ``context["region"]`` if given."""
        context = dict(context or {})
        condition = self.engine.condition([filter_text], context)
        unavailable = self.engine.unavailable_items()
        region = context.get("region")
        found = []
        for item in self.engine.trending.top(max(4 * n, 100), window):
            if item.item_id in unavailable:
                continue
            if region:
                record = self.engine.catalog.record(item.item_id) or {}
                regions = record.get("regions")
                if regions is not None and region not in regions:
                    continue
            if condition is not None:
                record = self.engine.catalog.record(item.item_id)
                ok = (
                    condition.condition()(record)
                    if record is not None
                    else condition.matches_unknown_item()
                )
                if not ok:
                    continue
            found.append(item)
            if len(found) == n:
                break
        return found

    def decides_quickly(
        self,
        filter_text: str | None,
        placement: str | None,
        context: Mapping[str, str] | None = None,
    ) -> bool:
        """Whether a list is decided without first doing work that would hold up every
        other request of the process: evaluating a new filter over the catalog
        (:meth:`filters_ready`) or, for a placement that weighs trending items, their
        first count (the server counts them as it starts, so this is a fallback: another
        workspace, or a count that failed)."""
        if not self.engine.trending.ready():
            try:
                _, config = self.engine.placements.resolve(placement)
            except AttuneError:
                return True  # refused at once when decided
            if config.weight("trending") > 0:
                return False
        return self.filters_ready(filter_text, placement, context)

    def filters_ready(
        self,
        filter_text: str | None,
        placement: str | None,
        context: Mapping[str, str] | None = None,
    ) -> bool:
        """Whether a list with this request filter and placement is decided without first
        evaluating a filter over the whole catalog (a text the current catalog snapshot
        has no mask of yet). Which segment rules' filters join in depends on the person,
        not read yet: every combination the placement allows is looked at, and those
        not built are built on a background thread (the first request goes on with its
        own). A filter that reads the person's traits counts as not ready (its text is
        known only once they are read). Bad input counts as ready: deciding refuses it
        at once."""
        if not filter_text and placement is None:
            return True  # the default placement has no filter
        try:
            _, config = self.engine.placements.resolve(placement)
            texts = [t for t in (filter_text, config.filter) if t]
            rule_sets = self.engine.rule_filter_sets(config)
            every = texts + [t for extra in rule_sets for t in extra]
            if any(
                name.startswith("user.") for t in every for name in self.filters.parse(t).externals
            ):
                return False
            clocked = with_clock(context)
            conditions = [self.engine.condition(texts + extra, clocked) for extra in rule_sets]
        except AttuneError:
            return True
        missing = [
            k for k, c in enumerate(conditions) if c is not None and not self.filters.ready(c)
        ]
        combined = [conditions[k] for k in missing if k > 0]  # with segment rules' filters
        if combined:
            self.filters.build_later(combined)  # type: ignore[arg-type]
        return not missing

    # -- live updates ----------------------------------------------------------------------

    def on_events(self, rows: Sequence[EventRow]) -> None:
        """Event-bus listener: update each person's live session and drop their cache."""
        by_person: dict[str, list[SessionEvent]] = {}
        for row in rows:
            person = row.get("user_id") or row.get("anonymous_id")
            if not person:
                continue
            events = by_person.setdefault(person, [])
            if row.get("item_id"):
                events.append(SessionEvent(row["item_id"], row["type"], float(row["timestamp"])))
        for person, events in by_person.items():
            self.forget_cached(person)
            # no live profile for someone who did not consent to personalisation
            if events and self.engine.consents(person):
                self.stores.sessions.record(person, events)

    def catalog_written(
        self, shown: Mapping[str, bool] | None = None, deleted: Sequence[str] = ()
    ) -> None:
        """Items were written or deleted here: this process's lists follow at once
        (:meth:`DecisionEngine.catalog_written`), and so do the other processes' where a
        broadcast is set up (:mod:`attune.engine.broadcast`)."""
        self.engine.catalog_written(shown, deleted)
        if self.announce_catalog is not None:
            self.announce_catalog(shown, deleted)

    def knows_item(self, item_id: str) -> bool:
        """Whether the serving model version knows the item (it may recommend it)."""
        model = self.engine.models.current()
        return model is not None and (
            item_id in model.item_position or item_id in model.fallback_position
        )

    def forget_cached(self, user_id: str) -> None:
        """Drop every cached answer for the person (their state changed)."""
        self.stores.cache.delete_prefix(user_key(user_id) + "rec:")

    # -- internals -------------------------------------------------------------------------

    def _cache_key(self, request: DecisionRequest) -> str:
        model = self.engine.models.current()
        _, config = self.engine.placements.resolve(request.placement)
        context = with_clock(request.context)
        # what the answer depends on besides the person; the hashed text is remembered
        # per distinct tuple (the clock buckets change it a few times a day)
        parts = (
            # forgetting a person inside the same version changes the models: so does the
            # key (by who was forgotten, not by object, so processes share answers)
            (model.version.version_id, model.forgotten) if model else None,
            # a catalog change (its version) or availability change makes a new key; both
            # the same in every process that holds the same catalog, so processes share
            # answers (a snapshot's token and hash() of strings are per process)
            self.engine.filters.snapshot().stamp,
            self.engine.unavailable_digest(),
            request.placement or "",
            placement_digest(config),
            request.n or config.n,
            request.filter_text or "",
            tuple(sorted(context.items())),
            request.explain,
        )
        digest = self._digests.get(parts)
        if digest is None:
            digest = hashlib.sha256(repr(parts).encode()).hexdigest()[:24]
            self._digests.put(parts, digest)
        return f"{user_key(request.user_id or '')}rec:{digest}"

    def _answered(
        self, rec: Recommendation, user_id: str | None, context: Mapping[str, str]
    ) -> Recommendation:
        if self.log_answers and rec.items:
            self.log.record(rec, user_id, context)
        return rec


def _to_cache(rec: Recommendation) -> str:
    """The answer as one JSON text (orjson writes a dataclass as its fields).

    One string rather than nested dicts and lists: the in-process cache holds up to
    100,000 answers, and as containers they would be objects the garbage collector
    walks on every full collection (hundreds of milliseconds at that size)."""
    return orjson.dumps(rec, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def _from_cache(cached: str | Mapping[str, Any]) -> Recommendation:
    data = orjson.loads(cached) if isinstance(cached, str) else cached
    items = [ScoredItem(**it) for it in data["items"]]
    rest = {k: v for k, v in data.items() if k not in ("items", "recommendation_id")}
    return Recommendation(recommendation_id=new_recommendation_id(), items=items, **rest)
