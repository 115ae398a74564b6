"""Choose a model by validation: tune each candidate with Optuna, then try blends.

Everything is judged on a temporal validation split of the training data (PROTOCOL.md:
each person's newest fifth is VALID, the rest TRAIN'), by NDCG@10. The winner — a
single model or a weighted blend — is refitted on all data by the caller.

Nothing about the data is assumed that validation can check instead: how values count
(:mod:`attune.training.value_modes`), how much recent history should count and whether
popularity should decay (which assume that the order and age of events mean something)
are measured choices, and the sequential SASRec model is tried only when order does
mean something and the budget leaves it time to learn. Every trial runs under a fit
deadline (:mod:`attune.models.deadline`), so one slow trial cannot overrun the budget;
after tuning, the leaders are judged again on a second, earlier window, so the best of
many trials is not merely the luckiest on one.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from attune.errors import ValidationError
from attune.features.interactions import WeightPolicy
from attune.models.base import Recommender
from attune.models.deadline import fit_deadline
from attune.models.registry import model_class
from attune.training.validation_set import (
    QUERY_TIME_RECENCY,
    ValidationSet,
    clear_gain,
    order_is_meaningful,
    with_recency,
)
from attune.training.value_modes import choose_value_modes

log = logging.getLogger(__name__)


class NothingToValidateError(ValidationError):
    """No candidate can be judged: nobody in the validation window has anything new to
    find (each person has too few events to hold some back)."""


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
    # a short, narrow network learns most per second: tuning gives SASRec a share of the
    # budget (tens of seconds), not the 120 s its defaults were chosen for
    "sasrec": {"max_length": 50, "hidden": 32, "blocks": 1},
}
REFIT_FACTOR = 1.4
"""Refitting on all data costs about this many times the validation fit."""
HYBRID_ITEMS = 3_000
"""Without a tuning budget, the hybrid is a candidate only up to this many items."""
SEQUENTIAL_MIN_BUDGET = 240.0
"""SASRec is a tuning candidate only with at least this many seconds of budget."""
SEQUENTIAL_MIN_EVENTS = 5.0
"""... and when people have at least this many events (median) to learn order from."""
SEQUENTIAL_MAX_SECONDS = 120.0
"""The most a SASRec trial (and its refit) trains for."""
UNTRIED_SHARE_FOR_LABELS = 0.1
"""Factorisation over catalog labels is a tuning candidate only where at least this share
of the validation window falls on items nobody had before it (ML-100K 0.3%,
ml-latest-small 7.6%; with every timestamp equal 18%, sparse purchases 25%): elsewhere it
is one more BPR taking a share of the budget, and on dates-only data it won validation
and lost to EASE on the test set."""
PLAIN_RECENCY = 10.0
"""Without a budget, the recency a candidate whose default ignores order is also tried
with (and the other way round: a default recency is also tried without)."""
PLAIN_VARIANTS: dict[str, list[dict[str, Any]]] = {
    # decay from the newest event assumes everyone shares one clock; data spanning years
    # of people's separate histories does better without it
    "popularity": [{"half_life_days": None}],
}
"""Without a budget, configurations tried beside a cheap candidate's defaults."""
MAX_TRIALS = 30
"""The most trials one candidate gets: TPE has settled on a handful of parameters by then
(more trials mostly fit the noise of a small validation window), and a candidate that
gets this many within its share of the budget gives the same result however fast the
machine is."""
REPEATS_TO_STOP = 5
"""A study ends after this many trials in a row repeat configurations already measured."""
PROBES: dict[str, list[dict[str, Any]]] = {
    "ease": [{"l2": 20.0}, {"l2": 2_000.0}],
    "bpr": [{"fold_in": "mapped"}],
    "feature_mf": [{"fold_in": "mean"}],
}
"""With a budget, trials queued right after a candidate's defaults: far corners of its
space (sparse data wants a small EASE penalty, dense data a large one; BPR's placing of
people either near their items' mean or where training put them), so even a candidate
with time for three fits sees both."""


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
    value_modes: dict[str, str] = field(default_factory=dict)
    """The value mode of every event type validation judged (or was configured with)."""
    value_evidence: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def popularity_decays(self) -> bool:
        """Whether time-decayed popularity validated at least as well as plain counts
        (True when that was not measured): what the popularity fallback should use."""
        popularity = [t for t in self.trials if t.algorithm == "popularity"]
        flat = [t.ndcg for t in popularity if t.params.get("half_life_days", 0) is None]
        decayed = [t.ndcg for t in popularity if t.params.get("half_life_days", 0) is not None]
        return not flat or not decayed or max(decayed) >= max(flat)

    def summary(self) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "validation_ndcg@10": round(self.validation_ndcg, 5),
            "best_per_algorithm": {k: round(v, 5) for k, v in self.best_per_algorithm.items()},
            "trials": len(self.trials),
            "trials_per_algorithm": dict(Counter(t.algorithm for t in self.trials)),
        }
        if self.value_evidence:
            summary["value_modes"] = self.value_evidence
        return summary


OPTIONAL_LIBRARY = {"als": "implicit", "bpr": "implicit", "sasrec": "torch"}
"""Candidates that need a library of an optional extra (skipped without it)."""


def _available(algorithms: Sequence[str]) -> list[str]:
    usable = []
    for name in algorithms:
        try:
            model_class(name)
        except Exception:  # an optional dependency is missing: skip that candidate
            log.info("candidate %s unavailable", name)
            continue
        needs = OPTIONAL_LIBRARY.get(name)
        if needs is not None and importlib.util.find_spec(needs) is None:
            continue
        usable.append(name)
    return usable


def _candidates(
    vset: ValidationSet,
    algorithms: Sequence[str],
    items: pd.DataFrame | None,
    budget_seconds: float | None,
) -> list[str]:
    """The candidates worth validating on this data with this budget."""
    names = _available(algorithms)
    if "content" not in names and _has_content(items):
        names.append("content")
    # factorisation over catalog labels: what it adds to the id-only models is placing
    # items training never saw, worth a share of the budget where validation shows people
    # going on to such items and the catalog labels most items
    if (
        "feature_mf" not in names
        and budget_seconds
        and _has_labels(items)
        and untried_share(vset) >= UNTRIED_SHARE_FOR_LABELS
    ):
        names += _available(["feature_mf"])
    if (
        "sasrec" not in names
        and budget_seconds
        and budget_seconds >= SEQUENTIAL_MIN_BUDGET
        and _sequential(vset)
    ):
        names += _available(["sasrec"])
    # the learning-to-rank hybrid fits several models twice: worth its time when tuning,
    # or when the catalog is small enough that it costs seconds
    if "hybrid" not in names and (budget_seconds or vset.dataset.n_items <= HYBRID_ITEMS):
        names += _available(["hybrid"])
    return names


def _sequential(vset: ValidationSet) -> bool:
    """Whether a sequence model has something to learn: events at distinct times, and
    people with enough of them."""
    sizes = np.bincount(vset.dataset.user_index, minlength=vset.dataset.n_users)
    return bool(np.median(sizes) >= SEQUENTIAL_MIN_EVENTS) and order_is_meaningful(vset.train)


def _has_content(items: pd.DataFrame | None) -> bool:
    """Whether most catalog items carry some text or labels a content model can use."""
    return _described_share(items, ("title", "text", "categories", "tags")) >= 0.5


def untried_share(vset: ValidationSet) -> float:
    """Share of the validation window's rows (on items the model space knows) that fall
    on items nobody has in TRAIN': what only a model that ranks untried items can find."""
    counts = np.bincount(vset.dataset.item_index, minlength=vset.dataset.n_items)
    rows = vset.relevant.sum()
    return float(vset.relevant[:, counts == 0].sum() / rows) if rows else 0.0


def _has_labels(items: pd.DataFrame | None) -> bool:
    """Whether most catalog items carry categories or tags."""
    return _described_share(items, ("categories", "tags")) >= 0.5


def _described_share(items: pd.DataFrame | None, columns: Sequence[str]) -> float:
    """Share of catalog items with something in at least one of ``columns``."""
    if items is None or items.empty:
        return 0.0
    described = pd.Series(False, index=items.index)
    for column in columns:
        if column in items:
            described |= items[column].map(_filled)
    return float(described.mean())


def _filled(cell: Any) -> bool:
    """Whether a catalog cell holds something: a non-empty string or list of labels."""
    if isinstance(cell, str):
        return bool(cell)
    return isinstance(cell, list | tuple | np.ndarray) and len(cell) > 0


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
    start_from: dict[str, dict[str, Any]] | None = None,
    fitted_after: Sequence[str] = (),
) -> Selection:
    """Pick the best single model or blend by validation NDCG@10.

    ``fitted_after``: models the caller fits on all data once the selection is made,
    whatever it chooses (e.g. a popularity fallback): once their trials show what a fit
    of each costs, that much of the budget is kept back for them.

    ``start_from``: per candidate, a configuration measured right after its defaults
    (and their other recency choice; :func:`serving_configs` of the serving version),
    so a re-tune weighs what serves now against what it finds.

    First, how each event type's ``value`` counts is chosen by validation
    (:mod:`attune.training.value_modes`); ``Selection.value_modes`` holds the outcome.
    Without a budget, each candidate's defaults are tried, with and without weighting
    recent history more where that costs no refit (fast; what a plain ``attune train``
    does). With a budget, each candidate is tuned with Optuna for an equal share of 70%
    of it (every trial stopped at its candidate's share); the best three whose studies
    ran out of time get a second round, starting next to their best, in the time the
    work after tuning is measured not to need; then blends of the best three are
    searched; a blend is kept only when it beats its leading model by more than the
    validation noise (:data:`MARGIN_SE`), and a non-personalised model (popularity)
    only when it beats the best personalised one by more than that.
    """
    started = time.monotonic()
    tell = progress or (lambda _msg, _frac: None)
    tell("building the validation split", 0.0)
    vset, policy, value_evidence = choose_value_modes(
        frame, policy, seed, items, lambda message: tell(message, 0.0)
    )
    if not vset.keep.any():
        raise NothingToValidateError(
            "nobody in the validation window has anything new to find "
            "(too few events per person to hold some back)"
        )
    search = _Search(vset, started, budget_seconds, tell, start_from)
    names = _candidates(vset, algorithms, items, budget_seconds)
    if not budget_seconds:
        for name in names:
            search.defaults(name)
    else:
        search.tune(names, seed, fitted_after)
    trials, best, best_scores = search.trials, search.best, search.best_scores
    ranked = sorted(best.values(), key=lambda t: t.ndcg, reverse=True)
    if not ranked:
        raise NothingToValidateError("no candidate model could be fitted on the validation split")
    # the winner is refitted on all data (about 1/0.64 of the validation fit's rows):
    # with a budget, prefer the best option whose refit still fits in what is left
    if budget_seconds:
        kept_back = _refit_seconds(best, fitted_after)
        budget_seconds = max(budget_seconds - kept_back, 1e-3)
    pool = dict(best)
    while True:  # the best blend whose refit fits: drop the costliest part until one does
        blend = _search_blend(vset, pool, best_scores, budget_seconds, started, tell, search.used)
        left = None if not budget_seconds else started + budget_seconds - time.monotonic()
        parts = [c["algorithm"] for c in blend[0]["components"]] if blend else []
        if not parts or left is None or _refit_seconds(best, parts) <= left:
            break
        del pool[max(parts, key=lambda p: best[p].seconds)]
    options = [(t.ndcg, t.algorithm, t.params, REFIT_FACTOR * t.seconds) for t in ranked]
    if blend is not None:
        cost = _refit_seconds(best, [c["algorithm"] for c in blend[0]["components"]])
        options.append((blend[1], "blend", blend[0], cost))
    if budget_seconds and left is not None:
        options = _confirmed(vset, best, blend, options, left, tell) or options
        left = started + budget_seconds - time.monotonic()
    options.sort(key=lambda o: o[0], reverse=True)
    affordable = [o for o in options if left is None or o[3] <= left]
    if not affordable:
        # nothing fits what is left: take the best single model (one refit) rather than
        # trade accuracy for seconds
        affordable = [o for o in options if o[1] != "blend"]
    ndcg, algorithm, params, _cost = _personal_first(vset, best_scores, affordable)
    choice = Selection(algorithm, params, ndcg, trials)
    choice.best_per_algorithm = {name: t.ndcg for name, t in best.items()}
    choice.value_modes, choice.value_evidence = dict(policy.value_modes), value_evidence
    tell(f"chose {choice.algorithm}: validation NDCG@10 {choice.validation_ndcg:.4f}", 1.0)
    return choice


class _Search:
    """The trials of one selection run, and the best of each candidate."""

    def __init__(
        self,
        vset: ValidationSet,
        started: float,
        budget_seconds: float | None,
        tell: Progress,
        start_from: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.vset, self.started, self.tell = vset, started, tell
        self.budget_seconds = budget_seconds
        self.trials: list[Trial] = []
        self.best: dict[str, Trial] = {}
        self.best_scores: dict[str, np.ndarray] = {}
        self.measured: dict[str, float] = {}  # (algorithm, params) as JSON → NDCG
        self.repeats = 0  # trials in a row that asked for a configuration measured before
        self.start_from = dict(start_from or {})
        """Per candidate, a configuration queued right after its defaults and their other
        recency choice (what serves)."""
        self.failed_seconds: dict[str, float] = {}
        """Per candidate, the longest a failed trial took (the next may take as long)."""
        self.last_fit: tuple[str, Recommender, float] | None = None
        """The newest fit of a :data:`QUERY_TIME_RECENCY` candidate (its configuration
        without recency, the model, its fit seconds): a next trial that differs from it
        only in recency is scored from it, not refitted."""

    def used(self) -> float:
        if not self.budget_seconds:
            return 0.0
        return min((time.monotonic() - self.started) / self.budget_seconds, 1.0)

    def _record(
        self, name: str, params: dict[str, Any], scores: np.ndarray, seconds: float
    ) -> float:
        value = self.vset.ndcg(scores)
        self.trials.append(Trial(name, params, value, seconds))
        if name not in self.best or value > self.best[name].ndcg:
            self.best[name] = self.trials[-1]
            self.best_scores[name] = scores
        self.tell(f"{name}: NDCG@10 {value:.4f} (best {self.best[name].ndcg:.4f})", self.used())
        return value

    def evaluate(self, name: str, params: dict[str, Any], limit: float | None = None) -> float:
        """Fit and judge one configuration; its fit stops at ``limit`` seconds if it can.

        A configuration measured before (a small space, e.g. popularity's) is not refitted.
        """
        key = json.dumps([name, params], sort_keys=True, default=str)
        if key in self.measured:
            self.repeats += 1
            return self.measured[key]
        self.repeats = 0
        t0 = time.monotonic()
        if name == "sasrec" and limit is not None:
            # the cap is a parameter, so the refit on all data trains about as long
            params = {**params, "max_train_seconds": max(min(limit, SEQUENTIAL_MAX_SECONDS), 1)}
        fit_seconds = 0.0
        try:
            if self.reuses_fit(name, params):
                assert self.last_fit is not None
                _key, model, fit_seconds = self.last_fit
                model = with_recency(model, params.get("recency_half_life_events"))
            else:
                self.last_fit = None  # one fitted model held at a time
                with fit_deadline(limit):
                    model = self.vset.fit(name, params)
                fit_seconds = time.monotonic() - t0
                if name in QUERY_TIME_RECENCY:
                    self.last_fit = (_fit_key(name, params), model, fit_seconds)
                t0 = time.monotonic()
            scores = self.vset.scores_of(model)
        except Exception as exc:  # a bad corner of a search space must not end tuning
            log.warning("candidate %s %s failed: %s", name, params, exc)
            spent = fit_seconds + time.monotonic() - t0
            self.failed_seconds[name] = max(self.failed_seconds.get(name, 0.0), spent)
            return -1.0
        # a fit's cost, even when shared: what its refit on all data will take
        seconds = fit_seconds + time.monotonic() - t0
        self.measured[key] = self._record(name, params, scores, seconds)
        return self.measured[key]

    def reuses_fit(self, name: str, params: dict[str, Any]) -> bool:
        """Whether ``params`` is the newest fit but for recency (scored, not refitted)."""
        return self.last_fit is not None and self.last_fit[0] == _fit_key(name, params)

    def defaults(self, name: str) -> None:
        """The candidate's defaults; where recency costs no refit, also the other choice
        (with or without favouring recent history), kept if validation prefers it."""
        params = dict(DEFAULTS.get(name, {}))
        variants = PLAIN_VARIANTS.get(name, [])
        if name in QUERY_TIME_RECENCY:  # the second is scored from the first's fit
            default = model_class(name).config_class(**params).recency_half_life_events
            params["recency_half_life_events"] = default
            variants = [{"recency_half_life_events": _other_recency_value(default)}]
        if self.evaluate(name, params) >= 0:  # a failed fit is not tried again
            for variant in variants:
                self.evaluate(name, {**params, **variant})
        self.last_fit = None

    def tune(self, names: Sequence[str], seed: int, kept_back: Sequence[str] = ()) -> None:
        """Optuna per candidate, each for its share of 70% of the budget; then, in a
        second round, the time the tail will not need goes to the leaders.

        ``kept_back``: candidates the caller refits on all data whatever is chosen (their
        refits come out of the tail).
        """
        import optuna

        assert self.budget_seconds
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        tuning_end = self.started + 0.7 * self.budget_seconds
        unsettled: dict[str, Any] = {}  # studies that stopped for want of time
        for position, name in enumerate(names):
            expected = _expected_seconds(name, self.trials)
            if self.best and time.monotonic() + expected >= tuning_end:
                log.info("tuning budget spent: %s not tried", name)
                self.tell(f"budget too short for {name}: not tried", self.used())
                continue
            # what is left is shared by the candidates still to come, so time a fast
            # candidate does not need goes to the slower ones
            share = (tuning_end - time.monotonic()) / (len(names) - position)
            deadline = time.monotonic() + max(share, 0.0)
            study = optuna.create_study(
                direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed)
            )
            queued = [_as_trial_params(name)]
            if name in QUERY_TIME_RECENCY:  # the other recency choice costs no refit
                queued.append(_other_recency(queued[0]))
            if name in self.start_from:  # what serves now is measured again, first
                queued.append(_as_trial_params(name, self.start_from[name]))
            queued += [{**_as_trial_params(name), **probe} for probe in PROBES.get(name, [])]
            for params in queued:
                study.enqueue_trial(params, skip_if_exists=True)
            # the queued trials may borrow up to one more share from the candidates to come
            borrowed = deadline + (max(share, 0.0) if len(queued) > 1 else 0.0)
            objective = self._objective(name, deadline, borrowed, len(queued))
            self.repeats = 0
            if self.best or share > 0:
                # no timeout: the objective stops the study before a fit that would overrun
                # the share, and still lets through a trial scored from the last fit
                study.optimize(objective, n_trials=MAX_TRIALS, catch=(Exception,))
            else:  # no time at all: still measure one candidate's defaults
                study.optimize(objective, n_trials=1, catch=(Exception,))
            if not self._settled(study):
                unsettled[name] = study
            self.last_fit = None
        self._second_round(unsettled, tuning_end, kept_back)

    def _objective(
        self, name: str, deadline: float, borrowed: float, queued: int
    ) -> Callable[[Any], float]:
        """Optuna's objective for ``name``: fits until ``deadline`` (the first ``queued``
        trials until ``borrowed``), stopping the study before a fit that would overrun."""
        import optuna

        def objective(trial: Any) -> float:
            if self.repeats >= REPEATS_TO_STOP:
                trial.study.stop()  # the sampler keeps asking for what it has seen
                raise optuna.TrialPruned()
            params = _space(name, trial)
            slowest = max(
                [t.seconds for t in self.trials if t.algorithm == name]
                + [self.failed_seconds.get(name, 0.0)]
            )
            end = borrowed if trial.number < queued else deadline
            refit = not self.reuses_fit(name, params)
            if trial.number > 0 and refit and time.monotonic() + slowest > end:
                trial.study.stop()  # the next fit would overrun this candidate's share
                raise optuna.TrialPruned()
            # a fit that trains in steps stops at the share's end, keeping what it has
            limit = max(end - time.monotonic(), 0.0)
            return self.evaluate(name, params, limit)

        return objective

    def _settled(self, study: Any) -> bool:
        """Whether a study ended of itself (its trials used up, or the sampler repeating
        itself) rather than for want of time."""
        return self.repeats >= REPEATS_TO_STOP or _finished_trials(study) >= MAX_TRIALS

    def _tail_start(self, kept_back: Sequence[str]) -> float:
        """When the work after tuning must start for it to end within the budget, judged
        from what tuning measured, with room to spare (:data:`TAIL_SAFETY`): the blend
        search, the second window, the refit of a blend of the leaders and of
        ``kept_back``. Never later than :data:`SECOND_ROUND_END` of the budget."""
        assert self.budget_seconds
        end = self.started + self.budget_seconds
        top = _leaders(self.best)
        if len(top) < 2:
            return self.started
        refit = _refit_seconds(self.best, [t.algorithm for t in top])
        second_window = sum(SECOND_WINDOW_FACTOR * t.seconds for t in top)
        t0 = time.monotonic()
        pair = [_scorable(self.best_scores[t.algorithm]) for t in top[:2]]
        self.vset.ndcg(_weighted([1.0, 1.0], pair, self.vset.seen))
        blend_search = BLEND_WEIGHTINGS * (time.monotonic() - t0)
        extra = _refit_seconds(self.best, kept_back)
        tail = TAIL_SAFETY * (blend_search + second_window + refit + extra)
        return min(end - tail, self.started + SECOND_ROUND_END * self.budget_seconds)

    def _second_round(
        self, studies: dict[str, Any], tuning_end: float, kept_back: Sequence[str]
    ) -> None:
        """More trials for the best candidates whose studies ran out of time, sharing
        what is left until the tail must start (:meth:`_tail_start`; ``tuning_end`` at
        the earliest)."""
        leaders = [t.algorithm for t in _leaders(self.best) if t.algorithm in studies]
        if not leaders:
            return
        end = max(tuning_end, self._tail_start(kept_back))
        for position, name in enumerate(leaders):
            study = studies[name]
            share = (end - time.monotonic()) / (len(leaders) - position)
            slowest = max(t.seconds for t in self.trials if t.algorithm == name)
            if share <= slowest:
                continue  # not even one more fit in its share
            self.tell(f"second round for {name}", self.used())
            for params in _neighbours(study):
                study.enqueue_trial(params, skip_if_exists=True)
            deadline = time.monotonic() + share
            self.repeats = 0
            study.optimize(
                self._objective(name, deadline, deadline, 0),
                n_trials=MAX_TRIALS - _finished_trials(study),
                catch=(Exception,),
            )
            self.last_fit = None


def _neighbours(study: Any) -> list[dict[str, Any]]:
    """The best trial's parameters with one number moved a step each way (halved and
    doubled on a log scale, a quarter of the range on a linear one): the first trials of
    a second round look around the leader's best rather than start over at random."""
    from optuna.distributions import FloatDistribution, IntDistribution

    best = study.best_trial
    found = []
    for key, value in best.params.items():
        distribution = best.distributions[key]
        if not isinstance(distribution, FloatDistribution | IntDistribution):
            continue
        low, high = distribution.low, distribution.high
        if distribution.log:
            steps = [value / 2, value * 2]
        else:
            steps = [value - (high - low) / 4, value + (high - low) / 4]
        for moved in steps:
            moved = min(max(moved, low), high)
            if isinstance(distribution, IntDistribution):
                moved = round(moved)
            if moved != value:
                found.append({**best.params, key: moved})
    return found


def _finished_trials(study: Any) -> int:
    """Trials of ``study`` that ran (pruned ones asked for a fit that never happened)."""
    from optuna.trial import TrialState

    return sum(t.state != TrialState.PRUNED for t in study.trials)


SECOND_ROUND_END = 0.85
"""The second tuning round ends by this fraction of the budget at the latest."""
TAIL_SAFETY = 1.5
"""The tail's estimate (blend search, second window, refits) is kept this many times over."""
BLEND_GRID = (0.0, 0.25, 0.5, 1.0, 2.0)
"""Weights the blend search tries for the second and third model (the first's is 1)."""
BLEND_WEIGHTINGS = len(BLEND_GRID) ** 2
"""Weightings the blend search scores, at most."""


BLEND_END = 0.9
"""The blend search stops at this fraction of the budget, leaving the rest to the refit
on all data (which gets at least a tenth of the budget): each weighting is scored over
the whole validation matrix, seconds apiece on a large catalog (25 weightings took 53 s
at 91,000 items and ran past a 3-minute budget)."""

CONFIRM_TOP = 3
"""After tuning, the best this many models (and their blend) are judged again on a
second, earlier validation window."""
SECOND_WINDOW_FACTOR = 0.8
"""A second-window fit (on TRAIN' less its own window) costs about this share of the
trial it repeats."""


def _leaders(best: dict[str, Trial]) -> list[Trial]:
    """The :data:`CONFIRM_TOP` best candidates' best trials, best first."""
    return sorted(best.values(), key=lambda t: t.ndcg, reverse=True)[:CONFIRM_TOP]


def _refit_seconds(best: dict[str, Trial], names: Sequence[str]) -> float:
    """What refitting ``names`` on all data should take (:data:`REFIT_FACTOR` × their
    best trials' fits; names without a trial cost nothing)."""
    return sum(REFIT_FACTOR * best[name].seconds for name in names if name in best)


Option = tuple[float, str, dict[str, Any], float]
"""(validation NDCG@10, algorithm, params, refit seconds)."""


def _confirmed(
    vset: ValidationSet,
    best: dict[str, Trial],
    blend: tuple[dict[str, Any], float] | None,
    options: list[Option],
    left: float,
    tell: Progress,
) -> list[Option] | None:
    """The leading options scored by the mean NDCG@10 of two validation windows.

    Tuning picks the best of many trials on one window, which flatters whatever fits
    that window's noise (the winner's curse); a second window (the same rule applied to
    TRAIN', fitted on the rest) keeps only what holds on both. None when there is no
    time for it (the refits cost about 0.8 of the trials' fits, plus the final refit).
    """
    top = _leaders(best)
    if blend is not None:  # its parts may come from further down when the top cost too much
        parts = [best[c["algorithm"]] for c in blend[0]["components"]]
        top += [t for t in parts if t not in top]
    cost = sum(SECOND_WINDOW_FACTOR * t.seconds for t in top) + max(
        o[3] for o in options[: CONFIRM_TOP + 1]
    )
    if len(top) < 2 or cost > left:
        return None
    second = ValidationSet(vset.train, vset.policy, items=vset.items)
    if not second.keep.any():
        return None
    scores: dict[str, np.ndarray] = {}
    for trial in top:
        try:
            scores[trial.algorithm] = second.scores(trial.algorithm, trial.params)
        except Exception as exc:  # one failing refit must not end the selection
            log.warning("confirming %s failed: %s", trial.algorithm, exc)
    again = {name: second.ndcg(value) for name, value in scores.items()}
    if blend is not None and all(c["algorithm"] in scores for c in blend[0]["components"]):
        components = blend[0]["components"]
        matrices = [_scorable(scores[c["algorithm"]]) for c in components]
        weights = [c["weight"] for c in components]
        again["blend"] = second.ndcg(_weighted(weights, matrices, second.seen))
    tell(f"second window: {', '.join(f'{k} {v:.4f}' for k, v in again.items())}", 1.0)
    confirmed = [
        ((ndcg + again[name]) / 2.0, name, params, cost)
        for ndcg, name, params, cost in options
        if name in again
    ]
    return confirmed or None


def serving_configs(algorithm: str, params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Configurations a re-tune starts from, per candidate: the serving model's own, or
    each component's of a serving blend."""
    if algorithm == "blend":
        return {
            c["algorithm"]: c.get("params") or {}
            for c in params.get("components", [])
            if isinstance(c, dict) and "algorithm" in c
        }
    return {algorithm: params}


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


def _fit_key(name: str, params: dict[str, Any]) -> str:
    """A configuration as its fit sees it: recency only weights the query history."""
    fitted = {k: v for k, v in params.items() if k != "recency_half_life_events"}
    return json.dumps([name, fitted], sort_keys=True, default=str)


def _other_recency_value(recency: float | None) -> float | None:
    """The other recency choice: none where there was one, else :data:`PLAIN_RECENCY`."""
    return None if recency else PLAIN_RECENCY


def _other_recency(trial_params: dict[str, Any]) -> dict[str, Any]:
    """The same trial parameters (search-space names) with the other recency choice."""
    other = {k: v for k, v in trial_params.items() if k not in ("use_recency", "recency")}
    recency = _other_recency_value(trial_params.get("recency"))
    other["use_recency"] = recency is not None
    if recency is not None:
        other["recency"] = recency
    return other


def _as_trial_params(name: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The candidate's defaults (or ``params``, a configuration of it) under the
    search-space names used by :func:`_space`, so the first trial of every study
    measures exactly what an untuned run would fit."""
    config = model_class(name).config_class
    fields = (
        {
            key: value
            for key, value in config().model_dump().items()
            if isinstance(value, int | float | str | bool) or key == "recency_half_life_events"
        }
        if name != "blend"
        else {}
    )
    defaults = {**fields, **DEFAULTS.get(name, {})}
    if params is not None:
        scalars = {k: v for k, v in params.items() if isinstance(v, int | float | str | bool)}
        defaults = {**defaults, **scalars}
        if "recency_half_life_events" in params:
            defaults["recency_half_life_events"] = params["recency_half_life_events"]
    params = config.as_trial({k: v for k, v in defaults.items() if k != "recency_half_life_events"})
    if "recency_half_life_events" in defaults:
        recency = defaults["recency_half_life_events"]
        params["use_recency"] = recency is not None
        if recency is not None:
            params["recency"] = recency
    return params


MARGIN_SE = 1.0
"""Where validation cannot tell two options apart, a fixed preference decides: an option
wins against it only by more than this many standard errors of the per-person
difference in validation NDCG@10. Two such preferences: a single model over a blend
(the blend's weights were picked on the same window, so a smaller gain is as likely
that window's noise), and a personalised model over a non-personalised one (see
:func:`_personal_first`). On sparse purchases (~570 validation people with ~4 items
each) the options that led by less scored below the preferred ones on the test set."""
NON_PERSONAL = frozenset({"popularity", "trending"})
"""Candidates that rank alike for everyone, whatever their history."""


def _clearly_better(vset: ValidationSet, scores: np.ndarray, than: np.ndarray) -> bool:
    """Whether ``scores`` beat ``than`` on validation NDCG@10 by more than
    :data:`MARGIN_SE` paired (per-person) standard errors."""
    return clear_gain(vset.user_ndcg(scores) - vset.user_ndcg(than), MARGIN_SE)


def _personal_first(
    vset: ValidationSet, scores: dict[str, np.ndarray], options: Sequence[Option]
) -> Option:
    """The first of ``options`` (best first), unless it ranks alike for everyone and is
    not clearly better (:func:`_clearly_better`) than the best personalised single model
    after it: then that model.

    Validation fits on TRAIN' and scores people from their history before VALID, about
    0.8 of the data and of each history the final model has; what learns from people's
    histories gains from the rest, counts do not. So where validation cannot separate
    them, counts are the worse bet (the peers show it too: on sparse purchases popularity
    validated best of them, and EASE beat it by 40% on the test set).
    """
    lead = options[0]
    if lead[1] not in NON_PERSONAL or lead[1] not in scores:
        return lead
    for option in options[1:]:
        if option[1] in NON_PERSONAL or option[1] not in scores:
            continue
        return lead if _clearly_better(vset, scores[lead[1]], scores[option[1]]) else option
    return lead


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
    matrices = [_scorable(best_scores[t.algorithm]) for t in top]

    def blend_scores(weights: Sequence[float]) -> np.ndarray:
        return _weighted(weights, matrices, vset.seen)

    def blended(weights: Sequence[float]) -> float:
        return vset.ndcg(blend_scores(weights))

    grid = BLEND_GRID
    best_weights, best_value = [1.0] + [0.0] * (len(top) - 1), top[0].ndcg
    candidates = [
        [1.0, a] + ([b] if len(top) > 2 else [])
        for a in grid
        for b in (grid if len(top) > 2 else [0.0])
    ]
    deadline = None if not budget_seconds else started + BLEND_END * budget_seconds
    for weights in candidates:
        if deadline and time.monotonic() > deadline:
            break
        value = blended(weights)
        if value > best_value + 1e-9:
            best_weights, best_value = list(weights), value
    tell(f"blend of {', '.join(t.algorithm for t in top)}: NDCG@10 {best_value:.4f}", used())
    if math.isclose(best_value, top[0].ndcg) or best_value <= top[0].ndcg:
        return None
    alone = [1.0] + [0.0] * (len(top) - 1)
    if not _clearly_better(vset, blend_scores(best_weights), blend_scores(alone)):
        tell(f"blend within noise of {top[0].algorithm} alone: not chosen", used())
        return None
    components = [
        {"algorithm": t.algorithm, "params": t.params, "weight": w}
        for t, w in zip(top, best_weights, strict=True)
        if w > 0
    ]
    return {"components": components}, best_value


def _scorable(scores: np.ndarray) -> np.ndarray:
    """Scores with the cells a model could not score (-inf) counted as 0 in a blend."""
    return np.where(np.isfinite(scores), scores, 0.0)


def _weighted(
    weights: Sequence[float], matrices: Sequence[np.ndarray], seen: np.ndarray
) -> np.ndarray:
    """A blend's scores: the weighted sum of :func:`_scorable` matrices, seen items -inf."""
    total = sum(w * m for w, m in zip(weights, matrices, strict=True))
    return np.where(seen, -np.inf, total)
