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
from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from attune.ingest.schemas import Id

PlacementName = str
NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,127}$"

SOURCES = ("model", "session", "current_item", "preferences", "popular", "trending")
"""Candidate sources a placement can weight (see :mod:`attune.engine.candidates`)."""


def _parsed_by(parser: str) -> Callable[[str], str]:
    """A validator that parses its text with ``attune.engine.expressions.<parser>`` when
    the placement is saved: a malformed one becomes a field error with its position."""

    def check(text: str) -> str:
        from attune.engine import expressions
        from attune.errors import ValidationError

        try:
            getattr(expressions, parser)(text)
        except ValidationError as exc:
            raise ValueError(str(exc)) from None
        return text

    return check


FilterText = Annotated[str, Field(max_length=2_000), AfterValidator(_parsed_by("parse_filter"))]
"""A filter expression, parsed when the placement is saved."""
BoostText = Annotated[
    str,
    Field(max_length=2_000, examples=["boost 1.5 if price < 20"]),
    AfterValidator(_parsed_by("parse_boost")),
]
"""A boost expression; an error in one of a list points at its index."""


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
    filter: FilterText | None = None
    boost: BoostText | None = None

    @model_validator(mode="after")
    def _complete(self) -> SegmentRule:
        needed = {"show_collection": "items", "filter": "filter", "boost": "boost"}[self.action]
        if not getattr(self, needed):
            raise ValueError(f"action {self.action!r} needs {needed!r}")
        return self


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
    filter: FilterText | None = None
    boosts: list[BoostText] = Field(
        default_factory=list, max_length=50, description='e.g. "boost 1.5 if price < 20"'
    )
    pins: list[Pin] = Field(
        default_factory=list,
        max_length=50,
        description="Items shown at fixed positions (each item and position at most once)",
    )
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

    @field_validator("pins")
    @classmethod
    def _pins_distinct(cls, value: list[Pin], info: ValidationInfo) -> list[Pin]:
        """An item pinned twice would show twice; two pins at one position would push
        each other to places nobody asked for. A configuration saved before this check
        (:meth:`stored`) keeps the first pin of each item instead."""
        if info.context and info.context.get("stored"):
            first = {pin.item_id: pin for pin in reversed(value)}
            return [pin for pin in value if first[pin.item_id] is pin]
        items: dict[str, int] = {}
        positions: dict[int, int] = {}
        for k, pin in enumerate(value):
            if pin.item_id in items:
                raise ValueError(f"pins {items[pin.item_id]} and {k} both pin {pin.item_id!r}")
            if pin.position in positions:
                raise ValueError(
                    f"pins {positions[pin.position]} and {k} both take position {pin.position}"
                )
            items[pin.item_id], positions[pin.position] = k, k
        return value

    @classmethod
    def stored(cls, data: dict[str, object]) -> PlacementConfig:
        """A configuration as saved (by this or an earlier, more lenient, version)."""
        return cls.model_validate(data, context={"stored": True})

    def digest(self) -> str:
        """A short hash of the configuration: stamps cached answers and logs."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def weight(self, source: str) -> float:
        return self.sources.get(source, 0.0)


DEFAULT_PLACEMENT = PlacementConfig()
