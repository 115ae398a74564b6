#!/usr/bin/env python3
"""What a catalog write costs a serving process, and how soon filters and lists see it.

    .venv/bin/python benchmarks/catalog_write.py [--items 100000] [--writes 8]
        [--stream-rate 5] [--stream-seconds 12] [--write BENCHMARKS.md]

A SQLite catalog of ``--items`` items (the serving benchmark's: 30 categories, prices,
1% unavailable, created over two years), held by one process's serving caches as a
running server holds them: the catalog snapshot, three item spaces of one model version
(its main, session and fallback roles), the masks of two filters in use and the order of
new items. Each write changes one item's price and categories, as a shop's stock or
price feed would; then the process is told (as the API does after a write) and the
time until its snapshot holds the write is taken, with the CPU the process spent.

Two ways of following a write, in the same run, interleaved: ``patch`` (what the code
does: the catalog's change log names the written ids, only they are re-read and patched
into a new snapshot, its views and masks patched from the old one's) and ``whole`` (the
same process with patching turned off: the catalog re-read whole and every view rebuilt,
as before the change log). First ``--writes`` single writes each; then a stream of
writes at ``--stream-rate`` a second for ``--stream-seconds`` (a feed's mix: 80% such
changes, 10% deletes, 10% new items), with the share of a core the process spent and the
delay from each write to the snapshot holding it, and the same stream with the process
not told (the floor: the writes and the watching alone).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serving_world import CATEGORIES, catalog_rows, console, progress_bar

FILTERS = ['"Category 03" in categories', "available and price < 30"]


class Follower:
    """One process's serving caches over the catalog, warmed as a server warms them."""

    def __init__(self, catalog: Any) -> None:
        from attune.engine.catalog_view import CatalogView
        from attune.engine.filtering import CatalogFilters

        self.catalog = catalog
        self.filters = CatalogFilters(catalog)
        self.view = CatalogView(self.filters)
        ids = np.asarray(self.filters.snapshot().rows.tolist(), dtype=object)
        for role in ("main", "session", "fallback"):
            self.view.space(ids.copy(), f"v1/{role}")
        for text in FILTERS:
            self.filters.allowed(self.filters.parse(text), ids, "v1/main")
        self.view.new_items(time.time() - 30 * 86_400)
        self.patching = self.filters._patched

    def mode(self, patch: bool) -> None:
        self.filters._patched = self.patching if patch else (lambda current: None)

    def told(self) -> None:
        """What the API does after a write: check the catalog now."""
        self.filters._next_read_at = float("-inf")  # no spacing left from the other mode
        self.filters.written()

    def holds(self, stamp: str) -> bool:
        current = self.filters._snapshot
        return current is not None and int(current.stamp) >= int(stamp)


def write_one(catalog: Any, rng: np.random.Generator, n_items: int, mixed: bool = False) -> str:
    """Change one random item's price and categories; the catalog's stamp after it.
    ``mixed``: a feed's mix instead: 80% such changes, 10% items deleted, 10% new items
    (some of them deleted ones written again)."""
    kind = rng.choice(["change", "delete", "new"], p=[0.8, 0.1, 0.1]) if mixed else "change"
    item_id = f"i{int(rng.integers(0, n_items))}"
    row = catalog.get_item(item_id)
    if kind == "delete" or (kind == "change" and row is None):
        catalog.delete_items([item_id])
        return str(catalog.content_stamp())
    if kind == "new":
        item_id = f"new{int(rng.integers(0, n_items))}"
        row = {**catalog_rows(1, time.time(), rng)[0], "item_id": item_id}
    row["price"] = float(np.round(rng.lognormal(3.0, 0.8), 2))
    row["categories"] = [CATEGORIES[int(rng.integers(0, len(CATEGORIES)))]]
    row["updated_at"] = time.time()
    catalog.upsert_items([row])
    return str(catalog.content_stamp())


def single_writes(
    follower: Follower, rng: np.random.Generator, n_items: int, writes: int
) -> dict[str, list[tuple[float, float]]]:
    """(seconds until held, CPU seconds) per write, per mode."""
    out: dict[str, list[tuple[float, float]]] = {"patch": [], "whole": []}
    with progress_bar() as bar:
        task = bar.add_task("single writes", total=2 * writes)
        for _ in range(writes):
            for mode in ("patch", "whole"):
                follower.mode(mode == "patch")
                # one untimed write first: the first after a switch frees what the other
                # mode built (a whole read's records, or a chain of patches)
                warm = write_one(follower.catalog, rng, n_items)
                follower.told()
                while not follower.holds(warm):
                    time.sleep(0.005)
                time.sleep(0.3)
                stamp = write_one(follower.catalog, rng, n_items)
                cpu, started = time.process_time(), time.monotonic()
                follower.told()
                while not follower.holds(stamp):
                    time.sleep(0.001)
                out[mode].append((time.monotonic() - started, time.process_time() - cpu))
                bar.advance(task)
                time.sleep(0.3)  # let the background thread finish and settle
    return out


def stream(
    follower: Follower,
    rng: np.random.Generator,
    n_items: int,
    rate: float,
    seconds: float,
    follow: bool = True,
) -> dict[str, Any]:
    """Writes at ``rate`` a second for ``seconds``: cores used and each write's delay
    (``follow=False``: the process is not told, the floor of writing and watching)."""
    delays: list[float] = []
    pending: list[tuple[str, float]] = []
    lock = threading.Lock()
    done = threading.Event()

    def watch() -> None:
        while not (done.is_set() and (not pending or not follow)):
            with lock:
                now = time.monotonic()
                while pending and follower.holds(pending[0][0]):
                    delays.append(now - pending.pop(0)[1])
            time.sleep(0.002)

    while follower.filters._refresh.running:  # what the run before left to do
        time.sleep(0.05)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    cpu, started = time.process_time(), time.monotonic()
    count = int(rate * seconds)
    for k in range(count):
        wait = started + k / rate - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        stamp = write_one(follower.catalog, rng, n_items, mixed=True)
        with lock:
            pending.append((stamp, time.monotonic()))
        if follow:
            follower.told()
    done.set()
    watcher.join(timeout=60)
    elapsed = time.monotonic() - started
    return {
        "writes": count,
        "cores": (time.process_time() - cpu) / elapsed,
        "p50": statistics.median(delays) if delays else None,
        "max": max(delays) if delays else None,
    }


def markdown(args: argparse.Namespace, singles: dict[str, Any], streams: dict[str, Any]) -> str:
    command = "`.venv/bin/python benchmarks/catalog_write.py" + (
        f" --items {args.items} --writes {args.writes} --stream-rate {args.stream_rate}"
        f" --stream-seconds {args.stream_seconds}`"
    )
    lines = [
        "## Catalog writes (serving caches following item writes)",
        "",
        f"Command: {command}; {datetime.now(UTC):%Y-%m-%d}, {platform.machine()} "
        f"{os.cpu_count()} cores ({platform.platform()}). SQLite catalog of {args.items:,} "
        "items held by one process's serving caches (the snapshot, three item spaces of "
        "one model version, two filters in use, the new-items order); each single write "
        "changes one item's price and categories; the stream mixes such changes (80%) with "
        "deletes (10%) and new items (10%). `patch`: only the written items re-read (the "
        "catalog's change log names them) and patched in; `whole`: the same process with "
        "patching off (the catalog re-read whole and every view rebuilt, as before the "
        "change log). Modes interleaved in one run.",
        "",
        "| follow by | single write: until held, median s | slowest s "
        f"| CPU s per write (median) | mixed stream of {args.stream_rate:g}/s: share of a core "
        "| write → held, median s | slowest s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for mode in ("patch", "whole"):
        held = [w for w, _ in singles[mode]]
        cpu = [c for _, c in singles[mode]]
        run = streams[mode]
        lines.append(
            f"| {mode} | {statistics.median(held):.3f} | {max(held):.3f} | "
            f"{statistics.median(cpu):.3f} | {run['cores']:.0%} | {run['p50']:.3f} | "
            f"{run['max']:.3f} |"
        )
    floor = streams["floor"]
    lines.append(
        f"| (floor: the same stream, the process not told of the writes) | | | | "
        f"{floor['cores']:.0%} | | |"
    )
    patch, whole = (statistics.median(c for _, c in singles[m]) for m in ("patch", "whole"))
    lines += [
        "",
        f"A single write costs the process {whole / max(patch, 1e-9):.0f}× less CPU patched "
        f"than re-read whole ({patch * 1000:.1f} ms against {whole * 1000:.0f} ms).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--writes", type=int, default=8)
    parser.add_argument("--stream-rate", type=float, default=5.0)
    parser.add_argument("--stream-seconds", type=float, default=12.0)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    from attune.store.sql.catalog import SqlCatalogStore
    from attune.store.sql.engine import make_engine, migrate

    with tempfile.TemporaryDirectory(prefix="attune-catalog-write-") as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'catalog.db'}")
        migrate(engine)
        catalog = SqlCatalogStore(engine)
        rng = np.random.default_rng(0)
        console.print(f"writing a catalog of {args.items:,} items")
        catalog.upsert_items(catalog_rows(args.items, time.time(), rng))
        follower = Follower(catalog)
        singles = single_writes(follower, rng, args.items, args.writes)
        streams = {}
        for mode in ("floor", "patch", "whole"):
            console.print(f"a stream of writes, {mode}")
            follower.mode(mode == "patch")
            streams[mode] = stream(
                follower, rng, args.items, args.stream_rate, args.stream_seconds, mode != "floor"
            )
            time.sleep(3)  # the last re-read of the stream ends
    text = markdown(args, singles, streams)
    console.print(text)
    if args.write:
        from accuracy import replace_section

        replace_section(args.write, "## Catalog writes", text)


if __name__ == "__main__":
    main()
