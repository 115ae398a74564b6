"""ModelHolder.forget_user: an erased person leaves the served models at once, and the
next version, on SQLite and PostgreSQL.

World: the two-taste people, plus A (the only one who ever had "x", besides a0 and a1)
and B (a0 and a1): B is offered x because of A alone.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from attune.config import Settings
from attune.engine.forgetting import forget_in_version, person_digest
from attune.engine.model_holder import ModelHolder, load_version
from attune.engine.recommend import RecommendationService
from attune.ingest.service import IngestService
from attune.store.factory import Stores
from attune.training.pipeline import train
from tests.conftest import two_taste_events

START = 1_700_000_000


def crafted_events() -> list[dict[str, object]]:
    events = two_taste_events(start=START)
    for k, item in enumerate(("a0", "a1", "x")):
        events.append({"user_id": "A", "item_id": item, "type": "view", "timestamp": START + k})
    for k, item in enumerate(("a0", "a1")):
        events.append({"user_id": "B", "item_id": item, "type": "view", "timestamp": START + k})
    return events


def world(settings: Settings, stores: Stores, algorithm: str) -> ModelHolder:
    IngestService(settings, stores).ingest_events(crafted_events())
    train(settings, stores, algorithm=algorithm)
    return ModelHolder(stores, refresh_seconds=0, settings=settings)


def erase(holder: ModelHolder, stores: Stores, user_id: str) -> dict[str, str]:
    """What the erasure route does, as far as models go: read, delete, then forget."""
    history = stores.events.user_history(user_id)
    stores.events.erase_user(user_id)
    return holder.forget_user(user_id, history)


def offered_by_the_model(holder: ModelHolder, stores: Stores, user_id: str) -> set[str]:
    answer = RecommendationService(stores, holder).for_user(user_id, n=4)
    return {item.item_id for item in answer.items if item.source == "model"}


def test_exact_forgetting_is_served_at_once_and_saved_as_a_new_version(any_settings, stores):
    holder = world(any_settings, stores, "item_knn")
    before = holder.current()
    assert before is not None
    assert "x" in offered_by_the_model(holder, stores, "B")
    served_similarity = before.main.similarity.copy()

    statuses = erase(holder, stores, "A")

    assert statuses == {"main": "exact", "fallback": "exact", "similar": "exact"}
    assert "x" not in offered_by_the_model(holder, stores, "B")
    x = before.item_position["x"]
    assert holder.current().fallback.item_scores[x] == 0.0, "nobody else made x popular"
    # a request that took the old models before the erasure still holds them, whole
    assert (before.main.similarity != served_similarity).nnz == 0
    assert holder.wait_for_jobs(timeout=60)
    published = stores.model_versions.latest("champion")
    assert published.version_id != before.version.version_id
    assert published.metrics["forgotten_from"] == before.version.version_id
    assert published.algorithm == "item_knn" and published.params == before.version.params
    assert holder.current().version.version_id == published.version_id
    reloaded = load_version(stores, published)  # what a restart or another replica serves
    assert abs(reloaded.main.similarity - holder.current().main.similarity).max() == 0


def test_a_copy_that_forgot_people_names_them_in_any_order(any_settings, stores):
    """Cached answers are keyed by version and by who was forgotten in it, so processes
    that forgot the same people share them and others do not."""
    loaded = world(any_settings, stores, "item_knn").current()
    assert loaded is not None and loaded.forgotten == 0
    a, b = stores.events.user_history("A"), stores.events.user_history("B")
    forgot_a = forget_in_version(loaded, "A", a)[0]
    a_then_b = forget_in_version(forgot_a, "B", b)[0]
    b_then_a = forget_in_version(forget_in_version(loaded, "B", b)[0], "A", a)[0]
    assert forgot_a.forgotten == person_digest("A") != 0
    assert a_then_b.forgotten == b_then_a.forgotten not in (0, forgot_a.forgotten)


def test_a_model_that_cannot_forget_exactly_is_refitted(any_settings, stores):
    params = {"factors": 8, "regularization": 0.1, "alpha": 10.0, "num_threads": 1}
    IngestService(any_settings, stores).ingest_events(crafted_events())
    first = train(any_settings, stores, algorithm="als", params=params)
    holder = ModelHolder(stores, refresh_seconds=0, settings=any_settings)
    assert holder.current().main.user_index_of(["A"]).tolist() == [0]

    statuses = erase(holder, stores, "A")

    assert statuses["main"] == "refit scheduled"
    assert statuses["similar"] == statuses["fallback"] == "exact"
    assert holder.current().main.user_index_of(["A"]).tolist() == [-1], "gone at once"
    assert holder.wait_for_jobs(timeout=120)
    refitted = stores.model_versions.latest("champion")
    assert refitted.version_id != first.version_id
    assert refitted.algorithm == "als" and refitted.params == first.params
    assert refitted.metrics["selection"] == "erasure"  # versions list says where it came from
    assert refitted.metrics["refit_of"] == first.version_id
    assert refitted.data_window["users"] == first.data_window["users"] - 1
    loaded = holder.current()
    assert loaded.version.version_id == refitted.version_id
    assert "A" not in loaded.main.user_ids.tolist()


def test_erasures_in_a_row_share_one_refit(any_settings, stores, monkeypatch):
    holder = world(any_settings, stores, "als")
    release, started = threading.Event(), threading.Event()
    refits: list[str] = []

    def slow_refit(version):
        refits.append(version.version_id)
        started.set()
        assert release.wait(timeout=60)

    monkeypatch.setattr(holder, "_refit", slow_refit)
    erase(holder, stores, "A")
    assert started.wait(timeout=60)
    for user in ("B", "u0", "u1"):
        assert erase(holder, stores, user)["main"] == "refit scheduled"
    release.set()
    assert holder.wait_for_jobs(timeout=60)
    assert len(refits) == 2, "one refit running, and one for everything erased meanwhile"


def test_events_the_version_did_not_train_on_are_left_to_the_refit(any_settings, stores):
    holder = world(any_settings, stores, "item_knn")
    held = holder.current()
    late = {"user_id": "A", "item_id": "a2", "type": "view", "timestamp": START + 2}
    IngestService(any_settings, stores).ingest_events([late])  # arrived after training

    statuses = erase(holder, stores, "A")

    assert set(statuses.values()) == {"refit scheduled"}
    assert holder.current() is held, "nothing subtracted from models that never had it"
    assert holder.wait_for_jobs(timeout=60)
    assert holder.current().version.version_id != held.version.version_id
    assert "x" not in offered_by_the_model(holder, stores, "B")


def test_someone_the_model_never_trained_on_needs_no_job(any_settings, stores):
    holder = world(any_settings, stores, "item_knn")
    held = holder.current()
    assert holder.forget_user("stranger", []) == dict.fromkeys(
        ("main", "fallback", "similar"), "exact"
    )
    assert holder.current() is held
    assert holder.wait_for_jobs(timeout=1)


def test_without_a_loaded_version_there_is_nothing_to_forget(any_settings, stores):
    holder = ModelHolder(stores, refresh_seconds=0, settings=any_settings)
    assert holder.forget_user("A", []) == {}


@pytest.mark.parametrize("users", [("A",), ("A", "B")])
def test_a_forgotten_version_scores_like_its_refit(settings, sqlite_stores, users):
    holder = world(settings, sqlite_stores, "item_knn")
    for user in users:
        erase(holder, sqlite_stores, user)
    forgotten = holder.current()
    refit = load_version(sqlite_stores, train(settings, sqlite_stores, algorithm="item_knn"))
    common = [i for i in refit.main.item_ids.tolist() if i in forgotten.item_position]
    ours = forgotten.indices(set(common), forgotten.item_position)
    theirs = refit.indices(set(common), refit.item_position)
    ours_sim = forgotten.main.similarity[ours][:, ours].toarray()
    theirs_sim = refit.main.similarity[theirs][:, theirs].toarray()
    np.testing.assert_allclose(ours_sim, theirs_sim, atol=1e-6)
