"""``context.device`` reaches a hybrid champion's ranker through the recommendations API."""

from __future__ import annotations

import numpy as np

from attune.ingest.service import IngestService
from attune.training.pipeline import train
from tests.api.test_filters import ids, recs
from tests.models.test_hybrid_context import PARAMS, device_world


def test_the_device_in_the_request_changes_a_hybrid_champions_list(client, any_settings, stores):
    data = device_world()
    events = [
        {
            "user_id": str(data.user_ids[u]),
            "item_id": str(data.item_ids[i]),
            "type": "view",
            "timestamp": float(t),
            "context": context,
        }
        for u, i, t, context in zip(
            data.user_index, data.item_index, data.timestamp, data.event_context, strict=True
        )
    ]
    assert IngestService(any_settings, stores).ingest_events(events).count("accepted") == len(
        events
    )
    version = train(any_settings, stores, algorithm="hybrid", params=PARAMS)
    assert version.algorithm == "hybrid"

    def share(device: str, people: list[str]) -> float:
        lists = [ids(recs(client, p, n=5, **{"context.device": device})) for p in people]
        return float(np.mean([i.startswith(device[0]) for items in lists for i in items]))

    people = [str(u) for u in data.user_ids[:20]]
    assert share("mobile", people) > 0.9
    assert share("desktop", people) > 0.9
    # the same person, the other context: not the cached answer of the first
    first = ids(recs(client, people[0], n=5, **{"context.device": "mobile"}))
    other = ids(recs(client, people[0], n=5, **{"context.device": "desktop"}))
    assert first != other
    assert ids(recs(client, people[0], n=5, **{"context.device": "mobile"})) == first
