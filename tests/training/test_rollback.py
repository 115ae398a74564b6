"""Going back to an earlier model version: what serves, what is refused, what retraining
then reuses."""

from __future__ import annotations

import pytest

from attune.engine.model_holder import ModelHolder
from attune.errors import ConflictError, NotFoundError
from attune.ingest.service import IngestService
from attune.training.pipeline import train
from attune.training.promotion import previous_version, roll_back
from tests.conftest import two_taste_events


@pytest.fixture
def two_versions(any_settings, stores):
    IngestService(any_settings, stores).ingest_events(two_taste_events())
    good = train(any_settings, stores, algorithm="item_knn")
    bad = train(any_settings, stores, algorithm="popularity")
    return good, bad


def test_only_the_newest_champion_says_champion(stores, two_versions):
    good, bad = two_versions
    statuses = {v.version_id: v.status for v in stores.model_versions.list_versions()}
    assert statuses == {good.version_id: "retired", bad.version_id: "champion"}


def test_rolling_back_serves_the_earlier_files_and_is_audited(any_settings, stores, two_versions):
    good, bad = two_versions
    holder = ModelHolder(stores, refresh_seconds=0, settings=any_settings)
    assert holder.current().version.algorithm == "popularity"
    assert previous_version(stores).version_id == good.version_id

    back = roll_back(stores, good.version_id, actor="test")

    assert stores.model_versions.latest("champion").version_id == back.version_id
    assert back.seq > bad.seq and back.artifact_uri == good.artifact_uri
    assert back.metrics["rolled_back_to"] == good.version_id
    assert back.metrics["rolled_back_from"] == bad.version_id
    served = holder.current()
    assert served.version.version_id == back.version_id
    assert served.version.algorithm == "item_knn"
    (entry,) = stores.audit.list(action="model.rollback")
    assert entry.details == {"from": bad.version_id, "to": good.version_id, "seq": back.seq}
    assert entry.actor == "test"
    # undoing the rollback: the version served before it is the one rolled back from
    assert previous_version(stores).version_id == bad.version_id


def test_refusals(any_settings, stores, two_versions):
    _good, bad = two_versions
    with pytest.raises(NotFoundError):
        roll_back(stores, "no-such-version")
    with pytest.raises(ConflictError, match="already serving"):
        roll_back(stores, bad.version_id)


def test_a_version_older_than_an_erasure_cannot_come_back(any_settings, stores, two_versions):
    from attune.privacy.service import PrivacyService

    good, _bad = two_versions
    holder = ModelHolder(stores, refresh_seconds=0, settings=any_settings)
    PrivacyService(any_settings, stores, holder).erase("u0")
    assert holder.wait_for_jobs(timeout=60)
    with pytest.raises(ConflictError, match="before a person was erased"):
        roll_back(stores, good.version_id)
    assert stores.model_versions.latest("champion").metrics.get("rolled_back_to") is None


def _mark_tuned(stores, version) -> None:
    """Record ``version`` as chosen by `train --tune` (which takes minutes to run)."""
    from attune.store.sql.schema import model_versions

    metrics = {**version.metrics, "selection": "tuned"}
    with stores.engine.begin() as conn:
        conn.execute(
            model_versions.update()
            .where(model_versions.c.version_id == version.version_id)
            .values(metrics=metrics)
        )


def test_retraining_after_a_rollback_keeps_the_configuration_gone_back_to(any_settings, stores):
    from attune.training.pipeline import last_tuned

    IngestService(any_settings, stores).ingest_events(two_taste_events())
    first = train(any_settings, stores, algorithm="item_knn")
    second = train(any_settings, stores, algorithm="ease", params={"l2": 50.0})
    _mark_tuned(stores, first)
    _mark_tuned(stores, second)
    assert last_tuned(stores).version_id == second.version_id
    back = roll_back(stores, first.version_id)
    assert last_tuned(stores).version_id == back.version_id
    assert last_tuned(stores).algorithm == "item_knn"
    # a plain retrain now fits what was gone back to, not the configuration rolled back from
    assert train(any_settings, stores).algorithm == "item_knn"


def test_rolling_back_to_an_untuned_version_drops_the_newer_tuned_one(any_settings, stores):
    from attune.training.pipeline import last_tuned

    IngestService(any_settings, stores).ingest_events(two_taste_events())
    plain = train(any_settings, stores, algorithm="item_knn")
    tuned = train(any_settings, stores, algorithm="ease", params={"l2": 50.0})
    _mark_tuned(stores, tuned)
    roll_back(stores, plain.version_id)
    assert last_tuned(stores) is None


def test_pruning_deletes_old_files_but_never_what_serves_or_is_shared(any_settings, stores):
    from pathlib import Path

    from attune.errors import ValidationError
    from attune.training.promotion import prune

    IngestService(any_settings, stores).ingest_events(two_taste_events())
    first = train(any_settings, stores, algorithm="item_knn")
    second = train(any_settings, stores, algorithm="popularity")
    back = roll_back(stores, first.version_id)  # shares first's folder
    third = train(any_settings, stores, algorithm="ease")
    folder = {v.version_id: Path(stores.artifacts.open(v.artifact_uri)) for v in (first, second)}

    with pytest.raises(ValidationError):
        prune(stores, keep=1)
    dry = prune(stores, keep=2, dry_run=True)
    assert dry.pruned == [second.version_id] and folder[second.version_id].is_dir()

    report = prune(stores, keep=2)
    assert report.pruned == [second.version_id] and report.freed_bytes > 0
    assert not folder[second.version_id].exists()
    assert folder[first.version_id].is_dir(), "the kept rollback shares it"
    statuses = {v.version_id: v.status for v in stores.model_versions.list_versions()}
    assert statuses == {
        third.version_id: "champion",
        back.version_id: "retired",
        second.version_id: "pruned",
        first.version_id: "retired",
    }
    with pytest.raises(NotFoundError) as gone:
        roll_back(stores, second.version_id)  # its files are gone
    assert "pruned" in str(gone.value) and "file:" not in str(gone.value)  # no server path
    assert previous_version(stores).version_id == back.version_id
    assert prune(stores, keep=2).pruned == [], "nothing more to do"
