"""`attune evaluate`: split the stored events, fit each model on the past, score the future.

The lists are produced the way serving produces them (live history, each model's own
recency preference), and scored by :mod:`attune.evaluation`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from attune.errors import ValidationError
from attune.evaluation.report import evaluation_report
from attune.evaluation.splits import global_temporal_split, leave_last_one_out, temporal_user_split
from attune.features.interactions import WeightPolicy
from attune.training.validation import Candidate, fit_candidate, recommend_lists

SPLITS: dict[str, Callable[[pd.DataFrame], tuple[pd.DataFrame, pd.DataFrame]]] = {
    "temporal-user": temporal_user_split,
    "global-temporal": global_temporal_split,
    "leave-last-one-out": leave_last_one_out,
}

Progress = Callable[[str, float], None]


def evaluate_models(
    frame: pd.DataFrame,
    policy: WeightPolicy,
    algorithms: Sequence[str],
    split: str = "temporal-user",
    ks: Sequence[int] = (10, 20),
    item_categories: Mapping[str, Sequence[str]] | None = None,
    tune_budget_seconds: float | None = None,
    progress: Progress | None = None,
    items: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """A report per algorithm; ``auto`` is what ``attune train`` would choose on the past.

    Args:
        frame: stored events (user_id, item_id, type, value, timestamp).
        algorithms: model names, or ``auto``.
        split: one of :data:`SPLITS`.
    """
    from attune.training.tuning import NothingToValidateError, select_model

    if split not in SPLITS:
        raise ValidationError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    tell = progress or (lambda _message, _fraction: None)
    kept = policy.counted(frame)
    train, test = SPLITS[split](kept)
    if train.empty or test.empty:
        raise ValidationError(
            f"the {split} split leaves {'no training' if train.empty else 'no test'} events "
            f"({len(kept):,} events in all): too little data, or too few distinct times"
        )
    users = sorted(set(test["user_id"].astype(str)))
    reports: dict[str, Any] = {}
    for position, name in enumerate(algorithms):
        share = 1.0 / max(len(algorithms), 1)
        tell(f"{name}: fitting", position * share)
        started = time.perf_counter()
        candidate = Candidate(name)
        chosen = None
        if name == "auto":
            try:
                choice = select_model(train, policy, tune_budget_seconds, items=items)
                candidate = Candidate(choice.algorithm, choice.params)
            except NothingToValidateError:  # as `attune train` does
                candidate = Candidate("item_knn")
            chosen = {"algorithm": candidate.algorithm, "params": candidate.params}
        model, dataset = fit_candidate(candidate, train, policy, items)
        tell(f"{name}: recommending for {len(users):,} people", (position + 0.5) * share)
        lists = recommend_lists(model, dataset.item_position, train, users, policy, max(ks))
        catalog = items["item_id"].astype(str) if items is not None else ()
        report = evaluation_report(lists, train, test, ks, item_categories, catalog)
        report["seconds"] = round(time.perf_counter() - started, 2)
        if chosen:
            report["chosen"] = chosen
        reports[name] = report
    tell("done", 1.0)
    return {
        "split": split,
        "train_events": len(train),
        "test_events": len(test),
        "models": reports,
    }
