"""What the audit log holds: one entry per administrative action.

Actions are dotted names, ``<object>.<verb>``. The ones Attune records:

* ``key.create``, ``key.revoke`` — API keys (CLI and API);
* ``user.erase`` — an erasure (target: :meth:`AuditStore.user_target`, never the id);
* ``model.promote``, ``model.rollback`` — serving model changes; ``model.hold`` — a
  retrain the champion/challenger check kept from serving; ``model.train`` — training
  jobs started over the API;
* ``placement.put``, ``placement.delete``, ``segment.put``, ``segment.delete``.

``actor`` is the key id that acted (``env-admin`` for ``ATTUNE_ADMIN_KEY``) or ``cli``.
Entries never hold secrets or a person's raw id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CLI_ACTOR = "cli"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One recorded action; ``at`` is UTC Unix seconds, ``id`` grows with time."""

    id: int
    at: float
    workspace: str
    actor: str | None
    action: str
    target: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
