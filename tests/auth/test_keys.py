"""Key tokens, the SQL key store on each backend, and creating/revoking keys with audit."""

from __future__ import annotations

import pytest

from attune.auth.keys import ApiKey, hash_token, new_token, parse_token, token_matches
from attune.auth.manage import create_key, revoke_key
from attune.errors import NotFoundError, ValidationError
from attune.store.factory import Stores

MASTER = b"m" * 64


def test_tokens_are_random_prefixed_and_parse_back_to_their_key_id():
    key_id, token = new_token("secret")
    other_id, other = new_token("secret")
    assert token.startswith(f"atk_sk_{key_id}_") and key_id != other_id and token != other
    assert len(token.removeprefix(f"atk_sk_{key_id}_")) == 43  # 256 random bits, base64url
    parsed = parse_token(token)
    assert parsed is not None and (parsed.kind, parsed.key_id) == ("secret", key_id)
    public_id, public = new_token("public")
    assert public.startswith(f"atk_pk_{public_id}_")
    assert parse_token(public).kind == "public"


@pytest.mark.parametrize(
    "token",
    ["", "not-a-key", "atk_sk_short_x", "atk_xx_0123456789abcdef_" + "a" * 43, "a" * 10_000],
)
def test_anything_else_is_not_a_token(token):
    assert parse_token(token) is None


def test_only_the_hash_is_compared_and_it_is_not_the_token():
    _, token = new_token("secret")
    stored = hash_token(token)
    assert token not in stored and len(stored) == 64
    assert token_matches(hash_token(token), stored)
    assert not token_matches(hash_token(token + "x"), stored)


def _key(key_id: str = "0123456789abcdef", workspace: str = "default") -> ApiKey:
    return ApiKey(
        key_id=key_id,
        workspace=workspace,
        name="shop backend",
        kind="secret",
        scopes=("read",),
        created_at=1_700_000_000.0,
        rate_per_second=50.0,
        burst=7,
    )


def test_key_store_round_trip_list_revoke_and_touch(stores: Stores):
    stores.keys.add(_key(), "h" * 64)
    stores.keys.add(_key("fedcba9876543210", workspace="other"), "g" * 64)
    key, stored_hash = stores.keys.get_with_hash("0123456789abcdef")
    assert key == _key() and stored_hash == "h" * 64
    assert [k.key_id for k in stores.keys.list_keys("default")] == ["0123456789abcdef"]
    assert len(stores.keys.list_keys()) == 2

    stores.keys.touch(key.key_id, 1_700_000_100.0)
    assert stores.keys.get(key.key_id).last_used_at == 1_700_000_100.0
    revoked = stores.keys.revoke(key.key_id, 1_700_000_200.0)
    assert revoked is not None and revoked.revoked_at == 1_700_000_200.0 and not revoked.active
    # the first revocation time stays
    assert stores.keys.revoke(key.key_id, 1_700_000_999.0).revoked_at == 1_700_000_200.0
    assert stores.keys.list_keys("default", include_revoked=False) == []
    assert stores.keys.revoke("no-such-key", 1.0) is None
    assert stores.keys.get("no-such-key") is None
    assert stores.keys.erase_user("0123456789abcdef") == 0
    assert len(stores.keys.list_keys()) == 2


def test_create_key_stores_a_hash_shows_the_token_once_and_audits(stores: Stores):
    created = create_key(
        stores.keys, stores.audit, MASTER, name=" ingest job ", actor="cli", scopes=["ingest"]
    )
    key, stored_hash = stores.keys.get_with_hash(created.key.key_id)
    assert key.name == "ingest job" and key.scopes == ("ingest",) and key.kind == "secret"
    assert stored_hash == hash_token(created.token) and created.signing_secret is None
    (entry,) = stores.audit.list(10)
    assert (entry.actor, entry.action, entry.target) == (
        "cli",
        "key.create",
        f"key:{key.key_id}",
    )
    assert created.token not in repr(entry)

    full = create_key(stores.keys, stores.audit, MASTER, name="admin", actor="cli")
    assert full.key.scopes == ("ingest", "read", "admin")
    public = create_key(stores.keys, stores.audit, MASTER, name="web", actor="cli", kind="public")
    assert public.key.scopes == ("ingest", "read") and public.signing_secret.startswith("atk_us_")


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 129}, "name"),
        ({"name": "tab\there"}, "name"),
        ({"kind": "root"}, "kind"),
        ({"scopes": ["read", "write"]}, "scopes"),
        ({"kind": "public", "scopes": ["admin"]}, "scopes"),
        ({"workspace": "Not Valid"}, "workspace"),
        ({"rate_per_second": 0}, "rate_per_second"),
        ({"rate_per_second": float("inf")}, "rate_per_second"),
        ({"rate_per_second": float("nan")}, "rate_per_second"),
        ({"burst": 0}, "burst"),
        ({"scopes": []}, "scopes"),  # "no scopes" once made an admin key
    ],
)
def test_create_key_refuses_bad_input_naming_the_field(sqlite_stores: Stores, options, field):
    arguments = {"name": "k", "actor": "cli", **options}
    with pytest.raises(ValidationError) as caught:
        create_key(sqlite_stores.keys, sqlite_stores.audit, MASTER, **arguments)
    assert caught.value.details[0]["loc"] == [field]
    assert sqlite_stores.keys.list_keys() == [] and sqlite_stores.audit.list() == []


def test_revoke_key_audits_once_and_respects_workspaces(stores: Stores):
    created = create_key(stores.keys, stores.audit, MASTER, name="k", actor="cli", workspace="b")
    key_id = created.key.key_id
    with pytest.raises(NotFoundError):
        revoke_key(stores.keys, stores.audit, key_id, actor="x", workspace="default")
    with pytest.raises(NotFoundError):
        revoke_key(stores.keys, stores.audit, "0000000000000000", actor="x", workspace=None)
    assert revoke_key(stores.keys, stores.audit, key_id, actor="x", workspace="b").revoked_at
    revoke_key(stores.keys, stores.audit, key_id, actor="x", workspace="b")
    assert [e.action for e in stores.audit.list(10)] == ["key.revoke", "key.create"]
