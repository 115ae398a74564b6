"""Segments: named rules over a person's traits and behaviour, e.g. "new visitors"
(``events < 3``), "bought in the last 30 days" (``last_purchase_at > now - 30d``),
"region = EU" (``traits.region == "EU"``).

A rule is an expression of the safe filter language over a *user record* (see
:func:`attune.engine.expressions.parse_segment_rule`): ``user_id``, ``events``,
``purchases``, ``first_seen_at``, ``last_seen_at``, ``last_purchase_at``,
``traits.<key>`` and ``context.<key>`` (the request's context). Placements use
segments in their rules (show a collection, filter, boost).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from attune.engine.placements import NAME_PATTERN

REFRESH_SECONDS = 2.0


def parse_rule(text: str) -> Any:
    from attune.engine.expressions import parse_segment_rule

    return parse_segment_rule(text)


class SegmentIn(BaseModel):
    """A segment definition (``PUT /v1/segments/{name}``)."""

    model_config = ConfigDict(extra="forbid")

    rule: str = Field(min_length=1, max_length=2_000, examples=['traits.region == "EU"'])
    description: str | None = Field(default=None, max_length=1_000)

    @field_validator("rule")
    @classmethod
    def _parses(cls, value: str) -> str:
        from attune.errors import ValidationError

        try:
            parse_rule(value)
        except ValidationError as exc:
            raise ValueError(str(exc)) from None
        return value


SEGMENT_NAME = NAME_PATTERN


class SegmentBook:
    """Segment rules by name, parsed once and re-read every few seconds."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._rules: dict[str, Any] = {}
        self._read_at = float("-inf")

    def rules(self) -> dict[str, Any]:
        if time.monotonic() - self._read_at > REFRESH_SECONDS:
            self._rules = {row["name"]: parse_rule(row["rule"]) for row in self.store.list()}
            self._read_at = time.monotonic()
        return self._rules

    def invalidate(self) -> None:
        self._read_at = float("-inf")

    def members(self, names: Iterable[str], record: Mapping[str, Any]) -> set[str]:
        """Which of the segments ``names`` the user ``record`` belongs to (unknown
        segments match nobody)."""
        rules = self.rules()
        return {name for name in names if name in rules and rules[name].matches(record)}
