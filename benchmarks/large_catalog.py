#!/usr/bin/env python3
"""A large, sparse catalog: `attune train --tune` within its budget and the host's memory.

    .venv/bin/python benchmarks/large_catalog.py [--users 100000] [--items 100000]
                                                 [--events 1000000] [--budget 3m]
                                                 [--write BENCHMARKS.md]

Synthetic data of the shape shops have: log-normal activity per person (a few heavy
users, most with a handful of events), Zipf-like item popularity, ids in no particular
order, six months of timestamps. Two measurements in one run:

* item-kNN fitted on all of it (what every version fits for "similar items"), picking
  each item's neighbours from the sparse co-occurrences against the dense similarity
  rows it used before (forced here), with a check that both give the same matrix;
* the user path: ``attune import events``, then ``attune train --tune --budget B``,
  its wall time against the budget and the peak memory of the command against the
  host's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
SECONDS = {"s": 1, "m": 60, "h": 3600}


def synthetic(n_users: int, n_items: int, n_events: int, seed: int = 0) -> pd.DataFrame:
    """user_id, item_id, timestamp, value rows; one row per (person, item)."""
    rng = np.random.default_rng(seed)
    activity = rng.lognormal(0.0, 1.2, n_users)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.9
    users = rng.choice(n_users, n_events, p=activity / activity.sum())
    items = rng.permutation(n_items)[rng.choice(n_items, n_events, p=popularity / popularity.sum())]
    times = 1_600_000_000 + rng.integers(0, 180 * 86_400, n_events)
    frame = pd.DataFrame(
        {"user_id": users.astype(str), "item_id": items.astype(str), "timestamp": times}
    )
    return frame.drop_duplicates(["user_id", "item_id"]).assign(value=1).reset_index(drop=True)


def item_knn_fits(frame: pd.DataFrame) -> dict[str, float | bool | int]:
    """CPU seconds of an item-kNN fit by sparse co-occurrences and by dense rows."""
    import attune.models.item_knn as item_knn
    from attune.features.interactions import WeightPolicy, build_dataset
    from attune.models.registry import create_model

    dataset = build_dataset(frame.assign(type="view"), WeightPolicy())
    fitted, seconds = {}, {}
    default = item_knn.SPARSE_SHARE
    for path, share in (("sparse", default), ("dense", -1.0)):
        item_knn.SPARSE_SHARE = share  # below 0: every block takes the dense rows
        started = time.process_time()
        fitted[path] = create_model("item_knn").fit(dataset).similarity
        seconds[path] = time.process_time() - started
    item_knn.SPARSE_SHARE = default
    same = (fitted["sparse"] != fitted["dense"]).nnz == 0
    return {**seconds, "same": same, "n_items": dataset.n_items}


def user_path(frame: pd.DataFrame, budget: str) -> dict[str, float | str]:
    """Wall seconds and peak memory of `attune train --tune --budget` on the data."""
    cli = str(ROOT / ".venv" / "bin" / "attune")
    with tempfile.TemporaryDirectory(prefix="attune-large-catalog-") as tmp:
        env = dict(os.environ, ATTUNE_DATA_DIR=str(Path(tmp) / "data"))
        env.pop("ATTUNE_DATABASE_URL", None)
        csv = Path(tmp) / "train.csv"
        frame.to_csv(csv, index=False)
        subprocess.run(
            [cli, "import", "events", str(csv), "--type", "view"],
            env=env,
            check=True,
            capture_output=True,
        )
        started = time.perf_counter()
        subprocess.run([cli, "train", "--tune", "--budget", budget], env=env, check=True)
        seconds = time.perf_counter() - started
        stats = subprocess.run(
            [cli, "stats", "--json"], env=env, check=True, capture_output=True, text=True
        ).stdout
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
    chosen = json.loads(stats)["model_versions"][0]["algorithm"]
    return {"seconds": seconds, "peak_gb": peak_gb, "chosen": chosen}


def host_memory_gb() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3


def markdown(args: argparse.Namespace, frame: pd.DataFrame, fits: dict, path: dict) -> str:
    budget_seconds = float(args.budget[:-1]) * SECONDS[args.budget[-1]]
    command = (
        f"`.venv/bin/python benchmarks/large_catalog.py --users {args.users} --items "
        f"{args.items} --events {args.events} --budget {args.budget}`"
    )
    return "\n".join(
        [
            "## Large catalog (synthetic, `attune train --tune`)",
            "",
            f"Command: {command}; {datetime.now(UTC):%Y-%m-%d}, {platform.machine()} "
            f"{os.cpu_count()} cores, {host_memory_gb():.0f} GB ({platform.platform()}). "
            f"{len(frame):,} distinct (person, item) rows of {frame['user_id'].nunique():,} "
            f"people over {fits['n_items']:,} items (log-normal activity, Zipf-like items).",
            "",
            "| measure | result | against | ratio |",
            "|---|---:|---|---:|",
            f"| item-kNN fit, neighbours from sparse co-occurrences (CPU s) "
            f"| {fits['sparse']:.1f} | dense similarity rows {fits['dense']:.1f} s "
            f"| × {fits['dense'] / fits['sparse']:.1f} faster |",
            f"| the two fits' similarity matrices | "
            f"{'identical' if fits['same'] else 'DIFFERENT'} | | |",
            f"| `attune train --tune --budget {args.budget}` (wall s) | {path['seconds']:.1f} "
            f"| budget {budget_seconds:.0f} s | × {path['seconds'] / budget_seconds:.2f} |",
            f"| peak memory of the commands (GB) | {path['peak_gb']:.1f} "
            f"| host {host_memory_gb():.0f} GB | {path['peak_gb'] / host_memory_gb():.0%} |",
            "",
            f"Chosen: {path['chosen']} (the synthetic items are drawn independently of the "
            "person, so popularity is what there is to learn).",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--budget", default="3m")
    parser.add_argument("--write", type=Path, help="Replace the section in this file")
    args = parser.parse_args()
    frame = synthetic(args.users, args.items, args.events)
    fits = item_knn_fits(frame)
    path = user_path(frame, args.budget)
    text = markdown(args, frame, fits, path)
    print(text)
    if args.write:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from accuracy import replace_section

        replace_section(args.write, "## Large catalog", text)


if __name__ == "__main__":
    main()
