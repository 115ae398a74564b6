"""Similar items: item-kNN first, content for what item-kNN cannot place.

The world of tests/models/test_content.py: sci-fi and romance fans, two catalog items
nobody has had (``new-scifi``, ``new-romance``) and one item with no catalog entry.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from attune.errors import ValidationError
from attune.features.interactions import InteractionDataset
from attune.models.forgetting import ErasedPerson
from attune.models.item_to_item import ItemToItemRecommender
from attune.models.registry import create_model, load_model
from tests.models.contract import RecommenderContract
from tests.models.test_content import SCI_FI, data, genre_of  # noqa: F401  (data: a fixture)


class TestItemToItem(RecommenderContract):
    """Scoring people is item-kNN's, so the checkerboard contract holds as for it."""

    model_name = "item_to_item"


@pytest.fixture(scope="module")
def model(data: InteractionDataset) -> ItemToItemRecommender:  # noqa: F811
    fitted = create_model("item_to_item").fit(data)
    assert isinstance(fitted, ItemToItemRecommender)
    return fitted


def test_an_item_nobody_had_gets_neighbours_from_its_description(model, data):  # noqa: F811
    for new in ("new-scifi", "new-romance"):
        item = data.item_position[new]
        knn_index, _ = model.knn.similar_items(np.array([item]), 4)
        assert np.all(knn_index == -1), "item-kNN knows nothing of an untried item"
        index, scores = model.similar_items(np.array([item]), 4)
        assert np.all(index[0] >= 0) and np.all(scores[0] > 0)
        assert item not in index[0]
        assert {genre_of(data, i) for i in index[0]} == {genre_of(data, item)}


def test_collaborative_neighbours_come_first_then_content_fills_the_list(model, data):  # noqa: F811
    item = data.item_position["i00"]
    knn_index, knn_scores = model.knn.similar_items(np.array([item]), data.n_items)
    tried = int((knn_index[0] >= 0).sum())
    assert 0 < tried < data.n_items - 1
    index, scores = model.similar_items(np.array([item]), tried + 2)
    np.testing.assert_array_equal(index[0, :tried], knn_index[0, :tried])
    np.testing.assert_allclose(scores[0, :tried], knn_scores[0, :tried])
    filled = index[0, tried:]
    assert set(filled.tolist()).isdisjoint(index[0, :tried].tolist())
    assert data.item_position["new-scifi"] in filled, "an untried sci-fi item is shown"
    assert np.all(scores[0, tried:] <= scores[0, tried - 1]), "content ranks after behaviour"
    assert np.all(np.diff(scores[0]) <= 0)


def test_asked_for_few_it_answers_as_item_knn_does(model, data):  # noqa: F811
    items = np.array([data.item_position["i00"], data.item_position["i01"]])
    index, scores = model.similar_items(items, 2)
    knn_index, knn_scores = model.knn.similar_items(items, 2)
    np.testing.assert_array_equal(index, knn_index)
    np.testing.assert_array_equal(scores, knn_scores)


def test_save_load_round_trip(model, data, tmp_path: Path):  # noqa: F811
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, ItemToItemRecommender)
    items = np.arange(data.n_items)
    answers = zip(loaded.similar_items(items, 6), model.similar_items(items, 6), strict=True)
    for got, want in answers:
        np.testing.assert_array_equal(got, want)
    assert (loaded.similarity != model.similarity).nnz == 0
    added = [{"title": "Nebula Patrol", "categories": ["Sci-Fi"], "tags": ["space"]}]
    got, want = loaded.similar_to_records(added, 4), model.similar_to_records(added, 4)
    np.testing.assert_array_equal(got[0], want[0])
    assert {genre_of(data, i) for i in got[0][0]} == {SCI_FI}, "an entry added later: its kind"


def test_forgetting_reaches_item_knn_and_leaves_the_original_alone(model, data):  # noqa: F811
    person = ErasedPerson.from_dataset(data, str(data.user_ids[0]))
    before = model.knn.similarity.copy()
    twin, exact = model.forgotten(person)
    assert exact is True
    assert (model.knn.similarity != before).nnz == 0, "the served copy is untouched"
    assert (twin.knn.similarity != before).nnz > 0
    assert twin.content.item_vectors is model.content.item_vectors, "content is shared"


def test_parts_fitted_on_different_items_are_refused(data):  # noqa: F811
    from tests.models.contract import checkerboard

    other = create_model("content").fit(checkerboard())
    with pytest.raises(ValidationError, match="different items"):
        ItemToItemRecommender.of(create_model("item_knn").fit(data), other)


def test_a_composite_saved_over_a_larger_one_loads_only_its_own_parts(data, tmp_path: Path):  # noqa: F811
    def blend(*names: str):
        components = [{"algorithm": name} for name in names]
        return create_model("blend", {"components": components}).fit(data)

    blend("popularity", "item_knn", "content").save(tmp_path / "m")
    smaller = blend("popularity", "item_knn")
    smaller.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert [c.name for c in loaded.components] == ["popularity", "item_knn"]
    assert not (tmp_path / "m" / "component_2").exists()
