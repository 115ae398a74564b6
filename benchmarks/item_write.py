#!/usr/bin/env python3
"""How soon an item written through the API reaches item pages.

    .venv/bin/python benchmarks/item_write.py [--writes 8] [--write BENCHMARKS.md]

In a fresh data folder: ``attune import movielens`` of the shared ml-latest-small and a
plain ``attune train``. Then, in one process serving the app (Starlette's test client:
the app's own background threads, no network), each of ``--writes`` new films is
``PUT /v1/items/{id}`` with a title, genres and ``created_at``, and its page
(``GET /v1/items/{id}/similar``) is asked for every 5 ms until its look-alikes (matched by
its description, source ``current_item``) replace the popular fill. Reported: seconds
from the PUT's answer to that page, with the re-read the write starts, against the
periodic check alone (the same process with the write's nudge turned off), writes
spaced 1 to ``--writes`` seconds apart so they land at different points of the period.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SMALL = ROOT.parent / "shared" / "data" / "ml-latest-small"
KEY = "bench-admin-key-0123456789abcdef"


def prepare(folder: str) -> None:
    cli = str(ROOT / ".venv" / "bin" / "attune")
    env = dict(os.environ, ATTUNE_DATA_DIR=folder)
    env.pop("ATTUNE_DATABASE_URL", None)
    for args in (["import", "movielens", str(SMALL)], ["train"]):
        subprocess.run([cli, *args], env=env, check=True, capture_output=True)


def seconds_to_page(folder: str, writes: int, nudge: bool) -> list[float]:
    """Seconds from each PUT's answer to its page showing its look-alikes."""
    from starlette.testclient import TestClient

    import attune.engine.filtering as filtering
    from attune.api.app import create_app

    os.environ.update(ATTUNE_DATA_DIR=folder, ATTUNE_ADMIN_KEY=KEY, ATTUNE_EMBEDDED_WORKER="false")
    written = filtering.CatalogFilters.written
    if not nudge:
        filtering.CatalogFilters.written = lambda self: None  # type: ignore[method-assign]
    try:
        app = create_app()
        found = []
        with TestClient(app, headers={"Authorization": f"Bearer {KEY}"}) as client:
            client.get("/v1/items/1/similar", params={"n": 5})  # the catalog snapshot read
            for k in range(writes):
                time.sleep(1 + k)  # writes at different points of the 5-second period
                item = f"bench-{'nudge' if nudge else 'period'}-{k}"
                body = {
                    "title": f"Toy Story {k + 5}",
                    "categories": ["Adventure", "Animation", "Children", "Comedy"],
                    "created_at": int(time.time()),
                }
                assert client.put(f"/v1/items/{item}", json=body).status_code in (200, 201)
                started = time.perf_counter()
                while True:
                    page = client.get(f"/v1/items/{item}/similar", params={"n": 5}).json()
                    if page["items"] and page["items"][0]["source"] == "current_item":
                        break
                    time.sleep(0.005)
                found.append(time.perf_counter() - started)
        return found
    finally:
        filtering.CatalogFilters.written = written  # type: ignore[method-assign]


def report(writes: int) -> str:
    with tempfile.TemporaryDirectory(prefix="attune-item-write-") as folder:
        prepare(folder)
        periodic = seconds_to_page(folder, writes, nudge=False)
        nudged = seconds_to_page(folder, writes, nudge=True)
    stamp = datetime.now(UTC).date().isoformat()
    lines = [
        "## Item writes reaching item pages",
        "",
        f"Command: `.venv/bin/python benchmarks/item_write.py --writes {writes}`; {stamp}, "
        f"{platform.machine()} ({platform.platform()}). ml-latest-small, a plain "
        "`attune train`; see the script's docstring.",
        "",
        "| catalog re-read | writes | median s | slowest s |",
        "|---|---:|---:|---:|",
    ]
    for what, times in (
        ("at the next periodic check (every 5 s, started by a request)", periodic),
        ("started by the write", nudged),
    ):
        lines.append(
            f"| {what} | {len(times)} | {statistics.median(times):.2f} | {max(times):.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=8)
    parser.add_argument("--write", type=Path, help="Replace the section in this file")
    args = parser.parse_args()
    text = report(args.writes)
    print(text)
    if args.write:
        from accuracy import replace_section

        replace_section(args.write, "## Item writes reaching item pages", text)


if __name__ == "__main__":
    main()
