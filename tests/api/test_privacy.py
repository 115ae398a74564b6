"""Privacy through the REST API: consent, the ingest answer, export, pseudonymised ids."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from attune.api.app import create_app
from attune.config import Settings
from attune.errors import ConfigurationError
from attune.privacy.pseudonyms import Pseudonymizer
from attune.store.factory import Stores
from tests.conftest import AUTH
from tests.privacy.traces import sql_traces

T0 = 1_700_000_000
KEY = "pseudonym-key-for-tests-0123456789"


def view(user: str, item: str, k: int = 0, **extra: Any) -> dict[str, Any]:
    return {"user_id": user, "item_id": item, "type": "view", "timestamp": T0 + k, **extra}


def post(api: TestClient, events: list[dict[str, Any]]) -> dict[str, Any]:
    response = api.post("/v1/events", json={"events": events})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def app_for(any_settings: Settings, stores: Stores) -> Iterator[Any]:
    """Open an API client on the shared stores with some settings changed."""
    opened: list[TestClient] = []

    def make(**changes: Any) -> TestClient:
        settings = Settings(**{**any_settings.model_dump(), **changes})
        api = TestClient(create_app(settings, stores), headers=AUTH)
        opened.append(api.__enter__())
        return api

    yield make
    for api in opened:
        api.__exit__(None, None, None)


def test_consent_defaults_partial_updates_and_validation(client: TestClient) -> None:
    assert client.get("/v1/users/u1/consent").json() == {
        "user_id": "u1",
        "tracking": True,
        "personalization": True,
        "source": "default",
        "updated_at": None,
    }
    put = client.put("/v1/users/u1/consent", json={"personalization": False})
    assert put.status_code == 200, put.text
    assert put.json()["tracking"] is True and put.json()["personalization"] is False
    assert put.json()["source"] == "api" and put.json()["updated_at"]
    client.put("/v1/users/u1/consent", json={"tracking": False})
    got = client.get("/v1/users/u1/consent").json()
    assert (got["tracking"], got["personalization"]) == (False, False)

    for body, loc in [
        ({}, ["body"]),
        ({"tracking": "yes"}, ["body", "tracking"]),
        ({"tracking": True, "marketing": True}, ["body", "marketing"]),
    ]:
        bad = client.put("/v1/users/u1/consent", json=body)
        assert bad.status_code == 422, body
        assert [d["loc"] for d in bad.json()["error"]["details"]] == [loc]


def test_consent_required_changes_the_default(app_for) -> None:
    api = app_for(consent_required=True)
    assert api.get("/v1/users/nobody/consent").json()["tracking"] is False
    answer = post(api, [view("nobody", "a")])
    assert answer["dropped"] == 1 and answer["accepted"] == 0
    assert answer["results"] == [
        {
            "index": 0,
            "event_id": answer["results"][0]["event_id"],
            "status": "dropped",
            "errors": None,
            "reason": "no tracking consent",
        }
    ]
    granted = post(api, [view("nobody", "a", 1, context={"consent": {"tracking": True}})])
    assert granted["accepted"] == 1
    assert api.get("/v1/users/nobody/consent").json()["source"] == "event"


def test_anonymised_events_are_flagged_in_the_answer(app_for) -> None:
    api = app_for(untracked_events="anonymize")
    api.put("/v1/users/shy/consent", json={"tracking": False})
    answer = post(api, [view("shy", "a"), view("bold", "a")])
    assert answer["accepted"] == 2 and "dropped" not in answer
    assert answer["results"][0]["anonymized"] is True
    assert "anonymized" not in answer["results"][1]  # untouched events answer as before
    assert api.get("/v1/users/shy/events").json()["data"] == []


def test_export_holds_everything_and_pages_past_any_cap(client, stores: Stores) -> None:
    assert client.get("/v1/users/ghost/export").status_code == 404
    n = 5_003  # more than one internal page, and more than any listing returns
    stores.events.add_events(
        [
            {
                "event_id": f"e{k:05d}",
                "user_id": "reader",
                "anonymous_id": None,
                "item_id": f"i{k % 50}",
                "type": "view",
                "value": None,
                "timestamp": float(T0 + k),
                "received_at": float(T0 + k),
                "context": None,
                "properties": None,
                "recommendation_id": None,
            }
            for k in range(n)
        ]
    )
    post(
        client,
        [
            {
                "anonymous_id": "tablet-9",
                "user_id": "reader",
                "item_id": "x",
                "type": "purchase",
                "value": 2,
                "timestamp": T0 + n,
            }
        ],
    )
    post(
        client, [{"anonymous_id": "tablet-9", "item_id": "y", "type": "click", "timestamp": T0 - 1}]
    )
    client.put("/v1/users/reader", json={"traits": {"region": "EU"}})
    client.put("/v1/users/reader/consent", json={"personalization": False})
    stores.preferences.put("reader", {"blocked_items": ["i3"]})
    stores.recommendation_logs.add(
        [
            {
                "recommendation_id": "r1",
                "user_id": "reader",
                "placement": "home",
                "model_version": "v1",
                "items": [{"item_id": "i1", "score": 2.0}],
                "context": None,
                "created_at": float(T0),
            }
        ]
    )
    response = client.get("/v1/users/reader/export")
    assert response.status_code == 200, response.text
    doc = response.json()
    assert doc["user_id"] == "reader"
    assert doc["profile"]["traits"] == {"region": "EU"}
    assert doc["consent"]["tracking"] is True and doc["consent"]["personalization"] is False
    assert doc["preferences"] == {"blocked_items": ["i3"]}
    assert doc["anonymous_ids"] == ["tablet-9"]
    assert len(doc["events"]) == n + 2
    assert [e["event_id"] for e in doc["events"][1:3]] == ["e00000", "e00001"]
    assert doc["events"][0]["type"] == "click" and doc["events"][-1]["value"] == 2
    assert doc["events"][1]["timestamp"] == "2023-11-14T22:13:20+00:00"
    assert [r["recommendation_id"] for r in doc["recommendations"]] == ["r1"]


def test_pseudonymisation_needs_a_key() -> None:
    with pytest.raises(ConfigurationError, match="ATTUNE_PSEUDONYM_KEY"):
        Settings(pseudonymize_user_ids=True)
    with pytest.raises(ValueError, match="at least 16"):
        Settings(pseudonymize_user_ids=True, pseudonym_key="short")


def test_pseudonymised_ids_never_reach_the_database(app_for, stores: Stores) -> None:
    api = app_for(pseudonymize_user_ids=True, pseudonym_key=KEY)
    stored = Pseudonymizer(KEY.encode())
    assert stored("alice") == Pseudonymizer(KEY.encode())("alice") != "alice"
    assert stored("alice") != Pseudonymizer(b"another-key-0123456")("alice")
    assert (
        api.put("/v1/users/alice", json={"traits": {"mail": "alice@example.com"}}).json()["user_id"]
        == "alice"
    )
    post(api, [view("alice", "a"), {**view("alice", "b", 1), "anonymous_id": "alice-phone"}])
    api.put("/v1/users/alice/consent", json={"personalization": False})

    profile = api.get("/v1/users/alice").json()
    assert profile["user_id"] == "alice" and profile["traits"] == {"mail": "[email]"}
    history = api.get("/v1/users/alice/events").json()["data"]
    assert [e["user_id"] for e in history] == ["alice", "alice"]
    assert api.get("/v1/users/alice/consent").json()["personalization"] is False
    assert api.get("/v1/users/alice/export").json()["user_id"] == "alice"
    for raw in ("alice", "alice-phone"):
        assert sql_traces(stores.engine, raw) == []
    assert sql_traces(stores.engine, stored("alice")) != []

    erased = api.delete("/v1/users/alice").json()
    assert erased["erased"]["events"] == 2 and erased["identities"] == 2
    assert sql_traces(stores.engine, stored("alice")) == []
    assert sql_traces(stores.engine, stored("alice-phone")) == []
