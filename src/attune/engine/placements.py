"""Placements: named, stored configurations of a surface (home, product page, email…).

A placement says which candidate sources feed the list and how much each counts, the
list length, filters, boosts, pins, diversity, the exploration share for new items,
which seen items to leave out, and rules that change the list for a segment. Requests
name a placement; without one they get :data:`DEFAULT_PLACEMENT`. Every expression is
parsed when the placement is saved, so a broken one is refused with its position.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from attune.ingest.schemas import Id

PlacementName = str
NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,127}$"

SOURCES = ("model", "session", "current_item", "preferences", "popular", "trending")
"""Candidate sources a placement can weight (see :mod:`attune.engine.candidates`)."""


class Pin(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_id: Id
    position: int = Field(ge=1, le=500, description="1-based position in the list")


class Diversity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level: float = Field(default=0.0, ge=0, le=1, description="MMR trade-off (0: off)")
    max_per_category: int | None = Field(default=None, ge=1, le=500)
    calibrated: bool = Field(
        default=False, description="Category proportions follow the person's history"
    )


class Exploration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    share: float = Field(
        default=0.1, ge=0, le=0.5, description="Share of slots reserved for new items"
    )
    new_item_days: float = Field(
        default=30.0, gt=0, le=3650, description="Items created this recently are new"
    )
    untried_items: bool = Field(
        default=False,
        description=(
            "Items the serving model has seen no interaction with also count as new, "
            "whatever their creation time (a catalog imported without dates)"
        ),
    )


class ExcludeSeen(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    window_days: float | None = Field(
        default=None, gt=0, description="Only items seen this recently (None: ever)"
    )
    types: list[str] | None = Field(
        default=None,
        description="Event types that count as seen (None: all but impression and search)",
    )


class SegmentRule(BaseModel):
    """For people in ``segment``: show a collection, apply a filter, or boost items."""

    model_config = ConfigDict(extra="forbid")

    segment: str = Field(pattern=NAME_PATTERN)
    action: Literal["show_collection", "filter", "boost"]
    items: list[Id] = Field(default_factory=list, max_length=500)
    filter: str | None = Field(default=None, max_length=2_000)
    boost: str | None = Field(default=None, max_length=2_000)

    @model_validator(mode="after")
    def _complete(self) -> SegmentRule:
        needed = {"show_collection": "items", "filter": "filter", "boost": "boost"}[self.action]
        if not getattr(self, needed):
            raise ValueError(f"action {self.action!r} needs {needed!r}")
        if self.filter is not None:
            _check_filter(self.filter)
        if self.boost is not None:
            _check_boost(self.boost)
        return self


def _check_filter(text: str) -> None:
    """Parse ``text`` now; a malformed filter becomes a field error with its position."""
    from attune.engine.expressions import parse_filter
    from attune.errors import ValidationError

    try:
        parse_filter(text)
    except ValidationError as exc:
        raise ValueError(str(exc)) from None


def _check_boost(text: str) -> None:
    from attune.engine.expressions import parse_boost
    from attune.errors import ValidationError

    try:
        parse_boost(text)
    except ValidationError as exc:
        raise ValueError(str(exc)) from None


class PlacementConfig(BaseModel):
    """Everything a placement decides (all optional; defaults suit a home page)."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(default=None, max_length=1_000)
    n: int = Field(default=10, ge=1, le=500, description="Default list length")
    sources: dict[str, float] = Field(
        default_factory=lambda: {
            "model": 1.0,
            "session": 0.3,
            "current_item": 0.5,
            "preferences": 0.5,
            "popular": 1.0,
            "trending": 0.0,
        },
        description="Weight per candidate source; 0 turns a source off",
    )
    filter: str | None = Field(default=None, max_length=2_000)
    boosts: list[str] = Field(
        default_factory=list, max_length=50, description='e.g. "boost 1.5 if price < 20"'
    )
    pins: list[Pin] = Field(default_factory=list, max_length=50)
    diversity: Diversity = Field(default_factory=Diversity)
    exploration: Exploration = Field(default_factory=Exploration)
    exclude_seen: ExcludeSeen = Field(default_factory=ExcludeSeen)
    rules: list[SegmentRule] = Field(default_factory=list, max_length=50)

    @field_validator("sources")
    @classmethod
    def _known_sources(cls, value: dict[str, float]) -> dict[str, float]:
        for name, weight in value.items():
            if name not in SOURCES:
                raise ValueError(f"unknown source {name!r}; known: {', '.join(SOURCES)}")
            if not 0 <= weight <= 100:
                raise ValueError(f"weight of {name!r} must be between 0 and 100")
        return value

    @field_validator("filter")
    @classmethod
    def _filter_parses(cls, value: str | None) -> str | None:
        if value is not None:
            _check_filter(value)
        return value

    @field_validator("boosts")
    @classmethod
    def _boosts_parse(cls, value: list[str]) -> list[str]:
        for text in value:
            _check_boost(text)
        return value

    def digest(self) -> str:
        """A short hash of the configuration: stamps cached answers and logs."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def weight(self, source: str) -> float:
        return self.sources.get(source, 0.0)


DEFAULT_PLACEMENT = PlacementConfig()
