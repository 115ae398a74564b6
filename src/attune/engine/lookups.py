"""Per-request work of the decision engine made cheap by remembering or narrowing it.

* :func:`placement_digest`: a placement's digest, computed once per configuration object.
* :func:`empty_history_ranking` and :func:`first_allowed`: a history-free model's (the
  popularity fallback's) best items among any allowed set, from one ranking kept per
  loaded model instead of scoring and partitioning the whole item space per request.
* :func:`ids_digest`: a digest of a set of ids, alike in every process (answer-cache
  keys other processes read).
* :func:`dense_block`: a small dense block of a CSR matrix (the "because you viewed"
  similarities) without scipy's intermediate sparse matrices.

Each gives exactly what the direct computation gives; tests/engine/test_lookups.py
holds them to it.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import scipy.sparse as sp

from attune.engine.model_holder import LoadedModel
from attune.engine.placements import PlacementConfig
from attune.models.base import row_entries

_DIGESTS: dict[int, tuple[PlacementConfig, str]] = {}
_DIGESTS_SIZE = 256


def placement_digest(config: PlacementConfig) -> str:
    """``config.digest()``, remembered per configuration object (placements are read
    once and reused; the digest serialises and hashes the whole configuration)."""
    found = _DIGESTS.get(id(config))
    if found is not None and found[0] is config:
        return found[1]
    digest = config.digest()
    if len(_DIGESTS) >= _DIGESTS_SIZE:
        _DIGESTS.clear()
    _DIGESTS[id(config)] = (config, digest)  # holding the object keeps its id unique
    return digest


def dense_block(matrix: Any, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """``matrix[rows][:, columns]`` as a dense array; ``columns`` must be distinct.

    For a CSR matrix it reads only the wanted rows' stored entries (scipy's fancy
    indexing builds two intermediate sparse matrices, ~100 µs each)."""
    if not isinstance(matrix, sp.csr_matrix | sp.csr_array) or not matrix.has_canonical_format:
        return np.asarray(matrix[rows][:, columns].toarray())
    block = np.zeros((len(rows), len(columns)), dtype=matrix.dtype)
    if not len(rows) or not len(columns):
        return block
    entry, entry_row = row_entries(matrix, rows)
    if not len(entry):
        return block
    order = np.argsort(columns, kind="stable")
    sorted_columns = columns[order]
    at = np.searchsorted(sorted_columns, matrix.indices[entry])
    at = np.minimum(at, len(sorted_columns) - 1)
    hit = sorted_columns[at] == matrix.indices[entry]
    block[entry_row[hit], order[at[hit]]] = matrix.data[entry[hit]]
    return block


def ids_digest(ids: frozenset[str]) -> str:
    """A digest of a set of ids, the same in every process (``hash()`` of a set of
    strings is not: each interpreter salts string hashes)."""
    return hashlib.blake2b("\n".join(sorted(ids)).encode(), digest_size=12).hexdigest()


def tried_items(model: LoadedModel) -> frozenset[str]:
    """Items the version's data holds interactions with: those its popularity fallback
    scores above zero (computed once per loaded model). With a decaying popularity, an
    item whose last interaction has decayed to nothing counts as untried again."""
    found = model.__dict__.get("_tried_items")
    if found is None:
        fallback = model.fallback
        scores = getattr(fallback, "item_scores", None)
        ids = fallback.item_ids
        found = frozenset(ids[np.asarray(scores) > 0].tolist() if scores is not None else ids)
        model.__dict__["_tried_items"] = found
    return found  # type: ignore[no-any-return]


def empty_history_ranking(model: LoadedModel, role: str) -> tuple[np.ndarray, np.ndarray]:
    """One role's whole item space ranked for an empty history (e.g. popularity): (indices,
    scores), best first, finite scores only. Computed once per loaded model: a
    history-free model's list for any candidate set is this ranking, filtered."""
    cache = model.__dict__.setdefault("_empty_history_rankings", {})
    found = cache.get(role)
    if found is None:
        recommender = getattr(model, role)
        query = sp.csr_matrix((1, recommender.n_items), dtype=np.float32)
        index, scores = recommender.recommend(query, recommender.n_items)
        keep = (index[0] >= 0) & np.isfinite(scores[0])
        found = (index[0][keep], scores[0][keep])
        cache[role] = found
    return found  # type: ignore[no-any-return]


def first_allowed(
    ranking: tuple[np.ndarray, np.ndarray], allowed: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` entries of ``ranking`` whose position ``allowed`` (bool over the item
    space) lets through: a history-free model's best ``n`` among the allowed items.

    Reads the ranking in growing chunks, so the usual case (few items refused) touches
    only its head."""
    index, scores = ranking
    found_index: list[np.ndarray] = []
    found_scores: list[np.ndarray] = []
    need, start, chunk = n, 0, max(2 * n, 64)
    while need > 0 and start < len(index):
        part = index[start : start + chunk]
        keep = allowed[part]
        found_index.append(part[keep][:need])
        found_scores.append(scores[start : start + chunk][keep][:need])
        need -= len(found_index[-1])
        start += chunk
        chunk *= 4
    if not found_index:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    return np.concatenate(found_index), np.concatenate(found_scores)
