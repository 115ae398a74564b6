"""Property tests: no JSON value, however odd, makes event validation raise or the API fail."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attune.api.app import create_app
from attune.config import Settings
from attune.ingest.validation import EventValidator
from attune.store.factory import Stores
from tests.conftest import AUTH

JSON = {"content-type": "application/json"}
FIELDS = [
    "event_id",
    "user_id",
    "anonymous_id",
    "item_id",
    "type",
    "value",
    "timestamp",
    "context",
    "properties",
    "recommendation_id",
]

EDGE_TIMES = [
    "1700000000",
    " 1700000000.5 ",
    "1700000000000",  # milliseconds
    "2023-11-14T22:13:20+01:00",
    "2023-11-14T22:13:20",
    # edges that once escaped validation as OverflowError or were misread as milliseconds
    "9999-12-31T23:59:59-01:00",
    "0001-01-01T00:00:00+01:00",
    2.5e10,
    -1e11,
    10**400,
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=300)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=4)
    ),
    max_leaves=12,
)
# event-shaped objects: the known keys with plausible, odd or nonsensical values, so that
# validation gets past its first checks and every field validator is exercised
plausible = {
    "user_id": st.text(max_size=260) | st.integers(),
    "type": st.sampled_from(["view", "VIEW", " purchase ", "teleport", "", "a b"]),
    "timestamp": st.sampled_from(EDGE_TIMES)
    | st.integers(min_value=-(10**12), max_value=10**13)
    | st.floats(),
    "value": st.floats() | st.integers() | st.text(max_size=10),
}
field_values = {f: json_values | plausible.get(f, json_values) for f in FIELDS}
event_like = st.fixed_dictionaries({}, optional=field_values)
raw_events = json_values | event_like | event_like.map(lambda e: {"user_id": "u", **e})


@given(raw=raw_events)
@settings(max_examples=250, deadline=None)
def test_to_row_never_raises_and_answers_row_or_errors(raw: Any):
    row, errors = EventValidator(Settings()).to_row(raw, ("events", 0))
    if row is None:
        assert errors
        for error in errors:
            assert error["loc"][:2] == ["events", 0]
            assert isinstance(error["msg"], str) and error["msg"]
    else:
        assert errors == []
        assert isinstance(row["timestamp"], float) and math.isfinite(row["timestamp"])
        assert isinstance(row["event_id"], str) and row["event_id"]
        assert row["user_id"] or row["anonymous_id"]
        assert row["value"] is None or math.isfinite(row["value"])


@given(
    raw=st.fixed_dictionaries(
        {"user_id": st.text(min_size=1, max_size=20).filter(str.strip), "type": st.just("view")},
        optional={"timestamp": json_values, "value": json_values},
    )
)
@settings(max_examples=200, deadline=None)
def test_accepted_timestamps_are_plausible_seconds(raw: dict[str, Any]):
    row, _errors = EventValidator(Settings()).to_row(raw, ("events", 0))
    if row is not None:
        assert abs(row["timestamp"]) <= 1e11


def post_json(client: TestClient, body: Any) -> Any:
    # json.dumps, unlike httpx's json=, writes NaN and Infinity: careless clients do too
    return client.post("/v1/events", content=json.dumps(body), headers=JSON)


@pytest.fixture
def fuzz_client(settings: Settings, sqlite_stores: Stores) -> Iterator[TestClient]:
    with TestClient(create_app(settings, sqlite_stores), headers=AUTH) as client:
        yield client


@given(batch=st.lists(raw_events, max_size=5))
@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_api_never_answers_5xx(fuzz_client: TestClient, batch: list[Any]):
    response = post_json(fuzz_client, {"events": batch})
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["results"]) == len(batch)
    assert body["accepted"] + body["duplicates"] + body["rejected"] == len(batch)
    for result in body["results"]:
        if result["status"] == "rejected":
            assert all(e["loc"][:2] == ["events", result["index"]] for e in result["errors"])
    for result in body["results"]:
        if result["status"] == "accepted":
            row = batch[result["index"]]
            who = row.get("user_id") if row.get("user_id") is not None else row["anonymous_id"]
            history = fuzz_client.get(f"/v1/users/{_path(who)}/events", params={"limit": 1000})
            assert history.status_code < 500


def _path(who: Any) -> str:
    from urllib.parse import quote

    return quote(str(who).strip(), safe="")


@given(body=json_values)
@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_any_json_body_is_never_5xx(fuzz_client: TestClient, body: Any):
    response = post_json(fuzz_client, body)
    assert response.status_code < 500, response.text
