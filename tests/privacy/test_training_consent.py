"""No model learns a profile of someone without personalisation consent."""

from __future__ import annotations

from attune.config import Settings
from attune.ingest.service import IngestService
from attune.models.registry import load_model
from attune.store.factory import Stores
from attune.training.pipeline import train
from tests.conftest import two_taste_events


def test_people_without_personalisation_consent_are_left_out_of_training(
    any_settings: Settings, stores: Stores
) -> None:
    IngestService(any_settings, stores).ingest_events(two_taste_events(40))
    for person in ("u0", "u1", "u2"):
        stores.consent.set(person, personalization=False)
    stores.consent.set("u3", tracking=False)  # tracking only: their stored events still count
    version = train(any_settings, stores, algorithm="als", params={"factors": 4})
    assert version.data_window["users"] == 37
    assert version.data_window["events"] == 120 - 3 * 3
    main = load_model(stores.artifacts.open(version.artifact_uri) / "main")
    assert {"u0", "u1", "u2"}.isdisjoint(main.user_ids.tolist())
    assert "u3" in set(main.user_ids.tolist())


def test_consent_required_trains_only_on_people_who_agreed(
    any_settings: Settings, stores: Stores
) -> None:
    IngestService(any_settings, stores).ingest_events(two_taste_events(40))
    settings = any_settings.model_copy(update={"consent_required": True})
    for k in range(25):
        stores.consent.set(f"u{k}", tracking=True, personalization=k % 5 != 0, default=False)
    version = train(settings, stores, algorithm="item_knn")
    assert version.data_window["users"] == 20  # 25 records, 5 of them refusing
