"""Hybrid matrix factorisation over item features (Kula's LightFM model, 2015), in numpy.

An item's vector is the weighted sum of the embeddings of its features: its own id and
its catalog labels (categories and tags, ``cat:``/``tag:`` as in
:mod:`attune.models.content`), each item's weights summing to 1. A person's vector is
learnt per person. Training is BPR (a positive against a sampled item the person does not
have), with Adagrad step sizes per embedding row, as LightFM trains; the steps are
written out in numpy and scipy (no deep-learning framework: the core install has it).

What sets it apart from BPR on ids alone (:class:`~attune.models.implicit_mf.BPRRecommender`):

* **Items nobody has touched are placed by their labels.** A new item in a known
  category scores like that category's items for each person, before its first event.
* **Labels share what is learnt.** Sparse items borrow strength from their categories.
* **Negatives are drawn as LightFM draws them:** from the training events (so in
  proportion to popularity), redrawn while they fall on the person's own items; popular
  items are pushed down more often, and a never-seen item is never a negative, so its
  place comes from its labels alone.

On MovieLens-100K with every timestamp equal (each person's held-out rows then fall on
the items with the highest ids, 42% of them on items nobody has in training), with its
defaults through ``attune train --algorithm feature_mf`` and ``batch-recommend``:
NDCG@10 0.040 on test, against 0.037 for the best tuned peer (LightFM, without
features) and 0.032 for a tuned implicit BPR (BENCHMARKS.md, robustness). On ML-100K
split by time it scores 0.158 (its quality floor in the tests is 0.14).

Fitting honours a tuning deadline (the epochs done so far are kept). The item vectors
are kept as one dense (items × factors) matrix with a bias column, and every user vector
ends in a constant 1, as implicit's BPR keeps them, so people are placed from their live
history as ``bpr`` places them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Self

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from attune.errors import ValidationError
from attune.features.interactions import InteractionDataset
from attune.models.base import ModelConfig
from attune.models.content import catalog_column, label_tokens
from attune.models.deadline import capped
from attune.models.implicit_mf import BPRRecommender, _people_per_item

if TYPE_CHECKING:
    import optuna

NEGATIVE_REDRAWS = 5
"""Times a negative that falls on the person's own items is drawn again (LightFM keeps
drawing; after this many the last draw stands, as rare as it is harmless)."""


class FeatureMFConfig(ModelConfig):
    factors: int = Field(default=128, ge=1, le=1_024, description="Latent dimensions.")
    learning_rate: float = Field(
        default=0.1,
        gt=0,
        le=1.0,
        description="Adagrad step size (LightFM's default is 0.05 for one event per step).",
    )
    epochs: int = Field(
        default=15,
        ge=1,
        le=1_000,
        description="Passes over the events (15 validated above 30 and 10 on MovieLens-100K).",
    )
    label_weight: float = Field(
        default=1.0,
        ge=0,
        le=10,
        description="Weight of each catalog label against the item's own id (1) before an "
        "item's weights are scaled to sum to 1; 0 ignores the catalog (plain BPR).",
    )
    regularization: float = Field(
        default=1e-6,
        ge=0,
        le=1.0,
        description="L2 penalty on the embeddings a step touches (LightFM's item_alpha); the "
        "default, as good as none, is the low end of the tuned (log-scale) range.",
    )
    batch_size: int = Field(
        default=1_024,
        ge=1,
        le=65_536,
        description="Positive events per Adagrad step: larger steps train faster per event "
        "(on MovieLens-100K, 1,024 at a step size of 0.1 validated as 256 at 0.05 in half "
        "the time).",
    )
    max_train_seconds: float = Field(
        default=300.0, gt=0, description="Stop training after this many seconds."
    )
    random_state: int = Field(default=42, ge=0, description="Seed of embeddings and sampling.")
    fold_in: Literal["mean", "mapped"] = Field(
        default="mapped",
        description="How a person is placed from their history, as for ``bpr``: 'mean' of "
        "their items' vectors, or that mean 'mapped' to where training put people with "
        "such a mean. Chosen by validation when tuning.",
    )

    @classmethod
    def search_space(cls, trial: optuna.Trial) -> dict[str, Any]:
        """Hyper-parameters for one Optuna trial, as a dict this config accepts."""
        return {
            "factors": trial.suggest_int("factors", 32, 256, log=True),
            "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
            "epochs": trial.suggest_int("epochs", 5, 40, log=True),
            "label_weight": trial.suggest_float("label_weight", 0.0, 2.0),
            "regularization": trial.suggest_float("regularization", 1e-6, 1e-2, log=True),
            "fold_in": trial.suggest_categorical("fold_in", ["mean", "mapped"]),
        }


class FeatureMFRecommender(BPRRecommender):
    """See the module docstring. State: user and item factors (a bias column in each)
    and the fold-in map, laid out as :class:`~attune.models.implicit_mf.BPRRecommender`
    keeps them, whose fold-in (people are scored from their live history) and erasure
    (an item nobody has any more sinks below every other until the refit) it shares.
    """

    name = "feature_mf"
    config_class = FeatureMFConfig
    config: FeatureMFConfig

    def __init__(self, config: FeatureMFConfig | dict[str, Any] | None = None) -> None:
        super().__init__(config)
        self.epochs_run = 0

    def fit(self, dataset: InteractionDataset) -> Self:
        matrix = sp.csr_matrix(dataset.matrix, dtype=np.float32)
        if matrix.nnz == 0:
            raise ValidationError("cannot fit feature_mf on a dataset without interactions")
        matrix.data[:] = 1.0
        features = item_feature_matrix(dataset.item_features, dataset.n_items, self.config)
        rng = np.random.default_rng(self.config.random_state)
        users, items = (a.astype(np.int64) for a in matrix.nonzero())
        net = _Net(matrix.shape[0], features, self.config, rng)
        owned = _owned_keys(users, items, matrix.shape[1])
        limit = capped(self.config.max_train_seconds)
        started = time.perf_counter()
        self.epochs_run = 0
        while self.epochs_run < self.config.epochs:
            if not self._epoch(net, users, items, owned, rng, started, limit):
                break
            self.epochs_run += 1
        user_factors, item_factors = net.factors()
        self.item_ids = dataset.item_ids
        self._set_state(dataset.user_ids, user_factors, item_factors)
        self.item_user_counts = _people_per_item(matrix)
        self.fold_map = self._fitted_fold_map(matrix)
        return self

    def _epoch(
        self,
        net: _Net,
        users: np.ndarray,
        items: np.ndarray,
        owned: np.ndarray,
        rng: np.random.Generator,
        started: float,
        limit: float,
    ) -> bool:
        """One pass over the events in random order; False when time ran out in it."""
        order = rng.permutation(len(users))
        for start in range(0, len(order), self.config.batch_size):
            if time.perf_counter() - started > limit:
                return False
            batch = order[start : start + self.config.batch_size]
            who, positive = users[batch], items[batch]
            net.step(who, positive, _negatives(who, items, owned, net.n_items, rng))
        return True


@dataclass
class _Gradients:
    """A step's gradients: per touched person row and per touched feature row."""

    people: np.ndarray
    person: np.ndarray
    features: np.ndarray
    vector: np.ndarray
    bias: np.ndarray


class _Net:
    """Embedding tables (people; item features), their LightFM-style item sums, and the
    BPR step with Adagrad, written out: a step touches a few thousand rows, so its
    gradients are gathered per touched row (a sparse product) rather than through a
    framework's autograd and sparse-tensor machinery (about four times the time per event)."""

    EPSILON = 1e-10

    def __init__(
        self,
        n_users: int,
        features: sp.csr_matrix,
        config: FeatureMFConfig,
        rng: np.random.Generator,
    ) -> None:
        self.features = features
        self.n_items, n_features = features.shape
        self.learning_rate, self.regularization = config.learning_rate, config.regularization
        # each item's features as one padded row (weight 0 past its own)
        lengths = np.diff(features.indptr)
        row = np.repeat(np.arange(self.n_items), lengths)
        slot = np.arange(features.nnz) - features.indptr[row]
        self.index = np.zeros((self.n_items, max(int(lengths.max()), 1)), dtype=np.int64)
        self.weight = np.zeros(self.index.shape, dtype=np.float32)
        self.index[row, slot], self.weight[row, slot] = features.indices, features.data
        scale = 0.5 / config.factors  # LightFM's initial range
        k = config.factors
        self.users = rng.uniform(-scale, scale, (n_users, k)).astype(np.float32)
        self.vectors = rng.uniform(-scale, scale, (n_features, k)).astype(np.float32)
        self.biases = np.zeros(n_features, dtype=np.float32)
        # Adagrad's running sums of squared gradients, per parameter
        self.user_sums = np.zeros_like(self.users)
        self.vector_sums = np.zeros_like(self.vectors)
        self.bias_sums = np.zeros_like(self.biases)

    def items(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(vectors, biases) of ``items``: their features' embeddings, weighted and summed."""
        index, weight = self.index[items], self.weight[items]
        vectors = np.einsum("il,ilk->ik", weight, self.vectors[index])
        return vectors, (weight * self.biases[index]).sum(axis=1)

    def step(self, who: np.ndarray, positive: np.ndarray, negative: np.ndarray) -> None:
        """One Adagrad step on :meth:`loss` of the rows."""
        found = self.gradients(who, positive, negative)
        self._adagrad(self.users, self.user_sums, found.people, found.person)
        self._adagrad(self.vectors, self.vector_sums, found.features, found.vector)
        self._adagrad(self.biases, self.bias_sums, found.features, found.bias)

    def loss(self, who: np.ndarray, positive: np.ndarray, negative: np.ndarray) -> float:
        """The summed BPR loss −log σ(score(pos) − score(neg)) of the rows, plus the L2
        penalty on the person and item vectors each row uses."""
        person = self.users[who]
        positive_vectors, positive_biases = self.items(positive)
        negative_vectors, negative_biases = self.items(negative)
        margin = (person * (positive_vectors - negative_vectors)).sum(axis=1)
        margin += positive_biases - negative_biases
        penalty = sum((v * v).sum() for v in (person, positive_vectors, negative_vectors))
        return float(np.logaddexp(0.0, -margin).sum() + self.regularization * penalty)

    def gradients(self, who: np.ndarray, positive: np.ndarray, negative: np.ndarray) -> _Gradients:
        """:meth:`loss`'s gradients, summed per touched person and feature row."""
        rows = len(who)
        person = self.users[who]
        occurrences = np.concatenate([positive, negative])
        distinct, where = np.unique(occurrences, return_inverse=True)
        vectors, biases = self.items(distinct)
        item_vectors, item_biases = vectors[where], biases[where]
        difference = item_vectors[:rows] - item_vectors[rows:]
        margin = (person * difference).sum(axis=1) + item_biases[:rows] - item_biases[rows:]
        pull = 1.0 / (1.0 + np.exp(np.clip(margin, -30.0, 30.0)))  # σ(−margin)
        # d loss / d score of each occurrence: −σ(−margin) for the positive, + for the negative
        slope = np.concatenate([-pull, pull]).astype(person.dtype)
        person_gradient = -pull[:, None] * difference
        occurrence_gradient = slope[:, None] * np.concatenate([person, person])
        if self.regularization:
            person_gradient += 2.0 * self.regularization * person
            occurrence_gradient += 2.0 * self.regularization * item_vectors
        # each occurrence reaches its item's features in proportion to their weights
        index, weight = self.index[occurrences], self.weight[occurrences]
        used = weight > 0
        features, feature_of = np.unique(index[used], return_inverse=True)
        spread = sp.csr_matrix(
            (weight[used], (feature_of, np.nonzero(used)[0])),
            shape=(len(features), len(occurrences)),
        )
        people, person_of = np.unique(who, return_inverse=True)
        gather = sp.csr_matrix(
            (np.ones(rows, dtype=person.dtype), (person_of, np.arange(rows))),
            shape=(len(people), rows),
        )
        return _Gradients(
            people=people,
            person=np.asarray(gather @ person_gradient),
            features=features,
            vector=np.asarray(spread @ occurrence_gradient),
            bias=np.asarray(spread @ slope).ravel(),
        )

    def _adagrad(
        self, table: np.ndarray, sums: np.ndarray, rows: np.ndarray, gradient: np.ndarray
    ) -> None:
        gradient = gradient.astype(table.dtype, copy=False)
        total = sums[rows] + gradient * gradient
        sums[rows] = total
        table[rows] -= self.learning_rate * gradient / (np.sqrt(total) + self.EPSILON)

    def factors(self) -> tuple[np.ndarray, np.ndarray]:
        """(users × (k+1), items × (k+1)) float32: a constant 1 / the bias in the last column."""
        # one sparse product over the catalog: the padded gather of :meth:`items` would hold
        # items × longest label list × factors at once
        vectors, biases = self.features @ self.vectors, self.features @ self.biases
        items = np.hstack([vectors, biases[:, None]]).astype(np.float32)
        ones = np.ones((len(self.users), 1), dtype=np.float32)
        return np.hstack([self.users, ones]), items


def item_feature_matrix(catalog: Any, n_items: int, config: FeatureMFConfig) -> sp.csr_matrix:
    """(n_items, n_items + n_labels) float32 CSR: each item's id (weight 1) and its
    category and tag labels (``label_weight`` each), every row scaled to sum to 1."""
    rows, cols, data = list(range(n_items)), list(range(n_items)), [1.0] * n_items
    if catalog is not None and len(catalog) and config.label_weight > 0:
        if len(catalog) != n_items:
            raise ValueError(f"{len(catalog)} catalog rows for {n_items} items")
        vocabulary: dict[str, int] = {}
        labelled = zip(
            catalog_column(catalog, "categories"), catalog_column(catalog, "tags"), strict=True
        )
        for item, (categories, tags) in enumerate(labelled):
            # first-seen order (a set's order changes with each process's string hashing)
            found = [*label_tokens("cat", categories), *label_tokens("tag", tags)]
            for label in dict.fromkeys(found):
                rows.append(item)
                cols.append(n_items + vocabulary.setdefault(label, len(vocabulary)))
                data.append(config.label_weight)
        width = n_items + len(vocabulary)
    else:
        width = n_items
    matrix = sp.csr_matrix((data, (rows, cols)), shape=(n_items, width), dtype=np.float32)
    totals = np.asarray(matrix.sum(axis=1)).ravel()
    return sp.csr_matrix(sp.diags((1.0 / totals).astype(np.float32)) @ matrix)


def _owned_keys(users: np.ndarray, items: np.ndarray, n_items: int) -> np.ndarray:
    """Sorted ``user × n_items + item`` of every training pair (for negative checks)."""
    return np.unique(users * n_items + items)


def _negatives(
    users: np.ndarray,
    items: np.ndarray,
    owned: np.ndarray,
    n_items: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """One negative per row: an item of a random training event (so drawn in proportion
    to popularity), drawn again while it is one of the person's own."""
    negative = items[rng.integers(0, len(items), len(users))]
    for _ in range(NEGATIVE_REDRAWS):
        keys = users * n_items + negative
        found = np.searchsorted(owned, keys)
        mine = owned[np.minimum(found, len(owned) - 1)] == keys
        if not mine.any():
            break
        negative[mine] = items[rng.integers(0, len(items), int(mine.sum()))]
    return negative
