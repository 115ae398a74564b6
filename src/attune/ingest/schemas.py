"""Wire schemas for what Attune collects: events, items and users (pydantic v2).

Named by role: ``EventIn`` is what a client sends, ``ItemIn`` / ``ItemOut`` the catalog
entry written and read back. Ids are strings (numbers are accepted and turned into
strings); times accept ISO 8601 or Unix seconds and are normalised to UTC.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

MAX_ID_LENGTH = 256
MAX_TEXT_LENGTH = 20_000

Id = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_ID_LENGTH),
]
EventType = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        to_lower=True,
        min_length=1,
        max_length=64,
        pattern=r"^[a-z0-9][a-z0-9_.:-]*$",
    ),
]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Scalar = str | int | float | bool | None


def _parse_time(value: Any) -> Any:
    """Accept Unix seconds given as a numeric string too ("1700000000")."""
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+(\.\d+)?\s*", value):
        return float(value)
    if isinstance(value, bool):
        raise ValueError("a timestamp is ISO 8601 text or Unix seconds, not a boolean")
    if isinstance(value, int | float) and not math.isfinite(value):
        raise ValueError("timestamp must be finite")
    if isinstance(value, int | float) and abs(value) > 1e11:
        raise ValueError("timestamp looks like milliseconds; send Unix seconds")
    return value


def _to_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


UtcTime = Annotated[datetime, BeforeValidator(_parse_time), AfterValidator(_to_utc)]


def _finite(value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


FiniteFloat = Annotated[float, AfterValidator(_finite)]


class _Schema(BaseModel):
    model_config = ConfigDict(
        extra="forbid", coerce_numbers_to_str=True, str_max_length=MAX_TEXT_LENGTH
    )


class EventIn(_Schema):
    """One thing a person did. ``user_id`` or ``anonymous_id`` names who did it."""

    event_id: Id | None = Field(
        default=None,
        description="Idempotency key. When absent one is derived from the event's content, "
        "so a retried event is still recognised as a duplicate.",
    )
    user_id: Id | None = None
    anonymous_id: Id | None = None
    item_id: Id | None = None
    type: EventType = Field(description="view, click, add_to_cart, purchase, rating, ...")
    value: FiniteFloat | None = Field(default=None, description="Rating, quantity, play count...")
    timestamp: UtcTime | None = Field(
        default=None, description="When it happened (ISO 8601 or Unix seconds); default now."
    )
    context: dict[Label, Scalar] = Field(default_factory=dict)
    properties: dict[Label, Any] = Field(default_factory=dict)
    recommendation_id: Annotated[str, StringConstraints(max_length=64)] | None = None

    @model_validator(mode="after")
    def _someone(self) -> EventIn:
        if self.user_id is None and self.anonymous_id is None:
            raise ValueError("an event needs user_id or anonymous_id")
        return self


class EventBatchIn(BaseModel):
    """Body of ``POST /v1/events``. Events are validated one by one, not as a block."""

    events: list[Any] = Field(
        description="Event objects (see EventIn); each is validated on its own."
    )


class EventResult(BaseModel):
    index: int
    event_id: str | None
    status: str = Field(description="accepted | duplicate | rejected")
    errors: list[dict[str, Any]] | None = None


class EventBatchOut(BaseModel):
    accepted: int
    duplicates: int
    rejected: int
    results: list[EventResult]


class Translation(_Schema):
    title: Annotated[str, StringConstraints(max_length=2_000)] | None = None
    text: str | None = None


class ItemIn(_Schema):
    """A catalog entry. ``PUT`` replaces the whole item."""

    title: Annotated[str, StringConstraints(max_length=2_000)] | None = None
    text: str | None = None
    categories: list[Label] = Field(
        default_factory=list, description="Hierarchical levels joined by '/', e.g. 'Shoes/Running'."
    )
    tags: list[Label] = Field(default_factory=list)
    language: Annotated[str, StringConstraints(max_length=35)] | None = None
    translations: dict[Annotated[str, StringConstraints(max_length=35)], Translation] = Field(
        default_factory=dict
    )
    regions: list[Label] | None = Field(default=None, description="Null: available everywhere.")
    available: bool = True
    price: Annotated[FiniteFloat, Field(ge=0)] | None = None
    created_at: UtcTime | None = None
    properties: dict[Label, Any] = Field(default_factory=dict)

    @field_validator("categories", "tags", mode="before")
    @classmethod
    def _split_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part for part in (p.strip() for p in value.split("|")) if part]
        return value


class ItemBatchEntry(ItemIn):
    item_id: Id


class ItemBatchIn(BaseModel):
    items: list[dict[str, Any]]


class ItemOut(BaseModel):
    item_id: str
    title: str | None
    text: str | None
    categories: list[str]
    tags: list[str]
    language: str | None
    translations: dict[str, Any] | None
    regions: list[str] | None
    available: bool
    price: float | None
    created_at: datetime | None
    properties: dict[str, Any] | None
    updated_at: datetime


class UserIn(_Schema):
    """A person's profile: traits such as locale, region, segment."""

    traits: dict[Label, Scalar | list[Scalar]] = Field(default_factory=dict)


class UserOut(BaseModel):
    user_id: str
    traits: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class BatchResult(BaseModel):
    accepted: int
    rejected: int
    results: list[dict[str, Any]]
