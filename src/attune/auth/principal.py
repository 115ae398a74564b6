"""Who is calling: the scopes a key grants and, for public keys, the verified person."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

Scope = Literal["ingest", "read", "admin"]
KeyKind = Literal["secret", "public"]

SCOPES: tuple[Scope, ...] = ("ingest", "read", "admin")
"""``ingest``: write events, items, users, preferences and consent; ``read``:
recommendations, similar items, catalog and profile reads; ``admin``: keys, placements,
segments, erasure, export, models, audit — and, as the full scope, everything else."""

PUBLIC_SCOPES: tuple[Scope, ...] = ("ingest", "read")
"""What a public key holds; the policy narrows it further (see :mod:`attune.auth.policy`)."""

ADMIN_ENV_KEY_ID = "env-admin"
"""The key id under which ``ATTUNE_ADMIN_KEY`` appears (it has no table row)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one request, as established from its API key.

    Attributes:
        key_id: the key's public id (what audit entries name as the actor).
        workspace: the tenant whose data every request of this key sees.
        kind: ``secret`` (server side) or ``public`` (browser and app).
        scopes: what the key may do; ``admin`` implies the other two.
        user_id: for a public key, the external user id its user token was verified for
            on this request; None when no token was presented or verified.
        rate_per_second: the key's token-bucket refill rate.
        burst: the key's bucket size.
    """

    key_id: str
    workspace: str
    kind: KeyKind
    scopes: frozenset[str]
    rate_per_second: float
    burst: int
    user_id: str | None = None

    @property
    def is_public(self) -> bool:
        return self.kind == "public"

    def allows(self, scope: str) -> bool:
        """Whether a secret key's scopes cover ``scope`` (admin covers everything)."""
        return scope in self.scopes or "admin" in self.scopes

    def for_user(self, user_id: str) -> Principal:
        """This principal, with ``user_id`` verified by a user token."""
        return replace(self, user_id=user_id)
