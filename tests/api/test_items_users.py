"""Catalog and profile routes: PUT semantics, lookups, listings, per-item batch answers."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from fastapi.testclient import TestClient

JSON = {"content-type": "application/json"}


def _json(body: dict[str, Any]) -> str:
    return json.dumps(body)  # allow_nan: sends NaN / Infinity literals as a careless client might


def put_item(client: TestClient, item_id: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.put(f"/v1/items/{item_id}", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_put_item_creates_then_replaces_the_whole_item(client):
    created = put_item(
        client,
        "sku-1",
        {
            "title": "Trail shoe",
            "text": "Light and grippy",
            "categories": ["Shoes/Running"],
            "tags": ["trail"],
            "price": 89.9,
            "available": False,
            "language": "en",
            "regions": ["FR"],
            "created_at": "2024-01-02T03:04:05+02:00",
            "properties": {"brand": "Acme", "sizes": [40, 41]},
        },
    )
    assert created["item_id"] == "sku-1" and created["title"] == "Trail shoe"
    assert created["price"] == 89.9 and created["available"] is False
    assert datetime.fromisoformat(created["created_at"]) == datetime.fromisoformat(
        "2024-01-02T01:04:05+00:00"
    )
    fetched = client.get("/v1/items/sku-1").json()
    assert fetched["categories"] == ["Shoes/Running"] and fetched["regions"] == ["FR"]
    assert fetched["properties"] == {"brand": "Acme", "sizes": [40, 41]}

    replaced = put_item(client, "sku-1", {"title": "Trail shoe v2"})
    assert replaced["title"] == "Trail shoe v2"
    again = client.get("/v1/items/sku-1").json()
    assert again["title"] == "Trail shoe v2"
    # PUT replaces: everything not sent is back to its default
    assert again["text"] is None and again["price"] is None and again["language"] is None
    assert again["categories"] == [] and again["tags"] == [] and again["regions"] is None
    assert again["available"] is True and again["created_at"] is None
    assert again["properties"] in (None, {})


def test_patch_changes_the_fields_given_and_keeps_the_rest(client):
    full = {
        "title": "Boots",
        "categories": ["Shoes"],
        "price": 80,
        "created_at": 1_700_000_000,
        "properties": {"color": "red", "size": 42},
        "translations": {"fr": {"title": "Bottes"}},
    }
    assert client.put("/v1/items/boots", json=full).status_code == 200
    patch = {"available": False, "properties": {"color": None, "stock": 0}}
    response = client.patch(
        "/v1/items/boots", json=patch, headers={"content-type": "application/merge-patch+json"}
    )
    assert response.status_code == 200, response.text
    item = client.get("/v1/items/boots").json()
    assert item["available"] is False and item["title"] == "Boots" and item["price"] == 80
    assert item["properties"] == {"size": 42, "stock": 0}
    assert item["translations"] == {"fr": {"title": "Bottes"}}
    assert item["created_at"] == "2023-11-14T22:13:20Z"
    reset = client.patch("/v1/items/boots", json={"price": None, "available": None}).json()
    assert reset["price"] is None and reset["available"] is True and reset["title"] == "Boots"


def test_patch_refuses_what_would_make_a_bad_item_and_unknown_items(client):
    assert client.put("/v1/items/boots", json={"title": "Boots", "price": 80}).status_code == 200
    bad = client.patch("/v1/items/boots", json={"price": -1})
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["loc"] == ["body", "price"]
    assert client.patch("/v1/items/boots", json={"item_id": "other"}).status_code == 422
    assert client.patch("/v1/items/boots", json=[1, 2]).status_code == 422
    assert client.get("/v1/items/boots").json()["price"] == 80  # nothing was written
    missing = client.patch("/v1/items/nowhere", json={"price": 1})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_concurrent_patches_of_one_item_all_land(client):
    """Each patch reads and writes the item inside the catalog's write lock: twenty
    threads setting twenty different properties leave all twenty."""
    from concurrent.futures import ThreadPoolExecutor

    assert client.put("/v1/items/shared", json={"title": "Shared"}).status_code == 200

    def set_one(k: int) -> int:
        body = {"properties": {f"p{k}": k}}
        return client.patch("/v1/items/shared", json=body).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(set_one, range(20))) == {200}
    properties = client.get("/v1/items/shared").json()["properties"]
    assert properties == {f"p{k}": k for k in range(20)}


def test_categories_and_tags_accept_pipe_separated_text(client):
    item = put_item(client, "p1", {"categories": "Comedy| Drama |", "tags": "a|b|a"})
    assert item["categories"] == ["Comedy", "Drama"]
    assert item["tags"] == ["a", "b"]
    assert client.get("/v1/items/p1").json()["categories"] == ["Comedy", "Drama"]


def test_invalid_item_bodies_are_422_with_the_field_path(client):
    negative = client.put("/v1/items/x", json={"price": -1})
    assert negative.status_code == 422
    error = negative.json()["error"]
    assert error["code"] == "validation_error"
    assert [d["loc"] for d in error["details"]] == [["body", "price"]]

    unknown = client.put("/v1/items/x", json={"title": "t", "colour": "red"})
    assert unknown.status_code == 422
    assert [d["loc"] for d in unknown.json()["error"]["details"]] == [["body", "colour"]]

    wrong_type = client.put("/v1/items/x", json={"available": "perhaps"})
    assert wrong_type.status_code == 422
    assert [d["loc"] for d in wrong_type.json()["error"]["details"]] == [["body", "available"]]

    assert client.get("/v1/items/x").status_code == 404  # nothing was stored


def test_unknown_item_is_404_in_the_error_shape(client):
    response = client.get("/v1/items/nope")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found" and "nope" in error["message"]


def test_get_items_by_ids_keeps_the_order_and_skips_unknown(client):
    for item_id in ("a", "b", "c"):
        put_item(client, item_id, {"title": item_id.upper()})
    response = client.get("/v1/items", params={"ids": "c, zz,a,b,a"})
    assert response.status_code == 200
    body = response.json()
    assert [it["item_id"] for it in body["data"]] == ["c", "a", "b", "a"]
    assert body["data"][0]["title"] == "C"
    assert body["next_cursor"] is None


def test_listing_items_with_a_cursor_walks_the_catalog(client):
    ids = [f"item-{k:02d}" for k in range(12)]
    response = client.post("/v1/items:batch", json={"items": [{"item_id": i} for i in ids]})
    assert response.json()["accepted"] == 12
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 5}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/items", params=params).json()
        seen.extend(it["item_id"] for it in page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids

    bad = client.get("/v1/items", params={"cursor": "%%%"})
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "validation_error"
    assert client.get("/v1/items", params={"limit": 0}).status_code == 422


def test_item_batch_answers_per_item(client):
    items = [
        {"item_id": "ok-1", "title": "One", "categories": "A|B"},
        {"item_id": "bad-price", "price": -5},
        {"title": "no id"},
        {"item_id": "ok-2", "available": False},
        {"item_id": "bad-field", "colour": "red"},
        {"item_id": "x" * 257},
    ]
    response = client.post("/v1/items:batch", json={"items": items})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == 2 and body["rejected"] == 4
    results = body["results"]
    assert [r["status"] for r in results] == [
        "accepted",
        "rejected",
        "rejected",
        "accepted",
        "rejected",
        "rejected",
    ]
    assert [e["loc"] for e in results[1]["errors"]] == [["items", 1, "price"]]
    assert [e["loc"] for e in results[2]["errors"]] == [["items", 2, "item_id"]]
    assert [e["loc"] for e in results[4]["errors"]] == [["items", 4, "colour"]]
    assert [e["loc"] for e in results[5]["errors"]] == [["items", 5, "item_id"]]
    assert client.get("/v1/items/ok-1").json()["categories"] == ["A", "B"]
    assert client.get("/v1/items/ok-2").json()["available"] is False
    assert client.get("/v1/items/bad-price").status_code == 404


def test_item_batch_entries_that_are_not_objects_are_rejected_one_by_one(client):
    response = client.post("/v1/items:batch", json={"items": [{"item_id": "fine"}, 7, "x"]})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["accepted", "rejected", "rejected"]
    assert [e["loc"] for e in results[1]["errors"]] == [["items", 1]]
    assert client.get("/v1/items/fine").status_code == 200


def test_item_batch_with_a_repeated_id_keeps_the_last(client):
    items = [{"item_id": "dup", "title": "first"}, {"item_id": "dup", "title": "second"}]
    response = client.post("/v1/items:batch", json={"items": items})
    assert response.status_code == 200, response.text
    assert client.get("/v1/items/dup").json()["title"] == "second"


def test_put_user_traits_and_read_them_back(client):
    response = client.put(
        "/v1/users/ann", json={"traits": {"locale": "fr-FR", "age": 31, "tags": ["a", 1]}}
    )
    assert response.status_code == 200, response.text
    created = response.json()
    assert created["user_id"] == "ann"
    assert created["traits"] == {"locale": "fr-FR", "age": 31, "tags": ["a", 1]}
    fetched = client.get("/v1/users/ann").json()
    assert fetched["traits"] == created["traits"]
    assert fetched["created_at"] == created["created_at"]

    updated = client.put("/v1/users/ann", json={"traits": {"segment": "vip"}}).json()
    assert updated["traits"] == {"segment": "vip"}
    assert updated["created_at"] == created["created_at"]
    assert datetime.fromisoformat(updated["updated_at"]) >= datetime.fromisoformat(
        created["updated_at"]
    )
    assert client.get("/v1/users/ann").json()["created_at"] == created["created_at"]


def test_invalid_user_bodies_are_422(client):
    nested = client.put("/v1/users/u", json={"traits": {"address": {"city": "Paris"}}})
    assert nested.status_code == 422
    assert nested.json()["error"]["details"][0]["loc"][:3] == ["body", "traits", "address"]
    extra = client.put("/v1/users/u", json={"traits": {}, "email": "a@b.c"})
    assert extra.status_code == 422
    assert [d["loc"] for d in extra.json()["error"]["details"]] == [["body", "email"]]
    assert client.get("/v1/users/u").status_code == 404


def test_list_users_pages_through_profiles(client):
    for k in range(7):
        assert client.put(f"/v1/users/user-{k}", json={"traits": {"k": k}}).status_code == 200
    first = client.get("/v1/users", params={"limit": 4}).json()
    assert [u["user_id"] for u in first["data"]] == [f"user-{k}" for k in range(4)]
    second = client.get("/v1/users", params={"limit": 4, "cursor": first["next_cursor"]}).json()
    assert [u["user_id"] for u in second["data"]] == [f"user-{k}" for k in range(4, 7)]
    assert second["next_cursor"] is None
    assert second["data"][0]["traits"] == {"k": 4}


def test_unknown_user_is_404(client):
    response = client.get("/v1/users/ghost")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_path_ids_over_256_characters_are_422(client):
    long_id = "x" * 257
    for method, path, body in [
        ("PUT", f"/v1/items/{long_id}", {"title": "t"}),
        ("GET", f"/v1/items/{long_id}", None),
        ("PUT", f"/v1/users/{long_id}", {"traits": {}}),
        ("GET", f"/v1/users/{long_id}", None),
        ("GET", f"/v1/users/{long_id}/events", None),
    ]:
        response = client.request(method, path, json=body)
        assert response.status_code == 422, (method, path)
        assert response.json()["error"]["details"][0]["loc"][0] == "path"
    ok = "y" * 256
    assert client.put(f"/v1/items/{ok}", json={}).status_code == 200
    assert client.get(f"/v1/items/{ok}").json()["item_id"] == ok


def test_unicode_and_reserved_characters_in_path_ids(client):
    item_id = "café crème 🍰"
    put_item(client, item_id, {"title": "Dessert"})
    assert client.get(f"/v1/items/{item_id}").json()["item_id"] == item_id
    assert client.put("/v1/users/zoë", json={"traits": {"name": "Zoë"}}).status_code == 200
    assert client.get("/v1/users/zoë").json()["traits"] == {"name": "Zoë"}


def test_nul_characters_in_bodies_are_422_not_a_500(client):
    for body in ({"title": "a\u0000b"}, {"text": "\u0000"}, {"properties": {"a": float("inf")}}):
        response = client.put("/v1/items/n", content=_json(body), headers=JSON)
        assert response.status_code == 422, body
    assert (
        client.put("/v1/users/n", content='{"traits": {"a": NaN}}', headers=JSON).status_code == 422
    )
    assert client.get("/v1/items/n").status_code == 404
    assert client.get("/v1/users/n").status_code == 404


def test_nul_characters_in_path_ids_are_not_a_500(client):
    """Regression: a NUL in a path id reached PostgreSQL, which raised DataError (500)."""
    for method, path, body in [
        ("PUT", "/v1/items/a%00b", {}),
        ("GET", "/v1/items/a%00b", None),
        ("PUT", "/v1/users/a%00b", {"traits": {}}),
        ("GET", "/v1/users/a%00b", None),
    ]:
        response = client.request(method, path, json=body)
        assert response.status_code == 422, (method, path, response.text)
        assert response.json()["error"]["details"][0]["loc"][0] == "path"
