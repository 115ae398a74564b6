"""User routes: profiles, listing, and a person's event history."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from attune.api.deps import IngestDep, StoresDep
from attune.api.routes._common import UserIdPath, event_out, user_out
from attune.errors import NotFoundError
from attune.ingest.schemas import UserIn, UserOut

router = APIRouter(tags=["users"])


@router.put("/v1/users/{user_id}", response_model=UserOut, summary="Create or replace a profile")
def put_user(user_id: UserIdPath, user: UserIn, ingest: IngestDep) -> dict[str, Any]:
    return user_out(ingest.put_user(user_id, user))


@router.get("/v1/users/{user_id}", response_model=UserOut, summary="Read a profile")
def get_user(user_id: UserIdPath, stores: StoresDep) -> dict[str, Any]:
    row = stores.users.get_user(user_id)
    if row is None:
        raise NotFoundError(f"user {user_id!r} has no profile")
    return user_out(row)


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
    stores: StoresDep,
    limit: Annotated[int, Query(ge=1, le=1_000)] = 100,
) -> dict[str, Any]:
    return {"data": [event_out(r) for r in stores.events.user_events(user_id, limit)]}
