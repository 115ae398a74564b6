"""``/v1/models``: the workspace's model versions, and serving an earlier one again. Admin.

Going back is :func:`attune.training.promotion.roll_back`: a new champion sharing the
earlier version's files, recorded in the audit log as ``model.rollback``. The server
that took the request loads it at once; the others on their next model check.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from attune.api.deps import PrincipalDep, ServicesDep
from attune.errors import NotFoundError
from attune.training.promotion import roll_back, version_summary

router = APIRouter(tags=["models"])

LOAD_WAIT_SECONDS = 120.0
"""How long a rollback request waits for this server to load the version (requests go on
with the one held meanwhile)."""

VersionPath = Annotated[
    str, Path(min_length=1, max_length=128, pattern=r"^[0-9A-Za-z_.:-]+$", description="version id")
]


class VersionOut(BaseModel):
    version_id: str
    seq: int
    algorithm: str
    status: str
    serving: bool
    created_at: datetime
    events: int | None
    selection: str | None
    validation_ndcg_at_10: float | None
    rolled_back_to: str | None
    forgotten_from: str | None
    components: dict[str, float | None] | None = None


class VersionDetail(VersionOut):
    params: dict[str, Any]
    data_window: dict[str, Any]
    metrics: dict[str, Any]


class VersionList(BaseModel):
    data: list[VersionOut]


def _out(version: Any, serving: str | None, detail: bool = False) -> dict[str, Any]:
    summary = version_summary(version, serving)
    summary["validation_ndcg_at_10"] = summary.pop("validation_ndcg@10")
    if detail:
        summary.update(
            params=version.params, data_window=version.data_window, metrics=version.metrics
        )
    return summary


def _serving_id(services: Any) -> str | None:
    champion = services.stores.model_versions.latest("champion")
    return champion.version_id if champion else None


@router.get("/v1/models", response_model=VersionList, summary="Model versions, newest first")
def list_versions(
    services: ServicesDep, limit: Annotated[int, Query(ge=1, le=1_000)] = 50
) -> dict[str, Any]:
    serving = _serving_id(services)
    versions = services.stores.model_versions.list_versions(limit)
    return {"data": [_out(v, serving) for v in versions]}


@router.get("/v1/models/{version_id}", response_model=VersionDetail, summary="One model version")
def get_version(version_id: VersionPath, services: ServicesDep) -> dict[str, Any]:
    version = services.stores.model_versions.get(version_id)
    if version is None:
        raise NotFoundError(f"model version {version_id!r} not found")
    return _out(version, _serving_id(services), detail=True)


@router.post(
    "/v1/models/{version_id}/rollback",
    response_model=VersionDetail,
    summary="Serve an earlier model version again",
)
def post_rollback(
    version_id: VersionPath, services: ServicesDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Registers a new serving version that shares ``version_id``'s files (404: no such
    version or its files are gone; 409: it is serving already, or it was trained before a
    person was erased). This server has loaded the version when the answer comes (it
    serves with the old one meanwhile); the others switch within
    ``ATTUNE_MODEL_REFRESH_SECONDS``."""
    version = roll_back(services.stores, version_id, principal.workspace, actor=principal.key_id)
    services.models.check_now()
    services.models.wait_for_refresh(timeout=LOAD_WAIT_SECONDS)
    return _out(version, version.version_id, detail=True)
