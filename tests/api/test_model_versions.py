"""``/v1/models``: listing versions and serving an earlier one again over the API."""

from __future__ import annotations

from fastapi.testclient import TestClient

from attune.training.pipeline import train
from tests.conftest import AUTH, two_taste_events


def test_list_and_roll_back_over_the_api(stores, any_settings):
    from attune.api.app import create_app

    # the server checks for new versions once an hour: only the rollback makes it look
    settings = any_settings.model_copy(update={"model_refresh_seconds": 3600})
    with TestClient(create_app(settings, stores), headers=AUTH) as client:
        _list_and_roll_back(client, stores, settings)


def _list_and_roll_back(client, stores, any_settings) -> None:
    assert client.post("/v1/events", json={"events": two_taste_events()}).status_code == 200
    good = train(any_settings, stores, algorithm="item_knn")
    bad = train(any_settings, stores, algorithm="popularity")
    client.app.state.services.models.refresh()

    listed = client.get("/v1/models").json()["data"]
    assert [(v["version_id"], v["status"], v["serving"]) for v in listed] == [
        (bad.version_id, "champion", True),
        (good.version_id, "retired", False),
    ]
    detail = client.get(f"/v1/models/{good.version_id}").json()
    assert detail["algorithm"] == "item_knn" and detail["data_window"]["events"] == 120

    def first_items() -> list[str]:
        response = client.get("/v1/users/u0/recommendations", params={"n": 2})
        assert response.status_code == 200
        return [it["item_id"] for it in response.json()["items"]]

    assert client.get("/v1/users/u0/recommendations").json()["model_version"] == bad.version_id

    response = client.post(f"/v1/models/{good.version_id}/rollback")
    assert response.status_code == 200, response.text
    back = response.json()
    assert back["serving"] and back["rolled_back_to"] == good.version_id
    answer = client.get("/v1/users/u0/recommendations", params={"n": 2}).json()
    assert answer["model_version"] == back["version_id"], "this server switched at once"
    assert all(i.startswith("a") for i in first_items()), "item-kNN's answer for an a-person"

    entries = client.get("/v1/audit", params={"action": "model.rollback"}).json()["data"]
    assert [e["details"]["to"] for e in entries] == [good.version_id]


def test_rollback_errors_name_the_reason(client, stores, any_settings):
    assert client.post("/v1/events", json={"events": two_taste_events()}).status_code == 200
    only = train(any_settings, stores, algorithm="item_knn")
    missing = client.post("/v1/models/nope/rollback")
    assert missing.status_code == 404 and "nope" in missing.json()["error"]["message"]
    serving = client.post(f"/v1/models/{only.version_id}/rollback")
    assert serving.status_code == 409
    assert "already serving" in serving.json()["error"]["message"]
    assert client.get("/v1/models/nope").status_code == 404
    bad_id = client.post("/v1/models/has%20space/rollback")
    assert bad_id.status_code == 422
