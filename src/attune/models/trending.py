"""Trending: what is gaining interest now, compared with its usual level.

Each item's recent interest (people per item, each interaction's weight halving every
``short_half_life_days``) is divided by its longer-run level (``long_half_life_days``)
plus a smoothing count, then multiplied by the recent interest raised to
``volume_weight`` so a blip from two people does not outrank a wave from two hundred.
"Now" is the newest event in the data.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import scipy.sparse as sp
from pydantic import Field, model_validator

from attune.features.interactions import SECONDS_PER_DAY, InteractionDataset
from attune.models.base import ModelConfig, Recommender
from attune.models.popularity import max_per_pair


class TrendingConfig(ModelConfig):
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


def decayed_people(dataset: InteractionDataset, half_life_days: float) -> np.ndarray:
    """Per item: people who interacted, each counting 2^(-age/half-life) of their newest event."""
    ages = (dataset.reference_time - dataset.timestamp) / SECONDS_PER_DAY
    decay = np.exp2(-np.maximum(ages, 0.0) / half_life_days)
    return np.asarray(max_per_pair(dataset, decay).sum(axis=0)).ravel()


class TrendingRecommender(Recommender):
    """The same list for everyone: items rising now. See the module docstring."""

    name = "trending"
    config_class = TrendingConfig
    config: TrendingConfig

    def __init__(self, config: TrendingConfig | dict | None = None) -> None:
        super().__init__(config)
        self.item_scores = np.zeros(0, dtype=np.float32)

    def fit(self, dataset: InteractionDataset) -> Self:
        recent = decayed_people(dataset, self.config.short_half_life_days)
        usual = decayed_people(dataset, self.config.long_half_life_days)
        ratio = recent / (usual + self.config.smoothing)
        self.item_scores = (ratio * recent**self.config.volume_weight).astype(np.float32)
        self.item_ids = dataset.item_ids
        return self

    def score(self, history: sp.csr_matrix, user_index: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.item_scores, (history.shape[0], self.n_items))

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"item_scores": self.item_scores}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.item_scores = arrays["item_scores"].astype(np.float32)
