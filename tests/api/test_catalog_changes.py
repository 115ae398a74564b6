"""Catalog changes reaching the answers of the process that made them at once: items made
unavailable, deleted, written again."""

from __future__ import annotations

from tests.api.test_filters import ids, put_catalog, recs


def similar_ids(client, item_id: str, **params) -> list[str]:
    response = client.get(f"/v1/items/{item_id}/similar", params=params)
    assert response.status_code == 200, response.text
    return ids(response.json()["items"])


def trending_ids(client) -> list[str]:
    response = client.get("/v1/trending", params={"n": 10, "window": "24h"})
    assert response.status_code == 200, response.text
    return [it["item_id"] for it in response.json()["items"]]


def make_trend(client, item_id: str) -> None:
    """A few strangers view the item now: it trends."""
    events = [{"user_id": f"fan{k}", "item_id": item_id, "type": "view"} for k in range(3)]
    assert client.post("/v1/events", json={"events": events}).status_code == 200
    client.app.state.services.recommendations.engine.trending._cache.clear()  # count again
    assert item_id in trending_ids(client)


def test_an_item_sold_out_leaves_the_very_next_list_and_comes_back(client, trained):
    put_catalog(client)
    make_trend(client, "a3")
    first = ids(recs(client, "u0", n=5))
    assert first[:2] == ["a3", "a4"] or first[:2] == ["a4", "a3"]
    # no wait in between: the next request of this process already knows
    client.put("/v1/items/a3", json={"categories": ["A"], "available": False})
    assert "a3" not in ids(recs(client, "u0", n=5))
    assert "a3" not in similar_ids(client, "a4", n=9)
    assert "a3" not in trending_ids(client)
    client.put("/v1/items/a3", json={"categories": ["A"], "available": True})
    assert ids(recs(client, "u0", n=5)) == first


def test_a_batch_write_is_followed_item_by_item(client, trained):
    put_catalog(client)
    recs(client, "u0", n=5)
    answer = client.post(
        "/v1/items:batch",
        json={
            "items": [
                {"item_id": "a3", "categories": ["A"], "available": False},
                {"item_id": "a4", "categories": ["A"], "price": -1},  # rejected: stays
            ]
        },
    ).json()
    assert answer["accepted"] == 1 and answer["rejected"] == 1
    shown = ids(recs(client, "u0", n=5))
    assert "a3" not in shown and shown[0] == "a4"


def test_a_deleted_item_is_gone_from_every_answer_until_written_again(client, trained):
    put_catalog(client)
    make_trend(client, "a3")
    assert "a3" in ids(recs(client, "u0", n=5))
    assert client.delete("/v1/items/a3").status_code == 204
    assert client.get("/v1/items/a3").status_code == 404
    assert "a3" not in ids(recs(client, "u0", n=5))
    assert "a3" not in ids(recs(client, "a-stranger", n=10))
    assert "a3" not in similar_ids(client, "a4", n=9)
    assert "a3" not in trending_ids(client)
    ranked = client.post("/v1/rank", json={"user_id": "u0", "items": ["a3", "a4"]}).json()
    assert ids(ranked["items"]) == ["a4"]
    page = client.get("/v1/items/a3/similar").json()
    assert page["error"]["code"] == "not_found" and "deleted" in page["error"]["message"]
    assert "a3" not in [it["item_id"] for it in client.get("/v1/items").json()["data"]]
    # written again: it is an item like any other
    assert client.put("/v1/items/a3", json={"categories": ["A"]}).status_code == 200
    assert "a3" in ids(recs(client, "u0", n=5))
    assert client.get("/v1/items/a3/similar").status_code == 200


def test_an_item_known_only_from_events_can_be_deleted(client, trained):
    # no catalog at all: the model knows a3 from people's events only
    assert "a3" in ids(recs(client, "u0", n=5))
    assert client.delete("/v1/items/a3").status_code == 204
    assert "a3" not in ids(recs(client, "u0", n=5))


def test_deleting_an_item_nobody_knows_is_a_404_and_changes_nothing(client, trained, stores):
    response = client.delete("/v1/items/never-heard-of")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert stores.catalog.deleted_item_ids() == set()


def test_many_items_deleted_at_once_are_answered_one_by_one(client, trained, stores):
    put_catalog(client)
    answer = client.post(
        "/v1/items:delete", json={"item_ids": ["a3", "nobody", "a4", "a3", " b0 "]}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["deleted"] == 3 and body["not_found"] == 1
    assert body["results"] == [
        {"item_id": "a3", "status": "deleted"},
        {"item_id": "nobody", "status": "not_found"},
        {"item_id": "a4", "status": "deleted"},
        {"item_id": "b0", "status": "deleted"},
    ]
    assert stores.catalog.deleted_item_ids() == {"a3", "a4", "b0"}
    assert not {"a3", "a4", "b0"} & set(ids(recs(client, "u0", n=10)))


def test_bad_delete_bodies_are_422_with_the_field_path(client, trained):
    for body, loc in (
        ({"item_ids": []}, ["body", "item_ids"]),
        ({"item_ids": ["ok", ""]}, ["body", "item_ids", 1]),
        ({"item_ids": ["x" * 257]}, ["body", "item_ids", 0]),
        ({"item_ids": ["a\x00b"]}, ["body", "item_ids", 0]),
        ({"item_ids": "a3"}, ["body", "item_ids"]),
        ({"items": ["a3"]}, ["body", "item_ids"]),
        ({"item_ids": [f"i{k}" for k in range(10_001)]}, ["body", "item_ids"]),
    ):
        response = client.post("/v1/items:delete", json=body)
        assert response.status_code == 422, (body, response.text)
        assert loc in [d["loc"] for d in response.json()["error"]["details"]], response.text
    assert "a3" in ids(recs(client, "u0", n=5))  # nothing was deleted


def test_a_price_change_reaches_filtered_lists_without_a_whole_catalog_read(client, trained):
    import time

    put_catalog(client)
    catalog = client.app.state.services.recommendations.engine.filters.catalog
    assert sorted(ids(recs(client, "u0", n=5, filter="price < 9"))) == ["a3"]
    whole_reads: list[int] = []
    read = catalog.item_frame

    def counted(item_ids=None):
        if item_ids is None:
            whole_reads.append(1)
        return read(item_ids)

    catalog.item_frame = counted
    try:
        assert client.put("/v1/items/a4", json={"categories": ["A"], "price": 1}).status_code == 200
        deadline = time.monotonic() + 2  # the written item is re-read in the background
        while sorted(ids(recs(client, "u0", n=5, filter="price < 9"))) != ["a3", "a4"]:
            assert time.monotonic() < deadline, "the new price never reached the list"
            time.sleep(0.01)
    finally:
        del catalog.item_frame
    assert whole_reads == []
