"""``GET /v1/audit``: the workspace's administrative actions, newest first. Admin scope."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from attune.api.deps import PrincipalDep, StoresDep
from attune.api.routes._common import iso

router = APIRouter(tags=["audit"])


class AuditEntryOut(BaseModel):
    id: int
    at: datetime
    actor: str | None
    action: str
    target: str | None
    details: dict[str, Any]


class AuditPage(BaseModel):
    data: list[AuditEntryOut]
    next_cursor: str | None


@router.get("/v1/audit", response_model=AuditPage, summary="The audit log, newest first")
def list_audit(
    stores: StoresDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=1_000)] = 100,
    action: Annotated[
        str | None, Query(max_length=64, pattern=r"^[a-z0-9_.:-]+$", description="e.g. key.create")
    ] = None,
    cursor: Annotated[
        str | None, Query(max_length=18, pattern=r"^[0-9]+$", description="next_cursor")
    ] = None,
) -> dict[str, Any]:
    entries = stores.audit.list(
        limit,
        workspace=principal.workspace,
        action=action,
        before_id=int(cursor) if cursor else None,
    )
    data = [
        {
            "id": e.id,
            "at": iso(e.at),
            "actor": e.actor,
            "action": e.action,
            "target": e.target,
            "details": e.details,
        }
        for e in entries
    ]
    next_cursor = str(entries[-1].id) if len(entries) == limit else None
    return {"data": data, "next_cursor": next_cursor}
