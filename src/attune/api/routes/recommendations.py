"""``GET /v1/users/{id}/recommendations``: a personalised list for one person."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from attune.api.deps import RecommendationsDep, StoresDep
from attune.api.routes._common import UserIdPath
from attune.engine.expressions import MAX_LENGTH
from attune.engine.recommend import Recommendation
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

router = APIRouter(tags=["recommendations"])


class RecommendedItem(BaseModel):
    item_id: str
    score: float
    source: str = Field(description="What produced the score: model or popular (fallback)")
    item: dict[str, Any] | None = Field(default=None, description="Catalog entry (include_items)")


class RecommendationOut(BaseModel):
    recommendation_id: str = Field(description="Send it back on events to attribute outcomes")
    items: list[RecommendedItem]
    model_version: str


def recommendation_out(
    rec: Recommendation, stores: Stores, include_items: bool
) -> RecommendationOut:
    catalog = stores.catalog.get_items([it.item_id for it in rec.items]) if include_items else {}
    items = []
    for it in rec.items:
        entry = catalog.get(it.item_id)
        summary = None
        if entry is not None:
            summary = {
                k: entry.get(k) for k in ("title", "categories", "tags", "price", "available")
            }
        items.append(
            RecommendedItem(item_id=it.item_id, score=it.score, source=it.source, item=summary)
        )
    return RecommendationOut(
        recommendation_id=rec.recommendation_id, items=items, model_version=rec.model_version
    )


@router.get(
    "/v1/users/{user_id}/recommendations",
    response_model=RecommendationOut,
    response_model_exclude_none=True,
    summary="Recommendations for a user",
)
async def user_recommendations(
    user_id: UserIdPath,
    service: RecommendationsDep,
    stores: StoresDep,
    n: Annotated[int, Query(ge=1, le=500, description="How many items")] = 10,
    include_items: Annotated[bool, Query(description="Embed each item's catalog entry")] = False,
    filter_text: FilterQuery = None,
) -> RecommendationOut:
    """Never returns an item the user already interacted with, including events accepted
    a moment ago. People with no usable history get popular items. With ``filter``, both
    the model's picks and the popular fill-ins match it; a malformed filter is a 422."""
    rec = await run_in_threadpool(service.for_user, user_id, n, filter_text)
    if include_items:
        return await run_in_threadpool(recommendation_out, rec, stores, True)
    return recommendation_out(rec, stores, False)
