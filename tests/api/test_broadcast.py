"""Erasures and catalog writes through one server process reach every other process at
once (`attune serve --workers N` on one Redis): models forget before any new version is
published, and lists stop offering an item sold out or deleted a moment ago before the
other processes' own catalog checks."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from attune.api.app import create_app
from attune.config import Settings
from attune.engine.broadcast import ServerBroadcast
from attune.ingest.service import IngestService
from attune.store.factory import Stores
from attune.store.protocols import HistoryEvent
from attune.training.pipeline import train
from tests.api.test_erasure_reaches_models import events
from tests.conftest import AUTH, REDIS_URL
from tests.privacy.traces import redis_traces


@pytest.fixture
def shared(any_settings: Settings, stores: Stores, redis_client) -> Iterator[Settings]:
    """Settings of a trained deployment (item-kNN) whose processes share one Redis."""
    prefix = f"attune-broadcast-test-{uuid.uuid4().hex[:8]}"
    settings = any_settings.model_copy(update={"redis_url": REDIS_URL, "redis_prefix": prefix})
    IngestService(any_settings, stores).ingest_events(events())
    train(any_settings, stores, algorithm="item_knn")
    yield settings
    for key in redis_client.scan_iter(match=f"{prefix}*"):
        redis_client.delete(key)


def listed(client: TestClient, user: str = "neighbour") -> list[str]:
    # a fresh list each time: the cache is keyed by version, which forgetting keeps
    client.app.state.services.stores.cache.delete_prefix("user:")
    response = client.get(f"/v1/users/{user}/recommendations", params={"n": 10})
    assert response.status_code == 200, response.text
    return [it["item_id"] for it in response.json()["items"]]


def eventually(check: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def hold_jobs(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Keep the process from saving a new version after an erasure; the jobs it asked for."""
    asked: list[str] = []
    monkeypatch.setattr(client.app.state.services.models, "_schedule", asked.append)
    return asked


@pytest.mark.redis
def test_erasure_in_one_process_reaches_the_other_before_a_new_version(
    shared: Settings, stores: Stores, redis_client, monkeypatch: pytest.MonkeyPatch
) -> None:
    champion = stores.model_versions.latest("champion")
    with (
        TestClient(create_app(shared), headers=AUTH) as first,
        TestClient(create_app(shared), headers=AUTH) as second,
    ):
        asked = hold_jobs(first, monkeypatch)
        second_jobs = hold_jobs(second, monkeypatch)
        assert "x" in listed(first) and "x" in listed(second)  # only because of "bridge"

        assert first.delete("/v1/users/bridge").status_code == 200
        assert "x" not in listed(first)
        assert eventually(lambda: "x" not in listed(second))
        # no new version did it: the champion is the one trained, and only the origin
        # asked for the job that saves one
        assert stores.model_versions.latest("champion").version_id == champion.version_id
        assert second.app.state.services.models.current().version == champion
        assert asked == ["publish"] and second_jobs == []
        assert second.app.state.broadcast.received == 1
        assert first.app.state.broadcast.received == 0  # its own message: skipped
        # pub/sub stores nothing: no key holds the person
        assert redis_traces(redis_client, shared.redis_prefix, "bridge") == []


@pytest.mark.redis
def test_erasure_from_the_command_line_reaches_running_servers_and_saves_a_version(
    shared: Settings, stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`attune users erase` is as complete as DELETE /v1/users/{id}: running server
    processes forget the person at once, and the command publishes the version without
    them before it returns."""
    from typer.testing import CliRunner

    from attune.cli import app as cli

    champion = stores.model_versions.latest("champion")
    for name in ("data_dir", "database_url", "redis_url", "redis_prefix"):
        value = getattr(shared, name)
        if value is not None:
            monkeypatch.setenv(f"ATTUNE_{name.upper()}", str(value))
    with TestClient(create_app(shared), headers=AUTH) as server:
        hold_jobs(server, monkeypatch)
        assert "x" in listed(server)
        result = CliRunner().invoke(cli, ["users", "erase", "bridge"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert "broadcast to running servers" in result.output
        assert eventually(lambda: "x" not in listed(server))
        assert server.app.state.broadcast.received == 1
    saved = stores.model_versions.latest("champion")
    assert saved.version_id != champion.version_id  # the command's own version


@pytest.mark.redis
def test_the_subscriber_survives_bad_messages(
    shared: Settings, redis_client, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (
        TestClient(create_app(shared), headers=AUTH) as first,
        TestClient(create_app(shared), headers=AUTH) as second,
    ):
        hold_jobs(first, monkeypatch)
        broadcast: ServerBroadcast = second.app.state.broadcast
        channel = broadcast.channel("default")
        good = {
            "format": 1,
            "origin": "elsewhere",
            "workspace": "default",
            "user_id": "bridge",
            "history": [["x", "view", None, 1_700_001_001]],
        }
        bad: list[Any] = [
            b"\xff not json",
            "[1, 2]",
            json.dumps({**good, "format": 99}),
            json.dumps({**good, "history": [["x", "view"]]}),
            json.dumps({**good, "history": [["x", "view", "much", 1.0]]}),
            json.dumps({**good, "user_id": 7}),
            json.dumps({**good, "workspace": "other"}),  # not this channel's workspace
        ]
        for message in bad:
            assert redis_client.publish(channel, message) >= 1
        assert first.delete("/v1/users/bridge").status_code == 200
        assert eventually(lambda: "x" not in listed(second))
        assert broadcast.alive and broadcast.received == 1


@pytest.mark.redis
def test_a_dropped_subscription_reconnects(redis_client) -> None:
    class Held:
        def __init__(self) -> None:
            self.forgot: list[tuple[str, list[HistoryEvent], bool]] = []

        def refresh(self) -> None:
            return None

        def forget_user(self, user_id: str, history: Any, *, durable: bool = True) -> dict:
            self.forgot.append((user_id, list(history), durable))
            return {}

    prefix = f"attune-broadcast-test-{uuid.uuid4().hex[:8]}"
    origin, subscriber = (
        ServerBroadcast(redis_client, prefix),
        ServerBroadcast(redis_client, prefix, poll_seconds=0.05),
    )
    held = Held()
    subscriber.attach("default", held)
    opened: list[Any] = []
    real = redis_client.pubsub

    class Dropping:
        """The first subscription's connection drops once it is established."""

        def __init__(self) -> None:
            self.pubsub = real()
            opened.append(self)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.pubsub, name)

        def get_message(self, **options: Any) -> Any:
            if len(opened) == 1 and subscriber.subscribed:
                raise ConnectionError("connection reset by peer")
            return self.pubsub.get_message(**options)

    subscriber.client = type("Client", (), {"pubsub": staticmethod(Dropping)})()
    history = [HistoryEvent("x", "view", None, 1_700_001_001.0)]
    try:
        assert subscriber.start()
        assert eventually(lambda: len(opened) == 2 and subscriber.subscribed, 10)
        assert origin.publish("default", "bridge", history) == 1
        assert eventually(lambda: bool(held.forgot))
        assert held.forgot == [("bridge", history, False)]  # no job of its own
        assert subscriber.alive
    finally:
        subscriber.stop()
    assert not subscriber.alive


def test_without_redis_nothing_is_broadcast(any_settings: Settings, stores: Stores) -> None:
    with TestClient(create_app(any_settings, stores), headers=AUTH) as api:
        assert api.app.state.broadcast is None
        assert api.delete("/v1/users/bridge").status_code == 200


def test_a_message_carries_the_contexts_of_the_events_and_reads_older_ones() -> None:
    from attune.engine.broadcast import decode, encode

    history = [
        HistoryEvent("x", "view", None, 1_700_001_001.0, {"device": "tv"}),
        HistoryEvent("y", "buy", 2.0, 1_700_001_002.0),
    ]
    _, _, _, read = decode(encode("here", "default", "bridge", history))
    assert [e.context for e in read] == [{"device": "tv"}, None]
    older = json.loads(encode("here", "default", "bridge", history))
    older["history"] = [row[:4] for row in older["history"]]  # before contexts were sent
    _, _, _, read = decode(json.dumps(older))
    assert read == history and read[0].context is None


# -- catalog writes ----------------------------------------------------------------------------


@pytest.mark.redis
def test_an_item_sold_out_or_deleted_through_one_process_leaves_the_others_lists_at_once(
    shared: Settings, stores: Stores
) -> None:
    with (
        TestClient(create_app(shared), headers=AUTH) as first,
        TestClient(create_app(shared), headers=AUTH) as second,
    ):
        shown = listed(second)
        assert listed(first) == shown and len(shown) >= 2
        sold_out, deleted = shown[0], shown[1]
        # the other process's own check would come only after this long
        check_period = second.app.state.services.recommendations.filters.refresh_seconds
        assert check_period >= 5
        started = time.monotonic()
        assert first.put(f"/v1/items/{sold_out}", json={"available": False}).status_code == 200
        assert eventually(lambda: sold_out not in listed(second), 2.0)
        assert first.delete(f"/v1/items/{deleted}").status_code == 204
        assert eventually(lambda: deleted not in listed(second), 2.0)
        assert time.monotonic() - started < check_period
        assert second.get(f"/v1/items/{deleted}/similar").status_code == 404
        assert second.app.state.broadcast.catalog_received == 2
        assert first.app.state.broadcast.catalog_received == 0  # its own: skipped
        # back on sale, written through the other process this time
        assert second.put(f"/v1/items/{sold_out}", json={"available": True}).status_code == 200
        assert eventually(lambda: sold_out in listed(first), 2.0)


@pytest.mark.redis
def test_bad_catalog_messages_are_skipped(shared: Settings, redis_client) -> None:
    with (
        TestClient(create_app(shared), headers=AUTH) as first,
        TestClient(create_app(shared), headers=AUTH) as second,
    ):
        broadcast: ServerBroadcast = second.app.state.broadcast
        channel = broadcast.channel("default", "catalog")
        good = {"format": 1, "origin": "elsewhere", "workspace": "default"}
        bad: list[Any] = [
            b"\xff not json",
            json.dumps({**good, "shown": {"x": "no"}, "deleted": []}),
            json.dumps({**good, "shown": {}, "deleted": "x"}),
            json.dumps({**good, "shown": [], "deleted": []}),
            json.dumps({**good, "format": 2, "shown": {}, "deleted": ["x"]}),
            json.dumps({**good, "workspace": "other", "shown": {}, "deleted": ["x"]}),
        ]
        for message in bad:
            assert redis_client.publish(channel, message) >= 1
        shown = listed(second)
        assert first.delete(f"/v1/items/{shown[0]}").status_code == 204
        assert eventually(lambda: shown[0] not in listed(second), 2.0)
        assert broadcast.alive and broadcast.catalog_received == 1


def test_a_catalog_message_round_trips() -> None:
    from attune.engine.broadcast import decode_catalog, encode_catalog

    message = encode_catalog("here", "default", {"a": False, "b": True}, ["c"])
    assert decode_catalog(message) == ("here", "default", {"a": False, "b": True}, ["c"])


@pytest.mark.redis
def test_an_items_import_from_the_command_line_reaches_running_servers_at_once(
    shared: Settings, stores: Stores, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    from typer.testing import CliRunner

    from attune.cli import app as cli

    for name in ("data_dir", "database_url", "redis_url", "redis_prefix"):
        value = getattr(shared, name)
        if value is not None:
            monkeypatch.setenv(f"ATTUNE_{name.upper()}", str(value))
    with TestClient(create_app(shared), headers=AUTH) as server:
        first = listed(server)[0]
        catalog = tmp_path / "items.csv"
        catalog.write_text(f"item_id,title,available\n{first},Sold out,false\n")
        started = time.monotonic()
        result = CliRunner().invoke(cli, ["import", "items", str(catalog)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert "running servers told to re-read the catalog" in result.output
        assert eventually(lambda: first not in listed(server), 2.0)
        period = server.app.state.services.recommendations.filters.refresh_seconds
        assert time.monotonic() - started < period
        assert server.app.state.broadcast.catalog_received == 1
