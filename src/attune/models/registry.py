"""Lazy model registry: short name → import path, imported on first use.

Third-party models register through the ``attune.models`` entry-point group
(``name = "package.module:Class"``); a dotted ``package.module:Class`` path works too.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from attune.errors import ValidationError
from attune.models.base import Recommender

BUILTIN: dict[str, str] = {
    "popularity": "attune.models.popularity:PopularityRecommender",
    "trending": "attune.models.trending:TrendingRecommender",
    "item_knn": "attune.models.item_knn:ItemKNNRecommender",
    "user_knn": "attune.models.user_knn:UserKNNRecommender",
    "als": "attune.models.implicit_mf:ALSRecommender",
    "bpr": "attune.models.implicit_mf:BPRRecommender",
    "ease": "attune.models.ease:EASERecommender",
    "transitions": "attune.models.transitions:TransitionsRecommender",
    "blend": "attune.models.blend:BlendRecommender",
    "sasrec": "attune.models.sasrec:SASRecRecommender",
    "content": "attune.models.content:ContentRecommender",
    "hybrid": "attune.models.hybrid:HybridRecommender",
    "feature_mf": "attune.models.feature_mf:FeatureMFRecommender",
    "item_to_item": "attune.models.item_to_item:ItemToItemRecommender",
}

ENTRY_POINT_GROUP = "attune.models"


def available_models() -> dict[str, str]:
    """Every known model name and the import path it resolves to."""
    found = dict(BUILTIN)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(entry.name, entry.value)
    return found


def _import(path: str) -> type[Recommender]:
    module_name, _, attribute = path.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ValidationError(f"cannot import model {path!r}: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Recommender)):
        raise ValidationError(f"{path!r} is not a Recommender subclass")
    return cls


def model_class(name: str) -> type[Recommender]:
    """Resolve a short name (built-in or entry point) or a ``module:Class`` path."""
    known = available_models()
    if name in known:
        return _import(known[name])
    if ":" in name:
        return _import(name)
    raise ValidationError(f"unknown model {name!r}; available: {', '.join(sorted(known))}")


def create_model(name: str, params: dict[str, Any] | None = None) -> Recommender:
    return model_class(name)(params or {})


def load_model(path: Path) -> Recommender:
    """Load a saved model, picking its class from the artifact's own metadata."""
    import json

    meta = json.loads((path / "model.json").read_text())
    return model_class(meta["algorithm"]).load(path)
