"""Training from stored events to a registered, loadable, served model version."""

from __future__ import annotations

import json

import pytest

from attune.engine.model_holder import ModelHolder
from attune.errors import NotReadyError
from attune.ingest.service import IngestService
from attune.store.protocols import ModelVersion
from attune.training.pipeline import train
from tests.conftest import two_taste_events


def test_train_registers_a_version_with_its_window_and_files(any_settings, stores):
    IngestService(any_settings, stores).ingest_events(two_taste_events())
    version = train(any_settings, stores, algorithm="item_knn")
    assert isinstance(version, ModelVersion)
    assert version.algorithm == "item_knn" and version.params["neighbors"] == 100
    assert version.metrics["selection"] == "explicit"
    assert version.data_window["events"] == 120 and version.data_window["users"] == 40
    assert version.data_window["items"] == 10
    folder = stores.artifacts.open(version.artifact_uri)
    assert (folder / "main" / "model.json").is_file() and (
        folder / "fallback" / "arrays.npz"
    ).is_file()
    assert json.loads((folder / "serving.json").read_text())["type_weights"]["view"] == 1.0
    assert stores.model_versions.latest().version_id == version.version_id


def test_a_new_version_is_served_without_restart(any_settings, stores):
    IngestService(any_settings, stores).ingest_events(two_taste_events())
    first = train(any_settings, stores)
    holder = ModelHolder(stores, refresh_seconds=0)
    assert holder.current().version.version_id == first.version_id
    second = train(any_settings, stores, algorithm="popularity")
    assert second.seq > first.seq
    loaded = holder.current()
    assert loaded.version.version_id == second.version_id
    assert loaded.main.name == "popularity"


def test_nothing_to_train_on_is_a_clear_error(any_settings, stores):
    with pytest.raises(NotReadyError, match="import or send events"):
        train(any_settings, stores)


def test_event_type_weights_decide_what_counts(settings, sqlite_stores):
    events = [
        {"user_id": "u1", "item_id": "shown", "type": "impression", "timestamp": 1},
        {"user_id": "u1", "item_id": "bought", "type": "purchase", "value": 2, "timestamp": 2},
        {"user_id": "u2", "item_id": "bought", "type": "view", "timestamp": 3},
    ]
    IngestService(settings, sqlite_stores).ingest_events(events)
    version = train(settings, sqlite_stores)
    assert version.data_window["events"] == 2, "a zero-weight impression is not feedback"
    custom = settings.model_copy(
        update={"event_type_weights": {"impression": 1.0, "view": 0.0, "purchase": 1.0}}
    )
    version = train(custom, sqlite_stores)
    assert version.data_window["events"] == 2 and version.data_window["users"] == 1


def test_plain_train_chooses_by_validation_and_records_the_evidence(settings, sqlite_stores):
    IngestService(settings, sqlite_stores).ingest_events(two_taste_events())
    version = train(settings, sqlite_stores)
    assert version.metrics["selection"] == "validated-defaults"
    evidence = version.metrics["validation"]["best_per_algorithm"]
    assert {"ease", "item_knn", "popularity"} <= set(evidence)
    chosen = version.metrics["validation"]["validation_ndcg@10"]
    assert chosen == max(evidence.values()) or version.algorithm == "blend"
    assert chosen >= evidence["popularity"]
    folder = sqlite_stores.artifacts.open(version.artifact_uri)
    assert (folder / "similar" / "model.json").is_file() or version.algorithm == "item_knn"


def test_tuning_respects_its_budget_and_plain_train_reuses_it(settings, sqlite_stores):
    import time

    IngestService(settings, sqlite_stores).ingest_events(two_taste_events())
    started = time.monotonic()
    tuned = train(settings, sqlite_stores, tune_budget_seconds=4)
    assert time.monotonic() - started < 4 + 5, "budget plus the final refit"
    assert tuned.metrics["selection"] == "tuned"
    assert tuned.metrics["validation"]["trials"] > 5
    again = train(settings, sqlite_stores)
    assert again.metrics["tuned_in"] == tuned.version_id
    assert again.algorithm == tuned.algorithm
    assert again.params == tuned.params


def test_an_overrun_budget_keeps_the_best_model_not_the_cheapest(settings, sqlite_stores):
    """Regression: with no time left for any refit, tuning picked the fastest candidate
    (trending) instead of the most accurate one."""
    from attune.training.pipeline import weight_policy
    from attune.training.tuning import select_model

    IngestService(settings, sqlite_stores).ingest_events(two_taste_events())
    frame = sqlite_stores.events.interaction_frame()
    choice = select_model(frame, weight_policy(settings), budget_seconds=0.001)
    assert choice.algorithm not in ("trending", "popularity")
    assert choice.validation_ndcg == max(choice.best_per_algorithm.values())


def test_tuning_starts_from_the_serving_configuration(settings, sqlite_stores, monkeypatch):
    from attune.training import tuning

    IngestService(settings, sqlite_stores).ingest_events(two_taste_events())
    serving = train(settings, sqlite_stores, "item_knn", {"neighbors": 17})
    seen = {}
    real = tuning.select_model

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(tuning, "select_model", spy)
    train(settings, sqlite_stores, tune_budget_seconds=8)
    assert seen["start_from"] == {"item_knn": serving.params}
    assert seen["start_from"]["item_knn"]["neighbors"] == 17


def test_the_tuned_refit_stops_where_the_budget_ends_after_the_other_fits(
    settings, sqlite_stores, monkeypatch
):
    """The popularity fallback and the "similar items" model cannot stop early: they are
    fitted before the refit, whose deadline is what the budget has left after them."""
    import time

    from attune.models.deadline import seconds_left
    from attune.models.item_knn import ItemKNNRecommender as ItemKNN
    from attune.models.popularity import PopularityRecommender as Popularity
    from attune.training import tuning

    IngestService(settings, sqlite_stores).ingest_events(two_taste_events())
    monkeypatch.setattr(
        tuning,
        "select_model",
        lambda *args, **kwargs: tuning.Selection("popularity", {}, validation_ndcg=0.1),
    )
    slow_similar = ItemKNN.fit

    def fit_slowly(self, dataset):
        time.sleep(1.5)
        return slow_similar(self, dataset)

    monkeypatch.setattr(ItemKNN, "fit", fit_slowly)
    left_at_fit = []
    plain_fit = Popularity.fit

    def note_deadline(self, dataset):
        left_at_fit.append(seconds_left())
        return plain_fit(self, dataset)

    monkeypatch.setattr(Popularity, "fit", note_deadline)
    started = time.monotonic()
    train(settings, sqlite_stores, tune_budget_seconds=6)
    fallback_left, refit_left = left_at_fit
    assert fallback_left is None, "the fallback is fitted before the refit's deadline"
    assert refit_left is not None and refit_left <= 6 * 0.97 - 1.5
    assert refit_left >= 6 * 0.97 - (time.monotonic() - started) - 0.5
