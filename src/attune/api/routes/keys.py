"""API keys of the caller's workspace: create (shown once), list, revoke. Admin scope."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from attune.api.deps import PrincipalDep, StoresDep
from attune.api.routes._common import iso
from attune.auth.keys import ApiKey
from attune.auth.manage import MAX_NAME_LENGTH, MAX_RATE, create_key, revoke_key
from attune.auth.principal import Scope
from attune.auth.signing import master_secret
from attune.store.factory import Stores

router = APIRouter(tags=["keys"])

KeyIdPath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9a-z_-]+$")]


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH, pattern=r"^[^\x00-\x1f\x7f]+$")
    kind: Literal["secret", "public"] = "secret"
    scopes: list[Scope] | None = Field(
        default=None,
        min_length=1,
        max_length=3,
        description="Secret keys: default all (ingest, read, admin). Public keys: fixed.",
    )
    rate_per_second: float | None = Field(default=None, gt=0, le=MAX_RATE)
    burst: int | None = Field(default=None, ge=1, le=10_000_000)


class KeyOut(BaseModel):
    key_id: str
    workspace: str
    name: str
    kind: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    rate_per_second: float | None = None
    burst: int | None = None


class CreatedKeyOut(KeyOut):
    key: str = Field(description="The key itself: shown this once, stored only as a hash")
    signing_secret: str | None = Field(
        default=None,
        description="Public keys: the secret your backend signs user tokens with (shown once)",
    )


class KeyList(BaseModel):
    data: list[KeyOut]


def key_out(key: ApiKey) -> dict[str, object]:
    return {
        "key_id": key.key_id,
        "workspace": key.workspace,
        "name": key.name,
        "kind": key.kind,
        "scopes": list(key.scopes),
        "created_at": iso(key.created_at),
        "revoked_at": iso(key.revoked_at),
        "last_used_at": iso(key.last_used_at),
        "rate_per_second": key.rate_per_second,
        "burst": key.burst,
    }


def _default_stores(request: Request) -> Stores:
    """Keys of every workspace live in the default workspace's store."""
    return request.app.state.services.stores  # type: ignore[no-any-return]


@router.post(
    "/v1/keys",
    response_model=CreatedKeyOut,
    status_code=201,
    summary="Create an API key (the key is shown only in this answer)",
)
def post_key(
    body: KeyIn, request: Request, principal: PrincipalDep, stores: StoresDep
) -> dict[str, object]:
    created = create_key(
        _default_stores(request).keys,
        stores.audit,
        master_secret(request.app.state.auth.settings),
        name=body.name,
        actor=principal.key_id,
        kind=body.kind,
        scopes=list(body.scopes) if body.scopes is not None else None,
        workspace=principal.workspace,
        rate_per_second=body.rate_per_second,
        burst=body.burst,
    )
    return {**key_out(created.key), "key": created.token, "signing_secret": created.signing_secret}


@router.get("/v1/keys", response_model=KeyList, summary="The workspace's API keys (no secrets)")
def list_keys(request: Request, principal: PrincipalDep) -> dict[str, object]:
    keys = _default_stores(request).keys.list_keys(principal.workspace)
    return {"data": [key_out(k) for k in keys]}


@router.delete("/v1/keys/{key_id}", response_model=KeyOut, summary="Revoke an API key")
async def delete_key(
    key_id: KeyIdPath, request: Request, principal: PrincipalDep, stores: StoresDep
) -> dict[str, object]:
    """Takes effect at once on this server, and within ``ATTUNE_KEY_CACHE_SECONDS`` on
    others. Revoking a revoked key is not an error."""
    revoked = await run_in_threadpool(
        revoke_key,
        _default_stores(request).keys,
        stores.audit,
        key_id,
        actor=principal.key_id,
        workspace=principal.workspace,
    )
    request.app.state.auth.forget(key_id)
    return key_out(revoked)
