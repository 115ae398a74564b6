"""SQL store of API keys (table ``api_keys``): metadata and the token's hash, never a token.

Keys of every workspace live in the default workspace's database, each row naming its
workspace. The ``scopes`` JSON column holds the key's grants:
``{"scopes": [...], "rate_per_second": float | null, "burst": int | null}``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select, update

from attune.auth.keys import ApiKey
from attune.store.sql.schema import api_keys


def _grants(key: ApiKey) -> dict[str, Any]:
    return {"scopes": list(key.scopes), "rate_per_second": key.rate_per_second, "burst": key.burst}


def _key(row: Any) -> ApiKey:
    m = row._mapping
    grants = m["scopes"]
    if isinstance(grants, list):  # a plain list of scopes, with the default limits
        grants = {"scopes": grants}
    rate, burst = grants.get("rate_per_second"), grants.get("burst")
    return ApiKey(
        key_id=m["key_id"],
        workspace=m["workspace"],
        name=m["name"],
        kind=m["kind"],
        scopes=tuple(grants.get("scopes") or ()),
        created_at=m["created_at"],
        revoked_at=m["revoked_at"],
        last_used_at=m["last_used_at"],
        rate_per_second=float(rate) if rate is not None else None,
        burst=int(burst) if burst is not None else None,
    )


class SqlKeyStore:
    """See :class:`attune.store.protocols.KeyStore`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, key: ApiKey, secret_hash: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                api_keys.insert().values(
                    key_id=key.key_id,
                    workspace=key.workspace,
                    name=key.name,
                    kind=key.kind,
                    scopes=_grants(key),
                    secret_hash=secret_hash,
                    created_at=key.created_at,
                    revoked_at=key.revoked_at,
                    last_used_at=key.last_used_at,
                )
            )

    def get(self, key_id: str) -> ApiKey | None:
        found = self.get_with_hash(key_id)
        return found[0] if found else None

    def get_with_hash(self, key_id: str) -> tuple[ApiKey, str] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.key_id == key_id)).first()
        return (_key(row), row._mapping["secret_hash"]) if row else None

    def list_keys(
        self, workspace: str | None = None, *, include_revoked: bool = True
    ) -> list[ApiKey]:
        query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.key_id)
        if workspace is not None:
            query = query.where(api_keys.c.workspace == workspace)
        if not include_revoked:
            query = query.where(api_keys.c.revoked_at.is_(None))
        with self.engine.connect() as conn:
            return [_key(r) for r in conn.execute(query)]

    def revoke(self, key_id: str, at: float) -> ApiKey | None:
        """Mark a key revoked (once; the first time stays); None if there is no such key."""
        with self.engine.begin() as conn:
            conn.execute(
                update(api_keys)
                .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=at)
            )
        return self.get(key_id)

    def touch(self, key_id: str, at: float) -> None:
        """Record that the key was used at ``at``."""
        with self.engine.begin() as conn:
            conn.execute(
                update(api_keys).where(api_keys.c.key_id == key_id).values(last_used_at=at)
            )

    def erase_user(self, user_id: str) -> int:
        """Keys belong to customers, not to their end users: nothing to remove."""
        return 0
