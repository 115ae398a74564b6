"""SQL audit log (table ``audit_log``): append-only entries of administrative actions."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, select

from attune.auth.audit import AuditEntry
from attune.auth.signing import audit_user_target
from attune.store.sql.schema import audit_log

MAX_TARGET = 256


def _entry(row: Any) -> AuditEntry:
    m = row._mapping
    return AuditEntry(
        id=int(m["id"]),
        at=m["at"],
        workspace=m["workspace"],
        actor=m["actor"],
        action=m["action"],
        target=m["target"],
        details=dict(m["details"] or {}),
    )


class SqlAuditStore:
    """See :class:`attune.store.protocols.AuditStore`.

    Args:
        engine: the database of the workspace whose actions are recorded.
        secret: returns the deployment's master secret (read on first use), which keys
            :meth:`user_target`.
    """

    def __init__(self, engine: Engine, secret: Callable[[], bytes]) -> None:
        self.engine = engine
        self._secret = secret

    def record(
        self,
        workspace: str,
        actor: str | None,
        action: str,
        target: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> int:
        """Append an entry and return its id. Put no secret and no raw user id in it: for
        a person, pass :meth:`user_target` of their id as ``target``."""
        with self.engine.begin() as conn:
            result = conn.execute(
                audit_log.insert().values(
                    at=time.time(),
                    workspace=workspace,
                    actor=actor[:64] if actor else actor,
                    action=action[:64],
                    target=target[:MAX_TARGET] if target else target,
                    details=details or None,
                )
            )
            return int(result.inserted_primary_key[0])

    def list(
        self,
        limit: int = 100,
        *,
        workspace: str | None = None,
        action: str | None = None,
        before_id: int | None = None,
        after_id: int | None = None,
    ) -> list[AuditEntry]:
        """The newest entries first; ``before_id`` pages on to older ones. With
        ``after_id``, the entries after that one, oldest first (to follow the log)."""
        order = audit_log.c.id.desc() if after_id is None else audit_log.c.id.asc()
        query = select(audit_log).order_by(order).limit(limit)
        if after_id is not None:
            query = query.where(audit_log.c.id > after_id)
        if workspace is not None:
            query = query.where(audit_log.c.workspace == workspace)
        if action is not None:
            query = query.where(audit_log.c.action == action)
        if before_id is not None:
            query = query.where(audit_log.c.id < before_id)
        with self.engine.connect() as conn:
            return [_entry(r) for r in conn.execute(query)]

    def user_target(self, user_id: str) -> str:
        """A keyed hash standing for ``user_id`` in audit entries (``user:<32 hex>``)."""
        return audit_user_target(self._secret(), user_id)

    def erase_user(self, user_id: str) -> int:
        """The log never holds a raw user id (see :meth:`user_target`): nothing to remove."""
        return 0
