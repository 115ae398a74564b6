"""`attune train`: stored events → interaction dataset → chosen model → model version.

Which model: an explicit ``algorithm`` if given; with a tuning budget, whatever
validation picks after tuning (:mod:`attune.training.tuning`); otherwise the last tuned
configuration; and when there is none, the candidates' robust defaults, still chosen
by validation.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from attune.config import Settings
from attune.errors import NotReadyError
from attune.features.interactions import InteractionDataset, WeightPolicy, build_dataset
from attune.models.base import Recommender
from attune.models.deadline import fit_deadline
from attune.models.item_to_item import ItemToItemRecommender
from attune.models.registry import create_model
from attune.privacy.consent import personalizable
from attune.store.factory import Stores
from attune.store.protocols import ModelVersion
from attune.training.gate import GateResult, forward_check, served
from attune.training.promotion import (
    hold_candidate,
    new_version_id,
    register_champion,
    was_held,
)
from attune.training.validation import Candidate

log = logging.getLogger(__name__)

Progress = Callable[[str, float], None]
"""Told what is happening and how far along the run is (0 to 1)."""

SERVING_FILE = "serving.json"
MIN_USERS_TO_SELECT = 20
"""Below this many people a validation split says nothing; use the default model."""
SAVE_SHARE = 0.03
"""Of a tuning budget, what is kept for saving the version and the command's own start."""


def weight_policy(settings: Settings) -> WeightPolicy:
    """The event weighting used both for training and for live history at serving time."""
    return WeightPolicy(
        type_weights=settings.event_type_weights,
        value_modes=settings.event_value_modes,
        half_life_days=settings.history_half_life_days,
    )


def user_traits_frame(stores: Stores, page_size: int = 10_000) -> pd.DataFrame:
    """Every stored user's traits: columns user_id, traits (dict or None)."""
    rows: list[tuple[str, Any]] = []
    cursor: str | None = None
    while True:
        page = stores.users.list_users(cursor=cursor, limit=page_size)
        rows += [(row["user_id"], row.get("traits")) for row in page.data]
        cursor = page.next_cursor
        if cursor is None:
            return pd.DataFrame(rows, columns=["user_id", "traits"])


def load_training_data(
    settings: Settings, stores: Stores, with_context: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None]:
    """(events, catalog, user traits or None): event context is read only when
    ``with_context`` (a model that ranks by context may be fitted) or
    ``settings.segment_keys`` asks for it, traits only for segment keys, so plain training
    reads no more than it uses."""
    keys = settings.segment_keys
    frame = stores.events.interaction_frame(
        with_context=with_context or any(key.startswith("context.") for key in keys)
    )
    # no model learns a profile of someone without personalisation consent
    frame = personalizable(frame, settings, stores.consent)
    users = user_traits_frame(stores) if any(key.startswith("traits.") for key in keys) else None
    return frame, stores.catalog.item_frame(), users


def last_tuned(stores: Stores) -> ModelVersion | None:
    """The newest tuned version still in force: versions a rollback went back past are
    skipped (see :mod:`attune.training.promotion`), so retraining after a rollback keeps
    the configuration gone back to, and versions the champion/challenger check held
    back are never in force."""
    versions = stores.model_versions.list_versions(limit=200)
    seq_of = {v.version_id: v.seq for v in versions}
    undone_above = None  # versions newer than this seq were rolled back
    for version in versions:
        if undone_above is not None and version.seq > undone_above:
            continue
        if was_held(version):
            continue  # held back by the champion/challenger check: never in force
        if version.metrics.get("selection") == "tuned":
            return version
        target = version.metrics.get("rolled_back_to")
        if target is not None:
            undone_above = seq_of.get(target, 0)
    return None


def _choose(
    settings: Settings,
    stores: Stores,
    frame: pd.DataFrame,
    items: pd.DataFrame,
    n_users: int,
    tune_budget_seconds: float | None,
    tell: Progress,
    started: float,
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(algorithm, params, selection metrics) for a run without an explicit algorithm."""
    from attune.training.tuning import NothingToValidateError, select_model, serving_configs

    if not tune_budget_seconds:
        tuned = last_tuned(stores)
        if tuned is not None:
            tell(f"reusing the configuration tuned in {tuned.version_id}", 0.3)
            return (
                tuned.algorithm,
                tuned.params,
                {
                    "selection": "tuned",
                    "tuned_in": tuned.version_id,
                    "validation": tuned.metrics.get("validation", {}),
                    "popularity_decays": tuned.metrics.get("popularity_decays", True),
                    **(
                        {"value_modes": tuned.metrics["value_modes"]}
                        if "value_modes" in tuned.metrics
                        else {}
                    ),
                },
            )
        if settings.default_algorithm != "auto":
            return settings.default_algorithm, {}, {"selection": "configured"}
    if n_users < MIN_USERS_TO_SELECT:
        tell("too few people to validate on: using item_knn", 0.3)
        return "item_knn", {}, {"selection": "default"}
    budget = tune_budget_seconds
    if budget:
        # the winner's refit on all data, and saving it, come out of the same budget
        budget = max(0.95 * budget - (time.perf_counter() - started), 0.3 * budget)
    scale = 0.85

    def progress(message: str, fraction: float) -> None:
        tell(message, 0.05 + scale * fraction)

    serving = stores.model_versions.latest("champion") if budget else None
    try:
        choice = select_model(
            frame,
            weight_policy(settings),
            budget,
            progress=progress,
            items=items,
            start_from=serving_configs(serving.algorithm, serving.params) if serving else None,
            # every version also holds a popularity fallback and an item-kNN "similar items"
            fitted_after=("popularity", "item_knn"),
        )
    except NothingToValidateError as exc:
        tell(f"{exc}: using item_knn", 0.3)
        return "item_knn", {}, {"selection": "default", "why": str(exc)}
    return (
        choice.algorithm,
        choice.params,
        {
            "selection": "tuned" if budget else "validated-defaults",
            "validation": choice.summary(),
            "popularity_decays": choice.popularity_decays,
            "value_modes": choice.value_modes,
        },
    )


def _describing_content(dataset: InteractionDataset) -> Recommender | None:
    """The content model of the catalog, when the catalog describes any item."""
    if dataset.item_features is None:
        return None
    content = create_model("content").fit(dataset)
    return content if getattr(content, "describes_items", False) else None


def _gate(
    stores: Stores,
    frame: pd.DataFrame,
    policy: WeightPolicy,
    items: pd.DataFrame,
    candidate: Candidate,
) -> GateResult | None:
    """The champion/challenger check of ``candidate`` (None when nothing serves yet)."""
    champion = served(stores)
    if champion is None:
        return None
    return forward_check(policy.counted(frame), candidate, policy, champion, items)


def train(
    settings: Settings,
    stores: Stores,
    algorithm: str | None = None,
    params: dict[str, Any] | None = None,
    progress: Progress | None = None,
    tune_budget_seconds: float | None = None,
    like: ModelVersion | None = None,
    gate: bool = False,
    origin: str | None = None,
) -> ModelVersion:
    """Fit a model on every stored event and register it as the serving champion.

    The version's folder holds the main model, a popularity fallback (for people the
    main model cannot score; per segment too with ``settings.segment_keys``, see
    ``fallback.scores_for_segment``), the model for "similar items" (item-kNN, the main
    model when it is one, completed by content where the catalog describes items: see
    :mod:`attune.models.item_to_item`) and the weighting used, so serving treats live
    history exactly as training treated stored events.

    ``like``: refit as that version was fitted: with an explicit ``algorithm`` and
    ``params``, also its validated data handling (how values count, whether the
    fallback decays), e.g. to refit a served version after an erasure. ``origin``: why
    this version was made, recorded as its ``selection`` (e.g. ``"erasure"``: a refit of
    ``like`` without an erased person, ``refit_of`` naming it), else ``"explicit"``.

    ``gate``: first judge the new configuration against the serving champion on the
    newest events (:mod:`attune.training.gate`); when the champion is clearly better the
    new version is registered as a ``candidate`` and the champion keeps serving.
    """
    tell = progress or (lambda _message, _fraction: None)
    started = time.perf_counter()

    tell("loading events", 0.0)
    # the hybrid's ranker reads event context (device, channel); other models do not
    frame, items, users = load_training_data(settings, stores, algorithm in (None, "hybrid"))
    if frame.empty:
        raise NotReadyError(
            "no events with a user and an item to train on: import or send events first"
        )
    policy = weight_policy(settings)
    events = frame
    dataset = build_dataset(
        events, WeightPolicy(policy.type_weights, policy.value_modes), items, users
    )
    frame = events.drop(columns="context", errors="ignore")  # only the fallback reads it
    if dataset.n_users == 0:
        raise NotReadyError("every stored event has weight 0: nothing counts as positive feedback")

    if algorithm:
        selection: dict[str, Any] = {"selection": origin or "explicit"}
        params = params or {}
        if like is not None:
            kept_choices = ("value_modes", "popularity_decays")
            selection.update({k: like.metrics[k] for k in kept_choices if k in like.metrics})
            if origin is not None:
                selection["refit_of"] = like.version_id
    else:
        algorithm, params, selection = _choose(
            settings,
            stores,
            policy.counted(frame),
            items,
            dataset.n_users,
            tune_budget_seconds,
            tell,
            started,
        )
    chosen_modes = selection.get("value_modes")
    if chosen_modes is not None and chosen_modes != dict(policy.value_modes):
        # validation found another way to count values: train and serve with it
        policy = replace(policy, value_modes=chosen_modes)
        dataset = build_dataset(
            events, WeightPolicy(policy.type_weights, policy.value_modes), items, users
        )
    # the fallback and the "similar items" model cannot stop early: fit them first, so
    # the refit (which can) stops where the budget ends, whatever they took
    fallback = create_model(
        "popularity",
        {
            # decay assumes people share one clock; validation may have found otherwise
            "half_life_days": settings.popularity_half_life_days
            if selection.get("popularity_decays", True)
            else None,
            "segment_by": settings.segment_keys,
            "min_segment_people": settings.min_segment_people,
        },
    ).fit(dataset)
    # "similar items" always has an item-to-item model, whatever the main model is:
    # item-kNN, completed by content for items it knows too little about
    knn = None if algorithm == "item_knn" else create_model("item_knn").fit(dataset)
    content = _describing_content(dataset)
    tell(f"fitting {algorithm} on all data", 0.9)
    refit_limit = None
    if tune_budget_seconds:
        # a model that trains in steps stops where the budget ends, less what saving
        # takes (at least a tenth of the budget is left to it, so it still learns
        # something after a slow search)
        spent = time.perf_counter() - started
        refit_limit = max((1 - SAVE_SHARE) * tune_budget_seconds - spent, 0.1 * tune_budget_seconds)
    with fit_deadline(refit_limit):
        model = create_model(algorithm, params).fit(dataset)
    knn = knn or model
    similar = knn if content is None else ItemToItemRecommender.of(knn, content)

    checked = None
    if gate:
        tell("checking it against the serving version on the newest events", 0.93)
        checked = _gate(stores, frame, policy, items, Candidate(algorithm, params))
    tell("saving", 0.97)
    stamp = datetime.now(UTC)
    version_id = new_version_id(algorithm, stamp)
    folder = stores.artifacts.path_for(version_id)
    model.save(folder / "main")
    fallback.save(folder / "fallback")
    if similar is not model:
        similar.save(folder / "similar")
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
        status="champion",  # or a candidate, below, when the check holds it back
        metrics={
            **selection,
            "train_seconds": round(time.perf_counter() - started, 3),
            **({"gate": checked.as_metrics()} if checked is not None else {}),
        },
        created_at=stamp.timestamp(),
    )
    reason = "tune" if tune_budget_seconds else ("refit" if like is not None else "train")
    if checked is not None and checked.held:
        version = hold_candidate(stores, version, reason, checked, settings.workspace)
        tell("held back: the serving version stays", 1.0)
        log.warning("held %s back: %s", version_id, checked.reason)
        return version
    version = register_champion(stores, version, reason, settings.workspace)
    tell("done", 1.0)
    log.info("trained %s on %s", version_id, version.data_window)
    return version
