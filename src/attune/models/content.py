"""Content-based recommendations: TF-IDF over each item's catalog metadata.

Every item becomes an L2-normalised sparse vector built from its title, text,
categories and tags (``dataset.item_features``). A person's profile is their weighted
history times those vectors, and an item's score is the cosine between the profile and
the item. Scoring needs nothing but the item matrix, so items nobody has touched yet
are recommended as soon as the catalog describes them (cold start), and a person's
latest events count at once.

Vocabularies: title and text share one word vocabulary (a word in one item's title
matches the same word in another item's text); categories and tags share a second one
of whole labels, prefixed ``cat:`` and ``tag:`` so that the category "Drama" and the
tag "drama" stay apart and never mix with words. Each field is L2-normalised on its
own and multiplied by its weight before the fields are summed, so a weight is that
field's share of the item's direction whatever its length.

Optionally (``embedding_weight`` > 0, with the ``embeddings`` extra) each item also
gets a dense sentence embedding of the same text (:mod:`attune.features.text_embeddings`,
a model shipped inside its PyPI package, nothing downloaded), appended to its vector
with that weight: items whose words differ but whose meaning is near then score
together. The appended block is kept dense, beside the sparse one, and the two are
normalised together, so a vector is still one unit direction.

The fitted vocabularies are kept (and saved), so an entry added to the catalog after
training is placed in the same space (:meth:`ContentRecommender.describe`): a new
product's page can show its look-alikes before anyone has had it and before the next
training brings it into the item space.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from attune.errors import NotSupportedError
from attune.features.interactions import InteractionDataset
from attune.features.text_embeddings import (
    DIMENSIONS,
    embed_texts,
    embeddings_available,
    warm,
)
from attune.lru import Lru
from attune.models.base import (
    ModelConfig,
    Recommender,
    sparse_from_arrays,
    sparse_to_arrays,
    top_n,
)
from attune.models.forgetting import ErasedPerson

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.feature_extraction.text import TfidfVectorizer

BLOCK_CELLS = 16_000_000  # (query × item) score cells computed at once (~200 MB sparse)
CATALOG_FIELDS = ("title", "text", "categories", "tags")
BLOCKS = ("words", "labels")
"""The vocabularies, in column order: title and text words, category and tag labels."""
DESCRIBED_MEMO = 256
STACKED_MEMO = 64


class ContentConfig(ModelConfig):
    title_weight: float = Field(
        default=1.0, ge=0, le=10, description="Weight of the title's words in an item vector."
    )
    text_weight: float = Field(
        default=0.5,
        ge=0,
        le=10,
        description="Weight of the free-text description's words in an item vector.",
    )
    category_weight: float = Field(
        default=1.0, ge=0, le=10, description="Weight of the item's categories (whole labels)."
    )
    tag_weight: float = Field(
        default=1.0, ge=0, le=10, description="Weight of the item's tags (whole labels)."
    )
    ngram_max: int = Field(
        default=1,
        ge=1,
        le=2,
        description="Longest word n-gram taken from title and text: 1 words, 2 adds bigrams.",
    )
    min_df: int = Field(
        default=1,
        ge=1,
        description="Drop words and labels found in fewer than this many items.",
    )
    max_features: int | None = Field(
        default=50_000,
        ge=1,
        description="Keep only this many most frequent words and n-grams (labels are never "
        "capped); None keeps them all.",
    )
    embedding_weight: float = Field(
        default=0.0,
        ge=0,
        le=10,
        description="Weight of a sentence embedding of the item's title, categories, tags "
        "and text (a model inside the wordllama package: pip install 'attune[embeddings]'); "
        "0 leaves it out.",
    )

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        space = {
            "title_weight": trial.suggest_float("title_weight", 0.0, 2.0),
            "text_weight": trial.suggest_float("text_weight", 0.0, 2.0),
            "category_weight": trial.suggest_float("category_weight", 0.0, 2.0),
            "tag_weight": trial.suggest_float("tag_weight", 0.0, 2.0),
            "ngram_max": trial.suggest_int("ngram_max", 1, 2),
            "min_df": trial.suggest_int("min_df", 1, 5),
        }
        if embeddings_available():  # searched only where the extra is installed
            space["embedding_weight"] = trial.suggest_float("embedding_weight", 0.0, 2.0)
        return space


class ContentRecommender(Recommender):
    """See the module docstring. State: the sparse items × features matrix ``item_vectors``
    and, with embeddings, the dense items × dimensions ``item_embeddings`` (else it has
    no columns); row k of the two together is item k's unit (or zero) vector.

    Without a catalog (``dataset.item_features`` is None) or when no item has any text,
    title, category or tag, fit still succeeds: every item vector is zero and every
    score is 0, which leaves the ranking to whatever blends or falls back on this model.
    Items missing from the catalog likewise get zero vectors and score 0.
    """

    name = "content"
    config_class = ContentConfig
    config: ContentConfig

    def __init__(self, config: ContentConfig | dict | None = None) -> None:
        super().__init__(config)
        # the fitted vocabularies ("words", "labels"), to place entries added later, and
        # the last answers for such entries (emptied whenever the vectors change)
        self._vectorizers: dict[str, TfidfVectorizer] = {}
        self._described = Lru(DESCRIBED_MEMO)  # (n, entries) → similar_to_records' answer
        self._vectors = Lru(16 * DESCRIBED_MEMO)  # entry → its (sparse row, dense row)
        self._stacked = Lru(STACKED_MEMO)  # entries → their rows stacked
        self._bars = Lru(16 * DESCRIBED_MEMO)  # (n, anchor) → its n-th closest cosine
        self._set_vectors(sp.csr_matrix((0, 0), dtype=np.float32), np.zeros((0, 0), np.float32))

    def fit(self, dataset: InteractionDataset) -> Self:
        features, n_items = dataset.item_features, dataset.n_items
        sparse, self._vectorizers = item_vectors(features, n_items, self.config)
        dense = np.zeros((n_items, 0), dtype=np.float32)
        if self.config.embedding_weight > 0:
            weight = np.float32(self.config.embedding_weight)
            dense = item_embeddings(features, n_items) * weight
        self._set_vectors(*_normalize_together(sparse, dense))
        self.item_ids = dataset.item_ids
        return self

    @property
    def describes_items(self) -> bool:
        """Whether any item has a non-zero vector (the catalog said something)."""
        return bool(self.item_vectors.nnz) or bool(np.any(self.item_embeddings))

    def _set_vectors(self, vectors: sp.csr_matrix, embeddings: np.ndarray) -> None:
        self.item_vectors = sp.csr_matrix(vectors, dtype=np.float32)
        self.item_embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        # features × items, kept so that each query is one sparse product
        self._by_feature = self.item_vectors.T.tocsr()
        for memo in (self._described, self._vectors, self._stacked, self._bars):
            memo.clear()

    def score(self, history: sp.csr_matrix, user_index: np.ndarray) -> np.ndarray:
        history = sp.csr_matrix(history, dtype=np.float32)
        profiles, dense = _normalize_together(
            history @ self.item_vectors, np.asarray(history @ self.item_embeddings)
        )
        return self._cosines(profiles, dense)

    def similar_items(self, item_index: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        item_index = np.asarray(item_index, dtype=np.int64)
        scores = self._cosines(self.item_vectors[item_index], self.item_embeddings[item_index])
        scores[scores <= 0] = -np.inf
        scores[np.arange(len(item_index)), item_index] = -np.inf
        return top_n(scores, n)

    def describe(self, records: Sequence[Mapping[str, Any]]) -> tuple[sp.csr_matrix, np.ndarray]:
        """Unit (or zero) vectors of catalog entries in this model's space, split as the
        item vectors are: entries it was not fitted on (items added since) are placed
        by the vocabularies and weights it was fitted with. Each entry is a mapping
        with any of title, text, categories, tags.

        Raises:
            NotSupportedError: the version was saved before vocabularies were kept, or
                it holds embeddings and the ``embeddings`` extra is not installed.
        """
        if self.item_vectors.shape[1] and not self._vectorizers:
            raise NotSupportedError(
                "this content model was saved without its vocabularies: train a new version "
                "to match items added since"
            )
        columns = {name: [r.get(name) for r in records] for name in CATALOG_FIELDS}
        fields = _block_fields(columns, self.config)
        sparse = _vectorize(self._vectorizers, fields, len(records))
        dense = np.zeros((len(records), self.item_embeddings.shape[1]), dtype=np.float32)
        if dense.shape[1]:
            weight = np.float32(self.config.embedding_weight)
            dense = embed_texts(_documents(columns), remember=False) * weight
        return _normalize_together(sparse, dense)

    def prepare_describing(self) -> None:
        """Load what :meth:`describe` needs beyond this model's arrays (the sentence
        encoder, where the model holds embeddings and the extra is installed)."""
        if self.item_embeddings.shape[1] and embeddings_available():
            warm()

    def similar_to_records(
        self, records: Sequence[Mapping[str, Any]], n: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` items most like each catalog entry (see :meth:`describe`), as
        :meth:`similar_items` answers: indices and cosines, best first, -1 / -inf
        where fewer match. The last :data:`DESCRIBED_MEMO` answers are kept: a new
        item's page is asked for again and again until the next training."""
        key = (n, tuple(_record_key(r) for r in records))
        found = self._described.get(key)
        if found is not None:
            return found  # type: ignore[no-any-return]
        rows, dense = self.describe(records)
        scores = self._cosines(rows, dense)
        scores[scores <= 0] = -np.inf
        found = top_n(scores, n)
        for part in found:
            part.flags.writeable = False
        self._described.put(key, found)
        return found

    def look_alikes(
        self,
        anchor: Mapping[str, Any],
        records: Sequence[Mapping[str, Any]],
        n: int,
        anchor_index: int | None = None,
    ) -> list[tuple[int, float]]:
        """Which of ``records`` (catalog entries, in the model's space or not) would rank
        among the ``n`` items most like ``anchor`` by description: (position in
        ``records``, cosine), best first. The bar is the anchor's ``n``-th closest other
        item of the catalog the model was fitted on (``anchor_index``: the anchor's own
        position there, if it has one), so a new item shown beside the anchor is as
        much its look-alike as the items listed with it; an entry sharing nothing with
        it never qualifies."""
        if not records:
            return []
        bar = self._bar(anchor, n, anchor_index)
        anchor_rows, anchor_dense = self._described_rows([anchor])
        rows, dense = self._described_rows(records)
        likeness = np.asarray((rows @ anchor_rows.T).toarray()).ravel() + dense @ anchor_dense[0]
        qualified = [
            (k, float(c)) for k, c in enumerate(likeness.tolist()) if c > 0 and c >= bar - 1e-6
        ]
        return sorted(qualified, key=lambda kc: -kc[1])

    def _bar(self, anchor: Mapping[str, Any], n: int, anchor_index: int | None) -> float:
        """The cosine of ``anchor``'s ``n``-th closest other item (0 with fewer), the last
        :data:`DESCRIBED_MEMO` x 16 remembered: a page is asked for again and again, and
        each costs a product over the whole catalog."""
        key = (n, anchor_index if anchor_index is not None else _record_key(anchor))
        bar = self._bars.get(key)
        if bar is not None:
            return bar  # type: ignore[no-any-return]
        if anchor_index is None:
            _, best = self.similar_to_records([anchor], n)
        else:
            _, best = self.similar_items(np.array([anchor_index]), n)
        found = best[0][np.isfinite(best[0])]
        bar = float(found[-1]) if len(found) == n else 0.0
        self._bars.put(key, bar)
        return bar

    def _described_rows(
        self, records: Sequence[Mapping[str, Any]]
    ) -> tuple[sp.csr_matrix, np.ndarray]:
        """:meth:`describe` of each entry, the last :data:`DESCRIBED_MEMO` x 16 entries'
        vectors remembered (the same new items are weighed on request after request),
        and the last few lists of entries stacked."""
        keys = [_record_key(r) for r in records]
        together = tuple(keys)
        stacked = self._stacked.get(together)
        if stacked is not None:
            return stacked  # type: ignore[no-any-return]
        known = {k: v for k in keys if (v := self._vectors.get(k)) is not None}
        missing = [r for r, k in zip(records, keys, strict=True) if k not in known]
        if missing:
            rows, dense = self.describe(missing)
            fresh = {_record_key(r): (rows[k], dense[k : k + 1]) for k, r in enumerate(missing)}
            for key, vectors in fresh.items():
                self._vectors.put(key, vectors)
            known.update(fresh)
        parts = [known[k] for k in keys]
        stacked = (
            sp.vstack([row for row, _ in parts], format="csr", dtype=np.float32),
            np.vstack([d for _, d in parts]).astype(np.float32, copy=False),
        )
        self._stacked.put(together, stacked)
        return stacked

    def _cosines(self, rows: sp.csr_matrix, dense: np.ndarray) -> np.ndarray:
        """Dot products of unit (or zero) rows, split as the item vectors are, with every
        item vector: dense float32."""
        out = np.zeros((rows.shape[0], self.n_items), dtype=np.float32)
        block = max(1, BLOCK_CELLS // max(self.n_items, 1))
        for start in range(0, rows.shape[0], block):
            stop = min(start + block, rows.shape[0])
            out[start:stop] = (rows[start:stop] @ self._by_feature).toarray()
            if self.item_embeddings.shape[1]:
                out[start:stop] += dense[start:stop] @ self.item_embeddings.T
        return out

    def forget(self, person: ErasedPerson) -> bool:
        """Nothing to do: the model is built from the catalog alone, never from people."""
        return True

    def _arrays(self) -> dict[str, np.ndarray]:
        vocabularies = {}
        for block, vectorizer in self._vectorizers.items():
            vocabularies[f"{block}_terms"] = vectorizer.get_feature_names_out().astype(str)
            vocabularies[f"{block}_idf"] = np.asarray(vectorizer.idf_)
        return {
            **sparse_to_arrays(self.item_vectors),
            "embeddings": self.item_embeddings,
            **vocabularies,
        }

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        vectors = sparse_from_arrays(arrays)
        # versions saved before embeddings existed have none; before vocabularies were
        # kept, none either (such a version cannot place entries added later)
        empty = np.zeros((vectors.shape[0], 0), dtype=np.float32)
        self._set_vectors(vectors, arrays.get("embeddings", empty))
        self._vectorizers = {}
        for block in BLOCKS:
            if f"{block}_terms" in arrays:
                terms = arrays[f"{block}_terms"].tolist()
                vectorizer = _vectorizer(block, self.config, {t: i for i, t in enumerate(terms)})
                vectorizer.idf_ = arrays[f"{block}_idf"]
                self._vectorizers[block] = vectorizer


def item_vectors(
    features: pd.DataFrame | None, n_items: int, config: ContentConfig
) -> tuple[sp.csr_matrix, dict[str, TfidfVectorizer]]:
    """L2-normalised TF-IDF vectors of the catalog, one row per internal item index, and
    the vocabularies fitted for them.

    Args:
        features: catalog rows aligned with the item index (row k = item k), with any of
            the columns title, text (strings), categories, tags (lists of strings);
            missing columns and NaN/None cells count as empty.
        n_items: number of items (rows of the result).
        config: field weights and vocabulary limits.

    Returns:
        (n_items, n_features) float32 CSR, all-zero rows for items with no metadata;
        and the fitted vectorizer of each block ("words", "labels") that found any term.
    """
    if features is None or len(features) == 0:
        return sp.csr_matrix((n_items, 0), dtype=np.float32), {}
    if len(features) != n_items:
        raise ValueError(f"{len(features)} catalog rows for {n_items} items")
    columns = {name: catalog_column(features, name) for name in CATALOG_FIELDS}
    fields = _block_fields(columns, config)
    vectorizers = {}
    for block in BLOCKS:
        vectorizer = _fit_vectorizer(block, fields[block], config)
        if vectorizer is not None:
            vectorizers[block] = vectorizer
    return _vectorize(vectorizers, fields, n_items), vectorizers


def item_embeddings(features: pd.DataFrame | None, n_items: int) -> np.ndarray:
    """(n_items, DIMENSIONS) unit sentence embeddings of each item's title, categories,
    tags and text (zero rows for items with none), aligned like :func:`item_vectors`."""
    if features is None or len(features) == 0:
        return np.zeros((n_items, DIMENSIONS), dtype=np.float32)
    if len(features) != n_items:
        raise ValueError(f"{len(features)} catalog rows for {n_items} items")
    columns = {name: catalog_column(features, name) for name in CATALOG_FIELDS}
    return embed_texts(_documents(columns))


def _documents(columns: Mapping[str, list[Any]]) -> list[str]:
    """Each item's title, categories, tags and text as one sentence-like text."""
    return [
        ". ".join(part for part in parts if part)
        for parts in zip(
            (_text(v) for v in columns["title"]),
            (_labels(v) for v in columns["categories"]),
            (_labels(v) for v in columns["tags"]),
            (_text(v) for v in columns["text"]),
            strict=True,
        )
    ]


def _labels(value: Any) -> str:
    """A label list as words ("Sci-Fi, Comedy"); None and NaN as nothing."""
    if isinstance(value, str):
        return value
    if not isinstance(value, Iterable):
        return ""
    return ", ".join(str(label) for label in value if label is not None)


Fields = list[tuple[list[Any], float]]
"""The documents of each field sharing one vocabulary, with the field's weight."""


def _block_fields(columns: Mapping[str, list[Any]], config: ContentConfig) -> dict[str, Fields]:
    """Catalog columns as the two blocks' weighted fields: title and text words,
    category and tag labels."""
    return {
        "words": [
            ([_text(v) for v in columns["title"]], config.title_weight),
            ([_text(v) for v in columns["text"]], config.text_weight),
        ],
        "labels": [
            ([label_tokens("cat", v) for v in columns["categories"]], config.category_weight),
            ([label_tokens("tag", v) for v in columns["tags"]], config.tag_weight),
        ],
    }


def _vectorizer(
    block: str, config: ContentConfig, vocabulary: dict[str, int] | None = None
) -> TfidfVectorizer:
    """The TF-IDF vectorizer of a block; with ``vocabulary``, one restored from a save
    (its ``idf_`` is then set by the caller)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    words = block == "words"
    return TfidfVectorizer(
        analyzer="word" if words else _as_tokens,
        # labels are whole tokens already; only words make n-grams
        ngram_range=(1, config.ngram_max if words else 1),
        min_df=config.min_df,
        max_features=config.max_features if words else None,  # labels are never capped
        vocabulary=vocabulary,
        sublinear_tf=True,
        norm=None,
        dtype=np.float32,
    )


def _fit_vectorizer(block: str, fields: Fields, config: ContentConfig) -> TfidfVectorizer | None:
    """A block's vocabulary fitted on its fields of positive weight; None if empty."""
    used = [(docs, weight) for docs, weight in fields if weight > 0]
    if not used:
        return None
    # document frequency counts an item once, whichever of its fields holds the term
    combined = [_join(parts) for parts in zip(*(docs for docs, _ in used), strict=True)]
    vectorizer = _vectorizer(block, config)
    try:
        vectorizer.fit(combined)
    except ValueError:
        # sklearn's way of saying "empty vocabulary" (no text, or min_df pruned it all)
        return None
    return vectorizer


def _vectorize(
    vectorizers: Mapping[str, TfidfVectorizer], fields: Mapping[str, Fields], n_rows: int
) -> sp.csr_matrix:
    """Rows of Σ weight × unit TF-IDF field vectors, the blocks side by side (in
    :data:`BLOCKS` order), each row L2-normalised; no columns without vocabularies."""
    blocks = []
    for block in BLOCKS:
        vectorizer = vectorizers.get(block)
        if vectorizer is None:
            continue
        total: sp.csr_matrix | None = None
        for docs, weight in fields[block]:
            if weight > 0:
                part = _normalize_rows(vectorizer.transform(docs)) * np.float32(weight)
                total = part if total is None else total + part
        if total is not None:
            blocks.append(total)
    if not blocks:
        return sp.csr_matrix((n_rows, 0), dtype=np.float32)
    return _normalize_rows(sp.hstack(blocks, format="csr", dtype=np.float32))


def _record_key(record: Mapping[str, Any]) -> Hashable:
    """What :meth:`ContentRecommender.describe` reads of an entry, as a hashable key."""
    return tuple(
        tuple(map(str, value)) if isinstance(value, list | tuple) else str(value)
        for value in (record.get(name) for name in CATALOG_FIELDS)
    )


def catalog_column(features: pd.DataFrame, name: str) -> list[Any]:
    return features[name].tolist() if name in features.columns else [None] * len(features)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def label_tokens(prefix: str, value: Any) -> list[str]:
    """Whole-label tokens ``prefix:label`` (lower case, inner spaces as ``_``)."""
    if isinstance(value, str):
        value = [value]
    elif not isinstance(value, Iterable):  # None, NaN
        return []
    tokens = ("_".join(str(label).lower().split()) for label in value if label is not None)
    return [f"{prefix}:{token}" for token in tokens if token]


def _join(parts: tuple[Any, ...]) -> Any:
    """One item's fields as a single document: text joined by a space, label lists added."""
    if parts and isinstance(parts[0], list):
        return [token for part in parts for token in part]
    return " ".join(parts)


def _as_tokens(document: list[str]) -> list[str]:
    """Analyzer for label lists: they are tokens already."""
    return document


def _normalize_together(
    sparse: sp.csr_matrix, dense: np.ndarray
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Rows of ``[sparse | dense]`` divided by their joint L2 norm (zero rows stay zero),
    returned as the two parts: float32 CSR and float32 dense."""
    sparse = sp.csr_matrix(sparse, dtype=np.float32)
    dense = np.asarray(dense, dtype=np.float32)
    squares = np.asarray(sparse.multiply(sparse).sum(axis=1)).ravel()
    if dense.shape[1]:
        squares = squares + np.einsum("ij,ij->i", dense, dense)
    norms = np.sqrt(squares)
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0).astype(np.float32)
    return sp.csr_matrix(sp.diags(scale) @ sparse), dense * scale[:, None]


def _normalize_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Each row divided by its L2 norm (zero rows stay zero), as float32 CSR."""
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return sp.csr_matrix(sp.diags(scale.astype(np.float32)) @ matrix)
