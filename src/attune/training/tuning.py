"""Choose a model by validation: tune each candidate with Optuna, then try blends.

Everything is judged on a temporal validation split of the training data (PROTOCOL.md:
each person's newest fifth is VALID, the rest TRAIN'), by NDCG@10. The winner — a
single model or a weighted blend — is refitted on all data by the caller.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from attune.evaluation.splits import temporal_user_split
from attune.features.interactions import WeightPolicy, build_dataset, frame_history
from attune.models.blend import scale_rows
from attune.models.registry import create_model, model_class

log = logging.getLogger(__name__)

Progress = Callable[[str, float], None]
"""Told a message and the fraction of the budget used so far."""

CANDIDATES = (
    "ease",
    "item_knn",
    "transitions",
    "als",
    "user_knn",
    "bpr",
    "popularity",
    "trending",
)
DEFAULTS: dict[str, dict[str, Any]] = {
    "ease": {"l2": 200.0, "recency_half_life_events": 20.0},
    "item_knn": {"recency_half_life_events": 10.0},
    "transitions": {},
    "als": {"recency_half_life_events": None},
    "user_knn": {},
    "bpr": {},
    "popularity": {},
}
MAX_VALID_USERS = 5_000
REFIT_FACTOR = 1.4
"""Refitting on all data costs about this many times the validation fit."""
HYBRID_ITEMS = 3_000
"""Without a tuning budget, the hybrid is a candidate only up to this many items."""
K = 10


@dataclass
class Trial:
    algorithm: str
    params: dict[str, Any]
    ndcg: float
    seconds: float


@dataclass
class Selection:
    """What validation chose, and the evidence."""

    algorithm: str
    params: dict[str, Any]
    validation_ndcg: float
    trials: list[Trial] = field(default_factory=list)
    best_per_algorithm: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "validation_ndcg@10": round(self.validation_ndcg, 5),
            "best_per_algorithm": {k: round(v, 5) for k, v in self.best_per_algorithm.items()},
            "trials": len(self.trials),
        }


class ValidationSet:
    """TRAIN'/VALID with everything that does not depend on the model precomputed."""

    def __init__(
        self,
        frame: pd.DataFrame,
        policy: WeightPolicy,
        seed: int = 0,
        items: pd.DataFrame | None = None,
    ) -> None:
        train, valid = temporal_user_split(frame)
        users = sorted(set(valid["user_id"].astype(str)) & set(train["user_id"].astype(str)))
        if len(users) > MAX_VALID_USERS:
            rng = np.random.default_rng(seed)
            users = sorted(rng.choice(users, MAX_VALID_USERS, replace=False).tolist())
        self.train, self.policy, self.users = train, policy, users
        self.dataset = build_dataset(
            train, WeightPolicy(policy.type_weights, policy.value_modes), items
        )
        self.history = frame_history(
            train, users, self.dataset.item_position, self.dataset.n_items, policy
        )
        # like serving: every person is scored from their history (models fold them in)
        self.user_index = np.full(len(users), -1, dtype=np.int64)
        relevant = np.zeros((len(users), self.dataset.n_items), dtype=bool)
        row_of = {u: r for r, u in enumerate(users)}
        for user, item in zip(
            valid["user_id"].astype(str), valid["item_id"].astype(str), strict=True
        ):
            r, i = row_of.get(user), self.dataset.item_position.get(item)
            if r is not None and i is not None:
                relevant[r, i] = True
        seen = self.history.weights.toarray() > 0
        relevant &= ~seen
        self.relevant, self.seen = relevant, seen
        # items new in VALID cannot be ranked by anyone, but count in the ideal DCG
        train_pairs = set(
            zip(train["user_id"].astype(str), train["item_id"].astype(str), strict=True)
        )
        fresh = [
            (u, i)
            for u, i in zip(valid["user_id"].astype(str), valid["item_id"].astype(str), strict=True)
            if (u, i) not in train_pairs
        ]
        fresh_count = pd.Series([u for u, _ in fresh]).value_counts() if fresh else pd.Series()
        self.n_relevant = np.array([int(fresh_count.get(u, 0)) for u in users])
        self.keep = self.n_relevant > 0

    def scores(self, algorithm: str, params: dict[str, Any]) -> np.ndarray:
        """The candidate's scaled scores for every validation user (seen items -inf)."""
        model = create_model(algorithm, params).fit(self.dataset)
        scores = np.asarray(
            model.score(model.query(self.history), self.user_index), dtype=np.float32
        )
        scores = scale_rows(scores)
        scores[self.seen] = -np.inf
        return scores

    def ndcg(self, scores: np.ndarray, k: int = K) -> float:
        """Mean NDCG@k over validation users with something new to find."""
        rows = np.flatnonzero(self.keep)
        if len(rows) == 0:
            return 0.0
        part = scores[rows]
        k = min(k, part.shape[1])
        top = np.argpartition(-part, k - 1, axis=1)[:, :k]
        top_scores = np.take_along_axis(part, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        finite = np.isfinite(np.take_along_axis(top_scores, order, axis=1))
        hits = np.take_along_axis(self.relevant[rows], top, axis=1) & finite
        discount = 1.0 / np.log2(np.arange(2, k + 2))
        ideal = np.cumsum(1.0 / np.log2(np.arange(2, K + 2)))[
            np.minimum(self.n_relevant[rows], K) - 1
        ]
        return float(((hits * discount).sum(axis=1) / ideal).mean())


def _available(algorithms: Sequence[str]) -> list[str]:
    usable = []
    for name in algorithms:
        try:
            model_class(name)
        except Exception:  # an optional dependency is missing: skip that candidate
            log.info("candidate %s unavailable", name)
            continue
        if name in ("als", "bpr"):
            try:
                import implicit  # noqa: F401
            except ImportError:
                continue
        usable.append(name)
    return usable


def _has_content(items: pd.DataFrame | None) -> bool:
    """Whether most catalog items carry some text or labels a content model can use."""
    if items is None or items.empty:
        return False
    described = pd.Series(False, index=items.index)
    for column in ("title", "text", "categories", "tags"):
        if column in items:
            described |= items[column].map(lambda v: bool(v) if not isinstance(v, float) else False)
    return bool(described.mean() >= 0.5)


def _space(name: str, trial: Any) -> dict[str, Any]:
    config = model_class(name).config_class
    params = config.search_space(trial)
    if name not in ("popularity", "trending", "blend", "hybrid") and (
        "recency_half_life_events" not in params
    ):
        if trial.suggest_categorical("use_recency", [True, False]):
            params["recency_half_life_events"] = trial.suggest_float(
                "recency", 1.0, 100.0, log=True
            )
        else:
            params["recency_half_life_events"] = None
    return params


def select_model(
    frame: pd.DataFrame,
    policy: WeightPolicy,
    budget_seconds: float | None = None,
    algorithms: Sequence[str] = CANDIDATES,
    progress: Progress | None = None,
    seed: int = 0,
    items: pd.DataFrame | None = None,
) -> Selection:
    """Pick the best single model or blend by validation NDCG@10.

    Without a budget, only each candidate's defaults are tried (fast; what a plain
    ``attune train`` does). With a budget, each candidate is tuned with Optuna for an
    equal share of 70% of it, then blends of the best three are searched.
    """
    started = time.monotonic()
    tell = progress or (lambda _msg, _frac: None)

    def used() -> float:
        return (
            0.0 if not budget_seconds else min((time.monotonic() - started) / budget_seconds, 1.0)
        )

    tell("building the validation split", 0.0)
    vset = ValidationSet(frame, policy, seed, items)
    names = _available(algorithms)
    if "content" not in names and _has_content(items):
        names.append("content")
    # the learning-to-rank hybrid fits several models twice: worth its time when tuning,
    # or when the catalog is small enough that it costs seconds
    if "hybrid" not in names and (budget_seconds or vset.dataset.n_items <= HYBRID_ITEMS):
        names += _available(["hybrid"])
    trials: list[Trial] = []
    best: dict[str, Trial] = {}
    best_scores: dict[str, np.ndarray] = {}

    def evaluate(name: str, params: dict[str, Any]) -> float:
        t0 = time.monotonic()
        try:
            scores = vset.scores(name, params)
        except Exception as exc:  # a bad corner of a search space must not end tuning
            log.warning("candidate %s %s failed: %s", name, params, exc)
            return -1.0
        value = vset.ndcg(scores)
        trials.append(Trial(name, params, value, time.monotonic() - t0))
        if name not in best or value > best[name].ndcg:
            best[name] = trials[-1]
            best_scores[name] = scores
        tell(f"{name}: NDCG@10 {value:.4f} (best {best[name].ndcg:.4f})", used())
        return value

    if not budget_seconds:
        for name in names:
            evaluate(name, dict(DEFAULTS.get(name, {})))
    else:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        tuning_end = started + 0.7 * budget_seconds
        for position, name in enumerate(names):
            expected = _expected_seconds(name, trials)
            if best and time.monotonic() + expected >= tuning_end:
                log.info("tuning budget spent: %s not tried", name)
                tell(f"budget too short for {name}: not tried", used())
                continue
            # what is left is shared by the candidates still to come, so time a fast
            # candidate does not need goes to the slower ones
            share = (tuning_end - time.monotonic()) / (len(names) - position)
            deadline = time.monotonic() + max(share, 0.0)
            study = optuna.create_study(
                direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed)
            )
            study.enqueue_trial(_as_trial_params(name), skip_if_exists=True)

            def objective(trial: Any, name: str = name, deadline: float = deadline) -> float:
                slowest = max((t.seconds for t in trials if t.algorithm == name), default=0.0)
                if trial.number > 0 and time.monotonic() + slowest > deadline:
                    trial.study.stop()  # the next fit would overrun this candidate's share
                    raise optuna.TrialPruned()
                return evaluate(name, _space(name, trial))

            if best or share > 0:
                study.optimize(objective, timeout=max(share, 0.0), n_trials=60, catch=(Exception,))
            else:  # no time at all: still measure one candidate's defaults
                study.optimize(objective, n_trials=1, catch=(Exception,))
    blend = _search_blend(vset, best, best_scores, budget_seconds, started, tell, used)
    ranked = sorted(best.values(), key=lambda t: t.ndcg, reverse=True)
    if not ranked:
        raise RuntimeError("no candidate model could be evaluated")
    # the winner is refitted on all data (about 1/0.64 of the validation fit's rows):
    # with a budget, prefer the best option whose refit still fits in what is left
    left = None if not budget_seconds else started + budget_seconds - time.monotonic()
    options = [(t.ndcg, t.algorithm, t.params, REFIT_FACTOR * t.seconds) for t in ranked]
    if blend is not None:
        cost = sum(REFIT_FACTOR * best[c["algorithm"]].seconds for c in blend[0]["components"])
        options.append((blend[1], "blend", blend[0], cost))
    options.sort(key=lambda o: o[0], reverse=True)
    affordable = [o for o in options if left is None or o[3] <= left]
    if not affordable:
        # nothing fits what is left: take the best single model (one refit) rather than
        # trade accuracy for seconds
        affordable = [o for o in options if o[1] != "blend"]
    ndcg, algorithm, params, _cost = affordable[0]
    choice = Selection(algorithm, params, ndcg, trials)
    choice.best_per_algorithm = {name: t.ndcg for name, t in best.items()}
    tell(f"chose {choice.algorithm}: validation NDCG@10 {choice.validation_ndcg:.4f}", 1.0)
    return choice


def _expected_seconds(name: str, trials: Sequence[Trial]) -> float:
    """How long the first fit of ``name`` should take, judged from the fits so far.

    A composite model fits each component twice (on its inner window, then on all of
    it), so it costs about twice its components; a plain model is not known in advance.
    """
    if name != "hybrid":
        return 0.0
    fastest: dict[str, float] = {}
    for trial in trials:
        fastest[trial.algorithm] = min(fastest.get(trial.algorithm, trial.seconds), trial.seconds)
    config = model_class(name).config_class()
    parts = [c.algorithm for c in getattr(config, "components", [])]
    return 2.0 * sum(fastest.get(part, 0.0) for part in parts)


def _as_trial_params(name: str) -> dict[str, Any]:
    """The candidate's defaults under the search-space names used by :func:`_space`, so
    the first trial of every study measures exactly what an untuned run would fit."""
    config = model_class(name).config_class
    fields = (
        {
            key: value
            for key, value in config().model_dump().items()
            if isinstance(value, int | float | str | bool)
        }
        if name != "blend"
        else {}
    )
    defaults = {**fields, **DEFAULTS.get(name, {})}
    params = {k: v for k, v in defaults.items() if k != "recency_half_life_events"}
    if "recency_half_life_events" in defaults:
        recency = defaults["recency_half_life_events"]
        params["use_recency"] = recency is not None
        if recency is not None:
            params["recency"] = recency
    return params


def _search_blend(
    vset: ValidationSet,
    best: dict[str, Trial],
    best_scores: dict[str, np.ndarray],
    budget_seconds: float | None,
    started: float,
    tell: Progress,
    used: Callable[[], float],
) -> tuple[dict[str, Any], float] | None:
    """Weights for the top three models' scores that maximise validation NDCG@10."""
    top = [t for t in sorted(best.values(), key=lambda t: t.ndcg, reverse=True) if t.ndcg > 0][:3]
    if len(top) < 2:
        return None
    matrices = [
        np.where(np.isfinite(best_scores[t.algorithm]), best_scores[t.algorithm], 0.0) for t in top
    ]
    seen = vset.seen

    def blended(weights: Sequence[float]) -> float:
        total = sum(w * m for w, m in zip(weights, matrices, strict=True))
        total = np.where(seen, -np.inf, total)
        return vset.ndcg(total)

    grid = [0.0, 0.25, 0.5, 1.0, 2.0]
    best_weights, best_value = [1.0] + [0.0] * (len(top) - 1), top[0].ndcg
    candidates = [
        [1.0, a] + ([b] if len(top) > 2 else [])
        for a in grid
        for b in (grid if len(top) > 2 else [0.0])
    ]
    deadline = None if not budget_seconds else started + budget_seconds
    for weights in candidates:
        if deadline and time.monotonic() > deadline:
            break
        value = blended(weights)
        if value > best_value + 1e-9:
            best_weights, best_value = list(weights), value
    tell(f"blend of {', '.join(t.algorithm for t in top)}: NDCG@10 {best_value:.4f}", used())
    if math.isclose(best_value, top[0].ndcg) or best_value <= top[0].ndcg:
        return None
    components = [
        {"algorithm": t.algorithm, "params": t.params, "weight": w}
        for t, w in zip(top, best_weights, strict=True)
        if w > 0
    ]
    return {"components": components}, best_value
