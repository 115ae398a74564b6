"""Create and revoke API keys, with an audit entry each time (used by the CLI and API)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from attune.auth.keys import ApiKey, hash_token, new_token
from attune.auth.principal import PUBLIC_SCOPES, SCOPES, KeyKind
from attune.auth.signing import signing_secret
from attune.config import DEFAULT_WORKSPACE, check_workspace
from attune.errors import NotFoundError, ValidationError
from attune.store.protocols import AuditStore, KeyStore

MAX_NAME_LENGTH = 128
MAX_RATE = 1e6
"""Requests per second a key may be allowed, at most."""


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A new key and what is shown exactly once: the token, and for a public key the
    signing secret its customer's backend makes user tokens with."""

    key: ApiKey
    token: str
    signing_secret: str | None = None


def _invalid(field: str, message: str) -> ValidationError:
    return ValidationError(
        message, details=[{"loc": [field], "msg": message, "type": "value_error"}]
    )


def create_key(
    keys: KeyStore,
    audit: AuditStore,
    master: bytes,
    *,
    name: str,
    actor: str,
    kind: KeyKind = "secret",
    scopes: list[str] | None = None,
    workspace: str = DEFAULT_WORKSPACE,
    rate_per_second: float | None = None,
    burst: int | None = None,
) -> CreatedKey:
    """Create a key of ``workspace`` and record ``key.create`` in ``audit``.

    ``scopes`` defaults to all of them for a secret key; a public key always holds
    :data:`PUBLIC_SCOPES` (the policy narrows what it may do). Raises ValidationError
    naming the field on bad input.
    """
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH or not name.isprintable():
        raise _invalid("name", f"a key name is 1-{MAX_NAME_LENGTH} printable characters")
    if kind not in ("secret", "public"):
        raise _invalid("kind", f"kind is 'secret' or 'public', not {kind!r}")
    try:
        check_workspace(workspace)
    except ValueError as exc:
        raise _invalid("workspace", str(exc)) from exc
    if scopes is not None and not scopes:
        # "no scopes" must never mean "every scope"
        raise _invalid("scopes", f"name at least one scope ({', '.join(SCOPES)}), or leave it out")
    wanted = list(dict.fromkeys(scopes)) if scopes else None
    unknown = [s for s in wanted or [] if s not in SCOPES]
    if unknown:
        raise _invalid("scopes", f"unknown scopes {unknown}; known: {', '.join(SCOPES)}")
    if kind == "public":
        if wanted and not set(wanted) <= set(PUBLIC_SCOPES):
            raise _invalid("scopes", "a public key cannot hold the admin scope")
        granted: tuple[str, ...] = PUBLIC_SCOPES
    else:
        granted = tuple(wanted) if wanted else SCOPES
    if rate_per_second is not None and not 0 < rate_per_second <= MAX_RATE:
        limit = f"the rate is a positive number of requests/s, at most {MAX_RATE:g}"
        raise _invalid("rate_per_second", limit)
    if burst is not None and burst < 1:
        raise _invalid("burst", "the burst must be at least 1")

    key_id, token = new_token(kind)
    key = ApiKey(
        key_id=key_id,
        workspace=workspace,
        name=name,
        kind=kind,
        scopes=granted,
        created_at=time.time(),
        rate_per_second=rate_per_second,
        burst=burst,
    )
    keys.add(key, hash_token(token))
    audit.record(
        workspace,
        actor,
        "key.create",
        target=f"key:{key_id}",
        details={"name": name, "kind": kind, "scopes": list(granted)},
    )
    signing = signing_secret(master, key_id) if kind == "public" else None
    return CreatedKey(key=key, token=token, signing_secret=signing)


def revoke_key(
    keys: KeyStore, audit: AuditStore, key_id: str, *, actor: str, workspace: str | None
) -> ApiKey:
    """Revoke ``key_id`` (of ``workspace``, or any with None) and record ``key.revoke``.

    Revoking a revoked key changes nothing and records nothing. Raises NotFoundError for
    a key that does not exist in that workspace.
    """
    key = keys.get(key_id)
    if key is None or (workspace is not None and key.workspace != workspace):
        raise NotFoundError(f"no API key {key_id!r}")
    revoked = keys.revoke(key_id, time.time())
    assert revoked is not None
    if key.active:
        audit.record(
            key.workspace, actor, "key.revoke", target=f"key:{key_id}", details={"name": key.name}
        )
    return revoked
