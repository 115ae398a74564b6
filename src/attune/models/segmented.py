"""Per-segment scores for the non-personal models (popularity, trending).

A model configured with ``segment_by`` (e.g. ``["traits.region", "context.device"]``)
learns, next to its global item scores, the same statistics per segment (see
:mod:`attune.features.segments`). :meth:`SegmentedModel.scores_for_segment` then answers
for the most specific segment a person's traits and the request's context fall in,
shrunk toward the global scores so a small segment leans on them; None when no learnt
segment applies, and the caller uses the global list.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from attune.features.interactions import InteractionDataset
from attune.features.segments import (
    SegmentScores,
    check_segment_keys,
    learn_segments,
    shrink_toward,
)
from attune.models.base import ModelConfig

SEGMENT_CACHE = 256
"""Segments whose shrunk scores a model keeps at hand."""


class SegmentedConfig(ModelConfig):
    """Segment settings shared by popularity and trending."""

    segment_by: list[str] = Field(
        default_factory=list,
        max_length=4,
        description="Segment keys: 'traits.<name>' (a user trait) or 'context.<name>' (an "
        "event context field); every combination of them is a segment. Empty: global only.",
    )
    min_segment_people: int = Field(
        default=20,
        ge=1,
        description="A segment is learnt only with at least this many distinct people; "
        "smaller ones fall back to a coarser segment or the global scores.",
    )
    segment_prior_people: float = Field(
        default=10.0,
        ge=0,
        description="Segment scores are shrunk toward the global ones as if this many "
        "people of global taste were in every segment.",
    )

    @field_validator("segment_by")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        return check_segment_keys(value)


class SegmentedModel:
    """Mixin: learns, saves and answers per-segment scores (see the module docstring).

    The host model sets ``config`` (a :class:`SegmentedConfig`), keeps its global scores in
    ``item_scores`` and implements :meth:`_segment_scores`.
    """

    config: Any
    item_scores: np.ndarray
    segments: SegmentScores | None = None

    def _learn_segments(
        self, dataset: InteractionDataset, statistics: Mapping[str, np.ndarray], per_person: str
    ) -> None:
        """Learn ``statistics`` (name → per-event values) per segment of ``segment_by``."""
        keys = list(self.config.segment_by)
        if not keys:
            self.segments = None
            return
        self.segments = learn_segments(
            keys,
            {key: dataset.segment_values(key) for key in keys},
            dataset.user_index,
            dataset.item_index,
            dataset.n_items,
            statistics,
            self.config.min_segment_people,
            per_person,
        )

    def _segment_scores(self, row: int) -> np.ndarray:
        """The model's raw (n_items,) scores for learnt segment ``row``."""
        raise NotImplementedError

    def scores_for_segment(self, values: Mapping[str, Any]) -> np.ndarray | None:
        """Scores over the model's item space for the most specific learnt segment.

        Args:
            values: segment key → value, e.g. ``{"traits.region": "EU",
                "context.device": "mobile"}`` (a person's traits and the request's
                context, each prefixed by its source); keys the model does not use are
                ignored.

        Returns:
            (n_items,) float32 shares of interest, shrunk toward the global scores; None
            when the model has no segments or none applies to ``values``.
        """
        if self.segments is None:
            return None
        row = self.segments.lookup(values)
        if row is None:
            return None
        # asked on every request: remembered per segment, for these global scores
        cache = self.__dict__.setdefault("_segment_cache", {})
        hit = cache.get((id(self.segments), row))
        if hit is not None and hit[0] is self.item_scores:
            return hit[1].copy()  # type: ignore[no-any-return]
        scores = shrink_toward(
            self._segment_scores(row),
            self.item_scores,
            int(self.segments.people[row]),
            self.config.segment_prior_people,
        )
        if len(cache) >= SEGMENT_CACHE:
            cache.clear()
        cache[(id(self.segments), row)] = (self.item_scores, scores)
        return scores.copy()  # the caller may change its copy

    def _segment_arrays(self) -> dict[str, np.ndarray]:
        return self.segments.to_arrays() if self.segments is not None else {}

    def _restore_segments(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.segments = SegmentScores.from_arrays(arrays)
