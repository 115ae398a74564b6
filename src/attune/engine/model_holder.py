"""The model a server answers with, swapped for a newer version without a restart."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from attune.features.interactions import WeightPolicy
from attune.models.base import Recommender
from attune.models.registry import load_model
from attune.store.factory import Stores
from attune.store.protocols import ModelVersion
from attune.training.pipeline import SERVING_FILE

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """One model version in memory: main model, popularity fallback, the item-to-item
    model behind "similar items", and the weighting. All share one item space."""

    version: ModelVersion
    main: Recommender
    fallback: Recommender
    policy: WeightPolicy
    similar: Recommender

    @cached_property
    def item_position(self) -> dict[str, int]:
        return {item: i for i, item in enumerate(self.main.item_ids.tolist())}

    @cached_property
    def fallback_position(self) -> dict[str, int]:
        return {item: i for i, item in enumerate(self.fallback.item_ids.tolist())}

    def indices(self, item_ids: set[str], position: dict[str, int]) -> np.ndarray:
        return np.fromiter((position[i] for i in item_ids if i in position), dtype=np.int64)


def load_version(stores: Stores, version: ModelVersion) -> LoadedModel:
    folder = stores.artifacts.open(version.artifact_uri)
    serving = json.loads((folder / SERVING_FILE).read_text())
    policy = WeightPolicy(
        type_weights=serving["type_weights"],
        value_modes=serving["value_modes"],
        half_life_days=serving["history_half_life_days"],
    )
    main = load_model(folder / "main")
    similar = load_model(folder / "similar") if (folder / "similar").is_dir() else main
    return LoadedModel(version, main, load_model(folder / "fallback"), policy, similar)


class ModelHolder:
    """Holds the newest champion version; checks for a newer one at most every
    ``refresh_seconds`` and swaps it in atomically (requests in flight keep the old one)."""

    def __init__(self, stores: Stores, refresh_seconds: float = 2.0) -> None:
        self.stores = stores
        self.refresh_seconds = refresh_seconds
        self._loaded: LoadedModel | None = None
        self._checked_at = float("-inf")
        self._lock = threading.Lock()

    def current(self) -> LoadedModel | None:
        if time.monotonic() - self._checked_at >= self.refresh_seconds:
            self.refresh()
        return self._loaded

    def refresh(self) -> LoadedModel | None:
        """Load the newest champion if it differs from the one held."""
        with self._lock:
            self._checked_at = time.monotonic()
            latest = self.stores.model_versions.latest("champion")
            held = self._loaded.version.version_id if self._loaded else None
            if latest is not None and latest.version_id != held:
                try:
                    self._loaded = load_version(self.stores, latest)
                    log.info("serving model version %s", latest.version_id)
                except Exception:
                    # keep answering with the model we have rather than failing requests
                    log.exception("could not load model version %s", latest.version_id)
            return self._loaded
