"""Bearer token → :class:`Principal`, in microseconds for a key seen a moment ago.

A verified key is cached by the hash of its token for ``key_cache_seconds``; a miss costs
one primary-key read. Revoking through this process (:meth:`Authenticator.forget`) takes
effect at once; a revocation made elsewhere (the CLI, another replica) within the cache
time. ``ATTUNE_ADMIN_KEY`` is compared by hash in constant time and has no table row.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from attune.auth.keys import hash_token, parse_token, token_matches
from attune.auth.principal import ADMIN_ENV_KEY_ID, SCOPES, Principal
from attune.auth.ratelimit import TokenBucketLimiter
from attune.auth.signing import master_secret, signing_secret, verify_user_token
from attune.config import DEFAULT_WORKSPACE, Settings
from attune.errors import AuthenticationError, RateLimitedError
from attune.store.protocols import KeyStore

MAX_CACHED_KEYS = 10_000
MAX_USER_TOKEN_LENGTH = 128


class Authenticator:
    """Verifies API keys and user tokens; enforces each key's rate limit.

    Args:
        settings: the deployment's settings (admin key, limits, cache time, secret).
        keys: the key store of the default workspace, which holds every workspace's keys.
        clock: monotonic seconds, for the cache and the rate limiter (tests inject one).
    """

    def __init__(
        self, settings: Settings, keys: KeyStore, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self._keys = keys
        self._clock = clock
        self._limiter = TokenBucketLimiter(clock)
        self._cache: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()
        self._master: bytes | None = None
        admin = settings.admin_key.get_secret_value() if settings.admin_key else None
        self._admin_hash = hash_token(admin) if admin else None

    def cached(self, token: str | None) -> Principal | None:
        """The principal of a token verified recently, without touching the database."""
        if not token:
            return None
        hit = self._cache.get(hash_token(token))
        if hit is None or hit[1] < self._clock():
            return None
        return hit[0]

    def authenticate(self, token: str | None) -> Principal:
        """The principal of ``token``; raises AuthenticationError (401) when there is none."""
        if not token:
            raise AuthenticationError("missing API key: send 'Authorization: Bearer <key>'")
        token_hash = hash_token(token)
        hit = self._cache.get(token_hash)
        if hit is not None and hit[1] >= self._clock():
            return hit[0]
        if self._admin_hash is not None and token_matches(token_hash, self._admin_hash):
            principal = self._admin_principal()
            self._remember(token_hash, principal, ttl=float("inf"))
            return principal
        principal = self._from_store(token, token_hash)
        self._remember(token_hash, principal, ttl=self.settings.key_cache_seconds)
        return principal

    def _admin_principal(self) -> Principal:
        return Principal(
            key_id=ADMIN_ENV_KEY_ID,
            workspace=DEFAULT_WORKSPACE,
            kind="secret",
            scopes=frozenset(SCOPES),
            rate_per_second=self.settings.rate_limit_per_second,
            burst=self.settings.rate_limit_burst,
        )

    def _from_store(self, token: str, token_hash: str) -> Principal:
        unknown = AuthenticationError("unknown or revoked API key")
        parsed = parse_token(token)
        if parsed is None:
            raise unknown
        found = self._keys.get_with_hash(parsed.key_id)
        if found is None:
            raise unknown
        key, stored_hash = found
        if not token_matches(token_hash, stored_hash) or not key.active or key.kind != parsed.kind:
            raise unknown
        self._keys.touch(key.key_id, time.time())
        public = key.kind == "public"
        default_rate = (
            self.settings.public_rate_limit_per_second
            if public
            else self.settings.rate_limit_per_second
        )
        default_burst = (
            self.settings.public_rate_limit_burst if public else self.settings.rate_limit_burst
        )
        return Principal(
            key_id=key.key_id,
            workspace=key.workspace,
            kind=key.kind,
            scopes=frozenset(key.scopes),
            rate_per_second=key.rate_per_second or default_rate,
            burst=key.burst or default_burst,
        )

    def _remember(self, token_hash: str, principal: Principal, ttl: float) -> None:
        if ttl <= 0:
            return
        with self._lock:
            self._cache[token_hash] = (principal, self._clock() + ttl)
            while len(self._cache) > MAX_CACHED_KEYS:
                del self._cache[next(iter(self._cache))]

    def forget(self, key_id: str) -> None:
        """Drop a key from the cache (after revoking it): its next use reads the store."""
        with self._lock:
            for token_hash in [h for h, (p, _) in self._cache.items() if p.key_id == key_id]:
                del self._cache[token_hash]
        self._limiter.forget(key_id)

    def throttle(self, principal: Principal) -> None:
        """Take one request from the key's bucket; raises RateLimitedError (429) if empty."""
        wait = self._limiter.acquire(principal.key_id, principal.rate_per_second, principal.burst)
        if wait > 0:
            raise RateLimitedError(
                f"rate limit of {principal.rate_per_second:g} requests/s for this key exceeded",
                retry_after=wait,
            )

    def user_token_valid(self, principal: Principal, user_id: str, token: str | None) -> bool:
        """Whether ``token`` is the user token of ``user_id`` for this public key."""
        if not token or len(token) > MAX_USER_TOKEN_LENGTH:
            return False
        if self._master is None:
            self._master = master_secret(self.settings)
        return verify_user_token(signing_secret(self._master, principal.key_id), user_id, token)
