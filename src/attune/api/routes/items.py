"""Catalog routes: create, replace or delete items, read them back, list them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response

from attune.api.deps import IngestDep, RecommendationsDep, ServicesDep, StoresDep
from attune.api.routes._common import NO_NUL, ItemIdPath, item_out
from attune.api.routes.recommendations import (
    ExplainQuery,
    FilterQuery,
    IncludeItemsQuery,
    PlacementQuery,
    RecommendationOut,
    context_params,
    recommendation_out,
)
from attune.errors import NotFoundError, PayloadTooLargeError
from attune.ingest.schemas import (
    MAX_ID_LENGTH,
    BatchResult,
    ItemBatchIn,
    ItemDeleteIn,
    ItemDeleteOut,
    ItemIn,
    ItemOut,
)

router = APIRouter(tags=["items"])

MAX_ITEM_BATCH = 10_000


@router.put("/v1/items/{item_id}", response_model=ItemOut, summary="Create or replace an item")
def put_item(
    item_id: ItemIdPath, item: ItemIn, ingest: IngestDep, recommendations: RecommendationsDep
) -> dict[str, Any]:
    stored = ingest.put_item(item_id, item)
    recommendations.catalog_written({item_id: stored["available"]})  # the next lists follow
    return item_out(stored)


@router.patch(
    "/v1/items/{item_id}",
    response_model=ItemOut,
    summary="Change some of an item's fields",
    responses={404: {"description": "The catalog does not hold the item"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                media: {"schema": {"type": "object", "additionalProperties": True}}
                for media in ("application/json", "application/merge-patch+json")
            },
        }
    },
)
def patch_item(
    item_id: ItemIdPath,
    patch: Annotated[
        dict[str, Any],
        Body(
            description="The fields to change (ItemIn's fields; null resets one)",
            examples=[{"available": False}, {"price": 9.5}],
        ),
    ],
    ingest: IngestDep,
    recommendations: RecommendationsDep,
) -> dict[str, Any]:
    """JSON Merge Patch (RFC 7396; ``application/merge-patch+json`` or
    ``application/json``): the fields given replace the stored ones, ``null`` resets one
    to its default, ``properties`` and ``translations`` merge key by key; the rest keep
    their values (a stock or price feed sends ``{"available": false}`` or
    ``{"price": 9.5}`` alone). The patched item is validated whole; concurrent patches
    of one item all land. 404 for an item the catalog does not hold."""
    stored = ingest.patch_item(item_id, patch)
    recommendations.catalog_written({item_id: stored["available"]})  # the next lists follow
    return item_out(stored)


@router.post("/v1/items:batch", response_model=BatchResult, summary="Create or replace items")
def post_items(
    batch: ItemBatchIn, ingest: IngestDep, recommendations: RecommendationsDep
) -> BatchResult:
    """Each entry is an item with its ``item_id``; invalid entries are rejected one by one."""
    if len(batch.items) > MAX_ITEM_BATCH:
        raise PayloadTooLargeError(f"a batch holds at most {MAX_ITEM_BATCH} items")
    stored, results = ingest.put_items(batch.items)
    if stored:
        recommendations.catalog_written({row["item_id"]: row["available"] for row in stored})
    return BatchResult(accepted=len(stored), rejected=len(results) - len(stored), results=results)


@router.delete(
    "/v1/items/{item_id}",
    status_code=204,
    summary="Delete an item",
    responses={404: {"description": "Neither the catalog nor the serving model knows it"}},
)
def delete_item(
    item_id: ItemIdPath, stores: StoresDep, recommendations: RecommendationsDep
) -> Response:
    """The item leaves the catalog and is never recommended again, from the next list on
    (models trained on its events still know it; the events stay, for people's histories
    and attribution). Writing it again brings it back. An item known only from events
    can be deleted too, so that it is never recommended."""
    if stores.catalog.get_item(item_id) is None and not recommendations.knows_item(item_id):
        raise NotFoundError(f"item {item_id!r} not found")
    stores.catalog.delete_item(item_id)
    recommendations.catalog_written(deleted=[item_id])
    return Response(status_code=204)


@router.post("/v1/items:delete", response_model=ItemDeleteOut, summary="Delete items")
def delete_items(
    body: ItemDeleteIn, stores: StoresDep, recommendations: RecommendationsDep
) -> ItemDeleteOut:
    """``DELETE /v1/items/{id}`` for up to 10,000 ids at once, answered per id: ids
    neither the catalog nor the serving model knows are ``not_found`` and store nothing."""
    ids = list(dict.fromkeys(body.item_ids))
    held = stores.catalog.get_items(ids)
    known = [i for i in ids if i in held or recommendations.knows_item(i)]
    if known:
        stores.catalog.delete_items(known)
        recommendations.catalog_written(deleted=known)
    found = set(known)
    results = [{"item_id": i, "status": "deleted" if i in found else "not_found"} for i in ids]
    return ItemDeleteOut(deleted=len(known), not_found=len(ids) - len(known), results=results)


@router.get("/v1/items/{item_id}", response_model=ItemOut, summary="Read an item")
def get_item(item_id: ItemIdPath, stores: StoresDep) -> dict[str, Any]:
    row = stores.catalog.get_item(item_id)
    if row is None:
        raise NotFoundError(f"item {item_id!r} not found")
    return item_out(row)


@router.get("/v1/items", summary="List items, or fetch several by id")
def list_items(
    stores: StoresDep,
    ids: Annotated[
        str | None, Query(description="Comma-separated item ids", max_length=100_000)
    ] = None,
    cursor: Annotated[str | None, Query(max_length=1_024)] = None,
    limit: Annotated[int, Query(ge=1, le=1_000)] = 100,
) -> dict[str, Any]:
    if ids is not None:
        wanted = [i for i in (p.strip() for p in ids.split(",")) if i][:1_000]
        found = stores.catalog.get_items(wanted)
        return {"data": [item_out(found[i]) for i in wanted if i in found], "next_cursor": None}
    page = stores.catalog.list_items(cursor, limit)
    return {"data": [item_out(r) for r in page.data], "next_cursor": page.next_cursor}


@router.get(
    "/v1/items/{item_id}/similar",
    response_model=RecommendationOut,
    response_model_exclude_none=True,
    summary="Items similar to this one",
)
def similar_items(
    request: Request,
    item_id: ItemIdPath,
    service: RecommendationsDep,
    services: ServicesDep,
    stores: StoresDep,
    n: Annotated[int | None, Query(ge=1, le=500)] = None,
    user_id: Annotated[
        str | None,
        Query(
            min_length=1, max_length=MAX_ID_LENGTH, pattern=NO_NUL, description="Personalise for"
        ),
    ] = None,
    placement: PlacementQuery = None,
    include_items: IncludeItemsQuery = False,
    explain: ExplainQuery = False,
    filter_text: FilterQuery = None,
) -> RecommendationOut:
    """Neighbours of the item by the item-to-item model, filled with popular items;
    ``filter`` restricts both (a malformed filter is a 422). With ``user_id`` the
    person's blocked items and categories and already-seen items are left out and their
    taste nudges the order."""
    context = context_params(request)
    stored_id = services.user_key(user_id) if user_id else None
    rec = service.similar(
        item_id,
        n,
        filter_text,
        user_id=stored_id,
        placement=placement,
        context=context,
        explain=explain,
    )
    return recommendation_out(rec, stores, include_items, explain, context.get("locale"))
