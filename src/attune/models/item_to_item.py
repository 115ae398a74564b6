"""The model behind "similar items": item-kNN, completed by content where it knows too little.

Item-kNN finds an item's neighbours among the items people had together, so an item
nobody has had yet (a product added last week, a film with no views) has none: its
page would show only what is popular, whatever it is. Here such an item, and any item
with fewer collaborative neighbours than asked for, gets the rest of its list from the
content model (catalog text, labels and, with the extra, sentence embeddings), ranked
after every collaborative neighbour: behaviour first, description second. Untried
items thereby also appear beside the tried items they resemble, which is exposure they
would not get otherwise. An item added to the catalog after training, outside the item
space, gets its list from content too (:meth:`ItemToItemRecommender.similar_to_records`).

Scoring a person (``score``) is item-kNN's: this model is built for item-to-item use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from attune.errors import ValidationError
from attune.features.interactions import InteractionDataset
from attune.models.base import ModelConfig, Recommender
from attune.models.blend import CompositeRecommender


class ItemToItemConfig(ModelConfig):
    knn: dict[str, Any] = Field(
        default_factory=dict, description="Parameters of the item-kNN part (its defaults)."
    )
    content: dict[str, Any] = Field(
        default_factory=dict, description="Parameters of the content part (its defaults)."
    )


class ItemToItemRecommender(CompositeRecommender):
    """See the module docstring. State: the fitted ``knn`` and ``content`` models (its
    two components, in that order)."""

    name = "item_to_item"
    config_class = ItemToItemConfig
    config: ItemToItemConfig

    def __init__(self, config: ItemToItemConfig | dict | None = None) -> None:
        super().__init__(config)
        self.components = []

    @property
    def knn(self) -> Recommender:
        return self._parts()[0]

    @property
    def content(self) -> Recommender:
        return self._parts()[1]

    @classmethod
    def of(cls, knn: Recommender, content: Recommender) -> Self:
        """Built from models already fitted on one dataset (the serving item-kNN, say)."""
        if list(knn.item_ids) != list(content.item_ids):
            raise ValidationError("item-kNN and content were fitted on different items")
        model = cls({"knn": knn.config.model_dump(), "content": content.config.model_dump()})
        model.components, model.item_ids = [knn, content], knn.item_ids
        return model

    def fit(self, dataset: InteractionDataset) -> Self:
        from attune.models.registry import create_model

        self.components = [
            create_model("item_knn", self.config.knn).fit(dataset),
            create_model("content", self.config.content).fit(dataset),
        ]
        self.item_ids = dataset.item_ids
        return self

    @property
    def similarity(self) -> sp.csr_matrix | None:
        """Item-kNN's similarity matrix (what "because you watched" explanations read)."""
        return getattr(self.knn, "similarity", None)

    def score(self, history: Any, user_index: np.ndarray) -> np.ndarray:
        return self._parts()[0].score(history, user_index)

    def query(self, history: Any) -> Any:
        return self._parts()[0].query(history)

    def similar_items(self, item_index: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Item-kNN's neighbours, then (for rows with fewer than ``n``) content's, each
        content score scaled below the row's weakest collaborative one."""
        knn, content = self._parts()
        item_index = np.asarray(item_index, dtype=np.int64)
        index, scores = knn.similar_items(item_index, n)
        found = (index >= 0) & np.isfinite(scores) & (scores > 0)
        short = np.flatnonzero(found.sum(axis=1) < n)
        if not len(short):
            return index, scores
        index, scores = index.copy(), scores.astype(np.float32, copy=True)
        # asked for twice as many: some may be collaborative neighbours already
        wanted = min(2 * n, content.n_items)
        more_index, more_scores = content.similar_items(item_index[short], wanted)
        for row, extra, extra_scores in zip(short.tolist(), more_index, more_scores, strict=True):
            kept_index = index[row][found[row]].tolist()
            kept_scores = scores[row][found[row]].tolist()
            weakest = min(kept_scores, default=1.0)
            have = set(kept_index)
            fill = [
                (i, weakest * s)
                for i, s in zip(extra.tolist(), extra_scores.tolist(), strict=True)
                if i >= 0 and np.isfinite(s) and s > 0 and i not in have
            ][: n - len(kept_index)]
            row_index = kept_index + [i for i, _ in fill]
            row_scores = kept_scores + [s for _, s in fill]
            index[row] = -1
            scores[row] = -np.inf
            index[row, : len(row_index)] = row_index
            scores[row, : len(row_scores)] = row_scores
        return index, scores

    def similar_to_records(
        self, records: Sequence[Mapping[str, Any]], n: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Items like catalog entries outside this model's item space (added since it was
        trained): content's alone, as nobody has had them beside anything yet (see
        :meth:`ContentRecommender.describe <attune.models.content.ContentRecommender.describe>`)."""
        return self._parts()[1].similar_to_records(records, n)  # type: ignore[attr-defined]

    def look_alikes(
        self,
        anchor: Mapping[str, Any],
        records: Sequence[Mapping[str, Any]],
        n: int,
        anchor_index: int | None = None,
    ) -> list[tuple[int, float]]:
        """Content's :meth:`~attune.models.content.ContentRecommender.look_alikes`: which
        of ``records`` (new items, say) are among ``anchor``'s ``n`` closest by description."""
        content = self._parts()[1]
        return content.look_alikes(anchor, records, n, anchor_index)  # type: ignore[attr-defined]

    def prepare_describing(self) -> None:
        self._parts()[1].prepare_describing()  # type: ignore[attr-defined]

    def _parts(self) -> tuple[Recommender, Recommender]:
        if len(self.components) != 2:
            raise ValidationError("item_to_item is not fitted")
        knn, content = self.components
        return knn, content
