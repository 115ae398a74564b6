"""Every model promotion leaves an audit entry: training, and publishing after erasure."""

from __future__ import annotations

from attune.engine.model_holder import ModelHolder
from attune.ingest.service import IngestService
from attune.training.pipeline import train
from tests.conftest import two_taste_events


def test_training_and_forgetting_promotions_are_audited(any_settings, stores):
    IngestService(any_settings, stores).ingest_events(two_taste_events())
    version = train(any_settings, stores, algorithm="item_knn")
    entries = stores.audit.list(action="model.promote")
    assert [(e.target, e.details["reason"]) for e in entries] == [(version.version_id, "train")]

    holder = ModelHolder(stores, refresh_seconds=0, settings=any_settings)
    history = stores.events.user_history("u0")
    stores.erase_user("u0")
    assert set(holder.forget_user("u0", history).values()) == {"exact"}
    assert holder.wait_for_jobs(timeout=60)
    reasons = [e.details["reason"] for e in stores.audit.list(action="model.promote")]
    assert sorted(reasons) == ["forget", "train"]
