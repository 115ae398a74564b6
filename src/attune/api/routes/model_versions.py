"""``/v1/models``: the workspace's model versions, training a new one, and serving an
earlier one again. Admin.

Training over the API is :mod:`attune.training.jobs`: the request starts a job and
returns; the job's state is read back by its id.

Going back is :func:`attune.training.promotion.roll_back`: a new champion sharing the
earlier version's files, recorded in the audit log as ``model.rollback``. The server
that took the request loads it at once; the others on their next model check.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from attune.api.deps import PrincipalDep, ServicesDep
from attune.errors import NotFoundError
from attune.training.jobs import TrainJob, find_job
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
    gate: str | None = Field(
        default=None,
        description="What the champion/challenger check of a scheduled retrain said: "
        "promoted, held (status candidate: never served) or inconclusive",
    )
    components: dict[str, float | None] | None = None


class VersionDetail(VersionOut):
    params: dict[str, Any]
    data_window: dict[str, Any]
    metrics: dict[str, Any]


class VersionList(BaseModel):
    data: list[VersionOut]


class TrainIn(BaseModel):
    """What to train: the serving configuration again, or a new one by tuning."""

    model_config = ConfigDict(extra="forbid")

    tune_budget_seconds: float | None = Field(
        default=None,
        ge=10,
        le=86_400,
        allow_inf_nan=False,
        description="Tune every candidate within this many seconds, then pick or blend (as "
        "`attune train --tune`); none: refit the last tuned configuration or validated "
        "defaults on every stored event (as `attune train`)",
    )
    gate: StrictBool = Field(
        default=False,
        description="Serve the new version only if, on the newest events, it is not clearly "
        "worse than the serving one (the champion/challenger check of scheduled retrains); "
        "else it is kept as a candidate",
    )


class TrainJobOut(BaseModel):
    job_id: str
    status: str = Field(description="running, succeeded, failed, or lost (its server stopped)")
    started_at: datetime
    tune_budget_seconds: float | None
    finished_at: datetime | None = None
    version_id: str | None = Field(default=None, description="The version it made (succeeded)")
    error: str | None = Field(default=None, description="Why it failed")
    gate: bool = Field(
        default=False, description="Whether the champion/challenger check decides if it serves"
    )
    held: bool | None = Field(
        default=None,
        description="Succeeded, but the check held the version back: it is a candidate and "
        "the serving version stays (see the version's metrics.gate)",
    )


JobPath = Annotated[
    str, Path(min_length=1, max_length=64, pattern=r"^train-[0-9a-f]+$", description="job id")
]


def _job(job: TrainJob) -> dict[str, Any]:
    return dict(vars(job))


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
    responses={
        404: {"description": "No such version, or its files are gone"},
        409: {"description": "It is serving already, or was trained before an erasure"},
    },
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


@router.post(
    "/v1/models/train",
    status_code=202,
    response_model=TrainJobOut,
    summary="Train a new model version (a job)",
    responses={409: {"description": "This server runs another training job of the workspace"}},
)
def post_train(
    request: Request, services: ServicesDep, principal: PrincipalDep, body: TrainIn | None = None
) -> dict[str, Any]:
    """Starts training on every stored event in a separate process and answers at once
    (202) with the job; follow it at ``GET /v1/models/train/{job_id}``. When the job says
    it succeeded, this server serves the version it made; the others switch within
    ``ATTUNE_MODEL_REFRESH_SECONDS``. 409 while this server runs another job of the
    workspace."""
    budget = body.tune_budget_seconds if body is not None else None
    gate = body.gate if body is not None else False

    def load_it() -> None:
        services.models.check_now()
        services.models.wait_for_refresh(timeout=LOAD_WAIT_SECONDS)

    job = request.app.state.train_jobs.start(
        services.settings, services.stores, principal.key_id, budget, load_it, gate
    )
    return _job(job)


@router.get("/v1/models/train/{job_id}", response_model=TrainJobOut, summary="A training job")
def get_train_job(
    job_id: JobPath, services: ServicesDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Its state: ``running``; ``succeeded`` with the version it made; ``failed`` with the
    reason (e.g. no events to train on); ``lost`` when the server running it stopped
    before it ended. Any server of the deployment answers (the state is in the audit
    log)."""
    return _job(find_job(services.stores, principal.workspace, job_id))
