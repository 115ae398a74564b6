"""The content model on a tiny catalog with two genres and known answers.

Even items are space sci-fi, odd items romantic comedies; even users watch most of the
sci-fi and odd users most of the romance. Two catalog items nobody has touched yet
(``new-scifi``, ``new-romance``) must reach the right people, and one interacted item
(``mystery``) has no catalog entry at all. The shared checkerboard contract has no
metadata, so the same kinds of checks are repeated here on this world.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from attune.errors import NotSupportedError, ValidationError
from attune.features.interactions import History, InteractionDataset, WeightPolicy, build_dataset
from attune.models.base import Recommender
from attune.models.content import ContentConfig, ContentRecommender
from attune.models.registry import create_model, load_model
from tests.models.contract import same_up_to_float_ties

N_USERS, N_ITEMS = 24, 16
SCI_FI, ROMANCE = 0, 1


SPACE_TEXT = "A starship crew explores a distant galaxy."
LOVE_TEXT = "A romantic comedy about two strangers."


def catalog() -> pd.DataFrame:
    """item_id, title, text, categories, tags; every fourth sci-fi item lacks "aliens"."""
    rows = [
        (f"i{i:02d}", f"Space Voyage {i}", SPACE_TEXT, ["Sci-Fi"], ["space", "aliens"])
        if i % 2 == SCI_FI
        else (f"i{i:02d}", f"Love in Paris {i}", LOVE_TEXT, ["Romance", "Comedy"], ["romcom"])
        for i in range(N_ITEMS)
    ]
    for i in range(0, N_ITEMS, 4):
        rows[i][4].remove("aliens")
    rows.append(("new-scifi", "Nebula Station", "Aliens on a space station.", ["Sci-Fi"], []))
    rows.append(("new-romance", "Paris Hearts", "A romantic comedy.", ["Romance"], None))
    return pd.DataFrame(rows, columns=["item_id", "title", "text", "categories", "tags"])


def events() -> pd.DataFrame:
    rows = []
    for u in range(N_USERS):
        for i in range(N_ITEMS):
            # own genre only, leaving some items out so there is something to find
            if u % 2 == i % 2 and (u // 2 + i // 2) % 4 != 0:
                rows.append((f"u{u:02d}", f"i{i:02d}", "view", np.nan, 1_700_000_000.0 + u + i))
        rows.append((f"u{u:02d}", "mystery", "view", np.nan, 1_700_000_000.0))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "type", "value", "timestamp"])


def genre_of(data: InteractionDataset, item: int) -> int | None:
    item_id = str(data.item_ids[item])
    if item_id.startswith("new-"):
        return SCI_FI if item_id == "new-scifi" else ROMANCE
    return int(item_id[1:]) % 2 if item_id != "mystery" else None


@pytest.fixture(scope="module")
def data() -> InteractionDataset:
    return build_dataset(events(), WeightPolicy(), catalog())


class ContentContract:
    """Contract checks (as in tests/models/contract.py) on the two-genre catalog."""

    params: ClassVar[dict[str, Any]] = {}
    words_only: ClassVar[bool] = True  # no embeddings: items sharing no term score 0

    @pytest.fixture(scope="class")
    @classmethod
    def model(cls, data: InteractionDataset) -> Recommender:
        return create_model("content", cls.params).fit(data)

    def test_item_space_is_the_datasets(self, model, data):
        assert list(model.item_ids) == list(data.item_ids)
        assert {"new-scifi", "new-romance", "mystery"} <= set(model.item_ids)

    def test_people_get_their_own_genre_first(self, model, data):
        index, scores = model.recommend(data.matrix, n=3)
        seen = data.matrix.toarray() > 0
        for u in range(data.n_users):
            got = index[u].tolist()
            assert not seen[u, got].any(), "an already seen item came back"
            assert np.all(np.diff(scores[u]) <= 0), "not sorted best first"
            assert {genre_of(data, i) for i in got} == {u % 2}, data.user_ids[u]
            assert np.all(scores[u] > 0)

    def test_new_catalog_items_reach_the_right_people(self, model, data):
        """Cold start: items with no interactions are scored from their metadata."""
        new_scifi = data.item_position["new-scifi"]
        new_romance = data.item_position["new-romance"]
        assert data.matrix[:, [new_scifi, new_romance]].nnz == 0
        scores = model.score(data.matrix, np.full(data.n_users, -1))
        index, _ = model.recommend(data.matrix, n=3)
        for u in range(data.n_users):
            mine, theirs = (new_scifi, new_romance) if u % 2 == SCI_FI else (new_romance, new_scifi)
            assert mine in index[u]
            assert scores[u, mine] > max(scores[u, theirs], 0)
            if self.words_only:
                assert scores[u, theirs] == 0

    def test_batch_agrees_with_single_queries(self, model, data):
        batch_index, batch_scores = model.recommend(data.matrix, n=5)
        for u in (0, 1, 7, data.n_users - 1):
            index, scores = model.recommend(data.matrix[u], n=5)
            same_up_to_float_ties(index[0], scores[0], batch_index[u], batch_scores[u])

    def test_exclusions_and_candidates(self, model, data):
        first, _ = model.recommend(data.matrix[:1], n=1)
        banned = sp.csr_matrix(([1.0], ([0], [first[0, 0]])), shape=(1, data.n_items))
        index, _ = model.recommend(data.matrix[:1], n=3, exclude=banned)
        assert first[0, 0] not in index[0]
        index, _ = model.recommend(
            data.matrix[:1], n=3, candidates=np.array([3, 5]), exclude_history=False
        )
        assert set(index[0][index[0] >= 0].tolist()) <= {3, 5}
        assert index[0][2] == -1, "only two candidates, so the third slot stays empty"

    def test_unknown_user_with_no_history(self, model, data):
        empty = sp.csr_matrix((1, data.n_items), dtype=np.float32)
        index, scores = model.recommend(empty, n=3)
        assert index.shape == (1, 3)
        assert np.all((index[0] >= 0) == np.isfinite(scores[0]))
        assert np.all(model.score(empty, np.array([-1])) == 0)

    def test_similar_items_stay_in_their_genre(self, model, data):
        items = np.array([0, 1, data.item_position["new-scifi"]])
        index, scores = model.similar_items(items, n=4)
        for row, item in enumerate(items.tolist()):
            assert item not in index[row]
            assert {genre_of(data, i) for i in index[row]} == {genre_of(data, item)}
            assert np.all(scores[row] > 0) and np.all(scores[row] <= 1 + 1e-5)

    def test_an_item_without_metadata_scores_zero_and_has_no_neighbours(self, model, data):
        mystery = data.item_position["mystery"]
        assert np.all(model.score(data.matrix, np.full(data.n_users, -1))[:, mystery] == 0)
        index, scores = model.similar_items(np.array([mystery]), n=3)
        assert index.tolist() == [[-1, -1, -1]]
        assert np.all(np.isneginf(scores))

    def test_item_vectors_are_unit_or_zero(self, model, data):
        vectors, dense = model.item_vectors, model.item_embeddings
        assert sp.issparse(vectors) and vectors.dtype == np.float32
        assert dense.dtype == np.float32 and dense.shape[0] == data.n_items
        squares = np.asarray(vectors.multiply(vectors).sum(axis=1)).ravel()
        norms = np.sqrt(squares + (dense**2).sum(axis=1))
        expected = np.ones(data.n_items)
        expected[data.item_position["mystery"]] = 0.0
        np.testing.assert_allclose(norms, expected, atol=1e-5)

    def test_save_load_round_trip_without_pickle(self, model, data, tmp_path: Path):
        model.save(tmp_path / "m")
        with np.load(tmp_path / "m" / "arrays.npz", allow_pickle=False) as arrays:
            assert "item_ids" in arrays.files
        loaded = load_model(tmp_path / "m")
        assert type(loaded) is type(model) and loaded.config == model.config
        user_index = np.full(data.n_users, -1)
        np.testing.assert_array_equal(
            model.score(data.matrix, user_index), loaded.score(data.matrix, user_index)
        )
        items = np.arange(data.n_items)
        np.testing.assert_array_equal(
            model.similar_items(items, 5)[0], loaded.similar_items(items, 5)[0]
        )

    def test_entries_are_placed_where_training_put_them(self, model, data, tmp_path: Path):
        """The kept vocabularies (also after a save) give a catalog entry the very vector
        its item got when the model was fitted: an entry added later lands in that space."""
        model.save(tmp_path / "m")
        rows = catalog().set_index("item_id")
        for placing in (model, load_model(tmp_path / "m")):
            for item_id in ("i00", "i03", "new-scifi", "new-romance"):
                sparse, dense = placing.describe([rows.loc[item_id].to_dict()])
                k = data.item_position[item_id]
                fitted = model.item_vectors[k].toarray()[0]
                np.testing.assert_allclose(sparse.toarray()[0], fitted, atol=1e-6)
                np.testing.assert_allclose(dense[0], model.item_embeddings[k], atol=1e-4)

    def test_an_entry_added_later_finds_its_own_kind(self, model, data):
        added = [
            {"title": "Galaxy Patrol", "text": "A starship crew.", "categories": ["Sci-Fi"]},
            {"title": "Paris Nights", "categories": ["Romance"], "tags": None},
        ]
        index, scores = model.similar_to_records(added, 4)
        for row, genre in enumerate((SCI_FI, ROMANCE)):
            assert {genre_of(data, i) for i in index[row]} == {genre}, index[row]
            assert np.all(np.diff(scores[row]) <= 0) and np.all(scores[row] > 0)
        index, scores = model.similar_to_records([{"title": None, "tags": []}], 3)
        assert index.tolist() == [[-1, -1, -1]], "nothing to go by, nothing found"

    def test_new_look_alikes_are_those_as_close_as_the_anchors_own(self, model, data):
        rows = catalog().set_index("item_id")
        scifi, romance = rows.loc["i02"].to_dict(), rows.loc["i03"].to_dict()
        added = [
            dict(romance, item_id="relisted"),  # the same entry, listed again
            {"title": "A ledger of taxes"},  # shares nothing with anything
            dict(scifi, title="Space Voyage 99"),  # a near twin of the sci-fi anchor
            {"title": "Love in Rome", "categories": ["Romance"]},  # related, not as close
        ]
        at = data.item_position
        alike = model.look_alikes(scifi, added, 4, at["i02"])
        assert [k for k, _ in alike] == [2], "only its twin: not as close as its own 4th"
        assert [k for k, _ in model.look_alikes(romance, added, 4, at["i03"])] == [0]
        # the bar is the anchor's n-th closest other item: a copy clears even the closest
        assert [k for k, _ in model.look_alikes(romance, [dict(romance)], 1, at["i03"])] == [0]
        _, own = model.similar_items(np.array([at["i02"]]), 4)
        assert alike[0][1] >= own[0][3] - 1e-6
        assert model.look_alikes(scifi, [], 4) == []


class TestContent(ContentContract):
    pass


class TestContentWithBigramsAndPruning(ContentContract):
    params = {"ngram_max": 2, "min_df": 2, "text_weight": 1.5, "max_features": 40}


class TestContentOnLabelsOnly(ContentContract):
    params = {"title_weight": 0.0, "text_weight": 0.0}


class TestContentWithEmbeddings(ContentContract):
    params = {"embedding_weight": 1.0}
    words_only = False


def _with_items(rows: list[tuple[str, str, str]]) -> InteractionDataset:
    """The test world with more catalog items (id, title, text; no labels)."""
    extra = pd.DataFrame(
        [(i, title, text, [], []) for i, title, text in rows],
        columns=["item_id", "title", "text", "categories", "tags"],
    )
    return build_dataset(events(), WeightPolicy(), pd.concat([catalog(), extra]))


def test_embeddings_match_meaning_where_no_word_is_shared():
    """Two new items that share no word with anything watched: TF-IDF cannot tell them
    apart for anyone; the sentence embedding sends the space one to sci-fi fans."""
    world = _with_items(
        [
            ("rocket", "Rocket mission", "Astronauts travel between planets."),
            ("tuscany", "Tuscany wedding", "Sweethearts marry at sunset."),
        ]
    )
    rocket, tuscany = world.item_position["rocket"], world.item_position["tuscany"]
    everyone = np.full(world.n_users, -1)
    words = create_model("content").fit(world).score(world.matrix, everyone)
    assert np.all(words[:, [rocket, tuscany]] == 0)
    meaning = create_model("content", {"embedding_weight": 1.0}).fit(world)
    scores = meaning.score(world.matrix, everyone)
    fans = [u for u in range(world.n_users) if u % 2 == SCI_FI]
    romantics = [u for u in range(world.n_users) if u % 2 == ROMANCE]
    assert np.all(scores[fans, rocket] > scores[fans, tuscany])
    assert np.all(scores[romantics, tuscany] > scores[romantics, rocket])
    index, _ = meaning.similar_items(np.array([rocket]), n=3)
    assert {genre_of(world, i) for i in index[0]} == {SCI_FI}


def test_versions_saved_before_embeddings_still_load(data, tmp_path: Path):
    model = create_model("content").fit(data)
    model.save(tmp_path / "m")
    path = tmp_path / "m" / "arrays.npz"
    with np.load(path, allow_pickle=False) as arrays:
        assert "state_embeddings" in arrays.files
        older = {k: arrays[k] for k in arrays.files if k != "state_embeddings"}
    np.savez(path, **older)
    loaded = load_model(tmp_path / "m")
    everyone = np.full(data.n_users, -1)
    np.testing.assert_array_equal(
        model.score(data.matrix, everyone), loaded.score(data.matrix, everyone)
    )


def test_versions_saved_before_vocabularies_were_kept_load_but_place_nothing_new(
    data, tmp_path: Path
):
    model = create_model("content").fit(data)
    model.save(tmp_path / "m")
    path = tmp_path / "m" / "arrays.npz"
    with np.load(path, allow_pickle=False) as arrays:
        older = {k: arrays[k] for k in arrays.files if not k.endswith(("_terms", "_idf"))}
        assert len(older) == len(arrays.files) - 4, "words and labels: terms and idf each"
    np.savez(path, **older)
    loaded = load_model(tmp_path / "m")
    everyone = np.full(data.n_users, -1)
    np.testing.assert_array_equal(
        model.score(data.matrix, everyone), loaded.score(data.matrix, everyone)
    )
    with pytest.raises(NotSupportedError, match="train a new version"):
        loaded.similar_to_records([{"title": "Nebula", "categories": ["Sci-Fi"]}], 3)


def test_answers_for_added_entries_are_remembered_until_the_model_changes(data):
    model = create_model("content").fit(data)
    added = [{"title": "Galaxy Patrol", "categories": ["Sci-Fi"], "tags": ["space"]}]
    first = model.similar_to_records(added, 3)
    assert model.similar_to_records(added, 3)[0] is first[0]
    assert not first[0].flags.writeable, "shared answers are read-only"
    model.fit(data)
    again = model.similar_to_records(added, 3)
    assert again[0] is not first[0]
    np.testing.assert_array_equal(again[0], first[0])


def test_a_page_s_bar_and_its_new_items_are_worked_out_once_until_the_model_changes(
    data, monkeypatch
):
    """An item page is asked for again and again: its bar (a product over the whole
    catalog) and the new items' vectors are computed once, and again after a refit."""
    model = create_model("content").fit(data)
    page = catalog().set_index("item_id").loc["i02"].to_dict()
    added = [dict(page, title="Space Voyage 99"), {"title": "Paris Hearts 2"}]
    products, described = [], []
    similar_items, describe = model.similar_items, model.describe
    monkeypatch.setattr(model, "similar_items", lambda *a: products.append(1) or similar_items(*a))
    monkeypatch.setattr(model, "describe", lambda r: described.append(len(r)) or describe(r))
    at = data.item_position["i02"]
    first = model.look_alikes(page, added, 4, at)
    assert model.look_alikes(page, added, 4, at) == first
    assert products == [1] and described == [1, 2], "the page's entry, then the two new ones"
    model.fit(data)
    assert model.look_alikes(page, added, 4, at) == first
    assert products == [1, 1] and described == [1, 2, 1, 2]


def test_preparing_to_describe_loads_the_encoder_only_where_the_model_embeds(data, monkeypatch):
    """A server loads the encoder while it prepares a version, not in a request."""
    import attune.features.text_embeddings as text_embeddings

    plain = create_model("content").fit(data)
    embedding = create_model("content", {"embedding_weight": 1.0}).fit(data)
    loads: list[int] = []
    monkeypatch.setattr(text_embeddings, "_load", lambda: loads.append(1))
    plain.prepare_describing()
    assert loads == []
    embedding.prepare_describing()
    assert loads == [1]


def test_the_encoder_loads_from_its_package_without_the_network(monkeypatch):
    """Downloads are off: the weights and tokenizer come from the installed wheel."""
    import requests

    from attune.features import text_embeddings

    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the encoder tried to download something")

    monkeypatch.setattr(requests, "get", no_network)
    monkeypatch.setattr(text_embeddings, "_encoder", None)
    monkeypatch.setattr(text_embeddings, "_last", None)
    vectors = text_embeddings.embed_texts(["space adventure", "", "science fiction"])
    assert vectors.shape == (3, text_embeddings.DIMENSIONS) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), [1.0, 0.0, 1.0], atol=1e-5)


def test_embeddings_without_the_extra_say_what_to_install(data, monkeypatch):
    from attune.errors import NotSupportedError
    from attune.features import text_embeddings

    monkeypatch.setitem(sys.modules, "wordllama", None)  # as if not installed
    monkeypatch.setattr(text_embeddings, "_encoder", None)
    monkeypatch.setattr(text_embeddings, "_last", None)
    with pytest.raises(NotSupportedError, match=r"attune\[embeddings\]"):
        create_model("content", {"embedding_weight": 1.0}).fit(data)
    assert create_model("content").fit(data).item_embeddings.shape == (data.n_items, 0)


def test_tuning_searches_the_embedding_weight_only_where_the_extra_is_installed(monkeypatch):
    import optuna

    from attune.models import content

    def space() -> dict[str, Any]:
        return ContentConfig.search_space(optuna.trial.FixedTrial(defaults))

    defaults = {**ContentConfig().model_dump(), "embedding_weight": 0.5}
    assert space()["embedding_weight"] == 0.5
    monkeypatch.setattr(content, "embeddings_available", lambda: False)
    assert "embedding_weight" not in space()


def test_recent_history_counts_more_with_a_recency_half_life(data):
    """Someone who watched sci-fi long ago and romance just now."""
    scifi_item, romance_item = data.item_position["i00"], data.item_position["i01"]
    weights = sp.csr_matrix(([1.0, 1.0], ([0, 0], [scifi_item, romance_item])), (1, data.n_items))
    ranks = sp.csr_matrix(([50.0, 1.0], ([0, 0], [scifi_item, romance_item])), (1, data.n_items))
    history = History(weights.astype(np.float32), ranks.astype(np.float32))
    flat = create_model("content").fit(data)
    recent = create_model("content", {"recency_half_life_events": 2}).fit(data)
    flat_scores = flat.score(flat.query(history), np.array([-1]))[0]
    index, _ = recent.recommend(history, n=4)
    assert {genre_of(data, i) for i in index[0]} == {ROMANCE}
    new_scifi, new_romance = data.item_position["new-scifi"], data.item_position["new-romance"]
    assert flat_scores[new_scifi] > 0 and flat_scores[new_romance] > 0


def test_field_weights_change_what_counts(data):
    """Tags alone: a sci-fi item tagged "aliens" is closest to the other "aliens" items."""
    model = create_model(
        "content", {"title_weight": 0, "text_weight": 0, "category_weight": 0}
    ).fit(data)
    aliens = [i for i in range(N_ITEMS) if i % 2 == SCI_FI and i % 4]
    index, scores = model.similar_items(np.array([data.item_position[f"i{aliens[0]:02d}"]]), 2)
    assert {int(str(data.item_ids[i])[1:]) for i in index[0]} <= set(aliens)
    np.testing.assert_allclose(scores[0], 1.0, rtol=1e-5)


@pytest.mark.parametrize(
    "items",
    [
        None,
        pd.DataFrame({"item_id": ["i00", "i01"], "title": [None, np.nan]}),
        pd.DataFrame({"item_id": ["i00"], "title": ["a"], "categories": [[]], "tags": [None]}),
    ],
    ids=["no catalog", "empty fields", "nothing left after tokenising"],
)
def test_no_usable_metadata_gives_zeros_without_crashing(items, tmp_path: Path):
    data = build_dataset(events(), WeightPolicy(), items)
    model = create_model("content").fit(data)
    scores = model.score(data.matrix, np.full(data.n_users, -1))
    assert scores.shape == (data.n_users, data.n_items) and scores.dtype == np.float32
    assert np.all(scores == 0)
    index, _ = model.recommend(data.matrix, n=3)
    assert index.shape == (data.n_users, 3)
    assert np.all(model.similar_items(np.array([0]), 3)[0] == -1)
    model.save(tmp_path / "m")
    assert np.all(load_model(tmp_path / "m").score(data.matrix[:2], np.full(2, -1)) == 0)


def test_bad_parameters_are_refused_with_the_model_name():
    with pytest.raises(ValidationError, match="content"):
        create_model("content", {"ngram_max": 3})
    with pytest.raises(ValidationError, match="content"):
        create_model("content", {"tag_weight": -1})


def test_search_space_gives_valid_configs():
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trial = optuna.create_study().ask()
    params = ContentConfig.search_space(trial)
    assert set(params) <= set(ContentConfig.model_fields)
    assert isinstance(ContentRecommender(params).config, ContentConfig)


def test_importing_the_model_does_not_import_sklearn():
    code = "import attune.models.content, sys; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
