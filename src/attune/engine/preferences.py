"""What a person told us: likes for onboarding, blocks, their diversity level, opt-out.

Preferences override the model: blocked items and categories never appear, liked
categories are favoured (and seed a newcomer's list), and ``personalization: false``
returns non-personalised results without reading the person's history.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from attune.ingest.schemas import Id

Category = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class Preferences(BaseModel):
    """A person's stated preferences (``PUT /v1/users/{id}/preferences``)."""

    model_config = ConfigDict(extra="forbid")

    liked_categories: list[Category] = Field(
        default_factory=list, max_length=100, description="Categories to favour"
    )
    liked_items: list[Id] = Field(
        default_factory=list, max_length=500, description="Items the person likes (seeds)"
    )
    blocked_categories: list[Category] = Field(
        default_factory=list, max_length=100, description="Never show items in these"
    )
    blocked_items: list[Id] = Field(
        default_factory=list, max_length=1_000, description="Never show these items"
    )
    diversity: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="0 = most relevant first, 1 = as varied as possible; "
        "None = the placement's level",
    )
    personalization: bool = Field(
        default=True, description="false: non-personalised results, history unused"
    )

    @property
    def is_empty(self) -> bool:
        return self == Preferences()

    def spelled_as(self, spellings: Mapping[str, Sequence[str]]) -> Preferences:
        """These preferences with each category written as the catalog writes it
        ("comedy" → "Comedy"; every spelling the catalog uses for it), without repeats.
        A category the catalog does not use (yet) is kept as first given; requests spell
        the stored preferences again, so one written later still matches."""

        def respelled(names: list[str]) -> list[str]:
            out: dict[str, None] = {}
            unknown: set[str] = set()  # case-folded names the catalog does not use
            for name in names:
                folded = name.casefold()
                if folded in spellings:
                    out.update(dict.fromkeys(spellings[folded]))
                elif folded not in unknown:
                    unknown.add(folded)
                    out[name] = None
            return list(out)

        return self.model_copy(
            update={
                "liked_categories": respelled(self.liked_categories),
                "blocked_categories": respelled(self.blocked_categories),
                "liked_items": list(dict.fromkeys(self.liked_items)),
                "blocked_items": list(dict.fromkeys(self.blocked_items)),
            }
        )


class PreferencesPatch(BaseModel):
    """A partial update: only the fields given change."""

    model_config = ConfigDict(extra="forbid")

    liked_categories: list[Category] | None = Field(default=None, max_length=100)
    liked_items: list[Id] | None = Field(default=None, max_length=500)
    blocked_categories: list[Category] | None = Field(default=None, max_length=100)
    blocked_items: list[Id] | None = Field(default=None, max_length=1_000)
    diversity: float | None = Field(default=None, ge=0, le=1)
    personalization: bool | None = None

    def apply(self, current: Preferences) -> Preferences:
        # an explicit null resets the field to its default (JSON Merge Patch), never
        # stores null where the schema promises a list or a boolean
        defaults = Preferences()
        changes = {
            name: getattr(defaults, name) if value is None else value
            for name, value in self.model_dump(exclude_unset=True).items()
        }
        return current.model_copy(update=changes)
