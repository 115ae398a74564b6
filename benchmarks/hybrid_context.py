#!/usr/bin/env python3
"""The hybrid with and without its context features on ML-100K (temporal-user-20 split).

    .venv/bin/python benchmarks/hybrid_context.py

Trains the default hybrid on TRAIN twice (``context_keys=[]`` and the default) and
scores 20 items per person with the reference ``evaluate.py``, asking each list in three
contexts: none, the daypart and day of the week of the person's first test event (what a
live request at that moment would say), and one fixed afternoon (what a batch export
run then would say). ML-100K events have timestamps but no device or channel.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT.parent / "shared" / "protocol"))

from evaluate import Evaluator  # noqa: E402  (the reference scorer, PROTOCOL.md)
from split import temporal_user_split  # noqa: E402  (the reference split)

from attune.features.context import DAYPARTS, WEEKDAYS, weekday  # noqa: E402
from attune.features.interactions import WeightPolicy, build_dataset, day_part  # noqa: E402
from attune.models.hybrid import dataset_history  # noqa: E402
from attune.models.registry import create_model  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "ml-100k"


def main() -> None:
    inter = pd.read_csv(DATA / "ml-100k.inter", sep="\t", dtype=str)
    inter.columns = [c.split(":")[0] for c in inter.columns]
    raw = pd.read_csv(DATA / "ml-100k.item", sep="\t", dtype=str, keep_default_na=False)
    raw.columns = [c.split(":")[0] for c in raw.columns]
    items = pd.DataFrame({"item_id": raw["item_id"], "categories": raw["class"].str.split()})
    frame = inter[["user_id", "item_id", "timestamp", "rating"]]
    train, test = temporal_user_split(frame.rename(columns={"rating": "value"}))
    evaluator = Evaluator(train, test)
    events = train.assign(
        type="view", value=train["value"].astype(float), timestamp=train["timestamp"].astype(float)
    )
    data = build_dataset(events, WeightPolicy(), items)
    history = dataset_history(data, np.arange(data.n_users))
    times = test.assign(t=test["timestamp"].astype(float)).groupby("user_id")["t"].min()
    first = times.reindex(data.user_ids).to_numpy()
    contexts = {
        "none": None,
        "next_event_time": [
            {"daypart": DAYPARTS[p], "day_of_week": WEEKDAYS[d]}
            for p, d in zip(day_part(first), weekday(first), strict=True)
        ],
        "fixed_afternoon": [{"daypart": "afternoon", "day_of_week": "tue"}] * data.n_users,
    }
    for name, params in {"without": {"context_keys": []}, "with": {}}.items():
        started = time.perf_counter()
        model = create_model("hybrid", params).fit(data)
        result: dict[str, object] = {"fit_s": round(time.perf_counter() - started, 1)}
        for mode, context in contexts.items():
            query = history if context is None else history.in_context(context)
            index, _ = model.recommend(query, 20)
            lists = {
                str(u): [str(data.item_ids[i]) for i in index[r] if i >= 0]
                for r, u in enumerate(data.user_ids)
            }
            metrics = evaluator.score(lists)
            result[mode] = {k: round(metrics[k], 4) for k in ("ndcg@10", "recall@20")}
        print(name, json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
