"""User routes: profiles, listing, and a person's event history."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from attune.api.deps import IngestDep, RecommendationsDep, ServicesDep, StoresDep
from attune.api.routes._common import UserIdPath, event_out, user_out
from attune.errors import NotFoundError
from attune.ingest.schemas import UserIn, UserOut

router = APIRouter(tags=["users"])


@router.put("/v1/users/{user_id}", response_model=UserOut, summary="Create or replace a profile")
def put_user(
    user_id: UserIdPath,
    user: UserIn,
    ingest: IngestDep,
    services: ServicesDep,
    recommendations: RecommendationsDep,
) -> dict[str, Any]:
    """Traits take effect on the person's next list (their region, their segments): the
    person's cached answers are dropped."""
    stored = ingest.put_user(user_id, user)
    recommendations.forget_cached(services.user_key(user_id))
    return {**user_out(stored), "user_id": user_id}


@router.get("/v1/users/{user_id}", response_model=UserOut, summary="Read a profile")
def get_user(user_id: UserIdPath, services: ServicesDep) -> dict[str, Any]:
    row = services.stores.users.get_user(services.user_key(user_id))
    if row is None:
        raise NotFoundError(f"user {user_id!r} has no profile")
    return {**user_out(row), "user_id": user_id}


@router.get("/v1/users", summary="List profiles")
def list_users(
    stores: StoresDep,
    cursor: Annotated[str | None, Query(max_length=1_024)] = None,
    limit: Annotated[int, Query(ge=1, le=1_000)] = 100,
) -> dict[str, Any]:
    page = stores.users.list_users(cursor, limit)
    return {"data": [user_out(r) for r in page.data], "next_cursor": page.next_cursor}


@router.get("/v1/users/{user_id}/events", summary="A user's events, newest first")
def user_events(
    user_id: UserIdPath,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=1_000)] = 100,
) -> dict[str, Any]:
    stored = services.user_key(user_id)
    rows = services.stores.events.user_events(stored, limit)
    # with pseudonymised ids, show the caller's own id where the stored one stands
    return {"data": [event_out(r | _own_id(r, stored, user_id)) for r in rows]}


def _own_id(row: dict[str, Any], stored: str, user_id: str) -> dict[str, Any]:
    return {k: user_id for k in ("user_id", "anonymous_id") if row.get(k) == stored}
