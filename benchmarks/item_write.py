#!/usr/bin/env python3
"""How soon an item written through the API reaches item pages and lists.

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

Then two server processes on one Redis (two apps in this process, each with its own
engine, catalog view and background threads, as ``attune serve --workers 2`` runs them):
each time, a person's first recommended film is marked ``"available": false`` through
the first, and the second's list for that person is asked for every 5 ms until the film
is gone; then it is put back on sale and the next write waits until the second offers it
again. Reported: whether the first process's own next list still offered it, and
seconds until the second's did not, with the catalog broadcast and without it (the
second's periodic check alone), writes again spaced 1 to ``--writes`` seconds apart.
Needs Redis (``ATTUNE_BENCH_REDIS_URL``, default ``redis://127.0.0.1:6379/0``).
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


def seconds_to_gone(folder: str, writes: int, broadcast: bool) -> tuple[int, list[float]]:
    """(lists of the writing process still offering the film right after its write,
    seconds until the other process's list no longer did) per write."""
    import uuid

    from starlette.testclient import TestClient

    from attune.api.app import create_app

    prefix = f"attune-bench-item-write-{uuid.uuid4().hex[:8]}"
    os.environ.update(
        ATTUNE_DATA_DIR=folder,
        ATTUNE_ADMIN_KEY=KEY,
        ATTUNE_EMBEDDED_WORKER="false",
        ATTUNE_REDIS_URL=os.environ.get("ATTUNE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
        ATTUNE_REDIS_PREFIX=prefix,
    )
    headers = {"Authorization": f"Bearer {KEY}"}
    try:
        with (
            TestClient(create_app(), headers=headers) as first,
            TestClient(create_app(), headers=headers) as second,
        ):
            if not broadcast:
                first.app.state.services.recommendations.announce_catalog = None

            def listed(client: TestClient, person: str) -> list[str]:
                answer = client.get(f"/v1/users/{person}/recommendations", params={"n": 10})
                return [it["item_id"] for it in answer.json()["items"]]

            stale, found = 0, []
            for k in range(writes):
                person = str(k + 1)
                film = listed(second, person)[0]
                time.sleep(1 + k)  # writes at different points of the 5-second period
                body = first.get(f"/v1/items/{film}").json()
                body = {key: body[key] for key in ("title", "categories", "created_at")}
                put = first.put(f"/v1/items/{film}", json={**body, "available": False})
                assert put.status_code == 200, put.text
                started = time.perf_counter()
                stale += film in listed(first, person)
                while film in listed(second, person):
                    time.sleep(0.005)
                found.append(time.perf_counter() - started)
                assert first.put(f"/v1/items/{film}", json=body).status_code == 200
                while film not in listed(second, person):
                    time.sleep(0.05)
        return stale, found
    finally:
        for name in ("ATTUNE_REDIS_URL", "ATTUNE_REDIS_PREFIX"):
            os.environ.pop(name, None)
        import redis

        client = redis.Redis.from_url(
            os.environ.get("ATTUNE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
        )
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)


def report(writes: int) -> str:
    with tempfile.TemporaryDirectory(prefix="attune-item-write-") as folder:
        prepare(folder)
        periodic = seconds_to_page(folder, writes, nudge=False)
        nudged = seconds_to_page(folder, writes, nudge=True)
        quiet = seconds_to_gone(folder, writes, broadcast=False)
        told = seconds_to_gone(folder, writes, broadcast=True)
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
    lines += [
        "",
        "A film sold out through one of two server processes on one Redis:",
        "",
        "| the other process learns it | writes | writer's next list still offering it "
        "| median s until the other's list does not | slowest s |",
        "|---|---:|---:|---:|---:|",
    ]
    for what, (stale, times) in (
        ("at its next periodic check (every 5 s)", quiet),
        ("from the writer's broadcast", told),
    ):
        lines.append(
            f"| {what} | {len(times)} | {stale} | {statistics.median(times):.3f} "
            f"| {max(times):.3f} |"
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
