"""A weighted blend of several models' scores, each scaled per person to [-1, 1].

Tuning picks the components and their weights on a validation window; each
component keeps its own parameters (including how much it favours recent history).
"""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path
from typing import Any, Self

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field

from attune.errors import ValidationError
from attune.features.interactions import History, InteractionDataset
from attune.models.base import ModelConfig, Recommender, first_similar_items
from attune.models.forgetting import ErasedPerson


class BlendComponent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    algorithm: str
    params: dict[str, Any] = Field(default_factory=dict)
    weight: float = Field(default=1.0, ge=0)


class BlendConfig(ModelConfig):
    components: list[BlendComponent] = Field(min_length=1)


def scale_rows(scores: np.ndarray) -> np.ndarray:
    """Divide each row by its largest absolute finite score (rows of zeros stay zero)."""
    finite = np.where(np.isfinite(scores), np.abs(scores), 0.0)
    top = finite.max(axis=1, keepdims=True)
    return np.divide(scores, top, out=np.zeros_like(scores), where=top > 0)


class CompositeRecommender(Recommender):
    """A model made of component models fitted on the same data: it forgets in each of
    them and saves each in a ``component_<k>`` folder beside its own files."""

    components: list[Recommender]

    def holds(self, person: ErasedPerson) -> bool | None:
        return components_hold(self.components, person)

    def forget(self, person: ErasedPerson) -> bool:
        """Forget in every component (each on a copy); exact when every component is."""
        self.components, exact = forget_components(self.components, person)
        return exact

    def _arrays(self) -> dict[str, np.ndarray]:
        return {}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        return None

    def save(self, path: Path) -> None:
        super().save(path)
        for k, model in enumerate(self.components):
            model.save(path / f"component_{k}")
        # a folder saved into before may hold more components: they must not load
        stale = path / f"component_{len(self.components)}"
        while stale.is_dir():
            shutil.rmtree(stale)
            stale = path / f"component_{int(stale.name.split('_')[1]) + 1}"

    @classmethod
    def load(cls, path: Path) -> Self:
        from attune.models.registry import load_model

        model = super().load(path)
        folders = (path / f"component_{k}" for k in itertools.count())
        model.components = [load_model(f) for f in itertools.takewhile(Path.is_dir, folders)]
        return model


class BlendRecommender(CompositeRecommender):
    """Σ weight × scaled score over the components (all fitted on the same data)."""

    name = "blend"
    config_class = BlendConfig
    config: BlendConfig

    def __init__(self, config: BlendConfig | dict | None = None) -> None:
        if config is None:
            raise ValidationError("a blend needs its components")
        super().__init__(config)
        self.components = []

    def fit(self, dataset: InteractionDataset) -> Self:
        from attune.models.registry import create_model

        self.components = [
            create_model(c.algorithm, c.params).fit(dataset) for c in self.config.components
        ]
        self.item_ids = dataset.item_ids
        return self

    def query(self, history: History | sp.csr_matrix) -> History:  # type: ignore[override]
        return history if isinstance(history, History) else History.from_matrix(history)

    def score(self, history: History, user_index: np.ndarray) -> np.ndarray:  # type: ignore[override]
        total = np.zeros(history.shape, dtype=np.float32)
        for spec, model in zip(self.config.components, self.components, strict=True):
            if spec.weight == 0:
                continue
            scores = np.asarray(model.score(model.query(history), user_index), dtype=np.float32)
            total += spec.weight * scale_rows(scores)
        return total

    def similar_items(self, item_index: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        return first_similar_items(self.components, item_index, n, "blend")

    @classmethod
    def load(cls, path: Path) -> Self:
        model = super().load(path)
        if len(model.components) != len(model.config.components):
            raise ValidationError(
                f"{path}: {len(model.components)} component folders for "
                f"{len(model.config.components)} components"
            )
        return model


def components_hold(components: list[Recommender], person: ErasedPerson) -> bool | None:
    """False if any component knows the person is not in its data, True if one knows
    they are, else None (see :meth:`Recommender.holds`)."""
    answers = [model.holds(person) for model in components]
    if False in answers:
        return False
    return True if True in answers else None


def forget_components(
    components: list[Recommender], person: ErasedPerson
) -> tuple[list[Recommender], bool]:
    """Copies of ``components`` that have forgotten ``person``, and whether all are exact."""
    results = [model.forgotten(person) for model in components]
    return [twin for twin, _ in results], all(exact for _, exact in results)
