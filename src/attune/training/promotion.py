"""Registering a new serving champion, with an audit entry saying why."""

from __future__ import annotations

from attune.store.factory import Stores
from attune.store.protocols import ModelVersion


def register_champion(
    stores: Stores, version: ModelVersion, reason: str, workspace: str = "default"
) -> ModelVersion:
    """Register ``version`` (servers pick it up within seconds) and record the promotion
    in the audit log: ``reason`` is ``train``, ``tune``, ``forget`` or ``refit``."""
    registered = stores.model_versions.register(version)
    audit = getattr(stores, "audit", None)
    if audit is not None:
        details = {"algorithm": version.algorithm, "reason": reason, "seq": registered.seq}
        audit.record(workspace, "system", "model.promote", version.version_id, details)
    return registered
