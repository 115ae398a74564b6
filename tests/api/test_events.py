"""POST /v1/events: per-event answers, exact error paths, limits, and no 500s, on each backend."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from attune.api.app import create_app
from attune.config import Settings
from attune.store.factory import Stores
from tests.conftest import AUTH

T0 = 1_700_000_000  # 2023-11-14T22:13:20Z
T0_UTC = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)


def post(client: TestClient, events: list[Any]) -> dict[str, Any]:
    response = client.post("/v1/events", json={"events": events})
    assert response.status_code == 200, response.text
    return response.json()


def history(client: TestClient, user_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/users/{user_id}/events")
    assert response.status_code == 200, response.text
    return response.json()["data"]


def utc(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    assert parsed.utcoffset() is not None and parsed.utcoffset().total_seconds() == 0, text
    return parsed


def statuses(body: dict[str, Any]) -> list[str]:
    return [r["status"] for r in body["results"]]


def test_valid_batch_is_accepted_per_event_and_stored(client):
    events = [
        {"event_id": "e1", "user_id": "u1", "item_id": "i1", "type": "view", "timestamp": T0},
        {
            "event_id": "e2",
            "user_id": "u1",
            "item_id": "i2",
            "type": "purchase",
            "value": 2,
            "timestamp": T0 + 60,
            "context": {"device": "mobile", "page": "/cart"},
            "properties": {"currency": "EUR", "lines": [{"sku": "x", "qty": 2}]},
            "recommendation_id": "rec-1",
        },
        {"event_id": "e3", "anonymous_id": "anon-9", "item_id": "i1", "type": "click"},
    ]
    body = post(client, events)
    assert body["accepted"] == 3 and body["duplicates"] == 0 and body["rejected"] == 0
    assert [(r["index"], r["event_id"], r["status"]) for r in body["results"]] == [
        (0, "e1", "accepted"),
        (1, "e2", "accepted"),
        (2, "e3", "accepted"),
    ]
    stored = history(client, "u1")
    assert [e["event_id"] for e in stored] == ["e2", "e1"]  # newest first
    purchase = stored[0]
    assert purchase["type"] == "purchase" and purchase["value"] == 2.0
    assert purchase["item_id"] == "i2" and purchase["recommendation_id"] == "rec-1"
    assert purchase["context"] == {"device": "mobile", "page": "/cart"}
    assert purchase["properties"] == {"currency": "EUR", "lines": [{"sku": "x", "qty": 2}]}
    assert utc(purchase["timestamp"]) == datetime(2023, 11, 14, 22, 14, 20, tzinfo=UTC)
    assert utc(purchase["received_at"]).year >= 2024
    assert [e["event_id"] for e in history(client, "anon-9")] == ["e3"]


SAME_INSTANT = [
    "2023-11-14T23:13:20+01:00",
    "2023-11-14T17:13:20-05:00",
    "2023-11-14T22:13:20Z",
    "2023-11-14T22:13:20",  # naive: taken as UTC
    T0,
    float(T0),
    f"{T0}",
    f" {T0}.0 ",
]


def test_times_are_stored_as_utc(client):
    events = [
        {"user_id": f"t{k}", "item_id": "i", "type": "view", "timestamp": timestamp}
        for k, timestamp in enumerate(SAME_INSTANT)
    ]
    body = post(client, events)
    assert statuses(body) == ["accepted"] * len(SAME_INSTANT), body
    for k, timestamp in enumerate(SAME_INSTANT):
        (stored,) = history(client, f"t{k}")
        assert utc(stored["timestamp"]) == T0_UTC, timestamp


def test_fractional_unix_seconds_are_kept(client):
    post(client, [{"user_id": "f", "item_id": "i", "type": "view", "timestamp": T0 + 0.25}])
    (stored,) = history(client, "f")
    assert utc(stored["timestamp"]) == datetime(2023, 11, 14, 22, 13, 20, 250000, tzinfo=UTC)


def test_milliseconds_are_rejected_with_a_reason(client):
    millis = [T0 * 1000, float(T0 * 1000), f"{T0 * 1000}"]
    body = post(
        client, [{"user_id": "m", "item_id": "i", "type": "view", "timestamp": t} for t in millis]
    )
    assert statuses(body) == ["rejected"] * 3
    for index, result in enumerate(body["results"]):
        (error,) = result["errors"]
        assert error["loc"] == ["events", index, "timestamp"]
        assert "milliseconds" in error["msg"]
    assert history(client, "m") == []


def test_far_future_seconds_are_not_read_as_milliseconds(client):
    # regression: pydantic reads any number above 2e10 as milliseconds (here: 1970-10-20)
    post(client, [{"user_id": "far", "item_id": "i", "type": "view", "timestamp": 2.5e10}])
    (stored,) = history(client, "far")
    assert utc(stored["timestamp"]) == datetime.fromtimestamp(2.5e10, UTC)
    assert utc(stored["timestamp"]).year == 2762


ODD_TIMES = [
    "9999-12-31T23:59:59-01:00",  # past datetime's range once in UTC
    "0001-01-01T00:00:00+01:00",
    10**400,
    -(10**12),
    True,
    "yesterday",
    "",
    "14/11/2023",
    [T0],
]


def test_odd_or_out_of_range_times_are_rejected_not_misread(client):
    events = [
        {"user_id": "o", "item_id": "i", "type": "view", "timestamp": timestamp}
        for timestamp in ODD_TIMES
    ]
    body = post(client, events)
    assert statuses(body) == ["rejected"] * len(ODD_TIMES)
    for index, result in enumerate(body["results"]):
        assert [e["loc"] for e in result["errors"]] == [["events", index, "timestamp"]]
    assert history(client, "o") == []


def test_duplicate_event_id_in_a_later_batch_changes_nothing(client):
    first = {"event_id": "d1", "user_id": "u", "item_id": "a", "type": "view", "timestamp": T0}
    assert statuses(post(client, [first])) == ["accepted"]
    retry = {**first, "item_id": "b", "type": "purchase", "value": 5}
    body = post(client, [retry])
    assert body["duplicates"] == 1 and body["accepted"] == 0
    assert body["results"][0] == {
        "index": 0,
        "event_id": "d1",
        "status": "duplicate",
        "errors": None,
    }
    (stored,) = history(client, "u")
    assert stored["item_id"] == "a" and stored["type"] == "view" and stored["value"] is None


def test_same_event_id_twice_in_one_batch(client):
    events = [
        {"event_id": "x", "user_id": "u", "item_id": "a", "type": "view"},
        {"event_id": "x", "user_id": "u", "item_id": "b", "type": "view"},
        {"event_id": "y", "user_id": "u", "item_id": "c", "type": "view"},
    ]
    body = post(client, events)
    assert statuses(body) == ["accepted", "duplicate", "accepted"]
    assert body["accepted"] == 2 and body["duplicates"] == 1
    assert sorted(e["item_id"] for e in history(client, "u")) == ["a", "c"]


def test_event_without_id_sent_twice_is_a_duplicate(client):
    event = {"user_id": "u", "item_id": "a", "type": "rating", "value": 4, "timestamp": T0}
    first = post(client, [event])
    second = post(client, [dict(event)])
    assert statuses(first) == ["accepted"] and statuses(second) == ["duplicate"]
    derived = first["results"][0]["event_id"]
    assert derived and second["results"][0]["event_id"] == derived
    # a different event (other value) is new
    assert statuses(post(client, [{**event, "value": 5}])) == ["accepted"]
    assert len(history(client, "u")) == 2


def test_bad_events_are_rejected_with_exact_paths_and_the_rest_are_stored(client):
    good = {"user_id": "ok", "item_id": "i", "type": "view", "timestamp": T0}
    events = [
        {**good, "event_id": "g0"},
        {**good, "event_id": "b1", "value": "abc"},
        {**good, "event_id": "b2", "context": "not an object"},
        {**good, "event_id": "b3", "item_id": {"id": 1}},
        {"event_id": "b4", "user_id": "ok", "item_id": "i", "timestamp": T0},
        {"event_id": "b5", "item_id": "i", "type": "view", "timestamp": T0},
        {**good, "event_id": "g6", "timestamp": T0 + 1},
        {**good, "event_id": "b7", "unexpected": 1},
        {**good, "event_id": "b8", "user_id": ""},
    ]
    body = post(client, events)
    assert statuses(body) == [
        "accepted",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "accepted",
        "rejected",
        "rejected",
    ]
    assert body["accepted"] == 2 and body["rejected"] == 7
    locs = {r["index"]: [e["loc"] for e in r["errors"]] for r in body["results"] if r["errors"]}
    assert locs[1] == [["events", 1, "value"]]
    assert locs[2] == [["events", 2, "context"]]
    assert locs[3] == [["events", 3, "item_id"]]
    assert locs[4] == [["events", 4, "type"]]
    assert locs[5] == [["events", 5]]
    assert locs[7] == [["events", 7, "unexpected"]]
    assert locs[8] == [["events", 8, "user_id"]]
    for result in body["results"]:
        if result["status"] == "rejected":
            assert result["event_id"].startswith("b")  # the id sent, to match answers up
            assert all(e["msg"] for e in result["errors"])
    reason = next(r for r in body["results"] if r["index"] == 5)["errors"][0]["msg"]
    assert "user_id" in reason and "anonymous_id" in reason
    assert sorted(e["event_id"] for e in history(client, "ok")) == ["g0", "g6"]


def test_unknown_event_type_is_rejected_naming_the_known_ones(client):
    body = post(client, [{"user_id": "u", "item_id": "i", "type": "teleport"}])
    (error,) = body["results"][0]["errors"]
    assert error["loc"] == ["events", 0, "type"]
    assert "teleport" in error["msg"] and "purchase" in error["msg"] and "view" in error["msg"]
    assert history(client, "u") == []


def test_unknown_event_type_accepted_when_allowed(any_settings: Settings, stores: Stores):
    settings = any_settings.model_copy(update={"allow_unknown_event_types": True})
    with TestClient(create_app(settings, stores), headers=AUTH) as open_client:
        body = post(open_client, [{"user_id": "u", "item_id": "i", "type": "Teleport"}])
        assert statuses(body) == ["accepted"]
        assert [e["type"] for e in history(open_client, "u")] == ["teleport"]


def test_entries_that_are_not_objects_are_rejected_one_by_one(client):
    good = {"user_id": "u", "item_id": "i", "type": "view", "timestamp": T0}
    body = post(client, [5, "view", None, [good], True, good])
    assert statuses(body) == ["rejected"] * 5 + ["accepted"]
    for index in range(5):
        errors = body["results"][index]["errors"]
        assert [e["loc"] for e in errors] == [["events", index]]
        assert "object" in errors[0]["msg"]
    assert len(history(client, "u")) == 1


def test_malformed_json_is_a_422_naming_json_invalid(client):
    response = client.post(
        "/v1/events",
        content=b'{"events": [{"user_id": "u",',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert any(d["type"] == "json_invalid" for d in error["details"])


@pytest.mark.parametrize(
    ("payload", "loc"),
    [
        ([{"user_id": "u", "type": "view"}], ["body"]),
        ("events", ["body"]),
        ({"evnts": []}, ["body", "events"]),
        ({"events": {"user_id": "u", "type": "view"}}, ["body", "events"]),
        ({"events": "view"}, ["body", "events"]),
        ({"events": None}, ["body", "events"]),
    ],
)
def test_body_of_the_wrong_shape_is_a_422_pointing_at_it(client, payload, loc):
    response = client.post("/v1/events", json=payload)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert [d["loc"] for d in error["details"]] == [loc]


def test_empty_body_and_empty_batch(client):
    empty = client.post("/v1/events", content=b"", headers={"content-type": "application/json"})
    assert empty.status_code == 422
    body = post(client, [])
    assert body == {"accepted": 0, "duplicates": 0, "rejected": 0, "results": []}


def test_batch_over_the_event_limit_is_413_and_stores_nothing(client, stores):
    events = [
        {"user_id": "u", "item_id": "i", "type": "view", "timestamp": T0 + k} for k in range(10_001)
    ]
    response = client.post("/v1/events", json={"events": events})
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "payload_too_large" and "10000" in error["message"]
    assert stores.events.count() == 0


@pytest.fixture
def small_client(any_settings: Settings, stores: Stores) -> Iterator[TestClient]:
    settings = any_settings.model_copy(update={"max_body_bytes": 2048})
    with TestClient(create_app(settings, stores), headers=AUTH) as test_client:
        yield test_client


def big_batch(n: int = 60) -> bytes:
    events = [{"user_id": "big", "item_id": f"i{k}", "type": "view"} for k in range(n)]
    return json.dumps({"events": events}).encode()


def test_body_over_max_bytes_is_413(small_client, stores):
    body = big_batch()
    assert len(body) > 2048
    response = small_client.post(
        "/v1/events", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert stores.events.count() == 0
    small = big_batch(5)
    assert len(small) < 2048
    ok = small_client.post(
        "/v1/events", content=small, headers={"content-type": "application/json"}
    )
    assert ok.status_code == 200 and ok.json()["accepted"] == 5


def test_chunked_body_over_max_bytes_is_413(small_client, stores):
    body = big_batch()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 500):
            yield body[start : start + 500]

    response = small_client.post(
        "/v1/events", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert stores.events.count() == 0


def test_chunked_body_under_the_limit_is_accepted(small_client):
    body = big_batch(5)
    response = small_client.post(
        "/v1/events",
        content=iter([body[:40], body[40:]]),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 200 and response.json()["accepted"] == 5


def test_unicode_ids_survive_the_round_trip(client):
    events = [
        {
            "event_id": "évt-☕-1",
            "user_id": "ユーザー 1",
            "item_id": "café/crème 🍰",
            "type": "view",
        },
        {
            "user_id": "ユーザー 1",
            "item_id": "Ωmega",
            "type": "like",
            "context": {"locale": "zh-汉"},
        },
    ]
    body = post(client, events)
    assert statuses(body) == ["accepted", "accepted"]
    assert body["results"][0]["event_id"] == "évt-☕-1"
    stored = history(client, "ユーザー 1")
    assert {e["item_id"] for e in stored} == {"café/crème 🍰", "Ωmega"}
    assert "évt-☕-1" in {e["event_id"] for e in stored}
    assert {e["user_id"] for e in stored} == {"ユーザー 1"}


ID_FIELDS = ["event_id", "user_id", "anonymous_id", "item_id"]


def test_over_long_ids_are_rejected(client):
    base = {"user_id": "u", "item_id": "i", "type": "view", "timestamp": T0}
    events = []
    for k, field in enumerate(ID_FIELDS):
        events.append({**base, "event_id": f"long-{k}", field: "x" * 257})
        events.append({**base, "event_id": f"max-{k}", field: f"{k}" * 256})
    body = post(client, events)
    assert statuses(body) == ["rejected", "accepted"] * len(ID_FIELDS)
    for k, field in enumerate(ID_FIELDS):
        errors = body["results"][2 * k]["errors"]
        assert [e["loc"] for e in errors] == [["events", 2 * k, field]]


def test_a_blank_recommendation_id_means_none_and_a_long_one_says_characters(client):
    base = {"user_id": "r", "item_id": "i", "type": "click", "timestamp": T0}
    body = post(
        client,
        [
            {**base, "event_id": "blank", "recommendation_id": "  "},
            {**base, "event_id": "long", "recommendation_id": "x" * 65},
        ],
    )
    assert statuses(body) == ["accepted", "rejected"]
    assert "at most 64 characters" in body["results"][1]["errors"][0]["msg"]
    stored = history(client, "r")
    assert [e["recommendation_id"] for e in stored] == [None]


def test_nul_characters_are_rejected_not_a_500(client):
    base = {"user_id": "n", "item_id": "i", "type": "view", "timestamp": T0}
    fields = [*ID_FIELDS, "recommendation_id"]
    events = [{**base, "event_id": f"e{k}", f: "a\u0000b"} for k, f in enumerate(fields)]
    events[0]["event_id"] = "a\u0000b"
    body = post(client, [*events, base])
    assert statuses(body) == ["rejected"] * len(fields) + ["accepted"]
    for index, field in enumerate(fields):
        assert body["results"][index]["errors"][0]["loc"] == ["events", index, field]


def test_nan_and_infinity_are_rejected_not_a_500(client):
    # Python's JSON parser, and so FastAPI's, accepts these non-standard literals
    raw = (
        '{"events": ['
        '{"user_id": "nan", "item_id": "i", "type": "view", "context": {"score": NaN}},'
        '{"user_id": "nan", "item_id": "i", "type": "view", "properties": {"a": [Infinity]}},'
        '{"user_id": "nan", "item_id": "i", "type": "view", "value": -Infinity},'
        '{"user_id": "nan", "item_id": "j", "type": "view", "properties": {"a": [1.5]}}'
        "]}"
    )
    response = client.post("/v1/events", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert statuses(body) == ["rejected", "rejected", "rejected", "accepted"]
    locs = [r["errors"][0]["loc"][:3] for r in body["results"][:3]]
    assert locs == [["events", 0, "context"], ["events", 1, "properties"], ["events", 2, "value"]]
    assert [e["item_id"] for e in history(client, "nan")] == ["j"]


def test_event_types_are_case_insensitive(client):
    body = post(client, [{"user_id": "c", "item_id": "i", "type": " Add_To_Cart "}])
    assert statuses(body) == ["accepted"]
    assert [e["type"] for e in history(client, "c")] == ["add_to_cart"]
