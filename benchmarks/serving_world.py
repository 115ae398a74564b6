"""The synthetic world of ``benchmarks/serving.py``: catalog, events, model.

A catalog with long-tail popularity (30 categories, 1% of items unavailable, created
over two years) and the events of ``n_users`` people (log-normal activity, Zipf-like
item choice; view / click / add_to_cart / purchase over 180 days), written straight
into the SQLite event store through its bulk path (``insert_new_events``), then an
item-kNN model trained by the ``attune train`` pipeline. A world already in the folder
with the same sizes is reused.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

ADMIN_KEY = "bench-serving-admin-key-0123456789"
CATEGORIES = [f"Category {k:02d}" for k in range(30)]
EVENT_TYPES = (["view", "click", "add_to_cart", "purchase"], [0.8, 0.1, 0.06, 0.04])
DAY = 86_400.0

console = Console()


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def settings_env(data_dir: Path) -> dict[str, str]:
    """Environment of every process that opens the benchmark's stores (embedded mode)."""
    return {
        "ATTUNE_DATA_DIR": str(data_dir),
        "ATTUNE_ADMIN_KEY": ADMIN_KEY,
        "ATTUNE_EMBEDDED_WORKER": "false",
        "ATTUNE_MODEL_REFRESH_SECONDS": "5",
    }


def open_world(data_dir: Path) -> tuple[Any, Any]:
    from attune.config import Settings
    from attune.store.factory import open_stores

    settings = Settings(data_dir=data_dir, admin_key=ADMIN_KEY)
    return settings, open_stores(settings)


def catalog_rows(n_items: int, now: float, rng: np.random.Generator) -> list[dict[str, Any]]:
    created = now - rng.uniform(0, 730 * DAY, n_items)
    first = rng.integers(0, len(CATEGORIES), n_items)
    second = rng.integers(0, len(CATEGORIES), n_items)
    has_second = rng.random(n_items) < 0.4
    unavailable = rng.random(n_items) < 0.01
    prices = np.round(rng.lognormal(3.0, 0.8, n_items), 2)
    rows = []
    for k in range(n_items):
        cats = [CATEGORIES[first[k]]]
        if has_second[k] and second[k] != first[k]:
            cats.append(CATEGORIES[second[k]])
        rows.append(
            {
                "item_id": f"i{k}",
                "title": f"Item {k}",
                "text": None,
                "categories": cats,
                "tags": [],
                "language": None,
                "translations": None,
                "regions": None,
                "available": not bool(unavailable[k]),
                "price": float(prices[k]),
                "created_at": float(created[k]),
                "properties": None,
                "updated_at": now,
            }
        )
    return rows


def event_batches(
    n_events: int, n_users: int, n_items: int, now: float, rng: np.random.Generator, size: int
) -> Iterator[list[dict[str, Any]]]:
    """Event rows in batches: log-normal activity per person, Zipf-like item choice
    (the first items are the most popular), times over the last 180 days."""
    activity = rng.lognormal(0.0, 1.2, n_users)
    activity /= activity.sum()
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.9
    popularity /= popularity.sum()
    types, shares = EVENT_TYPES
    for start in range(0, n_events, size):
        count = min(size, n_events - start)
        users = rng.choice(n_users, size=count, p=activity)
        items = rng.choice(n_items, size=count, p=popularity)
        kinds = rng.choice(len(types), size=count, p=shares)
        times = now - 3600.0 - rng.uniform(0, 180 * DAY, count)
        yield [
            {
                "event_id": f"e{start + k:010d}",
                "user_id": f"u{u}",
                "anonymous_id": None,
                "item_id": f"i{i}",
                "type": types[t],
                "value": None,
                "timestamp": ts,
                "received_at": ts,
                "context": None,
                "properties": None,
                "recommendation_id": None,
            }
            for k, (u, i, t, ts) in enumerate(
                zip(users.tolist(), items.tolist(), kinds.tolist(), times.tolist(), strict=True)
            )
        ]


def build_world(data_dir: Path, n_users: int, n_items: int, n_events: int) -> dict[str, Any]:
    """Write the catalog and events (or reuse them), train item-kNN if needed."""
    marker = data_dir / "bench-world.json"
    wanted = {"users": n_users, "items": n_items, "events": n_events}
    if marker.exists() and json.loads(marker.read_text()).get("sizes") == wanted:
        world = json.loads(marker.read_text())
        console.print(f"reusing the world in {data_dir}")
    else:
        if data_dir.exists():
            shutil.rmtree(data_dir)
        data_dir.mkdir(parents=True)
        world = {"sizes": wanted, **write_world(data_dir, n_users, n_items, n_events)}
        marker.write_text(json.dumps(world))
    if "train_seconds" not in world:
        world.update(train_model(data_dir))
        marker.write_text(json.dumps(world))
    return world


def write_world(data_dir: Path, n_users: int, n_items: int, n_events: int) -> dict[str, Any]:
    from attune.store.sql.bulk import insert_new_events

    _settings, stores = open_world(data_dir)
    rng = np.random.default_rng(7)
    now = time.time()
    started = time.perf_counter()
    stores.catalog.upsert_items(catalog_rows(n_items, now, rng))
    batch = 100_000
    stored = 0
    with progress_bar() as bar:
        task = bar.add_task("events → SQLite (bulk path)", total=n_events)
        for rows in event_batches(n_events, n_users, n_items, now, rng, batch):
            with stores.engine.begin() as conn:
                # a large page cache for the load only: the indexes outgrow the default
                conn.exec_driver_sql("PRAGMA cache_size=-524288")
                stored += len(insert_new_events(conn, rows))
            bar.advance(task, len(rows))
    seconds = time.perf_counter() - started
    with stores.engine.connect() as conn:
        from sqlalchemy import text

        people = conn.execute(text("SELECT count(DISTINCT user_id) FROM events")).scalar_one()
    stores.close()
    console.print(f"{stored:,} events of {people:,} people written in {seconds:.0f} s")
    return {"stored_events": stored, "people": int(people), "write_seconds": round(seconds, 1)}


def train_model(data_dir: Path) -> dict[str, Any]:
    from attune.training.pipeline import train

    settings, stores = open_world(data_dir)
    with progress_bar() as bar:
        task = bar.add_task("train item_knn (attune train pipeline)", total=100)

        def tell(message: str, fraction: float) -> None:
            bar.update(task, completed=100 * fraction, description=f"train: {message}")

        started = time.perf_counter()
        version = train(settings, stores, algorithm="item_knn", params={}, progress=tell)
        seconds = time.perf_counter() - started
    stores.close()
    console.print(f"trained {version.version_id} in {seconds:.0f} s")
    return {"version": version.version_id, "train_seconds": round(seconds, 1)}
