"""Champion/challenger check: does a retrained version predict the newest events at least
as well as the version serving now?

A new version is fitted on every stored event, so no held-out data is left to judge it
on. The check therefore fits the challenger's configuration once more on the events up
to a cut time and lets both it and the serving champion (as it serves, fitted on what
it saw) recommend for the people active after the cut, from their history up to it.
The cut lies halfway (by count) through the events newer than the champion's newest
training event: the challenger learns from the first half of what is new, neither
model has seen the second half, and what the new events teach (or spoil) shows.

Both models are scored per person (NDCG@10 of the items new to them after the cut), and
the challenger is held back only when the champion is clearly better: by more than
:data:`GATE_STANDARD_ERRORS` standard errors of the paired difference. What the check
catches is a retrain that learned from bad data (a flood of bot or test events, a
tracking change that sends the wrong item ids); a challenger that is merely no better
(a plain refit on a little more data) goes through, since staying on the older version
would give up what the new events taught.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from attune.evaluation.metrics import ndcg_per_user
from attune.features.interactions import WeightPolicy
from attune.models.base import Recommender
from attune.training.validation import Candidate, fit_candidate, recommend_lists
from attune.training.validation_set import MAX_VALID_USERS, clear_gain

GATE_MIN_PEOPLE = 30
"""Fewer people active after the cut with something new: the check says nothing."""
GATE_STANDARD_ERRORS = 2.0
K = 10

Verdict = Literal["promoted", "held", "inconclusive"]


@dataclass(frozen=True)
class GateResult:
    """What the check found (kept in the new version's metrics as ``gate``)."""

    verdict: Verdict
    reason: str
    people: int = 0
    cut: float | None = None
    challenger_ndcg: float | None = None
    champion_ndcg: float | None = None
    champion: str | None = None

    @property
    def held(self) -> bool:
        return self.verdict == "held"

    def as_metrics(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "reason": self.reason,
            "people": self.people,
            "cut": self.cut,
            "challenger_ndcg@10": _rounded(self.challenger_ndcg),
            "champion_ndcg@10": _rounded(self.champion_ndcg),
            "champion": self.champion,
        }

    def __str__(self) -> str:
        return f"{self.verdict}: {self.reason}"


@dataclass(frozen=True)
class Served:
    """The serving champion as the check needs it: its main model and weighting."""

    version_id: str
    model: Recommender
    policy: WeightPolicy
    trained_until: float
    """Its newest training event's timestamp."""


def forward_check(
    frame: pd.DataFrame,
    candidate: Candidate,
    policy: WeightPolicy,
    champion: Served,
    items: pd.DataFrame | None = None,
    seed: int = 0,
) -> GateResult:
    """Judge ``candidate`` (fitted on the events up to the cut) against ``champion`` on
    the events after it. ``frame``: every stored event (user_id, item_id, type, value,
    timestamp), as training reads them; ``policy``: the candidate's weighting."""
    times = frame["timestamp"].to_numpy(dtype=np.float64)
    newer = times[times > champion.trained_until]
    if not len(newer):
        reason = "no events newer than the serving version's data"
        return GateResult("inconclusive", reason, champion=champion.version_id)
    cut = float(np.quantile(newer, 0.5, method="lower"))
    before, after = frame.loc[times <= cut], frame.loc[times > cut]
    relevant = _new_items(before, after)
    if len(relevant) > MAX_VALID_USERS:
        rng = np.random.default_rng(seed)
        kept = rng.choice(sorted(relevant), MAX_VALID_USERS, replace=False)
        relevant = {u: relevant[u] for u in sorted(kept.tolist())}
    people = sorted(relevant)
    if len(people) < GATE_MIN_PEOPLE:
        return GateResult(
            "inconclusive",
            f"{len(people)} people did something new after the serving version's data "
            f"({GATE_MIN_PEOPLE} needed to compare)",
            len(people),
            cut,
            champion=champion.version_id,
        )
    model, dataset = fit_candidate(candidate, before, policy, items)
    challenger_lists = recommend_lists(model, dataset.item_position, before, people, policy, K)
    position = {item: i for i, item in enumerate(champion.model.item_ids.tolist())}
    champion_lists = recommend_lists(champion.model, position, before, people, champion.policy, K)
    ours = ndcg_per_user(challenger_lists, relevant, K)
    theirs = ndcg_per_user(champion_lists, relevant, K)
    scores = f"NDCG@10 {ours.mean():.4f} vs {theirs.mean():.4f} over {len(people)} people"
    if clear_gain(theirs - ours, GATE_STANDARD_ERRORS):
        verdict: Verdict = "held"
        reason = f"the serving version predicts the newest events clearly better ({scores})"
    else:
        verdict = "promoted"
        reason = f"not clearly worse than the serving version on the newest events ({scores})"
    return GateResult(
        verdict,
        reason,
        len(people),
        cut,
        float(ours.mean()),
        float(theirs.mean()),
        champion.version_id,
    )


def _new_items(before: pd.DataFrame, after: pd.DataFrame) -> dict[str, set[str]]:
    """Per person with history before the cut: the items they had after it, not before."""
    had: dict[str, set[str]] = {
        str(u): set(map(str, g)) for u, g in before.groupby("user_id")["item_id"]
    }
    found: dict[str, set[str]] = {}
    for user, group in after.groupby("user_id")["item_id"]:
        earlier = had.get(str(user))
        if earlier is None:
            continue  # nobody can be judged on a person neither model has history of
        fresh = set(map(str, group)) - earlier
        if fresh:
            found[str(user)] = fresh
    return found


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 5)


def served(stores: Any) -> Served | None:
    """The serving champion, loaded for the check (None when none serves or its files
    are gone)."""
    from attune.engine.model_holder import load_version
    from attune.errors import NotFoundError

    version = stores.model_versions.latest("champion")
    if version is None:
        return None
    try:
        loaded = load_version(stores, version)
    except (NotFoundError, FileNotFoundError):
        return None
    end = (version.data_window or {}).get("end")
    trained_until = float(end) if end is not None else version.created_at
    return Served(version.version_id, loaded.main, loaded.policy, trained_until)
