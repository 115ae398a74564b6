"""Authentication and authorisation through the REST API, on each backend."""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from attune.auth.signing import user_token
from tests.conftest import ADMIN_KEY

TOKEN_HEADER = "X-Attune-User-Token"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def new_key(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/keys", json={"name": "test", **body})
    assert response.status_code == 201, response.text
    return response.json()


def no_auth(client: TestClient) -> TestClient:
    """The same app, without the admin key the ``client`` fixture sends."""
    client.headers.pop("Authorization", None)
    return client


@pytest.mark.parametrize("headers", [{}, bearer("wrong"), {"Authorization": ADMIN_KEY}])
def test_no_key_or_a_wrong_one_is_401_in_the_error_shape(client, headers):
    client = no_auth(client)
    response = client.get("/v1/users/1/recommendations", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["error"]["code"] == "unauthorized"


def test_probes_and_the_demo_page_need_no_key(client):
    client = no_auth(client)
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code in (200, 503)
    assert client.get("/demo").status_code == 200
    assert client.get("/openapi.json").status_code == 200


def test_scoped_keys_get_403_outside_their_scope(client):
    reader = new_key(client, scopes=["read"])["key"]
    response = client.post("/v1/events", json={"events": []}, headers=bearer(reader))
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "forbidden" and "'ingest' scope" in error["message"]
    assert client.get("/v1/users", headers=bearer(reader)).status_code == 200
    assert client.get("/v1/keys", headers=bearer(reader)).status_code == 403


def test_public_key_sends_anonymous_events_and_its_token_users_events(client):
    public = new_key(client, kind="public")
    headers = bearer(public["key"])
    anonymous = {"anonymous_id": "cookie-1", "item_id": "i1", "type": "view"}
    response = client.post("/v1/events", json={"events": [anonymous]}, headers=headers)
    assert response.status_code == 200 and response.json()["accepted"] == 1

    signed_in = {"user_id": "u1", "item_id": "i1", "type": "view"}
    refused = client.post("/v1/events", json={"events": [anonymous, signed_in]}, headers=headers)
    assert refused.status_code == 403
    (detail,) = refused.json()["error"]["details"]
    assert detail["loc"] == ["body", "events", 1, "user_id"]

    token = user_token(public["signing_secret"], "u1")
    mine = {**headers, TOKEN_HEADER: token}
    assert client.post("/v1/events", json={"events": [signed_in]}, headers=mine).status_code == 200
    other = {**signed_in, "user_id": "u2"}
    response = client.post("/v1/events", json={"events": [signed_in, other]}, headers=mine)
    assert response.status_code == 403
    assert [d["loc"] for d in response.json()["error"]["details"]] == [
        ["body", "events", 1, "user_id"]
    ]
    events = client.get("/v1/users/u1/events").json()["data"]
    assert len(events) == 1  # nothing of a refused batch was stored


def test_public_key_reads_only_its_token_users_recommendations(client, trained):
    public = new_key(client, kind="public")
    headers = bearer(public["key"])
    token = user_token(public["signing_secret"], "u0")
    ok = client.get("/v1/users/u0/recommendations", headers={**headers, TOKEN_HEADER: token})
    assert ok.status_code == 200 and ok.json()["items"]
    for user, sent in (("u0", {}), ("u1", {TOKEN_HEADER: token}), ("u0", {TOKEN_HEADER: "00"})):
        response = client.get(f"/v1/users/{user}/recommendations", headers={**headers, **sent})
        assert response.status_code == 403, (user, sent)
        assert response.json()["error"]["details"][0]["loc"] == ["header", TOKEN_HEADER]
    assert client.get("/v1/items/a0/similar", headers=headers).status_code == 200
    for path in ("/v1/users", "/v1/users/u0", "/v1/items/a0", "/v1/keys", "/v1/audit"):
        assert client.get(path, headers={**headers, TOKEN_HEADER: token}).status_code == 403, path


def test_keys_api_shows_a_key_once_lists_without_secrets_and_revokes_at_once(client):
    created = new_key(client, name="crm sync", scopes=["ingest", "read"])
    assert created["key"].startswith("atk_sk_") and created["signing_secret"] is None
    listed = client.get("/v1/keys").json()["data"]
    assert [k["key_id"] for k in listed] == [created["key_id"]]
    assert created["key"] not in str(listed) and "hash" not in str(listed)

    headers = bearer(created["key"])
    assert client.get("/v1/users", headers=headers).status_code == 200
    revoked = client.delete(f"/v1/keys/{created['key_id']}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert client.get("/v1/users", headers=headers).status_code == 401  # at once, cache or not
    assert client.delete("/v1/keys/0000000000000000").status_code == 404
    assert client.delete("/v1/keys/env-admin").status_code == 404

    entries = client.get("/v1/audit").json()["data"]
    assert [(e["action"], e["actor"]) for e in entries] == [
        ("key.revoke", "env-admin"),
        ("key.create", "env-admin"),
    ]
    assert all(e["target"] == f"key:{created['key_id']}" for e in entries)
    assert created["key"] not in str(entries)
    only = client.get("/v1/audit", params={"action": "key.create", "limit": 1}).json()
    assert [e["action"] for e in only["data"]] == ["key.create"]


def test_a_key_created_through_the_api_belongs_to_the_callers_workspace(client):
    admin = new_key(client, name="scoped admin", scopes=["admin"])
    made = new_key(client.__class__(client.app, headers=bearer(admin["key"])), name="by-admin")
    assert made["workspace"] == "default" and made["scopes"] == ["ingest", "read", "admin"]


def test_rate_limit_is_429_with_retry_after(client):
    limited = bearer(new_key(client, rate_per_second=0.5, burst=2)["key"])
    assert [client.get("/v1/users", headers=limited).status_code for _ in range(2)] == [200, 200]
    response = client.get("/v1/users", headers=limited)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert response.json()["error"]["code"] == "rate_limited"
    assert client.get("/v1/users").status_code == 200  # other keys are not affected


def test_bad_key_requests_are_422_not_500(client):
    for body in ({"name": ""}, {"name": "x", "kind": "root"}, {"name": "x", "scopes": ["all"]}):
        response = client.post("/v1/keys", json=body)
        assert response.status_code == 422, body
        assert response.json()["error"]["details"][0]["loc"][0] == "body"
    response = client.post("/v1/keys", json={"name": "x", "kind": "public", "scopes": ["admin"]})
    assert response.status_code == 422
    assert client.get("/v1/audit", params={"cursor": "9" * 30}).status_code == 422


def test_security_headers_on_every_answer(client):
    for path in ("/healthz", "/v1/users", "/demo", "/v1/nowhere"):
        headers = client.get(path).headers
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["x-frame-options"] == "DENY" and headers["referrer-policy"] == "no-referrer"
    assert client.get("/v1/users").headers["cache-control"] == "no-store"
    assert "cache-control" not in client.get("/healthz").headers

    page = client.get("/demo")
    policy = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "'unsafe-inline'" not in policy.split(";")[1]
    (script,) = re.findall(rb"<script>(.*?)</script>", page.content, re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(script).digest()).decode()
    assert f"'sha256-{digest}'" in policy  # the page's own script runs, nothing injected does
    assert "content-security-policy" not in client.get("/v1/users").headers


def test_openapi_documents_auth_and_the_error_shape(client):
    schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    recs = schema["paths"]["/v1/users/{user_id}/recommendations"]["get"]
    assert {"apiKey": []} in recs["security"]
    assert recs["responses"]["401"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    assert recs["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/Error"
    )
    assert schema["paths"]["/healthz"]["get"]["security"] == []


def test_keys_and_tokens_never_reach_the_logs(client, caplog):
    caplog.set_level(logging.DEBUG)
    created = new_key(client, kind="public")
    client.get("/v1/users", headers=bearer(created["key"]))
    client.get("/v1/users", headers=bearer("atk_sk_0123456789abcdef_" + "A" * 43))
    client.delete(f"/v1/keys/{created['key_id']}")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (created["key"], created["signing_secret"], ADMIN_KEY, "A" * 43):
        assert secret not in logged


def test_a_body_that_is_not_utf8_is_a_422_like_any_malformed_json(client):
    # regression (found by schemathesis): FastAPI answered 400 "error parsing the body",
    # a status the contract does not document, in a shape of its own
    response = client.post(
        "/v1/events",
        content=b'{"events": ["\xff\xfe"]}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error" and error["details"][0]["type"] == "json_invalid"


def test_asking_for_no_scopes_is_refused_not_an_admin_key(client):
    response = client.post("/v1/keys", json={"name": "x", "scopes": []})
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["loc"] == ["body", "scopes"]
