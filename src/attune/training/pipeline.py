"""`attune train`: stored events → interaction dataset → fitted model → model version."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from attune.config import Settings
from attune.errors import NotReadyError
from attune.features.interactions import WeightPolicy, build_dataset
from attune.models.registry import create_model
from attune.store.factory import Stores
from attune.store.protocols import ModelVersion

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
"""Told the name of each step as it starts (the CLI draws a progress bar from it)."""

STEPS = ("load events", "build matrix", "fit model", "fit fallback", "save")
SERVING_FILE = "serving.json"


def weight_policy(settings: Settings) -> WeightPolicy:
    """The event weighting used both for training and for live history at serving time."""
    return WeightPolicy(
        type_weights=settings.event_type_weights,
        value_modes=settings.event_value_modes,
        half_life_days=settings.history_half_life_days,
    )


def train(
    settings: Settings,
    stores: Stores,
    algorithm: str | None = None,
    params: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> ModelVersion:
    """Fit ``algorithm`` (default from settings) on every stored event and register it.

    The version's folder holds the main model, a popularity fallback (for people the
    main model cannot score) and the weighting used, so serving treats live history
    exactly as training treated stored events.
    """
    step = progress or (lambda _name: None)
    algorithm = algorithm or settings.default_algorithm
    started = time.perf_counter()

    step("load events")
    frame = stores.events.interaction_frame()
    if frame.empty:
        raise NotReadyError(
            "no events with a user and an item to train on: import or send events first"
        )
    step("build matrix")
    policy = weight_policy(settings)
    dataset = build_dataset(frame, WeightPolicy(policy.type_weights, policy.value_modes))
    if dataset.n_users == 0:
        raise NotReadyError("every stored event has weight 0: nothing counts as positive feedback")

    step("fit model")
    model = create_model(algorithm, params).fit(dataset)
    step("fit fallback")
    fallback = create_model(
        "popularity", {"half_life_days": settings.popularity_half_life_days}
    ).fit(dataset)

    step("save")
    stamp = datetime.now(UTC)
    version_id = f"{stamp:%Y%m%dT%H%M%S}-{algorithm}-{uuid.uuid4().hex[:6]}"
    folder = stores.artifacts.path_for(version_id)
    model.save(folder / "main")
    fallback.save(folder / "fallback")
    serving = {
        "type_weights": dict(policy.type_weights),
        "value_modes": dict(policy.value_modes),
        "history_half_life_days": policy.half_life_days,
    }
    (folder / SERVING_FILE).write_text(json.dumps(serving, indent=2))
    version = ModelVersion(
        version_id=version_id,
        algorithm=algorithm,
        params=model.config.model_dump(mode="json"),
        data_window=dataset.window(),
        artifact_uri=stores.artifacts.uri_for(version_id),
        status="champion",
        metrics={"train_seconds": round(time.perf_counter() - started, 3)},
        created_at=stamp.timestamp(),
    )
    stores.model_versions.register(version)
    log.info("trained %s on %s", version_id, version.data_window)
    return version
