"""``GET /v1/users/{id}/recommendations``, ``POST /v1/rank`` and ``GET /v1/trending``."""

from __future__ import annotations

import asyncio
import functools
import re
import weakref
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, TypeVar

import anyio
import anyio.to_thread
import orjson
from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from attune.api.deps import RecommendationsDep, Services, ServicesDep, StoresDep
from attune.api.routes._common import UserIdPath
from attune.engine.expressions import MAX_LENGTH
from attune.engine.recommend import Recommendation
from attune.errors import ValidationError
from attune.features.context import context_value_problem
from attune.ingest.schemas import Id
from attune.store.factory import Stores

FilterQuery = Annotated[
    str | None,
    Query(
        alias="filter",
        max_length=MAX_LENGTH,
        description='Only items matching this expression, e.g. `"Comedy" in categories and '
        "price < 20` or `created_at > now - 7d` (grammar: attune.engine.expressions)",
    ),
]
PlacementQuery = Annotated[
    str | None,
    Query(max_length=128, description="Named placement whose configuration shapes the list"),
]
ExplainQuery = Annotated[bool, Query(description="Give each item the reasons it is there")]
IncludeItemsQuery = Annotated[bool, Query(description="Embed each item's catalog entry")]

JSON = "application/json"
DECISION_THREADS = 2
"""Lists decided at once per server process (see :func:`decide_in_thread`)."""
CONTEXT_KEY = re.compile(r"^context\.([a-z][a-z0-9_]{0,31})$")
MAX_CONTEXT_VALUE = 200
MAX_CONTEXT_KEYS = 20

router = APIRouter(tags=["recommendations"])


class RecommendedItem(BaseModel):
    item_id: str
    score: float
    source: str = Field(
        description="What put it in the list: model, session, current_item, preferences, "
        "collection, popular, trending, catalog (an item no model ranks yet, filling a "
        "list nothing else could), exploration, pinned, or candidate (a re-ranked list's "
        "item no source scored)"
    )
    reasons: list[dict[str, Any]] | None = Field(
        default=None, description="Why it is there (with explain=true): kind, text, item_id"
    )
    item: dict[str, Any] | None = Field(default=None, description="Catalog entry (include_items)")


class RecommendationOut(BaseModel):
    recommendation_id: str = Field(description="Send it back on events to attribute outcomes")
    items: list[RecommendedItem]
    model_version: str
    placement: str | None = None
    personalized: bool = Field(
        default=True, description="False when the person opted out or gave no consent"
    )


def context_params(request: Request) -> dict[str, str]:
    """The request's ``context.<key>=value`` query parameters (device, channel, locale,
    region, item_id, daypart, …), validated."""
    found: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if not name.startswith("context."):
            continue
        match = CONTEXT_KEY.match(name)
        loc = ["query", name]
        if match is None:
            raise ValidationError(
                "invalid context parameter",
                details=[{"loc": loc, "msg": "context keys are lowercase words: context.device"}],
            )
        if len(value) > MAX_CONTEXT_VALUE or "\x00" in value:
            raise ValidationError(
                "invalid context value",
                details=[{"loc": loc, "msg": f"at most {MAX_CONTEXT_VALUE} characters, no NUL"}],
            )
        problem = context_value_problem(match.group(1), value)
        if problem is not None:
            raise ValidationError(
                f"invalid {name}", details=[{"loc": loc, "msg": f"{value!r} is not {problem}"}]
            )
        found[match.group(1)] = value
    if len(found) > MAX_CONTEXT_KEYS:
        raise ValidationError(
            "too many context parameters",
            details=[{"loc": ["query"], "msg": f"at most {MAX_CONTEXT_KEYS} context keys"}],
        )
    return found


def _summary(entry: dict[str, Any], locale: str | None) -> dict[str, Any]:
    """The catalog fields a list shows, with title and text in ``locale`` when the item
    has that translation (``fr-CA`` falls back to ``fr``)."""
    summary = {k: entry.get(k) for k in ("title", "categories", "tags", "price", "available")}
    translations = entry.get("translations") or {}
    if locale and translations:
        # locale tags are case-insensitive, and "fr_CA" is often written for "fr-CA"
        by_tag = {str(tag).replace("_", "-").lower(): tag for tag in translations}
        wanted = locale.replace("_", "-").lower()
        for candidate in (wanted, wanted.split("-")[0]):
            found = translations.get(by_tag.get(candidate, candidate))
            if isinstance(found, dict):
                summary["title"] = found.get("title") or summary["title"]
                if found.get("text"):
                    summary["text"] = found["text"]
                summary["locale"] = by_tag.get(candidate, candidate)
                break
    return summary


def recommendation_out(
    rec: Recommendation,
    stores: Stores,
    include_items: bool,
    explain: bool = False,
    locale: str | None = None,
) -> RecommendationOut:
    catalog = stores.catalog.get_items([it.item_id for it in rec.items]) if include_items else {}
    items = []
    for it in rec.items:
        entry = catalog.get(it.item_id)
        items.append(
            RecommendedItem(
                item_id=it.item_id,
                score=it.score,
                source=it.source,
                reasons=it.reasons if explain else None,
                item=_summary(entry, locale) if entry is not None else None,
            )
        )
    return RecommendationOut(
        recommendation_id=rec.recommendation_id,
        items=items,
        model_version=rec.model_version,
        placement=rec.placement,
        personalized=rec.personalized,
    )


T = TypeVar("T")
_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = (
    weakref.WeakKeyDictionary()
)


async def decide(
    services: Services,
    function: Callable[..., T],
    *args: Any,
    quick: Callable[[], bool] = lambda: True,
) -> T:
    """Run ``function(*args)``, a decision (CPU work under the GIL and a few short reads).

    With in-process stores (SQLite, in-process cache and sessions) it runs right here
    on the event loop: nothing in it waits on a network, so a worker thread would
    overlap nothing and only add its hand-over (waking a thread costs more than the
    database reads). Otherwise the reads wait on PostgreSQL or Redis and it goes to a
    worker thread (:func:`decide_in_thread`), as does a decision ``quick()`` says is
    not quick (one that first evaluates a new filter over the whole catalog: on the
    loop, every other request of the process would wait for it; in a thread they share
    the GIL). ``quick`` is asked only where the answer matters (in-process stores)."""
    if services.stores.in_process and quick():
        return function(*args)
    return await decide_in_thread(function, *args)


async def decide_in_thread(function: Callable[..., T], *args: Any) -> T:
    """Run ``function(*args)`` in a worker thread, at most ``DECISION_THREADS`` at once.

    Deciding a list is CPU work under the GIL with a few short database reads: more
    threads than that add only switching, and each reader beyond the database pool's
    size opens (and closes) a connection of its own. Requests beyond the limit wait
    on the event loop, not in a thread."""
    loop = asyncio.get_running_loop()
    limiter = _limiters.get(loop)
    if limiter is None:
        limiter = _limiters[loop] = anyio.CapacityLimiter(DECISION_THREADS)
    return await anyio.to_thread.run_sync(functools.partial(function, *args), limiter=limiter)


def recommendation_payload(
    rec: Recommendation,
    catalog: Mapping[str, dict[str, Any]],
    explain: bool = False,
    locale: str | None = None,
) -> dict[str, Any]:
    """What :func:`recommendation_out` renders (``exclude_none``), as plain data: the hot
    path skips building and re-validating the response models. ``catalog``: entries
    of the listed items to embed (empty unless ``include_items``)."""
    items = []
    for it in rec.items:
        item: dict[str, Any] = {"item_id": it.item_id, "score": it.score, "source": it.source}
        if explain and it.reasons is not None:
            item["reasons"] = it.reasons
        entry = catalog.get(it.item_id)
        if entry is not None:
            item["item"] = _summary(entry, locale)
        items.append(item)
    body: dict[str, Any] = {
        "recommendation_id": rec.recommendation_id,
        "items": items,
        "model_version": rec.model_version,
    }
    if rec.placement is not None:
        body["placement"] = rec.placement
    body["personalized"] = rec.personalized
    return body


def _json(body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), media_type=JSON)


def _user_list(
    services: Services,
    user_id: str,
    n: int | None,
    filter_text: str | None,
    placement: str | None,
    context: dict[str, str],
    include_items: bool,
    explain: bool,
) -> Response:
    """One person's list, rendered (on the event loop or one worker thread: :func:`decide`)."""
    rec = services.recommendations.for_user(
        services.user_key(user_id),
        n,
        filter_text,
        placement=placement,
        context=context,
        explain=explain,
    )
    catalog = (
        services.stores.catalog.get_items([it.item_id for it in rec.items]) if include_items else {}
    )
    return _json(recommendation_payload(rec, catalog, explain, context.get("locale")))


@router.get(
    "/v1/users/{user_id}/recommendations",
    response_model=RecommendationOut,
    response_model_exclude_none=True,
    summary="Recommendations for a user",
)
async def user_recommendations(
    request: Request,
    user_id: UserIdPath,
    services: ServicesDep,
    n: Annotated[int | None, Query(ge=1, le=500, description="How many items")] = None,
    placement: PlacementQuery = None,
    include_items: IncludeItemsQuery = False,
    explain: ExplainQuery = False,
    filter_text: FilterQuery = None,
) -> Response:
    """Never returns an item the user already interacted with, including events accepted
    a moment ago, nor anything they blocked. People with no usable history get their
    stated likes, then popular items (per region or device when known). ``context.*``
    parameters (e.g. ``context.device=mobile&context.region=EU&context.item_id=42``)
    steer the list; a malformed filter is a 422 with its position."""
    context = context_params(request)
    return await decide(
        services,
        _user_list,
        services,
        user_id,
        n,
        filter_text,
        placement,
        context,
        include_items,
        explain,
        quick=functools.partial(
            services.recommendations.decides_quickly, filter_text, placement, context
        ),
    )


def _scalar_text(value: Any) -> Any:
    """A context value given as a number or a boolean, as the query string would carry it
    (``20`` → ``"20"``, ``true`` → ``"true"``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


class RankIn(BaseModel):
    """A candidate list to re-rank for one person."""

    model_config = ConfigDict(extra="forbid")

    user_id: Id | None = Field(default=None, description="Whose taste orders the list")
    items: list[Id] = Field(min_length=1, max_length=1_000, description="Candidate item ids")
    n: int | None = Field(default=None, ge=1, le=1_000, description="Keep the best n")
    placement: str | None = Field(default=None, max_length=128)
    filter: str | None = Field(default=None, max_length=MAX_LENGTH)
    context: dict[
        str, Annotated[str, BeforeValidator(_scalar_text), Field(max_length=MAX_CONTEXT_VALUE)]
    ] = Field(default_factory=dict, max_length=MAX_CONTEXT_KEYS)

    @field_validator("context")
    @classmethod
    def _context_values(cls, value: dict[str, str]) -> dict[str, str]:
        for key, text in value.items():
            problem = context_value_problem(key, text)
            if problem is not None:
                raise ValueError(f"{key}: {text!r} is not {problem}")
        return value


@router.post(
    "/v1/rank",
    response_model=RecommendationOut,
    response_model_exclude_none=True,
    summary="Re-rank a candidate list for a user",
)
async def rank(
    body: RankIn,
    services: ServicesDep,
    explain: ExplainQuery = False,
    include_items: IncludeItemsQuery = False,
) -> Response:
    """Orders the given items for the person: by the model where it knows them, then by
    popularity; candidates that are unavailable, blocked, already seen (per the
    placement) or refused by the filter are left out; ids Attune does not know yet come
    last (``"source": "candidate"``); nothing else is added."""
    if body.filter:  # refused here, so the error points into the body
        services.recommendations.engine.filters.parse(body.filter, loc=("body", "filter"))
    ready = services.recommendations.decides_quickly
    quick = functools.partial(ready, body.filter, body.placement, body.context)
    return await decide(services, _ranked, services, body, explain, include_items, quick=quick)


def _ranked(services: Services, body: RankIn, explain: bool, include_items: bool) -> Response:
    rec = services.recommendations.rank(
        services.user_key(body.user_id) if body.user_id else None,
        body.items,
        body.n,
        body.filter,
        placement=body.placement,
        context=body.context,
        explain=explain,
    )
    catalog = (
        services.stores.catalog.get_items([it.item_id for it in rec.items]) if include_items else {}
    )
    return _json(recommendation_payload(rec, catalog, explain, body.context.get("locale")))


class TrendingItemOut(BaseModel):
    item_id: str
    score: float = Field(description="How far above its usual level (Poisson z-score)")
    people: int = Field(description="Distinct people in the window")
    item: dict[str, Any] | None = None


class TrendingOut(BaseModel):
    window: str
    items: list[TrendingItemOut]


@router.get(
    "/v1/trending",
    response_model=TrendingOut,
    response_model_exclude_none=True,
    summary="Items trending now",
)
async def trending(
    request: Request,
    service: RecommendationsDep,
    stores: StoresDep,
    n: Annotated[int, Query(ge=1, le=500)] = 10,
    window: Annotated[Literal["1h", "24h", "7d"], Query(description="Look-back window")] = "24h",
    include_items: IncludeItemsQuery = False,
    locale: Annotated[str | None, Query(max_length=35)] = None,
    filter_text: FilterQuery = None,
) -> TrendingOut:
    """Items whose distinct-people count in the window is well above what their recent
    baseline predicts (the window ends at the newest event); unavailable items, items
    refused by ``filter`` and, with ``context.region``, items not offered there are
    left out. ``context.locale`` (or ``locale``) picks the titles' translation."""
    context = context_params(request)
    locale = locale or context.get("locale")
    found = await run_in_threadpool(service.trending, n, window, filter_text, context)
    catalog = stores.catalog.get_items([t.item_id for t in found]) if include_items else {}
    return TrendingOut(
        window=window,
        items=[
            TrendingItemOut(
                item_id=t.item_id,
                score=t.score,
                people=t.people,
                item=_summary(catalog[t.item_id], locale) if t.item_id in catalog else None,
            )
            for t in found
        ],
    )
