"""Item-based k-nearest neighbours (cosine similarity with shrinkage).

Fit keeps, for every item, its ``neighbors`` most similar items. A user's scores are
the similarity-weighted sum over the items in their history, so recommendations follow
what the person did seconds ago without retraining.
"""

from __future__ import annotations

from typing import Any, Literal, Self

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from attune.features.interactions import InteractionDataset
from attune.models.base import (
    ModelConfig,
    Recommender,
    row_entries,
    sparse_from_arrays,
    sparse_to_arrays,
    top_n,
)
from attune.models.forgetting import ErasedPerson, drop_row, find_row

BLOCK_CELLS = 32_000_000  # dense similarity cells computed at once (~128 MB of float32)
SPARSE_SHARE = 0.05
"""Below this share of nonzero co-occurrences in a block, neighbours are picked from the
sparse products (their sort costs ~20× a dense cell's work per entry)."""

Entries = tuple[np.ndarray, np.ndarray, np.ndarray]
"""(row, column, value) arrays of sparse matrix entries."""


class ItemKNNConfig(ModelConfig):
    neighbors: int = Field(default=100, ge=1, le=2_000, description="Neighbours kept per item.")
    shrinkage: float = Field(
        default=10.0, ge=0, description="Added to the cosine denominator; damps rare pairs."
    )
    weighting: Literal["none", "binary", "log", "bm25"] = Field(
        default="none", description="How interaction weights enter the item vectors."
    )
    bm25_k1: float = Field(default=1.2, gt=0)
    bm25_b: float = Field(default=0.75, ge=0, le=1)
    keep_interactions: bool = Field(
        default=True,
        description="Keep the weighted training matrix (8 bytes per user-item pair, no user "
        "ids) so an erased person is forgotten exactly at once; False saves the memory "
        "and erasure waits for a refit. Ignored with bm25, which no erasure leaves intact.",
    )

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        return {
            "neighbors": trial.suggest_int("neighbors", 10, 1_000, log=True),
            "shrinkage": trial.suggest_float("shrinkage", 0.0, 100.0),
            "weighting": trial.suggest_categorical("weighting", ["none", "log", "bm25"]),
        }


class ItemKNNRecommender(Recommender):
    """See the module docstring. State: a sparse items × items similarity matrix and, to
    forget a person exactly, the weighted training users × items matrix (no user ids)."""

    name = "item_knn"
    config_class = ItemKNNConfig
    config: ItemKNNConfig

    def __init__(self, config: ItemKNNConfig | dict | None = None) -> None:
        super().__init__(config)
        self.similarity = sp.csr_matrix((0, 0), dtype=np.float32)
        self.interactions: sp.csr_matrix | None = None

    def fit(self, dataset: InteractionDataset) -> Self:
        vectors = self._weighted(dataset.matrix).T.tocsr().astype(np.float32)  # items × users
        users_by_items = vectors.T.tocsr()
        norms = _row_norms(vectors)
        self.item_ids = dataset.item_ids
        entries = [
            self._block_neighbours(vectors, users_by_items, norms, part)
            for part in self._blocks(np.arange(self.n_items))
        ]
        self.similarity = _matrix(entries, self.n_items)
        forgettable = self.config.keep_interactions and self.config.weighting != "bm25"
        users_by_items.sort_indices()  # find_row compares index arrays
        self.interactions = users_by_items if forgettable else None
        return self

    def _block_neighbours(
        self,
        vectors: sp.csr_matrix,
        users_by_items: sp.csr_matrix,
        norms: np.ndarray,
        items: np.ndarray,
    ) -> Entries:
        """The top neighbours of ``items``: from dense similarity rows where the items
        share people with much of the catalog, else from the sparse co-occurrences alone
        (a large, sparse catalog: dense rows would cost n_items² whatever the data).
        Both give the same entries."""
        dots = vectors[items] @ users_by_items
        if dots.nnz > SPARSE_SHARE * len(items) * self.n_items:
            return self._neighbours(items, self._dense_similarities(dots, norms, items))
        return self._sparse_neighbours(dots.tocoo(), norms, items)

    def _sparse_neighbours(
        self, dots: sp.coo_matrix, norms: np.ndarray, items: np.ndarray
    ) -> Entries:
        """:meth:`_neighbours` from the nonzero dot products only: the same similarities
        (cosine with shrinkage, positive, not to itself), the best ``neighbors`` per item,
        equal similarities by item index."""
        k = min(self.config.neighbors, max(self.n_items - 1, 0))
        if k == 0:
            return _entries()
        rows, columns = dots.row.astype(np.int64), dots.col.astype(np.int64)
        denominator = norms[items[rows]] * norms[columns] + self.config.shrinkage
        with np.errstate(divide="ignore", invalid="ignore"):
            sims = np.where(denominator > 0, dots.data / denominator, 0.0).astype(np.float32)
        keep = (sims > 0) & (items[rows] != columns)
        rows, columns, sims = rows[keep], columns[keep], sims[keep]
        order = np.lexsort((columns, -sims, rows))
        rows, columns, sims = rows[order], columns[order], sims[order]
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        rank = np.arange(len(rows)) - np.repeat(starts, np.diff(np.r_[starts, len(rows)]))
        best = rank < k
        return items[rows[best]], columns[best], sims[best].astype(np.float64)

    def _dense_similarities(
        self, dots: sp.csr_matrix, norms: np.ndarray, items: np.ndarray
    ) -> np.ndarray:
        """Dense (len(items), n_items) float32 similarities from the items' dot products
        with every item (zero to themselves)."""
        denominator = norms[items, None] * norms[None, :] + self.config.shrinkage
        with np.errstate(divide="ignore", invalid="ignore"):
            sims = np.where(denominator > 0, dots.toarray() / denominator, 0.0).astype(np.float32)
        sims[np.arange(len(items)), items] = 0.0
        return sims

    def _blocks(self, items: np.ndarray) -> list[np.ndarray]:
        """``items`` in chunks whose dense similarity rows fit in BLOCK_CELLS."""
        block = max(1, BLOCK_CELLS // max(self.n_items, 1))
        return [items[start : start + block] for start in range(0, len(items), block)]

    def _neighbours(self, part: np.ndarray, sims: np.ndarray) -> Entries:
        """(item, neighbour, similarity) entries of the top neighbours of the items ``part``,
        from their dense similarity rows ``sims``."""
        k = min(self.config.neighbors, max(self.n_items - 1, 0))
        if k == 0:
            return _entries()
        best, best_scores = top_n(np.where(sims > 0, sims, -np.inf), k)
        keep = best >= 0
        return (
            np.broadcast_to(part[:, None], best.shape)[keep],
            best[keep],
            best_scores[keep].astype(np.float64),
        )

    def holds(self, person: ErasedPerson) -> bool | None:
        if person.empty or self.interactions is None:
            return None
        return find_row(self.interactions, self._weighted(person.row)) is not None

    def forget(self, person: ErasedPerson) -> bool:
        """Drop the person's training row and recompute the similarities it fed (exact).

        The rows of the items they touched are recomputed in full, O(touched × nnz).
        Other items' similarities to the touched ones change too; they are read off the
        recomputed rows (similarity is symmetric) and merged into their kept lists (see
        :func:`_patch_neighbours`). Needs the kept training matrix; with bm25 weighting
        (which depends on every person) it returns False.
        """
        if person.empty:
            return True
        if self.interactions is None:
            return False
        row = self._weighted(person.row)
        found = find_row(self.interactions, row)
        if found is None:
            return False
        users_by_items = drop_row(self.interactions, found)
        vectors = users_by_items.T.tocsr()
        norms = _row_norms(vectors)
        touched = np.asarray(row.indices, dtype=np.int64)
        k = min(self.config.neighbors, max(self.n_items - 1, 0))
        floor = _list_floor(self.similarity, k)
        fresh, mirrored = [], []
        for part in self._blocks(touched):
            sims = self._dense_similarities(vectors[part] @ users_by_items, norms, part)
            fresh.append(self._neighbours(part, sims))
            sims[:, touched] = 0.0  # only what untouched items see of the touched ones
            # below an item's weakest kept neighbour a similarity cannot enter its list
            rows, cols = np.nonzero((sims > 0) & (sims >= floor[None, :]))
            mirrored.append((cols.astype(np.int64), part[rows], sims[rows, cols].astype(float)))
        patched = _patch_neighbours(self.similarity, touched, _join(mirrored), k)
        self.similarity = _matrix([*fresh, patched], self.n_items)
        self.interactions = users_by_items
        return True

    def _weighted(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        matrix = matrix.copy().astype(np.float32)
        if self.config.weighting == "binary":
            matrix.data[:] = 1.0
        elif self.config.weighting == "log":
            matrix.data = np.log1p(matrix.data)
        elif self.config.weighting == "bm25":
            matrix = bm25_weight(matrix, self.config.bm25_k1, self.config.bm25_b)
        return matrix

    def score(self, history: sp.csr_matrix, user_index: np.ndarray) -> np.ndarray:
        return np.asarray(self.sparse_scores(history, user_index).todense())

    def sparse_scores(self, history: sp.csr_matrix, user_index: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix(history.astype(np.float32) @ self.similarity)

    def row_scores(
        self, items: np.ndarray, weights: np.ndarray, user_index: int
    ) -> tuple[np.ndarray, np.ndarray]:
        entry, owner = row_entries(self.similarity, items)
        if not len(entry):
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        parts = self.similarity.data[entry] * weights.astype(np.float32)[owner]
        found, slot = np.unique(self.similarity.indices[entry], return_inverse=True)
        return found, np.bincount(slot, weights=parts).astype(np.float32)

    def similar_items(self, item_index: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        rows = self.similarity[item_index].toarray()
        rows[rows <= 0] = -np.inf
        return top_n(rows, n)

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = sparse_to_arrays(self.similarity)
        if self.interactions is not None:
            kept = sparse_to_arrays(self.interactions)
            arrays.update({f"interactions_{k}": v for k, v in kept.items()})
        return arrays

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.similarity = sparse_from_arrays(arrays)
        prefix = "interactions_"
        kept = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
        self.interactions = sparse_from_arrays(kept) if kept else None


def _row_norms(vectors: sp.csr_matrix) -> np.ndarray:
    return np.sqrt(np.asarray(vectors.multiply(vectors).sum(axis=1)).ravel())


def _entries() -> Entries:
    return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)


def _join(parts: list[Entries]) -> Entries:
    if not parts:
        return _entries()
    rows, cols, vals = zip(*parts, strict=True)
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)


def _matrix(parts: list[Entries], n_items: int) -> sp.csr_matrix:
    rows, cols, vals = _join(parts)
    return sp.csr_matrix((vals, (rows, cols)), shape=(n_items, n_items), dtype=np.float32)


def _list_floor(similarity: sp.csr_matrix, k: int) -> np.ndarray:
    """(n_items,) each item's weakest kept similarity if its list is full, else 0."""
    sizes = np.diff(similarity.indptr)
    floor = np.zeros(similarity.shape[0])
    listed = np.flatnonzero(sizes > 0)  # reduceat runs from one start to the next
    if len(listed):
        weakest = np.minimum.reduceat(similarity.data, similarity.indptr[listed])
        full = sizes[listed] >= k
        floor[listed[full]] = weakest[full]
    return floor


def _patch_neighbours(
    similarity: sp.csr_matrix, touched: np.ndarray, mirrored: Entries, k: int
) -> Entries:
    """The neighbour lists of untouched items after the touched items' vectors changed.

    Dropping a person only shortens the vectors of the items they touched. So an
    untouched item's similarity to another untouched item is unchanged, and to a
    touched item it can only grow (same dot product, smaller norm): every entry its old
    list left out still ranks below the old list's entries. Its new list is therefore
    the top ``k`` of its old untouched entries and its new similarities to the touched
    items (``mirrored``), the same as a refit's.

    Args:
        similarity: the old (n_items, n_items) neighbour lists.
        touched: items whose vectors changed (their own lists are recomputed elsewhere).
        mirrored: (untouched item, touched item, new similarity) entries: at least every
            one that is in the item's old list or may enter it.
        k: neighbours per list.

    Returns:
        the entries of every untouched item's new list.
    """
    n_items = similarity.shape[0]
    old = similarity.tocoo()
    old_rows, old_cols = old.row.astype(np.int64), old.col.astype(np.int64)
    old_vals = old.data.astype(np.float64)
    is_touched = np.zeros(n_items, dtype=bool)
    is_touched[touched] = True
    affected = np.zeros(n_items, dtype=bool)
    affected[old_rows[is_touched[old_cols]]] = True
    affected[mirrored[0]] = True
    affected &= ~is_touched
    keep = ~is_touched[old_rows] & ~affected[old_rows]
    unchanged = (old_rows[keep], old_cols[keep], old_vals[keep])
    reused = affected[old_rows] & ~is_touched[old_cols]
    rows, cols, vals = _ranked(
        np.concatenate([old_rows[reused], mirrored[0]]),
        np.concatenate([old_cols[reused], mirrored[1]]),
        np.concatenate([old_vals[reused], mirrored[2]]),
    )
    top = np.arange(len(rows)) - np.searchsorted(rows, rows, side="left") < k
    return _join([unchanged, (rows[top], cols[top], vals[top])])


def _ranked(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray) -> Entries:
    """Entries sorted by row, then by value descending, then by column (top_n's order)."""
    order = np.lexsort((cols, -vals, rows))
    return rows[order], cols[order], vals[order]


def bm25_weight(matrix: sp.csr_matrix, k1: float, b: float) -> sp.csr_matrix:
    """Okapi BM25 weighting of a users × items matrix (users as documents)."""
    coo = matrix.tocoo()
    n_users = matrix.shape[0]
    # the "+1" form of BM25's idf never goes negative, even for an item everyone had
    df = np.bincount(coo.col, minlength=matrix.shape[1])
    idf = np.log1p((n_users - df + 0.5) / (df + 0.5))
    lengths = np.asarray(matrix.sum(axis=1)).ravel()
    ratio = lengths / max(lengths.mean(), 1e-9)
    length_norm = (1.0 - b) + b * ratio
    data = coo.data * (k1 + 1.0) / (k1 * length_norm[coo.row] + coo.data) * idf[coo.col]
    return sp.csr_matrix((data.astype(np.float32), (coo.row, coo.col)), shape=matrix.shape)
