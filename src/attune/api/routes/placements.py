"""``/v1/placements`` and ``/v1/segments``: named configurations of the decision engine."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel

from attune.api.deps import RecommendationsDep, SettingsDep, StoresDep
from attune.api.routes._common import iso
from attune.config import Settings
from attune.engine.placements import NAME_PATTERN, PlacementConfig
from attune.engine.segments import SegmentIn
from attune.errors import ConflictError, NotFoundError, ValidationError

router = APIRouter(tags=["placements"])

NamePath = Annotated[str, Path(pattern=NAME_PATTERN, description="lowercase name, e.g. home")]


class PlacementOut(BaseModel):
    name: str
    config: PlacementConfig
    digest: str
    created_at: Any
    updated_at: Any


class SegmentOut(BaseModel):
    name: str
    rule: str
    description: str | None
    created_at: Any
    updated_at: Any


def _audit(request: Request, stores: Any, action: str, target: str, details: Any = None) -> None:
    """Record an administrative change in the audit log (when the deployment keeps one)."""
    audit = getattr(stores, "audit", None)
    if audit is None:
        return
    principal = getattr(request.state, "principal", None)
    workspace = getattr(principal, "workspace", "default")
    actor = getattr(principal, "key_id", None)
    audit.record(workspace, actor, action, target, details)


def _placement_out(row: dict[str, Any]) -> PlacementOut:
    return PlacementOut(
        name=row["name"],
        config=PlacementConfig.stored(row["config"]),
        digest=row["digest"],
        created_at=iso(row["created_at"]),
        updated_at=iso(row["updated_at"]),
    )


def _segment_out(row: dict[str, Any]) -> SegmentOut:
    return SegmentOut(
        name=row["name"],
        rule=row["rule"],
        description=row.get("description"),
        created_at=iso(row["created_at"]),
        updated_at=iso(row["updated_at"]),
    )


@router.get("/v1/placements", response_model=list[PlacementOut], summary="List placements")
def list_placements(stores: StoresDep) -> list[PlacementOut]:
    return [_placement_out(row) for row in stores.placements.list()]


@router.get("/v1/placements/{name}", response_model=PlacementOut, summary="Read a placement")
def get_placement(name: NamePath, stores: StoresDep) -> PlacementOut:
    row = stores.placements.get(name)
    if row is None:
        raise NotFoundError(f"placement {name!r} does not exist")
    return _placement_out(row)


@router.put(
    "/v1/placements/{name}", response_model=PlacementOut, summary="Create or replace a placement"
)
def put_placement(
    name: NamePath,
    config: PlacementConfig,
    request: Request,
    stores: StoresDep,
    service: RecommendationsDep,
    settings: SettingsDep,
) -> PlacementOut:
    """Every filter and boost is parsed now: a malformed one is a 422 naming the field
    and the position, as is a rule naming a segment that does not exist or an event type
    nobody sends. Requests naming the placement use the new version within seconds."""
    _check_references(config, stores, settings)
    row = stores.placements.put(name, config=config.model_dump(mode="json"), digest=config.digest())
    service.engine.placements.forget(name)
    _audit(request, stores, "placement.put", name, {"digest": row["digest"]})
    return _placement_out(row)


def _check_references(config: PlacementConfig, stores: Any, settings: Settings) -> None:
    """What a placement names outside itself exists: its rules' segments and the event
    types it counts as seen (a misspelt one would never match, silently)."""
    problems: list[dict[str, Any]] = []
    segments = {row["name"] for row in stores.segments.list()} if config.rules else set()
    for k, rule in enumerate(config.rules):
        if rule.segment not in segments:
            problems.append(
                _problem(("body", "rules", k, "segment"), f"no segment named {rule.segment!r}")
            )
    known = set(settings.event_type_weights)
    for k, kind in enumerate(config.exclude_seen.types or []):
        if kind not in known and not settings.allow_unknown_event_types:
            message = f"unknown event type {kind!r}; known: {', '.join(sorted(known))}"
            problems.append(_problem(("body", "exclude_seen", "types", k), message))
    if problems:
        raise ValidationError(problems[0]["msg"], details=problems)


def _problem(loc: tuple[str | int, ...], message: str) -> dict[str, Any]:
    return {"loc": list(loc), "msg": message, "type": "value_error"}


@router.delete("/v1/placements/{name}", status_code=204, summary="Delete a placement")
def delete_placement(
    name: NamePath, request: Request, stores: StoresDep, service: RecommendationsDep
) -> Response:
    if not stores.placements.delete(name):
        raise NotFoundError(f"placement {name!r} does not exist")
    service.engine.placements.forget(name)
    _audit(request, stores, "placement.delete", name)
    return Response(status_code=204)


@router.get("/v1/segments", response_model=list[SegmentOut], summary="List segments")
def list_segments(stores: StoresDep) -> list[SegmentOut]:
    return [_segment_out(row) for row in stores.segments.list()]


@router.get("/v1/segments/{name}", response_model=SegmentOut, summary="Read a segment")
def get_segment(name: NamePath, stores: StoresDep) -> SegmentOut:
    row = stores.segments.get(name)
    if row is None:
        raise NotFoundError(f"segment {name!r} does not exist")
    return _segment_out(row)


@router.put("/v1/segments/{name}", response_model=SegmentOut, summary="Create or replace a segment")
def put_segment(
    name: NamePath,
    body: SegmentIn,
    request: Request,
    stores: StoresDep,
    service: RecommendationsDep,
) -> SegmentOut:
    """The rule is an expression over the person (``events < 3``,
    ``traits.region == "EU"``, ``last_purchase_at > now - 30d``); malformed → 422."""
    row = stores.segments.put(name, rule=body.rule, description=body.description)
    service.engine.segments.invalidate()
    _audit(request, stores, "segment.put", name)
    return _segment_out(row)


@router.delete("/v1/segments/{name}", status_code=204, summary="Delete a segment")
def delete_segment(
    name: NamePath, request: Request, stores: StoresDep, service: RecommendationsDep
) -> Response:
    """409 while a placement's rule names the segment (its rule would stop applying
    without a word): change those placements first."""
    using = [
        row["name"]
        for row in stores.placements.list()
        if any(rule.get("segment") == name for rule in row["config"].get("rules") or [])
    ]
    if using and stores.segments.get(name) is not None:
        raise ConflictError(
            f"segment {name!r} is used by the rules of placement(s) {', '.join(sorted(using))}"
        )
    if not stores.segments.delete(name):
        raise NotFoundError(f"segment {name!r} does not exist")
    service.engine.segments.invalidate()
    _audit(request, stores, "segment.delete", name)
    return Response(status_code=204)
