#!/usr/bin/env python3
"""The champion/challenger check of scheduled retraining, on ML-100K.

    .venv/bin/python benchmarks/retrain_check.py [--write BENCHMARKS.md]

For each scenario, in a fresh data folder: the oldest 90% of ML-100K's ratings (by time)
are imported and ``attune train`` makes the serving version; then the newest 10% arrive,
in some scenarios with scripted clients' events before them, and a retrain with the check
(``train(gate=True)``, what the worker's scheduled retrain runs) says whether its version
serves. Scenarios:

* **healthy**: the newest 10% as they are;
* **random pairs**: 20,000 clients each viewing two items drawn at random;
* **fixed pairs**: 40 clients per item, each viewing the item and one fixed, unrelated
  partner (as a crawler of "related products" pages might), so every item is tied to a
  stranger more strongly than to most of its real neighbours.

The scripted events carry the time of the first new rating, so they fall in the part of
the new data the challenger learns from, and the real ratings after them are what both
versions are judged on. The healthy scenario is also retrained without the check, for
what the check costs.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

ROOT = Path(__file__).resolve().parent.parent
ML100K = ROOT.parent / "shared" / "data" / "ml-100k" / "ml-100k.inter"
SCENARIOS = ("healthy", "random pairs", "fixed pairs")
console = Console()


def ratings() -> pd.DataFrame:
    frame = pd.read_csv(ML100K, sep="\t", dtype=str)
    frame.columns = [c.split(":")[0] for c in frame.columns]
    frame["timestamp"] = frame["timestamp"].astype(float)
    return frame.sort_values("timestamp", kind="stable").reset_index(drop=True)


def events(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {
            "user_id": f"u{r.user_id}",
            "item_id": str(r.item_id),
            "type": "view",
            "value": float(r.rating),
            "timestamp": float(r.timestamp),
        }
        for r in frame.itertuples()
    ]


def scripted(scenario: str, items: np.ndarray, at: float) -> list[dict[str, Any]]:
    """The scripted clients' events of ``scenario`` (none when healthy)."""
    rng = np.random.default_rng(0)
    if scenario == "random pairs":
        pairs = [rng.choice(items, 2, replace=False) for _ in range(20_000)]
    elif scenario == "fixed pairs":
        partner = dict(zip(items, rng.permutation(items), strict=True))
        pairs = [(item, partner[item]) for item in items for _ in range(40)]
    else:
        return []
    return [
        {"user_id": f"script{n}", "item_id": str(item), "type": "view", "timestamp": at}
        for n, pair in enumerate(pairs)
        for item in pair
    ]


def run_scenario(scenario: str, frame: pd.DataFrame, tell: Any) -> dict[str, Any]:
    from attune.config import Settings
    from attune.ingest.service import IngestService
    from attune.store.factory import open_stores
    from attune.training.pipeline import train

    cut = int(len(frame) * 0.9)
    old, new = frame.iloc[:cut], frame.iloc[cut:]
    with tempfile.TemporaryDirectory(prefix="attune-retrain-check-") as tmp:
        settings = Settings(data_dir=Path(tmp))
        stores = open_stores(settings)
        try:
            ingest = IngestService(settings, stores)
            tell(f"{scenario}: importing the oldest 90%")
            ingest.ingest_events(events(old))
            tell(f"{scenario}: training the serving version")
            champion = train(settings, stores)
            extra = scripted(scenario, frame["item_id"].unique(), float(new["timestamp"].min()))
            tell(f"{scenario}: importing {len(extra):,} scripted events and the newest 10%")
            ingest.ingest_events(extra + events(new))
            tell(f"{scenario}: retraining with the check")
            started = time.perf_counter()
            version = train(settings, stores, gate=True)
            checked = time.perf_counter() - started
            plain = None
            if scenario == "healthy":  # after: this one makes a new serving version
                tell(f"{scenario}: retraining without the check")
                started = time.perf_counter()
                train(settings, stores)
                plain = time.perf_counter() - started
        finally:
            stores.close()
    return {
        "scenario": scenario,
        "scripted": len(extra),
        "champion": champion.algorithm,
        "challenger": version.algorithm,
        "status": version.status,
        "gate": version.metrics["gate"],
        "seconds": checked,
        "plain_seconds": plain,
    }


def markdown(results: list[dict[str, Any]]) -> str:
    lines = [
        "## Champion/challenger check (ML-100K)",
        "",
        "Command: `.venv/bin/python benchmarks/retrain_check.py`; "
        f"{datetime.now(UTC):%Y-%m-%d}, {platform.machine()} {os.cpu_count()} cores "
        f"({platform.platform()}). The serving version is trained on the oldest 90% of the "
        "ratings (by time), then the newest 10% arrive (with scripted clients' events before "
        "them in two scenarios) and a retrain with the check decides whether its version "
        "serves (see the script's docstring and docs/operations.md).",
        "",
        "| scenario | scripted events | serving → new | verdict | new NDCG@10 | serving NDCG@10 "
        "| people judged | retrain seconds |",
        "|---|---:|---|---|---:|---:|---:|---:|",
    ]
    for r in results:
        gate = r["gate"]
        new = gate.get("challenger_ndcg@10")
        old = gate.get("champion_ndcg@10")
        seconds = f"{r['seconds']:.0f}"
        if r["plain_seconds"] is not None:
            seconds += f" ({r['plain_seconds']:.0f} without the check)"
        lines.append(
            f"| {r['scenario']} | {r['scripted']:,} | {r['champion']} → {r['challenger']} "
            f"| **{gate['verdict']}** ({r['status']}) "
            f"| {'-' if new is None else f'{new:.4f}'} | {'-' if old is None else f'{old:.4f}'} "
            f"| {gate['people']:,} | {seconds} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--write", type=Path, help="Replace the section in this file")
    args = parser.parse_args()
    frame = ratings()
    results = []
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("starting", total=len(SCENARIOS))
        for scenario in SCENARIOS:
            results.append(
                run_scenario(scenario, frame, lambda text: bar.update(task, description=text))
            )
            bar.advance(task)
    text = markdown(results)
    console.print(text)
    if args.write:
        from accuracy import replace_section

        replace_section(args.write, "## Champion/challenger check", text)


if __name__ == "__main__":
    main()
