"""Trending: what is gaining interest now, compared with its usual level.

Each item's recent interest (people per item, each interaction's weight halving every
``short_half_life_days``) is divided by its longer-run level (``long_half_life_days``)
plus a smoothing count, then multiplied by the recent interest raised to
``volume_weight`` so a blip from two people does not outrank a wave from two hundred.
"Now" is the newest event in the data. With ``segment_by``, also per segment (region,
device, ...): see :mod:`attune.models.segmented`.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import scipy.sparse as sp
from pydantic import Field, model_validator

from attune.features.interactions import SECONDS_PER_DAY, InteractionDataset
from attune.models.base import Recommender
from attune.models.forgetting import (
    ErasedPerson,
    decayed_newest,
    moves_reference,
    subtract_totals,
)
from attune.models.popularity import max_per_pair
from attune.models.segmented import SegmentedConfig, SegmentedModel


class TrendingConfig(SegmentedConfig):
    short_half_life_days: float = Field(default=3.0, gt=0, description="Recent window.")
    long_half_life_days: float = Field(default=60.0, gt=0, description="Usual level window.")
    smoothing: float = Field(default=5.0, ge=0, description="Added to the usual level.")
    volume_weight: float = Field(
        default=0.5, ge=0, le=2, description="Exponent of recent interest in the score."
    )

    @model_validator(mode="after")
    def _windows(self) -> TrendingConfig:
        if self.long_half_life_days <= self.short_half_life_days:
            raise ValueError("long_half_life_days must exceed short_half_life_days")
        return self

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        short = trial.suggest_float("short_half_life_days", 0.5, 14.0, log=True)
        return {
            "short_half_life_days": short,
            "long_half_life_days": short * trial.suggest_float("long_ratio", 2.0, 50.0, log=True),
            "smoothing": trial.suggest_float("smoothing", 0.1, 50.0, log=True),
            "volume_weight": trial.suggest_float("volume_weight", 0.0, 1.5),
        }

    @classmethod
    def as_trial(cls, values: dict[str, Any]) -> dict[str, Any]:
        trial = dict(values)
        long = trial.pop("long_half_life_days", None)
        if long is not None and trial.get("short_half_life_days"):
            trial["long_ratio"] = long / trial["short_half_life_days"]
        return trial


def event_decay(dataset: InteractionDataset, half_life_days: float) -> np.ndarray:
    """Per event: 2^(-age/half-life), age in days before the newest event."""
    ages = (dataset.reference_time - dataset.timestamp) / SECONDS_PER_DAY
    return np.exp2(-np.maximum(ages, 0.0) / half_life_days)


def decayed_people(dataset: InteractionDataset, half_life_days: float) -> np.ndarray:
    """Per item: people who interacted, each counting 2^(-age/half-life) of their newest event."""
    decay = event_decay(dataset, half_life_days)
    return np.asarray(max_per_pair(dataset, decay).sum(axis=0)).ravel()


class TrendingRecommender(SegmentedModel, Recommender):
    """The same list for everyone: items rising now, globally and per segment
    (:meth:`scores_for_segment`). See the module docstring."""

    name = "trending"
    config_class = TrendingConfig
    config: TrendingConfig

    def __init__(self, config: TrendingConfig | dict | None = None) -> None:
        super().__init__(config)
        self.item_scores = np.zeros(0, dtype=np.float32)
        # what forgetting a person subtracts from (None: a model saved before they were kept)
        self.recent: np.ndarray | None = None
        self.usual: np.ndarray | None = None
        self.reference_time: float | None = None

    def fit(self, dataset: InteractionDataset) -> Self:
        recent = decayed_people(dataset, self.config.short_half_life_days)
        usual = decayed_people(dataset, self.config.long_half_life_days)
        self.item_scores = self._trend(recent, usual)
        self.recent, self.usual = recent, usual
        self.reference_time = dataset.reference_time
        self.item_ids = dataset.item_ids
        statistics = {
            "recent": event_decay(dataset, self.config.short_half_life_days),
            "usual": event_decay(dataset, self.config.long_half_life_days),
        }
        self._learn_segments(dataset, statistics, "max")
        return self

    def _trend(self, recent: np.ndarray, usual: np.ndarray) -> np.ndarray:
        ratio = recent / (usual + self.config.smoothing)
        return (ratio * recent**self.config.volume_weight).astype(np.float32)

    def _segment_scores(self, row: int) -> np.ndarray:
        assert self.segments is not None
        return self._trend(self.segments.row("recent", row), self.segments.row("usual", row))

    def score(self, history: sp.csr_matrix, user_index: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.item_scores, (history.shape[0], self.n_items))

    def forget(self, person: ErasedPerson) -> bool:
        """Subtract the person from both people-counts and recompute the trend.

        Not exact in the cases :meth:`PopularityRecommender.forget` names.
        """
        if person.empty:
            return True
        if self.recent is None or self.usual is None or self.reference_time is None:
            return False
        counts = []
        for total, half_life in (
            (self.recent, self.config.short_half_life_days),
            (self.usual, self.config.long_half_life_days),
        ):
            items, part = decayed_newest(person, self.reference_time, half_life)
            total = np.array(total, dtype=np.float64)
            total[items] = subtract_totals(total[items], part)
            counts.append(total)
        self.recent, self.usual = counts
        self.item_scores = self._trend(self.recent, self.usual)
        return self.segments is None and not moves_reference(person, self.reference_time)

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {"item_scores": self.item_scores, **self._segment_arrays()}
        if self.recent is not None and self.usual is not None:
            arrays["people_recent"] = self.recent
            arrays["people_usual"] = self.usual
            arrays["reference_time"] = np.array([self.reference_time])
        return arrays

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.item_scores = arrays["item_scores"].astype(np.float32)
        if "reference_time" in arrays:
            self.recent = np.asarray(arrays["people_recent"], dtype=np.float64)
            self.usual = np.asarray(arrays["people_usual"], dtype=np.float64)
            self.reference_time = float(arrays["reference_time"][0])
        self._restore_segments(arrays)
