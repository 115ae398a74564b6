"""`attune train` with segment keys: the served fallback knows each region's favourites."""

from __future__ import annotations

from attune.engine.model_holder import ModelHolder
from attune.ingest.schemas import UserIn
from attune.ingest.service import IngestService
from attune.training.pipeline import train

START = 1_700_000_000


def _regional_events() -> list[dict[str, object]]:
    """30 people in EU who watch the "e" items on mobile, 30 in US the "u" items on a TV."""
    events: list[dict[str, object]] = []
    for region, device in (("EU", "mobile"), ("US", "tv")):
        for u in range(30):
            for k in range(3):
                events.append(
                    {
                        "user_id": f"{region}{u}",
                        "item_id": f"{region.lower()[0]}{k}",
                        "type": "view",
                        "timestamp": START + u * 60 + k,
                        "context": {"device": device},
                    }
                )
    return events


def test_trained_fallback_answers_per_segment(any_settings, stores):
    settings = any_settings.model_copy(update={"segment_keys": ["traits.region", "context.device"]})
    service = IngestService(settings, stores)
    for region in ("EU", "US"):
        for u in range(30):
            service.put_user(f"{region}{u}", UserIn(traits={"region": region}))
    assert service.ingest_events(_regional_events()).count("accepted") == 180
    version = train(settings, stores, algorithm="item_knn")
    loaded = ModelHolder(stores, refresh_seconds=0).current()
    assert loaded is not None and loaded.version.version_id == version.version_id
    fallback = loaded.fallback

    def top(values: dict[str, str]) -> set[str]:
        scores = fallback.scores_for_segment(values)
        assert scores is not None, values
        return {str(fallback.item_ids[i]) for i in scores.argsort()[::-1][:3]}

    assert top({"traits.region": "EU"}) == {"e0", "e1", "e2"}
    assert top({"traits.region": "US"}) == {"u0", "u1", "u2"}
    assert top({"context.device": "tv"}) == {"u0", "u1", "u2"}
    assert fallback.scores_for_segment({"traits.region": "APAC"}) is None


def test_without_segment_keys_training_reads_no_context(settings, sqlite_stores):
    IngestService(settings, sqlite_stores).ingest_events(_regional_events())
    train(settings, sqlite_stores, algorithm="popularity")
    loaded = ModelHolder(sqlite_stores, refresh_seconds=0).current()
    assert loaded.fallback.scores_for_segment({"context.device": "tv"}) is None
