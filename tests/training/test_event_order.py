"""One ordering rule for training and serving: by timestamp, equal timestamps by arrival.

Regression: training ordered a person's same-timestamp events by item index while
serving ordered them as they arrived, so a sequence model learnt "b then a" from events
it was later shown as "a then b".
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from attune.features.interactions import (
    WeightPolicy,
    arrival_order,
    build_dataset,
    history_matrix,
)
from attune.ingest.service import IngestService
from attune.models.registry import create_model
from attune.models.sasrec import history_sequences, user_sequences

SAME_TIME = 1_700_000_000


def test_equal_timestamps_keep_arrival_order_not_item_order():
    frame = pd.DataFrame(
        {
            "user_id": ["p", "p", "p"],
            "item_id": ["z", "m", "a"],  # arrived z, m, a: the reverse of item order
            "type": "view",
            "value": np.nan,
            "timestamp": [5.0, 5.0, 1.0],
        }
    )
    data = build_dataset(frame, WeightPolicy())
    order = arrival_order(data.user_index, data.timestamp)
    assert [str(data.item_ids[i]) for i in data.item_index[order]] == ["a", "z", "m"]


def test_training_and_serving_order_same_time_events_alike(any_settings, stores):
    service = IngestService(any_settings, stores)
    # two batches at one timestamp: "late" arrives after "early" (item ids sort the other
    # way round, so ordering by item index would swap them)
    service.ingest_events([{"user_id": "p", "item_id": "x-early", "type": "view", "timestamp": 1}])
    service.ingest_events(
        [
            {"user_id": "p", "item_id": "a-late", "type": "view", "timestamp": SAME_TIME},
            {"user_id": "q", "item_id": "x-early", "type": "view", "timestamp": SAME_TIME},
        ]
    )
    service.ingest_events(
        [{"user_id": "p", "item_id": "b-last", "type": "view", "timestamp": SAME_TIME}]
    )
    # training's view: the stored events as a dataset
    data = build_dataset(stores.events.interaction_frame(), WeightPolicy())
    p = data.user_position["p"]
    trained = [str(data.item_ids[i]) for i in user_sequences(data)[p]]
    assert trained == ["x-early", "a-late", "b-last"]
    # serving's view: the live history, read from the store and weighted
    live = history_matrix(
        [stores.events.user_history("p")], data.item_position, data.n_items, WeightPolicy()
    )
    served = [str(data.item_ids[t - 1]) for t in history_sequences(live, 10)[0] if t > 0]
    assert served == trained
    # a sequential model links what training saw in that order
    model = create_model("transitions", {"window": 1, "smoothing": 0.0}).fit(data)
    a, b = data.item_position["a-late"], data.item_position["b-last"]
    assert model.transitions[a, b] > 0 and model.transitions[b, a] == 0
