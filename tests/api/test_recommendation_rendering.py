"""Lists are rendered straight to JSON: exactly what the response model would render."""

from __future__ import annotations

import pytest

from attune.api.routes.recommendations import (
    RecommendationOut,
    recommendation_out,
    recommendation_payload,
)
from tests.api.test_filters import put_catalog

TRANSLATED = {"a3": {"translations": {"fr": {"title": "Article a3", "text": "Un texte"}}}}


@pytest.mark.parametrize(
    ("explain", "include_items", "locale"),
    [(False, False, None), (True, False, None), (False, True, "fr-CA"), (True, True, "de")],
)
def test_payload_is_the_response_model_without_nulls(
    client, trained, explain, include_items, locale
) -> None:
    put_catalog(client, **TRANSLATED)
    services = client.app.state.services
    stores = services.stores
    for user in ("u0", "u1", "stranger"):
        rec = services.recommendations.for_user(user, 6)
        catalog = (
            stores.catalog.get_items([it.item_id for it in rec.items]) if include_items else {}
        )
        expected = recommendation_out(rec, stores, include_items, explain, locale)
        assert recommendation_payload(rec, catalog, explain, locale) == expected.model_dump(
            mode="json", exclude_none=True
        )


def test_the_route_answers_json_with_only_what_was_asked(client, trained) -> None:
    put_catalog(client, **TRANSLATED)
    response = client.get("/v1/users/u0/recommendations", params={"n": 4})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"recommendation_id", "items", "model_version", "personalized"}
    assert all(set(it) == {"item_id", "score", "source"} for it in body["items"])
    assert RecommendationOut.model_validate(body).model_dump(mode="json", exclude_none=True) == body

    params = {"n": 6, "explain": "true", "include_items": "true", "context.locale": "fr"}
    body = client.get("/v1/users/u0/recommendations", params=params).json()
    assert all(it["reasons"] and it["item"]["categories"] for it in body["items"])
    a3 = [it for it in body["items"] if it["item_id"] == "a3"]
    assert a3 and a3[0]["item"]["title"] == "Article a3" and a3[0]["item"]["locale"] == "fr"


def test_rank_answers_the_same_shape(client, trained) -> None:
    put_catalog(client)
    response = client.post(
        "/v1/rank?explain=true&include_items=true",
        json={"user_id": "u0", "items": ["b1", "a4", "a3", "zz"], "placement": None},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert RecommendationOut.model_validate(body).model_dump(mode="json", exclude_none=True) == body
    assert {it["item_id"] for it in body["items"]} <= {"b1", "a4", "a3", "zz"}
    assert body["items"][0]["item_id"] in {"a3", "a4"}  # u0 likes "a"
    assert all("reasons" in it for it in body["items"])


def test_a_malformed_filter_is_still_a_422_with_its_position(client, trained) -> None:
    response = client.get("/v1/users/u0/recommendations", params={"filter": "price <"})
    assert response.status_code == 422
    assert response.json()["error"]["details"]


def test_locale_tags_match_whatever_their_case_or_separator():
    from attune.api.routes.recommendations import _summary

    entry = {
        "title": "Boots",
        "translations": {"fr-CA": {"title": "Bottes (CA)"}, "fr": {"title": "Bottes"}},
    }
    assert _summary(entry, "FR-ca")["title"] == "Bottes (CA)"
    assert _summary(entry, "fr_CA")["title"] == "Bottes (CA)"
    assert _summary(entry, "FR")["title"] == "Bottes"
    assert (
        _summary(entry, "fr-BE")["title"] == "Bottes" and _summary(entry, "de")["title"] == "Boots"
    )
