"""Bearer tokens to principals: the admin key, stored keys, the cache and revocation."""

from __future__ import annotations

import pytest

from attune.auth.authenticator import Authenticator
from attune.auth.manage import create_key
from attune.auth.principal import ADMIN_ENV_KEY_ID
from attune.auth.signing import master_secret, user_token
from attune.config import Settings
from attune.errors import AuthenticationError, RateLimitedError
from attune.store.factory import Stores
from tests.conftest import ADMIN_KEY


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def auth(settings: Settings, sqlite_stores: Stores, clock: Clock) -> Authenticator:
    return Authenticator(settings, sqlite_stores.keys, clock)


def _create(settings: Settings, stores: Stores, **options):
    options.setdefault("name", "k")
    return create_key(stores.keys, stores.audit, master_secret(settings), actor="t", **options)


def test_admin_key_from_the_environment_is_a_full_key_of_the_default_workspace(auth):
    principal = auth.authenticate(ADMIN_KEY)
    assert principal.key_id == ADMIN_ENV_KEY_ID and principal.workspace == "default"
    assert principal.kind == "secret" and {"ingest", "read", "admin"} <= principal.scopes


@pytest.mark.parametrize("token", [None, "", "wrong", ADMIN_KEY + "x", "atk_sk_" + "0" * 60])
def test_missing_or_unknown_keys_are_refused(auth, token):
    with pytest.raises(AuthenticationError) as caught:
        auth.authenticate(token)
    assert caught.value.status_code == 401 and caught.value.headers["WWW-Authenticate"]


def test_stored_key_is_verified_cached_and_marked_used(settings, sqlite_stores, auth, clock):
    created = _create(settings, sqlite_stores, scopes=["read"], workspace="shop", rate_per_second=5)
    principal = auth.authenticate(created.token)
    assert (principal.key_id, principal.workspace, principal.scopes) == (
        created.key.key_id,
        "shop",
        frozenset({"read"}),
    )
    assert principal.rate_per_second == 5 and principal.burst == settings.rate_limit_burst
    assert sqlite_stores.keys.get(created.key.key_id).last_used_at is not None
    assert auth.cached(created.token) == principal

    # revoked elsewhere (the CLI): trusted until the cache time runs out, then refused
    sqlite_stores.keys.revoke(created.key.key_id, 1.0)
    assert auth.authenticate(created.token) == principal
    clock.now += settings.key_cache_seconds + 1
    assert auth.cached(created.token) is None
    with pytest.raises(AuthenticationError):
        auth.authenticate(created.token)


def test_forget_makes_a_revocation_take_effect_at_once(settings, sqlite_stores, auth):
    created = _create(settings, sqlite_stores)
    auth.authenticate(created.token)
    sqlite_stores.keys.revoke(created.key.key_id, 1.0)
    auth.forget(created.key.key_id)
    assert auth.cached(created.token) is None
    with pytest.raises(AuthenticationError):
        auth.authenticate(created.token)


def test_a_token_with_the_wrong_secret_or_kind_is_refused(settings, sqlite_stores, auth):
    created = _create(settings, sqlite_stores)
    forged = created.token[:-4] + ("AAAA" if not created.token.endswith("AAAA") else "BBBB")
    with pytest.raises(AuthenticationError):
        auth.authenticate(forged)
    as_public = created.token.replace("atk_sk_", "atk_pk_", 1)
    with pytest.raises(AuthenticationError):
        auth.authenticate(as_public)


def test_public_keys_get_the_public_rate_and_check_user_tokens(settings, sqlite_stores, auth):
    created = _create(settings, sqlite_stores, kind="public")
    principal = auth.authenticate(created.token)
    assert principal.is_public
    assert principal.rate_per_second == settings.public_rate_limit_per_second
    token = user_token(created.signing_secret, "u1")
    assert auth.user_token_valid(principal, "u1", token)
    assert not auth.user_token_valid(principal, "u2", token)
    assert not auth.user_token_valid(principal, "u1", None)
    assert not auth.user_token_valid(principal, "u1", token * 10)


def test_throttle_raises_429_with_retry_after(settings, sqlite_stores, auth):
    created = _create(settings, sqlite_stores, rate_per_second=1, burst=2)
    principal = auth.authenticate(created.token)
    auth.throttle(principal)
    auth.throttle(principal)
    with pytest.raises(RateLimitedError) as caught:
        auth.throttle(principal)
    assert caught.value.status_code == 429 and caught.value.headers["Retry-After"] == "1"
