"""Recommendations over HTTP: personalised, never repeating history, fallback for strangers."""

from __future__ import annotations

import time

from tests.conftest import two_taste_events


def test_recommendations_follow_taste_and_skip_seen_items(client, trained):
    body = client.get("/v1/users/u0/recommendations", params={"n": 2}).json()
    items = [it["item_id"] for it in body["items"]]
    assert items and all(i.startswith("a") for i in items)
    seen = {f"a{k}" for k in range(5) if k % 5 < 3}
    assert not seen & set(items)
    assert body["model_version"] and len(body["recommendation_id"]) == 32


def test_events_posted_now_leave_the_next_list(client, trained):
    before = [it["item_id"] for it in client.get("/v1/users/u0/recommendations").json()["items"]]
    now = int(time.time())
    events = [{"user_id": "u0", "item_id": i, "type": "view", "timestamp": now} for i in before[:2]]
    assert client.post("/v1/events", json={"events": events}).json()["accepted"] == 2
    after = [it["item_id"] for it in client.get("/v1/users/u0/recommendations").json()["items"]]
    assert not set(before[:2]) & set(after)


def test_unknown_user_gets_popular_items(client, trained):
    body = client.get("/v1/users/stranger/recommendations", params={"n": 3}).json()
    assert len(body["items"]) == 3
    assert {it["source"] for it in body["items"]} == {"popular"}


def test_new_user_with_fresh_events_is_personalised_at_once(client, trained):
    client.post(
        "/v1/events", json={"events": [{"user_id": "newbie", "item_id": "b0", "type": "view"}]}
    )
    items = client.get("/v1/users/newbie/recommendations", params={"n": 2}).json()["items"]
    assert [it["source"] for it in items] == ["model", "model"]
    assert all(it["item_id"].startswith("b") and it["item_id"] != "b0" for it in items)


def test_similar_items_and_unknown_item(client, trained):
    body = client.get("/v1/items/a0/similar", params={"n": 3}).json()
    assert [it["item_id"][0] for it in body["items"]][:3] == ["a", "a", "a"]
    assert "a0" not in [it["item_id"] for it in body["items"]]
    missing = client.get("/v1/items/nope/similar")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


def _described_and_trained(client, stores, settings) -> None:
    """The two-taste world with a catalog: "a" items sci-fi, "b" items romance, and a
    sci-fi item nobody has had yet; then trained."""
    from attune.ingest.service import IngestService
    from attune.training.pipeline import train

    described = {f"a{k}": ("Space voyage", "Sci-Fi") for k in range(5)}
    described |= {f"b{k}": ("Love in Paris", "Romance") for k in range(5)}
    described["a-new"] = ("Space station", "Sci-Fi")
    for item_id, (title, genre) in described.items():
        body = {"title": f"{title} {item_id}", "categories": [genre]}
        assert client.put(f"/v1/items/{item_id}", json=body).status_code in (200, 201)
    IngestService(settings, stores).ingest_events(two_taste_events())
    train(settings, stores)


def test_an_item_nobody_had_yet_is_similar_to_items_described_alike(client, stores, any_settings):
    """Cold start on an item page: the new item has no co-occurrences, so its similar
    items come from its description, not from whatever is popular."""
    _described_and_trained(client, stores, any_settings)
    body = client.get("/v1/items/a-new/similar", params={"n": 4, "explain": True}).json()
    assert [it["item_id"][0] for it in body["items"]] == ["a"] * 4
    assert all(it["source"] == "current_item" for it in body["items"])
    assert body["items"][0]["reasons"][0]["text"] == "Similar to Space station a-new"
    # and on its page (the current item as context), a stranger is offered its kind
    page = client.get(
        "/v1/users/stranger/recommendations", params={"n": 3, "context.item_id": "a-new"}
    ).json()
    assert [it["item_id"][0] for it in page["items"]] == ["a"] * 3


def test_a_tried_item_shows_its_untried_lookalike_after_its_neighbours(
    client, stores, any_settings
):
    _described_and_trained(client, stores, any_settings)
    items = client.get("/v1/items/a0/similar", params={"n": 6}).json()["items"]
    ids = [it["item_id"] for it in items]
    assert set(ids[:4]) == {"a1", "a2", "a3", "a4"}, "people's behaviour first"
    assert ids[4] == "a-new", "then the untried item its description matches"


def test_unavailable_items_are_never_recommended(client, trained):
    top = client.get("/v1/users/u0/recommendations", params={"n": 1}).json()["items"][0]["item_id"]
    assert client.put(f"/v1/items/{top}", json={"available": False}).status_code == 200
    services = client.app.state.services
    services.recommendations.engine._unavailable_at = float("-inf")  # skip the 5 s refresh wait
    items = [it["item_id"] for it in client.get("/v1/users/u0/recommendations").json()["items"]]
    assert top not in items


def test_no_model_yet_is_503_with_a_hint(client):
    response = client.get("/v1/users/u0/recommendations")
    assert response.status_code == 503
    assert "attune train" in response.json()["error"]["message"]


def test_n_out_of_range_is_422(client, trained):
    for n in (0, 501, "ten"):
        response = client.get("/v1/users/u0/recommendations", params={"n": n})
        assert response.status_code == 422
        assert response.json()["error"]["details"][0]["loc"] == ["query", "n"]


def test_health_and_readiness(client, trained):
    assert client.get("/healthz").json()["status"] == "ok"
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["model_version"]
    assert "/v1/events" in client.get("/openapi.json").json()["paths"]


def test_items_without_model_evidence_come_from_the_fallback(client, trained):
    """Regression: item-kNN scored unrelated items 0.0 and labelled them "model"."""
    items = client.get("/v1/users/u0/recommendations", params={"n": 7}).json()["items"]
    model_items = [it for it in items if it["source"] == "model"]
    assert model_items and all(it["score"] > 0 for it in model_items)
    assert all(it["item_id"].startswith("a") for it in model_items)
    assert {it["source"] for it in items} == {"model", "popular"}


def test_an_item_added_after_training_is_matched_by_its_description(client, stores, any_settings):
    """The version's item space predates the item: its page, and a person who just
    viewed it, get its look-alikes from the description the catalog now holds."""
    _described_and_trained(client, stores, any_settings)
    body = {"title": "Love in Rome", "categories": ["Romance"]}
    assert client.put("/v1/items/b-added", json=body).status_code in (200, 201)
    similar = client.get("/v1/items/b-added/similar", params={"n": 4, "explain": True}).json()
    assert [it["item_id"][0] for it in similar["items"]] == ["b"] * 4
    assert all(it["source"] == "current_item" for it in similar["items"])
    assert similar["items"][0]["reasons"][0]["text"] == "Similar to Love in Rome"
    event = {"user_id": "newcomer", "item_id": "b-added", "type": "view"}
    assert client.post("/v1/events", json={"events": [event]}).json()["accepted"] == 1
    items = client.get("/v1/users/newcomer/recommendations", params={"n": 3}).json()["items"]
    assert [it["item_id"][0] for it in items] == ["b"] * 3
    assert {it["source"] for it in items} == {"session"}


def test_a_new_item_is_offered_on_the_pages_of_the_items_it_looks_like(
    client, stores, any_settings
):
    """New items get exposure before anyone has had them: the exploration share of an
    item's similar list goes to new items that look like that item, never to others."""
    _described_and_trained(client, stores, any_settings)
    added = {"a-added": ("Space voyage deluxe", "Sci-Fi"), "b-added": ("Love in Rome", "Romance")}
    for item_id, (title, genre) in added.items():
        body = {"title": title, "categories": [genre], "created_at": int(time.time())}
        assert client.put(f"/v1/items/{item_id}", json=body).status_code in (200, 201)

    def page(item_id: str, **params: object) -> list[dict]:
        query = {"n": 10, "explain": True, **params}
        return client.get(f"/v1/items/{item_id}/similar", params=query).json()["items"]

    scifi, romance = page("a0"), page("b0")
    offered = [it for it in scifi if it["source"] == "exploration"]
    assert [it["item_id"] for it in offered] == ["a-added"]
    assert offered[0]["reasons"][0]["text"] == "New, like Space voyage a0"
    assert "b-added" not in [it["item_id"] for it in scifi]
    assert [it["item_id"] for it in romance if it["source"] == "exploration"] == ["b-added"]
    assert "a-added" not in [it["item_id"] for it in romance]
    # a placement without an exploration share keeps its similar lists to look-alikes
    assert client.put("/v1/placements/pdp", json={"exploration": {"share": 0}}).status_code in (
        200,
        201,
    )
    assert "a-added" not in [it["item_id"] for it in page("a0", placement="pdp")]


def test_similar_lists_give_no_slot_to_new_items_they_cannot_compare(client, trained):
    """Without catalog descriptions nothing says which new item looks like a page's
    item: its similar list keeps to its neighbours rather than show the newest."""
    body = {"created_at": int(time.time()), "available": True}
    assert client.put("/v1/items/fresh", json=body).status_code in (200, 201)
    items = client.get("/v1/items/a0/similar", params={"n": 10}).json()["items"]
    assert "fresh" not in [it["item_id"] for it in items]
    assert "exploration" not in {it["source"] for it in items}
    # a person's own list still gives it the reserved share
    home = client.get("/v1/users/u0/recommendations", params={"n": 10}).json()["items"]
    assert [it["item_id"] for it in home if it["source"] == "exploration"] == ["fresh"]
