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


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL; refuse it here rather than fail at insert time
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Id = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_ID_LENGTH),
    AfterValidator(_no_nul),
]
EventType = Annotated[
    str,
    # the pattern is checked before lowering, so it admits capitals: "VIEW" means "view"
    StringConstraints(
        strip_whitespace=True,
        to_lower=True,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$",
    ),
]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Scalar = str | int | float | bool | None
Text = Annotated[str, AfterValidator(_no_nul)]


def _blank_is_none(value: Any) -> Any:
    """Blank text means "not given" (clients often send ``""`` for an absent value)."""
    return None if isinstance(value, str) and not value.strip() else value


MAX_UNIX_SECONDS = 1e11  # year 5138; larger numbers are taken for milliseconds and refused


def _parse_time(value: Any) -> Any:
    """Turn Unix seconds (a number, or a numeric string such as "1700000000") into UTC.

    Numbers are converted here rather than by pydantic, which would silently read any
    number above 2e10 as milliseconds.
    """
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+(\.\d+)?\s*", value):
        value = float(value)
    if isinstance(value, bool):
        raise ValueError("a timestamp is ISO 8601 text or Unix seconds, not a boolean")
    if not isinstance(value, int | float):
        return value
    try:
        seconds = float(value)
    except OverflowError:
        raise ValueError("timestamp is out of range") from None
    if not math.isfinite(seconds):
        raise ValueError("timestamp must be finite")
    if abs(seconds) > MAX_UNIX_SECONDS:
        raise ValueError("timestamp looks like milliseconds; send Unix seconds")
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError("timestamp is out of range") from None


def _to_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59-01:00 is past datetime.max in UTC
        raise ValueError("timestamp is out of range") from None


def _json_safe(value: Any) -> Any:
    """Refuse NaN and Infinity anywhere inside: they are not JSON and cannot be stored."""
    stack = [value]
    while stack:
        current = stack.pop()
        if isinstance(current, float) and not math.isfinite(current):
            raise ValueError("must not hold NaN or Infinity")
        if isinstance(current, dict):
            stack.extend(current.values())
        elif isinstance(current, list | tuple):
            stack.extend(current)
    return value


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
    recommendation_id: Annotated[
        Annotated[str, StringConstraints(max_length=64), AfterValidator(_no_nul)] | None,
        BeforeValidator(_blank_is_none),
        Field(description="The list the event follows from (attribution); blank means none."),
    ] = None

    _finite_json = field_validator("context", "properties")(_json_safe)

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
    status: str = Field(description="accepted | duplicate | rejected | dropped")
    errors: list[dict[str, Any]] | None = None
    # the two fields below appear only when they say something, so answers for events
    # that consent does not touch are exactly what they were before consent existed
    reason: str | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="Why a dropped event was not stored, e.g. no tracking consent",
    )
    anonymized: bool = Field(
        default=False,
        exclude_if=lambda value: not value,
        description="Present and true when the event was stored without the person's ids "
        "(they have not consented to tracking)",
    )


class EventBatchOut(BaseModel):
    accepted: int
    duplicates: int
    rejected: int
    dropped: int = Field(
        default=0,
        exclude_if=lambda value: value == 0,
        description="Not stored: no tracking consent (present when not zero)",
    )
    results: list[EventResult]


class Translation(_Schema):
    title: Annotated[str, StringConstraints(max_length=2_000)] | None = None
    text: str | None = None


class ItemIn(_Schema):
    """A catalog entry. ``PUT`` replaces the whole item."""

    title: Annotated[str, StringConstraints(max_length=2_000), AfterValidator(_no_nul)] | None = (
        None
    )
    text: Text | None = None
    categories: list[Label] = Field(
        default_factory=list, description="Hierarchical levels joined by '/', e.g. 'Shoes/Running'."
    )
    tags: list[Label] = Field(default_factory=list)
    language: Annotated[str, StringConstraints(max_length=35), AfterValidator(_no_nul)] | None = (
        None
    )
    translations: dict[Annotated[str, StringConstraints(max_length=35)], Translation] = Field(
        default_factory=dict
    )
    regions: list[Label] | None = Field(default=None, description="Null: available everywhere.")
    available: bool = True
    price: Annotated[FiniteFloat, Field(ge=0)] | None = None
    created_at: UtcTime | None = None
    properties: dict[Label, Any] = Field(default_factory=dict)

    _finite_json = field_validator("properties")(_json_safe)

    @field_validator("categories", "tags", "regions", mode="before")
    @classmethod
    def _split_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part for part in (p.strip() for p in value.split("|")) if part]
        return value


class ItemBatchEntry(ItemIn):
    item_id: Id


class ItemBatchIn(BaseModel):
    """Body of ``POST /v1/items:batch``. Items are validated one by one, not as a block."""

    items: list[Any] = Field(description="Item objects with their item_id (see ItemIn).")


MAX_ITEM_DELETES = 10_000


class ItemDeleteIn(BaseModel):
    """Body of ``POST /v1/items:delete``."""

    model_config = ConfigDict(extra="forbid")

    item_ids: list[Id] = Field(
        min_length=1, max_length=MAX_ITEM_DELETES, description="Items to delete (repeats ignored)"
    )


class ItemDeleteOut(BaseModel):
    deleted: int = Field(description="Items deleted (the catalog held them or models knew them)")
    not_found: int = Field(description="Ids neither the catalog nor the serving model knows")
    results: list[dict[str, Any]] = Field(
        description="Per distinct id in the order sent: item_id and status (deleted, not_found)"
    )


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

    _finite_json = field_validator("traits")(_json_safe)


class UserOut(BaseModel):
    user_id: str
    traits: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class BatchResult(BaseModel):
    accepted: int
    rejected: int
    results: list[dict[str, Any]]
