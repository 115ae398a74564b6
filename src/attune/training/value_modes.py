"""How an event's ``value`` should count, chosen by validation rather than assumed.

A value column means different things in different data: a rating, a play count, a
quantity. For every event type whose events mostly carry a value that varies, the
configured value mode is measured against the alternatives (``ignore``, ``log1p``, and
``linear`` for small bounded values such as ratings) on the temporal validation split,
with a panel of fast models that read weights (item-kNN, and ALS where installed). An
alternative replaces the configured mode only when it is clearly better: its mean gain
in per-person NDCG@10 exceeds twice its standard error, so validation noise on small
data does not flip a configured choice.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd

from attune.features.interactions import WeightPolicy
from attune.training.validation_set import ValidationSet, clear_gain

log = logging.getLogger(__name__)

MIN_VALUED_SHARE = 0.5
"""A type is judged when at least this share of its events carry a value ..."""
LINEAR_MAX_VALUE = 10.0
"""... and ``linear`` is among the choices only when no value exceeds this (ratings)."""
CONFIDENCE = 2.0
"""An alternative must beat the configured mode by this many standard errors."""


def valued_types(frame: pd.DataFrame) -> dict[str, float]:
    """Event types whose events mostly carry a varying value: type → largest value."""
    if frame.empty or "value" not in frame:
        return {}
    values = pd.to_numeric(frame["value"], errors="coerce")
    found: dict[str, float] = {}
    for event_type, part in values.groupby(frame["type"].astype(str), sort=True):
        present = part.dropna()
        if len(present) >= MIN_VALUED_SHARE * len(part) and present.nunique() > 1:
            found[str(event_type)] = float(present.max())
    return found


def _panel() -> list[tuple[str, dict[str, object]]]:
    panel: list[tuple[str, dict[str, object]]] = [("item_knn", {})]
    if importlib.util.find_spec("implicit") is not None:
        panel.append(("als", {}))
    else:
        panel.append(("user_knn", {}))
    return panel


def _panel_ndcg(vset: ValidationSet) -> np.ndarray:
    """Per validation person, the panel's mean NDCG@10."""
    scores = []
    for algorithm, params in _panel():
        try:
            scores.append(vset.user_ndcg(vset.scores(algorithm, params)))
        except Exception as exc:  # a missing optional dependency must not end training
            log.warning("value-mode panel model %s failed: %s", algorithm, exc)
    return np.mean(scores, axis=0) if scores else np.zeros(int(vset.keep.sum()))


def clearly_better(candidate: np.ndarray, incumbent: np.ndarray) -> bool:
    """Whether per-person scores ``candidate`` beat ``incumbent`` (same people) by more
    than :data:`CONFIDENCE` standard errors of the mean paired difference."""
    return clear_gain(candidate - incumbent, CONFIDENCE)


def choose_value_modes(
    frame: pd.DataFrame,
    policy: WeightPolicy,
    seed: int = 0,
    items: pd.DataFrame | None = None,
    tell: Callable[[str], None] | None = None,
) -> tuple[ValidationSet, WeightPolicy, dict[str, dict[str, float]]]:
    """The validation set under the chosen value modes, the policy, and the evidence
    (event type → mode → panel NDCG@10; empty when no type carries values)."""
    vset = ValidationSet(frame, policy, seed, items)
    evidence: dict[str, dict[str, float]] = {}
    for event_type, largest in valued_types(frame).items():
        current = policy.value_modes.get(event_type, "ignore")
        options = ["ignore", "log1p"] + (["linear"] if largest <= LINEAR_MAX_VALUE else [])
        results = {current: _panel_ndcg(vset)}
        sets = {current: vset}
        for mode in options:
            if mode in results:
                continue
            trial = replace(policy, value_modes={**policy.value_modes, event_type: mode})
            sets[mode] = ValidationSet(frame, trial, seed, items)
            results[mode] = _panel_ndcg(sets[mode])
        best = max(results, key=lambda m: float(results[m].mean()))
        if best != current and clearly_better(results[best], results[current]):
            policy = replace(policy, value_modes={**policy.value_modes, event_type: best})
            vset = sets[best]
        evidence[event_type] = {mode: round(float(v.mean()), 5) for mode, v in results.items()}
        if tell is not None:
            chosen = policy.value_modes.get(event_type, "ignore")
            tell(f"value of {event_type!r} events: {chosen} ({evidence[event_type]})")
    return vset, policy, evidence
