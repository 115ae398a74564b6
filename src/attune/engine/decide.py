"""The request pipeline: candidates → filters → scoring → re-ranking → explanations.

One :class:`DecisionEngine` answers every kind of list (a person's recommendations, items
similar to one item, a re-ranked candidate list, trending) through the same steps:

1. **Who is asking.** The person's stated preferences and consent decide whether their
   history may be used at all (opting out gives non-personalised lists and reads no
   history). Their durable history (event store) marks what they have already seen;
   their live session (last minutes of events) seeds "because you just viewed".
2. **Candidates** from each source the placement weights: the main model, the live
   session and the current item (item-to-item), onboarding likes (liked items and
   categories), segment collections, popular items (per segment when the popularity
   model knows the person's region or device), trending items, and new items for the
   exploration share. Every candidate remembers which sources proposed it and why.
3. **Filters** apply to every source: the request's and the placement's filter
   expressions, region availability, unavailable items, blocked items and categories,
   and already-seen items (configurable window).
4. **Scoring.** Personal sources (model, session, current item, preferences,
   collections) are normalised per request and summed with the placement's weights;
   popular and trending items fill what personal sources cannot. Liked categories are
   favoured, categories the person marked "not interested" are down-weighted, placement
   and segment boosts multiply.
5. **Re-ranking.** MMR diversity (the person's level overrides the placement's), a cap
   per category or calibrated category proportions; pins and exploration slots last.
6. **Explanations**: each item's ``reasons`` list what actually put it there.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp

from attune.engine import diversity
from attune.engine.background import BackgroundRefresh
from attune.engine.catalog_view import CatalogView, NewItem, SpaceView, clock_context
from attune.engine.expressions import Filter
from attune.engine.filtering import WRITE_RECHECK_SECONDS, CatalogFilters
from attune.engine.lookups import (
    dense_block,
    empty_history_ranking,
    first_allowed,
    ids_digest,
    placement_digest,
    tried_items,
)
from attune.engine.model_holder import LoadedModel, ModelHolder
from attune.engine.placements import DEFAULT_PLACEMENT, Exploration, PlacementConfig
from attune.engine.preferences import Preferences
from attune.engine.segments import SegmentBook
from attune.engine.trending import TrendingTracker
from attune.errors import NotFoundError, NotReadyError, NotSupportedError
from attune.features.interactions import csr_of_parts, history_matrix
from attune.store.factory import Stores
from attune.store.protocols import HistoryEvent
from attune.store.sessions import SessionEvent

log = logging.getLogger(__name__)

HISTORY_LIMIT = 5_000
"""Newest events a list is made from: few people have more, and the read stays bounded
for those who do (a bot, a shared account). What they had before still counts as seen
(:meth:`EventStore.user_item_marks`)."""
RULE_FILTERS_COMBINED = 4
"""Up to this many filter rules in a placement, every combination of them is known
ahead of a request (:meth:`DecisionEngine.rule_filter_sets`)."""

NOT_CONSUMED = frozenset({"impression", "search"})
"""Event types that do not mean the person has had the item (so it may still be shown)."""

NEGATIVE = frozenset({"not_interested", "dislike"})
"""Event types that say "not this": the item is removed, its categories down-weighted."""

SESSION_SECONDS = 30 * 60.0
"""Live events this recent seed "because you just viewed" candidates."""

SESSION_SEEDS = 5
EXPLAIN_HISTORY = 50
HISTORY_CATEGORY_EVENTS = 200
"""Newest history events whose categories describe what the person follows."""
UNAVAILABLE_REFRESH_SECONDS = 5.0
LIKED_CATEGORY_BOOST = 1.25
NOT_INTERESTED_FACTOR = 0.5
PERSONAL = ("model", "session", "current_item", "preferences", "collection")
FILL = ("popular", "trending")

VERBS = {
    "view": "viewed",
    "click": "clicked",
    "like": "liked",
    "rating": "rated",
    "add_to_cart": "added to your cart",
    "purchase": "bought",
    "share": "shared",
    "email_click": "opened from an email",
}


# -- what the engine answers with ---------------------------------------------------------


@dataclass
class ScoredItem:
    item_id: str
    score: float
    source: str  # what put it in the list: model, session, preferences, popular, …
    reasons: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Recommendation:
    recommendation_id: str
    items: list[ScoredItem]
    model_version: str
    sources: dict[str, int] = field(default_factory=dict)
    placement: str | None = None
    placement_digest: str = ""
    personalized: bool = True


@dataclass
class DecisionRequest:
    """One list to decide. ``anchor`` is the item of "similar items"; ``candidates``
    the list to re-rank (POST /v1/rank)."""

    user_id: str | None
    n: int | None = None
    placement: str | None = None
    filter_text: str | None = None
    context: dict[str, str] = field(default_factory=dict)
    anchor: str | None = None
    candidates: list[str] | None = None
    explain: bool = True
    """Work out every reason; False when the caller will not show them (the list and
    its order are the same either way: reasons never change a score)."""
    session: list[SessionEvent] | None = None
    """The person's live session events when the caller read them already (with the
    cache entry, in one round trip); None: the engine reads them."""


MODEL_REASON = "Picked for you from your activity"

# -- per-request working state --------------------------------------------------------------


@dataclass
class Person:
    """What the engine knows about the asker for one request."""

    user_id: str | None
    preferences: Preferences
    personalized: bool
    traits: dict[str, Any]
    history: list[HistoryEvent]
    session: list[SessionEvent]
    excluded: set[str]  # ids never to show this person (seen, blocked, refused)
    region: str | None
    unavailable: frozenset[str] = frozenset()  # catalog items nobody may be shown now
    context: Mapping[str, str] = field(default_factory=dict)  # the request's, for the model

    @property
    def blocked_categories(self) -> list[str]:
        return self.preferences.blocked_categories


@dataclass(slots=True)
class Candidate:
    item_id: str
    personal: float = 0.0
    fill: float = 0.0
    factor: float = 1.0
    sources: dict[str, float] = field(default_factory=dict)
    reasons: list[dict[str, Any]] = field(default_factory=list)

    def add(self, source: str, score: float, weight: float, reason: dict[str, Any]) -> None:
        contribution = weight * score
        if source in PERSONAL:
            self.personal += contribution
        else:
            self.fill = max(self.fill, contribution)
        self.sources[source] = self.sources.get(source, 0.0) + contribution
        if reason and reason not in self.reasons:
            self.reasons.append(reason)

    @property
    def main_source(self) -> str:
        """The source that placed it: the strongest personal one when any proposed it."""
        if not self.sources:
            return "popular"
        personal = [s for s in self.sources if s in PERSONAL]
        pool = personal if self.personal > 0 and personal else list(self.sources)
        return max(pool, key=lambda s: self.sources[s])

    def rank_key(self) -> tuple[int, float]:
        if self.personal > 0:
            return (1, self.personal * self.factor)
        return (0, self.fill * self.factor)


class Draft(NamedTuple):
    """One list being decided: what every candidate source reads and adds to."""

    pool: Pool
    model: LoadedModel
    person: Person
    config: PlacementConfig
    condition: Filter | None
    context: Mapping[str, str]
    depth: int  # how many candidates each source proposes


class Pool:
    """Candidates by id, in the order they were first proposed.

    ``fill_only_shows``: whether a candidate only fill sources (popular, trending) propose
    can still reach the list; when not, such candidates are not created (a fill source
    still adds its score and reason to candidates that are already in)."""

    def __init__(self) -> None:
        self.items: dict[str, Candidate] = {}
        self.fill_only_shows = True

    def add(
        self, item_id: str, source: str, score: float, weight: float, reason: dict[str, Any]
    ) -> None:
        if weight <= 0 or not math.isfinite(score) or score <= 0:
            return
        candidate = self.items.get(item_id)
        if candidate is None:
            if source in FILL and not self.fill_only_shows:
                return
            candidate = self.items[item_id] = Candidate(item_id)
        candidate.add(source, score, weight, reason)

    def personal_count(self) -> int:
        return sum(1 for c in self.items.values() if c.personal > 0)

    def ranked(self) -> list[Candidate]:
        return sorted(self.items.values(), key=lambda c: c.rank_key(), reverse=True)


# -- the engine -------------------------------------------------------------------------------


class DecisionEngine:
    """Decides lists for people, items and candidate sets (see the module docstring)."""

    def __init__(self, stores: Stores, models: ModelHolder, settings: Any = None) -> None:
        self.stores = stores
        self.models = models
        self.settings = settings
        self.filters = CatalogFilters(stores.catalog, UNAVAILABLE_REFRESH_SECONDS)
        self.catalog = CatalogView(self.filters)
        self.trending = TrendingTracker(stores.events)
        self.segments = SegmentBook(stores.segments)
        self.placements = PlacementBook(stores.placements)
        self._unavailable: frozenset[str] = frozenset()
        self._unavailable_digest: tuple[frozenset[str], str] | None = None
        self._deleted: frozenset[str] = frozenset()
        self._unavailable_at = float("-inf")
        self._next_unavailable_read = float("-inf")
        self._catalog_writes = 0  # catalog writes made through this engine
        self._unavailable_refresh = BackgroundRefresh(
            self._read_unavailable, "unavailable-items", self._retry_unavailable_later
        )
        self._lock = threading.RLock()  # the first read of unavailable items holds it
        models.on_load(self.prepare)

    def prepare(self, model: LoadedModel) -> None:
        """Build what the first requests for ``model`` would otherwise build inside
        themselves: the catalog snapshot and lookups, each role's item-space view,
        positions of unavailable items, the fallback's ranking (a second or more at
        100,000 items) and the sentence encoder where the item-to-item model reads
        descriptions with it. Called for every version before it serves, under the model
        holder's lock (so it must not ask the holder for the current model)."""
        unavailable = self.unavailable_items()
        describing = getattr(model.similar, "prepare_describing", None)
        if describing is not None:
            describing()
        roles = ("main", "fallback", "similar")
        version = model.version.version_id
        self.catalog.warm({f"{version}/{r}": getattr(model, r).item_ids for r in roles})
        for role in roles:
            self._unavailable_positions(model, role, unavailable)
        empty_history_ranking(model, "fallback")

    # -- shared lookups ----------------------------------------------------------------------

    def model(self) -> LoadedModel:
        model = self.models.current()
        if model is None:
            raise NotReadyError("no trained model yet: run `attune train`")
        return model

    def unavailable_items(self) -> frozenset[str]:
        """Catalog items marked unavailable, re-read every few seconds.

        The first read (and one after ``_unavailable_at`` is reset) happens here; later
        ones on a background thread while requests go on with the set they have (the
        read scans the catalog: tens of milliseconds for 100,000 items)."""
        if time.monotonic() - self._unavailable_at >= UNAVAILABLE_REFRESH_SECONDS:
            if self._unavailable_at == float("-inf"):
                with self._lock:
                    if self._unavailable_at == float("-inf"):
                        self._read_unavailable()
            else:
                self._unavailable_refresh.start()
        return self._unavailable

    def unavailable_digest(self) -> str:
        """A digest of :meth:`unavailable_items` that is the same in every process holding
        the same set (``hash()`` of strings is not: each interpreter salts it), for keys
        of answers processes share. Worked out once per set."""
        current = self.unavailable_items()
        found = self._unavailable_digest
        if found is None or found[0] is not current:
            found = (current, ids_digest(current))
            self._unavailable_digest = found
        return found[1]

    def deleted_items(self) -> frozenset[str]:
        """Items deleted from the catalog (a subset of :meth:`unavailable_items`)."""
        self.unavailable_items()
        return self._deleted

    def catalog_written(
        self, shown: Mapping[str, bool] | None = None, deleted: Iterable[str] = ()
    ) -> None:
        """This process has just written the catalog: ``shown`` says, per item written,
        whether it may be shown now (False: made unavailable), ``deleted`` the items
        deleted. The next lists of this process follow at once (never an item sold out
        or deleted a moment ago); the written items are also re-read now, in the
        background, rather than at the next period, for what else a write changes (a new
        item's description, its filters): milliseconds, as the catalog's change log names
        them (:class:`~attune.engine.filtering.CatalogFilters`)."""
        self.filters.written()
        self._catalog_writes += 1  # a read running now may predate this write
        if self._unavailable_at == float("-inf"):
            return  # nothing read yet: the first request reads it
        deleted = frozenset(deleted)
        hidden = {i for i, ok in (shown or {}).items() if not ok} | deleted
        back = {i for i, ok in (shown or {}).items() if ok}
        with self._lock:
            if hidden - self._unavailable or back & self._unavailable:
                self._unavailable = (self._unavailable - back) | hidden
            if deleted - self._deleted or back & self._deleted:
                self._deleted = (self._deleted - back) | deleted
        self._unavailable_refresh.start(again=True)  # what other processes wrote, too

    def _read_unavailable(self) -> None:
        wait = self._next_unavailable_read - time.monotonic()
        if wait > 0:  # right after another read: let the writes of a sync gather
            time.sleep(wait)
        started = time.monotonic()
        writes = self._catalog_writes
        unavailable = frozenset(self.stores.catalog.unavailable_item_ids())
        deleted = frozenset(self.stores.catalog.deleted_item_ids())
        with self._lock:
            # a write of this process during the read was applied to the sets already,
            # and the read may not have seen it: the run that follows it publishes
            current = writes == self._catalog_writes
            if current:
                self._unavailable, self._deleted = unavailable, deleted
        self._unavailable_at = ended = time.monotonic()
        if not current:
            self._unavailable_refresh.start(again=True)
        self._next_unavailable_read = ended + max(WRITE_RECHECK_SECONDS, 2 * (ended - started))

    def _retry_unavailable_later(self) -> None:
        self._unavailable_at = time.monotonic()

    def condition(
        self,
        texts: Iterable[str | None],
        context: Mapping[str, str] | None = None,
        person: Person | None = None,
    ) -> Filter | None:
        """All of ``texts`` (request, placement, segment filters) as one parsed filter,
        with ``context.*`` and ``user.*`` names bound to this request's values (so the
        catalog masks are cached per distinct value, e.g. per region)."""
        parts = [t for t in texts if t]
        if not parts:
            return None
        for text in parts:  # each alone first, so an error points into the text given
            self.filters.parse(text)
        joined = parts[0] if len(parts) == 1 else " and ".join(f"({t})" for t in parts)
        parsed = self.filters.parse(joined)
        if not parsed.externals:
            return parsed
        return parsed.bind(_bindings(context, person))

    # -- the person ------------------------------------------------------------------------

    def person(
        self,
        user_id: str | None,
        placement: PlacementConfig,
        context: Mapping[str, str],
        session: list[SessionEvent] | None = None,
    ) -> Person:
        """What the engine knows about ``user_id`` (``session``: their live events, when
        the caller read them already)."""
        with self.stores.reads():
            history = (
                self.stores.events.user_history(user_id, limit=HISTORY_LIMIT) if user_id else []
            )
            return self._person(user_id, placement, context, history, session)

    def people(
        self, user_ids: Sequence[str], placement: PlacementConfig, context: Mapping[str, str]
    ) -> list[Person]:
        # whole histories (the read cannot stop early per person): the part before the
        # newest HISTORY_LIMIT events is only for exclusions
        histories = self.stores.events.user_histories(user_ids)
        people = []
        for user_id in user_ids:
            history = histories.get(user_id, [])
            older = history[:-HISTORY_LIMIT]
            history = history[-HISTORY_LIMIT:]
            people.append(self._person(user_id, placement, context, history, older=older))
        return people

    def _person(
        self,
        user_id: str | None,
        placement: PlacementConfig,
        context: Mapping[str, str],
        history: list[HistoryEvent],
        session: list[SessionEvent] | None = None,
        older: list[HistoryEvent] | None = None,
    ) -> Person:
        """``older``: the events before ``history`` (None: unknown, read when ``history``
        is as long as a read gives)."""
        stored = self.stores.preferences.get(user_id) if user_id else None
        preferences = Preferences.model_validate(stored) if stored else Preferences()
        if preferences.blocked_categories or preferences.liked_categories:
            # as the catalog spells them now ("comedy" saved before "Comedy" existed)
            preferences = preferences.spelled_as(self.catalog.lookup().spellings)
        personalized = bool(user_id) and preferences.personalization and self.consents(user_id)
        profile = self.stores.users.get_user(user_id) if user_id else None
        stated = dict(profile.get("traits") or {}) if profile else {}
        # opting out stops the profile's use for taste, not where items may be offered:
        # the region trait still limits region-bound items
        traits = stated if personalized else {}
        if not personalized:
            history = older = []
        if not (personalized and user_id):
            session = []
        elif session is None:
            session = self.stores.sessions.recent(user_id)
        excluded = set(preferences.blocked_items)
        excluded |= _seen(history, placement)
        if older is None and user_id and len(history) >= HISTORY_LIMIT:
            older = self.stores.events.user_item_marks(user_id)
        if older:  # what they had before still counts as seen (and a "no" as said)
            excluded |= _seen(older, placement)
        excluded |= {e.item_id for e in session if e.type in NEGATIVE}
        region = context.get("region") or _text(stated.get("region"))
        return Person(
            user_id,
            preferences,
            personalized,
            traits,
            history,
            session,
            excluded,
            region,
            self.unavailable_items(),
            context,
        )

    def consents(self, user_id: str | None) -> bool:
        """Whether the person's data may personalise (consent, or none required)."""
        consent_store = getattr(self.stores, "consent", None)
        if consent_store is None or user_id is None:
            return True
        state = consent_store.get(user_id)
        if state is None:
            return not bool(getattr(self.settings, "consent_required", False))
        return getattr(state, "personalization", True) is not False

    # -- answers -------------------------------------------------------------------------------

    def for_people(
        self,
        user_ids: Sequence[str],
        n: int | None = None,
        *,
        placement: str | None = None,
        filter_text: str | None = None,
        context: Mapping[str, str] | None = None,
    ) -> list[Recommendation]:
        """Recommendations for each of ``user_ids`` (batch: one model call per chunk)."""
        self.condition([filter_text])  # a malformed filter is refused first
        name, config = self.placements.resolve(placement)
        context = with_clock(context)
        condition = self.condition(
            [filter_text, config.filter, *self._rule_filters(config, None, context)], context
        )
        model = self.model()
        people = self.people(user_ids, config, context)
        size = n or config.n
        model_lists = self._model_candidates(model, people, size, condition, config=config)
        return [
            self._assemble(model, person, size, name, config, condition, context, model_list)
            for person, model_list in zip(people, model_lists, strict=True)
        ]

    def for_user(self, request: DecisionRequest) -> Recommendation:
        """One person's list (``anchor`` / ``candidates`` unset)."""
        self.condition([request.filter_text])  # a malformed filter is refused first
        name, config = self.placements.resolve(request.placement)
        context = with_clock(request.context)
        model = self.model()
        person = self.person(request.user_id, config, context, request.session)
        if context.get("item_id"):  # the page's own item is not recommended on it
            person.excluded.add(context["item_id"])
        condition = self.condition(
            [request.filter_text, config.filter, *self._rule_filters(config, person, context)],
            context,
            person,
        )
        size = request.n or config.n
        model_list = self._model_candidates(model, [person], size, condition, config=config)[0]
        return self._assemble(
            model,
            person,
            size,
            name,
            config,
            condition,
            context,
            model_list,
            explain=request.explain,
        )

    def similar(self, request: DecisionRequest) -> Recommendation:
        """Items like ``request.anchor``; personalised when ``user_id`` is given."""
        assert request.anchor is not None
        self.condition([request.filter_text])  # a malformed filter is refused first
        name, config = self.placements.resolve(request.placement)
        context = with_clock(request.context)
        model = self.model()
        anchor = request.anchor
        if anchor in self.deleted_items():
            raise NotFoundError(f"item {anchor!r} was deleted from the catalog")
        if anchor not in model.item_position and self.stores.catalog.get_item(anchor) is None:
            raise NotFoundError(f"item {anchor!r} is not in the catalog or the model")
        person = self.person(request.user_id, config, context, request.session)
        person.excluded.add(anchor)
        condition = self.condition(
            [request.filter_text, config.filter, *self._rule_filters(config, person, context)],
            context,
            person,
        )
        size = request.n or config.n
        weights = {"current_item": 1.0, "popular": 1.0}
        if person.personalized and person.history:
            weights["model"] = 0.3  # a light personal touch on the similar list
        similar_config = config.model_copy(update={"sources": weights, "rules": [], "pins": []})
        context = {**context, "item_id": anchor}
        model_list = (
            self._model_candidates(model, [person], size, condition, config=config)[0]
            if "model" in weights
            else []
        )
        return self._assemble(
            model,
            person,
            size,
            name,
            similar_config,
            condition,
            context,
            model_list,
            explain=request.explain,
            look_alikes_only=True,
        )

    def rank(self, request: DecisionRequest) -> Recommendation:
        """Re-rank ``request.candidates`` for the person: every candidate that passes the
        filters comes back, best first; none is added."""
        assert request.candidates is not None
        self.condition([request.filter_text])  # a malformed filter is refused first
        name, config = self.placements.resolve(request.placement)
        context = with_clock(request.context)
        model = self.model()
        person = self.person(request.user_id, config, context, request.session)
        condition = self.condition(
            [request.filter_text, config.filter, *self._rule_filters(config, person, context)],
            context,
            person,
        )
        wanted = list(dict.fromkeys(request.candidates))
        size = request.n or len(wanted)
        positions = np.array(
            [model.item_position[i] for i in wanted if i in model.item_position], dtype=np.int64
        )
        model_list = self._model_candidates(
            model, [person], len(wanted), condition, restrict=positions
        )[0]
        ranked_config = config.model_copy(update={"pins": [], "exploration": _NO_EXPLORATION})
        return self._assemble(
            model,
            person,
            size,
            name,
            ranked_config,
            condition,
            context,
            model_list,
            only=set(wanted),
            keep_all=True,
            explain=request.explain,
        )

    # -- candidates --------------------------------------------------------------------------

    def _model_candidates(
        self,
        model: LoadedModel,
        people: Sequence[Person],
        n: int,
        condition: Filter | None,
        restrict: np.ndarray | None = None,
        config: PlacementConfig | None = None,
    ) -> list[list[tuple[str, float]]]:
        """The main model's best items for everyone with usable history, in one call
        (:func:`candidate_depth` of them)."""
        lists: list[list[tuple[str, float]]] = [[] for _ in people]
        rows = [i for i, p in enumerate(people) if p.personalized and p.history]
        if not rows:
            return lists
        main = model.main
        view = self.catalog.space(main.item_ids, f"{model.version.version_id}/main")
        allowed = self._allowed(condition, model, "main")
        candidates = allowed.index if allowed is not None else None
        if restrict is not None:
            candidates = restrict if candidates is None else np.intersect1d(candidates, restrict)
        if candidates is not None and not len(candidates):
            return lists
        query = history_matrix(
            [people[i].history for i in rows], model.item_position, main.n_items, model.policy
        ).in_context([people[i].context for i in rows])
        exclude = _exclusion_matrix(
            [people[i] for i in rows],
            model.item_position,
            view,
            main.n_items,
            [self._unavailable_positions(model, "main", people[i].unavailable) for i in rows],
        )
        depth = candidate_depth(n, config)
        index, scores = main.recommend(
            query, depth, exclude=exclude, candidates=candidates, positive_only=True
        )
        ids = main.item_ids
        for r, row in enumerate(rows):
            # scores within float error of zero are no evidence (e.g. what remains of an
            # item after a person was forgotten by a downdate)
            finite = np.isfinite(scores[r])
            top = float(scores[r][finite].max()) if finite.any() else 0.0
            keep = (index[r] >= 0) & finite & (scores[r] > max(top * 1e-6, 0.0))
            kept = ids[index[r][keep]].tolist()
            lists[row] = list(zip(map(str, kept), scores[r][keep].tolist(), strict=True))
        return lists

    def _allowed(self, condition: Filter | None, model: LoadedModel, role: str) -> Any:
        if condition is None:
            return None
        recommender = getattr(model, role)
        return self.filters.allowed(
            condition, recommender.item_ids, f"{model.version.version_id}/{role}"
        )

    def _ok(
        self, model: LoadedModel, role: str, person: Person, condition: Filter | None
    ) -> np.ndarray:
        """(n_items,) bool over one role's item space: what this person may be shown."""
        recommender = getattr(model, role)
        space = f"{model.version.version_id}/{role}"
        allowed = self._allowed(condition, model, role)
        ok = np.ones(recommender.n_items, dtype=bool) if allowed is None else allowed.mask.copy()
        view = self.catalog.space(recommender.item_ids, space)
        position = _positions(model, role)
        unavailable = self._unavailable_positions(model, role, person.unavailable)
        ok[_excluded_positions(person, position, view, unavailable)] = False
        return ok

    def _unavailable_positions(
        self, model: LoadedModel, role: str, unavailable: frozenset[str]
    ) -> np.ndarray:
        """Positions of ``unavailable`` in one role's item space, kept per loaded model
        until the unavailable set is re-read (mapping ~1% of a large catalog per request
        would cost more than the rest of the exclusions)."""
        cache = model.__dict__.setdefault("_unavailable_positions", {})
        found = cache.get(role)
        if found is None or found[0] is not unavailable:
            position = _positions(model, role)
            ids = (position[i] for i in unavailable if i in position)
            found = (unavailable, np.fromiter(ids, dtype=np.int64))
            cache[role] = found
        return found[1]  # type: ignore[no-any-return]

    def _admissible(
        self,
        item_id: str,
        person: Person,
        condition: Filter | None,
        model: LoadedModel | None = None,
    ) -> bool:
        """Whether an item from outside the model spaces (trending, new, pinned) may show.

        With ``model``, an id the catalog does not describe shows only if the model knows
        it (an item known from events alone): a pin or a collection naming an id that
        exists nowhere (a typo, an item not written yet) is left out."""
        if item_id in person.excluded or item_id in person.unavailable:
            return False
        facts = self.catalog.lookup()
        record = facts.records.get(item_id)
        if record is None:
            if model is not None and not _known_to(model, item_id):
                return False
            return condition is None or condition.matches_unknown_item()
        return self._record_admissible(record, facts.categories_of(item_id), person, condition)

    def _record_admissible(
        self,
        record: dict[str, Any],
        categories: frozenset[str],
        person: Person,
        condition: Filter | None,
    ) -> bool:
        """The catalog part of :meth:`_admissible`, for an item the catalog describes."""
        blocked = person.blocked_categories
        if blocked and not categories.isdisjoint(blocked):
            return False
        regions = record.get("regions")
        if person.region and regions is not None and person.region not in regions:
            return False
        if record.get("available") is False:
            return False
        return condition is None or condition.condition()(record)

    # -- assembling one list ---------------------------------------------------------------

    def _assemble(
        self,
        model: LoadedModel,
        person: Person,
        n: int,
        placement_name: str | None,
        config: PlacementConfig,
        condition: Filter | None,
        context: Mapping[str, str],
        model_list: list[tuple[str, float]],
        only: set[str] | None = None,
        keep_all: bool = False,
        explain: bool = True,
        look_alikes_only: bool = False,
    ) -> Recommendation:
        """The list from every source the placement weighs. ``look_alikes_only``: the
        exploration share goes only to new items that look like the page's item (a
        similar-items list), none where that cannot be judged."""
        pool = Pool()
        depth = candidate_depth(n, config)
        draft = Draft(pool, model, person, config, condition, context, depth)
        self._add_model(draft, model_list)
        if person.personalized:
            self._add_session(draft)
        self._add_current_item(draft)
        self._add_preferences(draft)
        segments = self._segments_of(config, person, context)
        self._add_collections(draft, segments)
        level = (
            person.preferences.diversity
            if person.preferences.diversity is not None
            else config.diversity.level
        )
        # fill-ins rank below every personal candidate: once n of those are in and nothing
        # re-orders or removes them (diversity, a re-ranked candidate list), no fill-in
        # that no personal source proposed can reach the list, so none is built
        reorders = only is not None or keep_all or _diversifies(level, config)
        pool.fill_only_shows = reorders or pool.personal_count() < n
        if pool.fill_only_shows or explain:  # else they would add only reasons
            self._add_popular(draft)
            self._add_trending(draft)
        pool.fill_only_shows = True
        if only is not None:
            for item_id in list(pool.items):
                if item_id not in only:
                    del pool.items[item_id]
            for item_id in only:  # candidates nobody scored still come back, last
                # an id Attune does not know yet stays too (the caller's catalog may be
                # ahead of Attune's): a re-ranked list loses only what rules refuse
                if item_id not in pool.items and self._admissible(item_id, person, condition):
                    pool.add(item_id, "candidate", 1e-9, 1.0, _reason("candidate", "In your list"))
        self._apply_factors(pool, person, config, segments, context)
        ranked = pool.ranked()
        ordered = self._rerank(ranked, n if not keep_all else len(ranked), level, config, person)
        anchor = context.get("item_id")
        ordered = self._explore(
            ordered, model, person, config, condition, n, anchor, look_alikes_only
        )
        if config.diversity.max_per_category is not None and only is None:
            ordered = self._capped(ordered, n, config.diversity.max_per_category)
        if only is None and not look_alikes_only and len(ordered) < n:
            taken = {c.item_id for c in ordered} | {p.item_id for p in config.pins}
            ordered += self._unscored(draft, n - len(ordered), taken)
        ordered = self._pin(ordered, model, person, config, condition)
        final = ordered[:n]
        if explain:
            self._name_seeds(model, person, final)
        items = [ScoredItem(c.item_id, _score(c), c.main_source, c.reasons) for c in final]
        sources = Counter(it.source for it in items)
        return Recommendation(
            new_recommendation_id(),
            items,
            model.version.version_id,
            dict(sources),
            placement_name,
            placement_digest(config),
            person.personalized,
        )

    def _add_model(self, draft: Draft, model_list: list[tuple[str, float]]) -> None:
        pool, _, _, config, _, _, _ = draft
        weight = config.weight("model")
        if not model_list or weight <= 0:
            return
        top = model_list[0][1]
        # "because you …" is worked out for the items that make the list (_name_seeds)
        reason = _reason("model", MODEL_REASON)
        for item_id, score in model_list:
            pool.add(item_id, "model", score / top, weight, reason)

    def _name_seeds(self, model: LoadedModel, person: Person, final: list[Candidate]) -> None:
        """Turn the model's reason into "Because you watched …" on the listed items whose
        nearest recent history item the item-to-item model knows. Only for the final
        list: the similarity lookups and titles would be wasted on the other candidates."""
        placeholder = _reason("model", MODEL_REASON)
        listed = [c for c in final if placeholder in c.reasons]
        if not listed:
            return
        because = self._because(model, person, [c.item_id for c in listed])
        for candidate in listed:
            seed = because.get(candidate.item_id)
            if seed is None:
                continue
            verb = VERBS.get(seed.type, "interacted with")
            named = _reason(
                "history", f"Because you {verb} {self.catalog.title(seed.item_id)}", seed.item_id
            )
            candidate.reasons = [named if r == placeholder else r for r in candidate.reasons]

    def _because(
        self, model: LoadedModel, person: Person, items: list[str]
    ) -> dict[str, HistoryEvent]:
        """For each recommended item, the recent history item most similar to it (by the
        item-to-item model), when any is."""
        similarity = getattr(model.similar, "similarity", None)
        if similarity is None or not items:
            return {}
        position = _positions(model, "similar")
        recent: dict[str, HistoryEvent] = {}
        for event in _consumed(reversed(person.history)):
            if event.item_id in position and event.item_id not in recent:
                recent[event.item_id] = event
            if len(recent) == EXPLAIN_HISTORY:
                break
        if not recent:
            return {}
        seeds = list(recent.values())
        targets = [i for i in items if i in position]
        if not targets:
            return {}
        seed_positions = np.array([position[e.item_id] for e in seeds], dtype=np.int64)
        target_positions = np.array([position[i] for i in targets], dtype=np.int64)
        block = dense_block(similarity, seed_positions, target_positions)
        if similarity.shape[0] == similarity.shape[1]:  # symmetric use: also item → seed
            back = dense_block(similarity, target_positions, seed_positions)
            block = np.maximum(block, back.T)
        best = block.argmax(axis=0)
        found = {}
        for column, item_id in enumerate(targets):
            if block[best[column], column] > 0:
                found[item_id] = seeds[best[column]]
        return found

    def _similar_to(
        self,
        model: LoadedModel,
        seeds: list[tuple[str, float]],
        ok: np.ndarray,
        depth: int,
    ) -> dict[str, tuple[float, str]]:
        """Items similar to weighted seeds: id → (score, the seed that gave most).

        A seed outside the item-to-item model's item space (added to the catalog since
        the version was trained) is matched by its catalog description where the model
        can read one (content), so a new item's page and a person who just viewed it get
        its look-alikes before the next training."""
        position = _positions(model, "similar")
        known = [(position[i], w, i) for i, w in seeds if i in position]
        unknown = [(i, w) for i, w in seeds if i not in position]
        if not known and not (unknown and hasattr(model.similar, "similar_to_records")):
            return {}
        wanted = min(depth + int((~ok).sum()), model.similar.n_items)
        rows: list[tuple[str, float, np.ndarray, np.ndarray]] = []
        if known:
            try:
                index, scores = model.similar.similar_items(
                    np.array([p for p, _, _ in known]), wanted
                )
            except NotSupportedError:  # a version without an item-to-item model
                return {}
            rows += [(seed, w, index[r], scores[r]) for r, (_, w, seed) in enumerate(known)]
        rows += self._described_matches(model, unknown, wanted)
        ids = model.similar.item_ids
        found: dict[str, tuple[float, str]] = {}
        best_part: dict[str, float] = {}
        for seed, weight, row_index, row_scores in rows:
            for i, s in zip(row_index.tolist(), row_scores.tolist(), strict=True):
                if i < 0 or not ok[i] or not math.isfinite(s) or s <= 0:
                    continue
                item_id = str(ids[i])
                part = weight * s
                total = found.get(item_id, (0.0, seed))[0] + part
                top_seed = seed if part > best_part.get(item_id, 0.0) else found[item_id][1]
                best_part[item_id] = max(best_part.get(item_id, 0.0), part)
                found[item_id] = (total, top_seed)
        return found

    def _described_matches(
        self, model: LoadedModel, seeds: list[tuple[str, float]], n: int
    ) -> list[tuple[str, float, np.ndarray, np.ndarray]]:
        """(seed, weight, indices, scores) of the items most like each seed the catalog
        describes, for seeds outside the item-to-item model's space; none where the
        model cannot read descriptions (item-kNN alone, or an older version)."""
        match = getattr(model.similar, "similar_to_records", None)
        if match is None or not seeds:
            return []
        facts = self.catalog.lookup()
        described = [(i, w, facts.records[i]) for i, w in seeds if i in facts.records]
        if not described:
            return []
        try:
            index, scores = match([record for _, _, record in described], n)
        except NotSupportedError:
            return []
        return [(i, w, index[r], scores[r]) for r, (i, w, _) in enumerate(described)]

    def _add_similar_source(
        self,
        pool: Pool,
        source: str,
        found: dict[str, tuple[float, str]],
        weight: float,
        text: str,
    ) -> None:
        if not found:
            return
        top = max(score for score, _ in found.values())
        for item_id, (score, seed) in found.items():
            pool.add(
                item_id,
                source,
                score / top,
                weight,
                _reason(source, text.format(title=self.catalog.title(seed)), seed),
            )

    def _add_session(self, draft: Draft) -> None:
        pool, model, person, config, condition, _, depth = draft
        weight = config.weight("session")
        if weight <= 0 or not person.session:
            return
        horizon = person.session[-1].timestamp - SESSION_SECONDS
        seeds: dict[str, float] = {}
        for event in reversed(person.session):
            if event.timestamp < horizon or event.type in NEGATIVE | NOT_CONSUMED:
                continue
            if event.item_id not in seeds:
                seeds[event.item_id] = 0.7 ** len(seeds)
            if len(seeds) == SESSION_SEEDS:
                break
        ok = self._ok(model, "similar", person, condition)
        found = self._similar_to(model, list(seeds.items()), ok, depth)
        self._add_similar_source(pool, "session", found, weight, "Because you just viewed {title}")

    def _add_current_item(self, draft: Draft) -> None:
        pool, model, person, config, condition, context, depth = draft
        weight = config.weight("current_item")
        current = context.get("item_id")
        if weight <= 0 or not current:
            return
        ok = self._ok(model, "similar", person, condition)
        found = self._similar_to(model, [(current, 1.0)], ok, depth)
        self._add_similar_source(pool, "current_item", found, weight, "Similar to {title}")

    def _add_preferences(self, draft: Draft) -> None:
        pool, model, person, config, condition, _, depth = draft
        weight = config.weight("preferences")
        prefs = person.preferences
        if weight <= 0 or not (prefs.liked_items or prefs.liked_categories):
            return
        # a newcomer's stated likes are all we know: let them lead the list
        if not person.history:
            weight = max(weight, 1.0)
        if prefs.liked_items:
            ok = self._ok(model, "similar", person, condition)
            found = self._similar_to(model, [(i, 1.0) for i in prefs.liked_items[-20:]], ok, depth)
            self._add_similar_source(pool, "preferences", found, weight, "Because you like {title}")
        if prefs.liked_categories:
            fallback = model.fallback
            view = self.catalog.space(fallback.item_ids, f"{model.version.version_id}/fallback")
            ok = self._ok(model, "fallback", person, condition)
            ranking = empty_history_ranking(model, "fallback")
            for category in prefs.liked_categories:
                inside = view.positions_in([category])
                inside = inside[ok[inside]]
                if not len(inside):
                    continue
                wanted = np.zeros(fallback.n_items, dtype=bool)
                wanted[inside] = True
                index, scores = first_allowed(ranking, wanted, depth)
                top = scores[0] if len(scores) and scores[0] > 0 else 1.0
                reason = _reason("preference", f"You said you like {category}")
                for i, s in zip(index.tolist(), scores.tolist(), strict=True):
                    # a small floor keeps a liked category's least popular items in play
                    pool.add(
                        str(fallback.item_ids[i]), "preferences", max(s / top, 0.05), weight, reason
                    )

    def _add_collections(self, draft: Draft, segments: set[str]) -> None:
        pool, model, person, config, condition, _, _ = draft
        for rule in config.rules:
            if rule.action != "show_collection" or rule.segment not in segments:
                continue
            count = len(rule.items)
            for rank, item_id in enumerate(rule.items):
                if self._admissible(item_id, person, condition, model):
                    # collections lead: above any normalised personal score
                    score = 10.0 + (count - rank) / count
                    reason = _reason("segment", f"Picked for {rule.segment}", segment=rule.segment)
                    pool.add(item_id, "collection", score, 1.0, reason)

    def _add_popular(self, draft: Draft) -> None:
        pool, model, person, config, condition, context, depth = draft
        weight = config.weight("popular")
        if weight <= 0:
            return
        fallback = model.fallback
        ok = self._ok(model, "fallback", person, condition)
        segment_values = _segment_values(person, context)
        scores = None
        scorer = getattr(fallback, "scores_for_segment", None)
        if scorer is not None and segment_values:
            scores = scorer(segment_values)
        if scores is not None:
            where = person.region or next(iter(segment_values.values()))
            text = (
                f"Popular in {where} lately" if person.region else f"Popular with {where} visitors"
            )
            reason = _reason("popular", text)
            index, values = _top_scores(np.asarray(scores, dtype=np.float64), ok, depth)
        else:
            reason = _reason("popular", "Popular lately")
            index, values = first_allowed(empty_history_ranking(model, "fallback"), ok, depth)
        top = values[0] if len(values) and values[0] > 0 else 1.0
        for i, s in zip(index.tolist(), values.tolist(), strict=True):
            pool.add(str(fallback.item_ids[i]), "popular", s / top, weight, reason)

    def _unscored(self, draft: Draft, wanted: int, taken: set[str]) -> list[Candidate]:
        """Catalog items no source could rank (added since the model was trained, or
        never interacted with) for a list every other source left short (a filter only
        such items match): up to ``wanted`` of them, newest first, after the rest (pins
        then take their places). None for a placement that keeps to established items
        (no exploration share)."""
        _, model, person, config, condition, _, _ = draft
        if config.exploration.share <= 0:
            return []
        snapshot = self.catalog.snapshot()
        if condition is not None and condition.uses_fields:
            mask = self.filters.catalog_mask(condition, snapshot).copy()
        else:
            matches = condition is None or condition.matches_unknown_item()
            mask = np.full(len(snapshot.records), matches, dtype=bool)
        space = f"{model.version.version_id}/fallback"
        ranked = self.filters.rows_of(snapshot, model.fallback.item_ids, space)
        mask[ranked[ranked >= 0]] = False
        mask[snapshot.holes] = False
        rows = np.flatnonzero(mask)
        records = snapshot.records
        created = np.fromiter(
            (records[r].get("created_at") or -np.inf for r in rows.tolist()),
            dtype=np.float64,
            count=len(rows),
        )
        order = np.argsort(-created, kind="stable")  # undated last, in catalog order
        rows, created = rows[order], created[order]
        lookup = self.catalog.lookup()
        recent = time.time() - config.exploration.new_item_days * 86_400.0
        new, other = _reason("catalog", "New in the catalog"), _reason("catalog", "In the catalog")
        found: list[Candidate] = []
        for k, row in enumerate(rows.tolist()):
            record = records[row]
            item_id = str(record["item_id"])
            if item_id in taken or item_id in person.excluded or item_id in person.unavailable:
                continue
            if not self._record_admissible(record, lookup.categories_of(item_id), person, None):
                continue
            reason = new if created[k] >= recent else other
            found.append(Candidate(item_id, sources={"catalog": 0.0}, reasons=[reason]))
            if len(found) == wanted:
                break
        return found

    def _add_trending(self, draft: Draft) -> None:
        pool, _, person, config, condition, _, depth = draft
        weight = config.weight("trending")
        if weight <= 0:
            return
        found = [
            t
            for t in self.trending.top(depth * 2)
            if self._admissible(t.item_id, person, condition)
        ]
        if not found:
            return
        top = found[0].score
        reason = _reason("trending", "Trending now")
        for t in found[:depth]:
            pool.add(t.item_id, "trending", t.score / top, weight, reason)

    # -- scoring adjustments and re-ranking ----------------------------------------------------

    def _apply_factors(
        self,
        pool: Pool,
        person: Person,
        config: PlacementConfig,
        segments: set[str],
        context: Mapping[str, str],
    ) -> None:
        liked = set(person.preferences.liked_categories)
        disliked = self._not_interested_categories(person)
        texts = list(config.boosts) + [
            rule.boost
            for rule in config.rules
            if rule.action == "boost" and rule.segment in segments and rule.boost
        ]
        if not (liked or disliked or texts):
            return  # nothing here changes a factor or adds a reason
        values = _bindings(context, person)
        boosts = [_parse_boost(text).bind(values) for text in texts]
        facts = self.catalog.lookup()
        for candidate in pool.items.values():
            record = facts.records.get(candidate.item_id)
            categories = facts.categories_of(candidate.item_id)
            if liked & categories:
                candidate.factor *= LIKED_CATEGORY_BOOST
                liked_here = sorted(liked & categories)[0]
                reason = _reason("preference", f"In {liked_here}, which you said you like")
                if reason not in candidate.reasons:
                    candidate.reasons.append(reason)
            if disliked & categories:
                candidate.factor *= NOT_INTERESTED_FACTOR
            for boost in boosts:
                matched = (
                    boost.condition.condition()(record)
                    if record is not None
                    else boost.condition.matches_unknown_item()
                )
                if matched:
                    candidate.factor *= boost.factor

    def _not_interested_categories(self, person: Person) -> set[str]:
        found: set[str] = set()
        negative = [e.item_id for e in person.history if e.type in NEGATIVE]
        negative += [e.item_id for e in person.session if e.type in NEGATIVE]
        for item_id in negative[-50:]:
            found |= self.catalog.categories_of(item_id)
        return found - set(person.preferences.liked_categories)

    def _rerank(
        self,
        ranked: list[Candidate],
        n: int,
        level: float,
        config: PlacementConfig,
        person: Person,
    ) -> list[Candidate]:
        settings = config.diversity
        if not ranked or not _diversifies(level, config):
            return ranked
        head = ranked[: max(3 * n, n + 20)]
        tail = ranked[len(head) :]
        categories = [self.catalog.categories_of(c.item_id) for c in head]
        # personal candidates above fill-ins, each tier squashed into [0, 1)
        relevance = [2.0 * k[0] + k[1] / (1.0 + k[1]) for k in (c.rank_key() for c in head)]
        if settings.calibrated and person.history:
            target = self._history_categories(person)
            order = diversity.calibrate(relevance, categories, target, len(head), max(level, 0.5))
        else:
            order = diversity.mmr(relevance, categories, len(head), level)
        ordered = [head[i] for i in order] + tail
        if settings.max_per_category is not None:
            ordered = self._capped(ordered, n, settings.max_per_category)
        return ordered

    def _capped(self, ordered: list[Candidate], n: int, cap: int) -> list[Candidate]:
        """``ordered`` with no category more than ``cap`` times among the first ``n``,
        as far as the candidates allow (the cap of :func:`diversity.cap_per_category`)."""
        categories = [self.catalog.categories_of(c.item_id) for c in ordered]
        order = diversity.cap_per_category(range(len(ordered)), categories, len(ordered), cap, n)
        return [ordered[i] for i in order]

    def _history_categories(self, person: Person) -> dict[str, float]:
        weights: Counter[str] = Counter()
        for categories in self._recent_categories(person):
            for c in categories:
                weights[c] += 1.0 / len(categories)
        return dict(weights)

    def _followed_categories(self, person: Person) -> set[str]:
        """Categories the person said they like or consumed items of lately (the keys of
        :meth:`_history_categories`, without weighing them)."""
        followed = set(person.preferences.liked_categories)
        for categories in self._recent_categories(person):
            followed |= categories
        return followed

    def _recent_categories(self, person: Person) -> Iterator[frozenset[str]]:
        """The categories of each item the person had in their newest
        :data:`HISTORY_CATEGORY_EVENTS` events."""
        facts = self.catalog.lookup()
        recent = person.history[-HISTORY_CATEGORY_EVENTS:]
        return (facts.categories_of(event.item_id) for event in _consumed(recent))

    def _explore(
        self,
        ordered: list[Candidate],
        model: LoadedModel,
        person: Person,
        config: PlacementConfig,
        condition: Filter | None,
        n: int,
        anchor: str | None = None,
        look_alikes_only: bool = False,
    ) -> list[Candidate]:
        """Give new items the reserved share of slots, spread through the list: items
        created within ``new_item_days``, newest first, then (``untried_items``) those the
        model has seen no interaction with. On an item's page (``anchor``: a similar-items
        list, or ``context.item_id``) only new items that look like that item qualify,
        where the item-to-item model reads descriptions (with ``look_alikes_only``, none
        where it cannot); elsewhere the new items sharing most categories with what the
        person had."""
        slots = round(config.exploration.share * n)
        if slots <= 0:
            return ordered
        # a fresh pass each (the first may have read some before it declines)
        fresh = functools.partial(self._fresh_items, ordered, model, person, config, condition, n)
        chosen = None
        if anchor is not None:
            chosen = self._new_look_alikes(fresh(), model, n, slots, anchor)
        if chosen is None and not look_alikes_only:
            chosen = self._new_for_person(fresh(), person, config, slots)
        if not chosen:
            return ordered
        chosen_ids = {x.item_id for x in chosen}
        head = [c for c in ordered if c.item_id not in chosen_ids]
        step = max(1, n // (len(chosen) + 1))
        for k, candidate in enumerate(chosen):
            head.insert(min((k + 1) * step, len(head)), candidate)
        return head

    def _fresh_items(
        self,
        ordered: list[Candidate],
        model: LoadedModel,
        person: Person,
        config: PlacementConfig,
        condition: Filter | None,
        n: int,
    ) -> Iterator[NewItem]:
        """The new items exploration may offer this person, newest first (then untried
        ones): not in the list already, not excluded, unavailable or filtered out, and
        not in a category the list's other items already fill to the placement's cap."""
        since = time.time() - config.exploration.new_item_days * 86_400
        shown = {c.item_id for c in ordered[:n]}
        cap = config.diversity.max_per_category
        full: set[str] = set()
        if cap is not None:
            slots = round(config.exploration.share * n)
            counts = Counter(
                c
                for item in ordered[: max(n - slots, 0)]
                for c in self.catalog.categories_of(item.item_id)
            )
            full = {category for category, count in counts.items() if count >= cap}
        # the catalog checks only matter for an item some of them could keep out
        checks = bool(person.blocked_categories) or condition is not None
        excluded, unavailable = person.excluded, person.unavailable
        new: Iterable[NewItem] = self.catalog.new_items(since)
        if config.exploration.untried_items:
            untried = self.catalog.untried_items(tried_items(model), model.version.version_id)
            new = itertools.chain(new, untried)
        for item in new:
            item_id = item.item_id
            if item_id in shown or item_id in excluded or item_id in unavailable:
                continue
            if full and not full.isdisjoint(item.categories):
                continue
            shown.add(item_id)  # an item both recent and untried is offered once
            if (checks or not item.open_to_all) and not self._record_admissible(
                item.record, item.categories, person, condition
            ):
                continue
            yield item

    def _new_for_person(
        self, fresh_items: Iterator[NewItem], person: Person, config: PlacementConfig, slots: int
    ) -> list[Candidate]:
        """New items for the exploration slots, by the categories the person follows."""
        affinity = self._followed_categories(person)
        # among the first 50 per slot, those sharing most categories with the person win
        # (the newest first among equals); with nothing to share, the newest win. Items
        # sharing as many as any item can fill the slots at once: none after them can
        # rank above them.
        wanted = 50 * slots if affinity else slots
        most = min(len(affinity), self.catalog.most_categories())
        if config.exploration.untried_items:
            # an untried item may share more than any dated one (what ``most`` counts)
            most = len(affinity)
        fresh = []
        best = 0  # items seen sharing ``most``
        for item in fresh_items:
            overlap = len(item.categories & affinity)
            fresh.append((overlap, item.item_id, item.categories))
            best += overlap == most
            if len(fresh) >= wanted or best >= slots:
                break
        fresh.sort(key=lambda f: -f[0])  # stable: the newest first among equals
        chosen = []
        for overlap, item_id, categories in fresh[:slots]:
            if overlap:
                followed = sorted(categories & affinity)[0]
                reason = _reason("new", f"New in {followed}, a category you follow")
            else:
                reason = _reason("new", "New arrival")
            chosen.append(Candidate(item_id, sources={"exploration": 1.0}, reasons=[reason]))
        return chosen

    def _new_look_alikes(
        self, fresh_items: Iterator[NewItem], model: LoadedModel, n: int, slots: int, anchor: str
    ) -> list[Candidate] | None:
        """New items for the exploration slots of ``anchor``'s page: among the first 50
        per slot, those that would rank among its ``n`` closest items by description,
        most alike first (none if none does). None where the item-to-item model reads no
        descriptions or the catalog has none of the anchor."""
        look_alikes = getattr(model.similar, "look_alikes", None)
        record = self.catalog.record(anchor)
        if look_alikes is None or record is None:
            return None
        fresh = list(itertools.islice(fresh_items, 50 * slots))
        if not fresh:
            return []
        try:
            position = _positions(model, "similar").get(anchor)
            alike = look_alikes(record, [item.record for item in fresh], n, position)
        except NotSupportedError:  # a version saved before descriptions could be read
            return None
        reason = _reason("new", f"New, like {self.catalog.title(anchor)}")
        return [
            Candidate(fresh[k].item_id, sources={"exploration": 1.0}, reasons=[reason])
            for k, _ in alike[:slots]
        ]

    def _pin(
        self,
        ordered: list[Candidate],
        model: LoadedModel,
        person: Person,
        config: PlacementConfig,
        condition: Filter | None,
    ) -> list[Candidate]:
        if not config.pins:
            return ordered
        pins = [
            p
            for p in sorted(config.pins, key=lambda p: p.position)
            if self._admissible(p.item_id, person, condition, model)
        ]
        pinned_ids = {p.item_id for p in pins}
        rest = [c for c in ordered if c.item_id not in pinned_ids]
        for pin in pins:
            found = next((c for c in ordered if c.item_id == pin.item_id), None)
            candidate = found or Candidate(pin.item_id, sources={"pinned": 1.0})
            candidate.reasons = [_reason("pinned", "Featured"), *candidate.reasons]
            candidate.sources = {**candidate.sources, "pinned": float("inf")}
            rest.insert(min(pin.position - 1, len(rest)), candidate)
        return rest

    # -- segments and rules --------------------------------------------------------------------

    def _segments_of(
        self, config: PlacementConfig, person: Person | None, context: Mapping[str, str]
    ) -> set[str]:
        if not config.rules:
            return set()
        return self.segments.members(
            {r.segment for r in config.rules}, _user_record(person, context)
        )

    @staticmethod
    def rule_filter_sets(config: PlacementConfig) -> list[list[str]]:
        """The lists of segment-rule filters a request of ``config`` may be given (each
        in rule order, as :meth:`_rule_filters` gives them), the empty list first: every
        combination of up to :data:`RULE_FILTERS_COMBINED` filter rules; beyond that,
        each rule alone and all together."""
        texts = [r.filter for r in config.rules if r.action == "filter" and r.filter]
        if len(texts) > RULE_FILTERS_COMBINED:
            return [[], *([t] for t in texts), texts]
        return [
            [t for k, t in enumerate(texts) if chosen >> k & 1] for chosen in range(1 << len(texts))
        ]

    def _rule_filters(
        self, config: PlacementConfig, person: Person | None, context: Mapping[str, str]
    ) -> list[str]:
        if not config.rules:
            return []
        segments = self._segments_of(config, person, context)
        return [
            r.filter
            for r in config.rules
            if r.action == "filter" and r.segment in segments and r.filter
        ]


class PlacementBook:
    """Placements by name, read through a short in-process cache."""

    REFRESH_SECONDS = 2.0

    def __init__(self, store: Any) -> None:
        self.store = store
        self._cache: dict[str, tuple[float, PlacementConfig | None]] = {}

    def resolve(self, name: str | None) -> tuple[str | None, PlacementConfig]:
        if name is None:
            return None, DEFAULT_PLACEMENT
        cached = self._cache.get(name)
        if cached is None or time.monotonic() - cached[0] > self.REFRESH_SECONDS:
            row = self.store.get(name)
            config = PlacementConfig.stored(row["config"]) if row else None
            cached = (time.monotonic(), config)
            self._cache[name] = cached
        if cached[1] is None:
            raise NotFoundError(f"placement {name!r} does not exist")
        return name, cached[1]

    def forget(self, name: str) -> None:
        self._cache.pop(name, None)


# -- helpers -------------------------------------------------------------------------------


_NO_EXPLORATION = Exploration(share=0.0)


def new_recommendation_id() -> str:
    """32 hex digits: the time in nanoseconds, then 64 random bits. Ids made later sort
    later, so the recommendation log's primary key grows at its end rather than taking
    random inserts all over a large index (as random UUIDs did)."""
    return f"{time.time_ns():016x}{secrets.randbits(64):016x}"


def _reason(kind: str, text: str, item_id: str | None = None, **extra: Any) -> dict[str, Any]:
    reason: dict[str, Any] = {"kind": kind, "text": text}
    if item_id is not None:
        reason["item_id"] = item_id
    reason.update(extra)
    return reason


def _diversifies(level: float, config: PlacementConfig) -> bool:
    """Whether re-ranking for diversity changes the order (MMR, a category cap, calibration)."""
    settings = config.diversity
    return level > 0 or settings.max_per_category is not None or settings.calibrated


def _score(candidate: Candidate) -> float:
    _, value = candidate.rank_key()
    return float(value) if math.isfinite(value) else 0.0


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def with_clock(context: Mapping[str, str] | None) -> dict[str, str]:
    """The request context, with time of day and day of week unless the caller gave them."""
    return {**clock_context(), **(context or {})}


def _consumed(history: Iterable[HistoryEvent]) -> Iterator[HistoryEvent]:
    """The events of ``history`` that say the person had the item (not an impression,
    not a "not interested")."""
    return (e for e in history if e.type not in NOT_CONSUMED and e.type not in NEGATIVE)


def _seen(history: list[HistoryEvent], placement: PlacementConfig) -> set[str]:
    rule = placement.exclude_seen
    if not rule.enabled or not history:
        return {e.item_id for e in history if e.type in NEGATIVE}
    horizon = time.time() - rule.window_days * 86_400 if rule.window_days else float("-inf")
    types = set(rule.types) if rule.types is not None else None
    seen = set()
    for event in history:
        if event.type in NEGATIVE or (
            event.timestamp >= horizon
            and (event.type in types if types is not None else event.type not in NOT_CONSUMED)
        ):
            seen.add(event.item_id)
    return seen


def candidate_depth(n: int, config: PlacementConfig | None = None) -> int:
    """How many candidates each source proposes for a list of ``n``: room for boosts,
    diversity and the exploration share; more where a boost or a cap per category can
    bring up items ranked far below the first ``n``."""
    depth = n + 2 * max(10, n)
    if config is not None and (
        config.boosts
        or config.diversity.max_per_category is not None
        or any(rule.action == "boost" for rule in config.rules)
    ):
        depth = max(depth, 5 * n + 50)
    return depth


def _known_to(model: LoadedModel, item_id: str) -> bool:
    """Whether any of the model's roles has ``item_id`` in its item space."""
    return any(item_id in _positions(model, role) for role in ("main", "fallback", "similar"))


def _positions(model: LoadedModel, role: str) -> Mapping[str, int]:
    if role == "main":
        return model.item_position
    if role == "fallback":
        return model.fallback_position
    cache = model.__dict__.setdefault("_similar_position", None)
    if cache is None:
        cache = {item: i for i, item in enumerate(model.similar.item_ids.tolist())}
        model.__dict__["_similar_position"] = cache
    return cache


def _excluded_positions(
    person: Person, position: Mapping[str, int], view: SpaceView, unavailable: np.ndarray
) -> np.ndarray:
    """Positions (in one item space) the person may not be shown; may repeat a position.

    ``unavailable``: the positions of ``person.unavailable`` in that space."""
    ids = np.fromiter((position[i] for i in person.excluded if i in position), dtype=np.int64)
    parts = [
        ids,
        unavailable,
        view.positions_in(person.blocked_categories),
        view.outside_region(person.region),
    ]
    return np.concatenate(parts) if any(len(p) for p in parts) else np.zeros(0, dtype=np.int64)


def _exclusion_matrix(
    people: Sequence[Person],
    position: Mapping[str, int],
    view: SpaceView,
    n_items: int,
    unavailable: Sequence[np.ndarray],
) -> sp.csr_matrix:
    """(len(people), n_items) sparse mask of what each person may not be shown. Rows are
    built directly in CSR form (a position may repeat within a row: a mask, not counts)."""
    cols = [
        _excluded_positions(person, position, view, gone)
        for person, gone in zip(people, unavailable, strict=True)
    ]
    indptr = np.zeros(len(people) + 1, dtype=np.int64)
    np.cumsum([len(c) for c in cols], out=indptr[1:])
    indices = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
    data = np.ones(len(indices), dtype=np.float32)
    return csr_of_parts(data, indices, indptr, (len(people), n_items), canonical=False)


def _top_scores(scores: np.ndarray, ok: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    masked = np.where(ok, scores, -np.inf)
    k = min(n, int(ok.sum()))
    if k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    part = np.argpartition(-masked, k - 1)[:k]
    order = part[np.argsort(-masked[part], kind="stable")]
    keep = np.isfinite(masked[order])
    return order[keep], masked[order][keep]


def _segment_values(person: Person, context: Mapping[str, str]) -> dict[str, str]:
    """What a per-segment popularity model may key on: traits and request context."""
    values = {f"traits.{k}": v for k, v in person.traits.items() if isinstance(v, str)}
    values.update({f"context.{k}": v for k, v in context.items() if isinstance(v, str)})
    if person.region and "context.region" not in values:
        values["context.region"] = person.region
    return values


def _user_record(person: Person | None, context: Mapping[str, str]) -> dict[str, Any]:
    """The fields a segment rule reads (see :mod:`attune.engine.segments`)."""
    if person is None:
        return {"user_id": None, "traits": {}, "context": dict(context), "events": 0}
    history = person.history
    purchases = [e.timestamp for e in history if e.type == "purchase"]
    return {
        "user_id": person.user_id,
        "traits": person.traits,
        "context": dict(context),
        "events": len(history),
        "purchases": len(purchases),
        "first_seen_at": history[0].timestamp if history else None,
        "last_seen_at": history[-1].timestamp if history else None,
        "last_purchase_at": max(purchases) if purchases else None,
    }


def _bindings(context: Mapping[str, str] | None, person: Person | None) -> dict[str, Any]:
    """Values for the request-bound names of filters and boosts."""
    return {"context": dict(context or {}), "user": dict(person.traits) if person else {}}


def _parse_boost(text: str) -> Any:
    from attune.engine.expressions import parse_boost

    return parse_boost(text)
