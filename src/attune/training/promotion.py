"""Which model version serves: registering a new champion, and going back to an earlier one.

The registry is append-only: the newest version with status ``champion`` serves (every
server picks it up within ``ATTUNE_MODEL_REFRESH_SECONDS``), and registering one retires
the one before. Going back to an earlier version registers a new champion that shares the
earlier version's files and records ``rolled_back_to`` and ``rolled_back_from`` in its
metrics, so the order of what served stays readable and a concurrent training run and a
rollback are ordered the same way on every server.

A version fitted before a person was erased may still carry that person's share of what
it learned from everyone (co-occurrence counts, factors of the items they had), even
though their own rows were removed from its files; so no version older than the newest
erasure can be brought back: train a new one instead.

A retrain that the champion/challenger check (:mod:`attune.training.gate`) holds back
is registered as a ``candidate``: listed with its files, never served unless someone
rolls forward to it with :func:`roll_back`.

Every version's files stay until :func:`prune` deletes those of all but the newest few
(``attune versions prune``); the rows stay, marked ``pruned``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from attune.errors import ConflictError, NotFoundError, ValidationError
from attune.privacy.erasure import ERASE_ACTION
from attune.store.factory import Stores
from attune.store.protocols import ModelVersion

ROLLBACK_ACTION = "model.rollback"
HOLD_ACTION = "model.hold"
CANDIDATE = "candidate"
"""A version held back by the champion/challenger check: it never served."""
PRUNED = "pruned"
"""A version whose files were deleted by :func:`prune`: listed, never served again."""
MIN_KEEP = 2
""":func:`prune` keeps at least this many newest versions: a server may still hold the
one before the newest for up to ``ATTUNE_MODEL_REFRESH_SECONDS``, and saving its
forgotten copy after an erasure reads that version's files."""


def new_version_id(algorithm: str, stamp: datetime) -> str:
    """A new version's id: when it was made, what it is, and a random suffix
    (``20261128T061502-item_knn-82c212``)."""
    return f"{stamp:%Y%m%dT%H%M%S}-{algorithm}-{uuid.uuid4().hex[:6]}"


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


def hold_candidate(
    stores: Stores, version: ModelVersion, reason: str, gate: Any, workspace: str = "default"
) -> ModelVersion:
    """Register ``version`` as a ``candidate`` that did not pass the champion/challenger
    check (``gate``, an :class:`attune.training.gate.GateResult`): listed with its files,
    never served unless someone rolls forward to it (:func:`roll_back` to its id)."""
    registered = stores.model_versions.register(replace(version, status=CANDIDATE))
    audit = getattr(stores, "audit", None)
    if audit is not None:
        details = {"algorithm": version.algorithm, "reason": reason, "gate": gate.reason}
        audit.record(workspace, "system", HOLD_ACTION, version.version_id, details)
    return registered


def was_held(version: ModelVersion | None) -> bool:
    """Whether ``version`` is a candidate the champion/challenger check held back."""
    return version is not None and version.status == CANDIDATE


def previous_version(stores: Stores) -> ModelVersion:
    """The version registered before the serving one with other files: what served
    before it (a version saved after an erasure shares nothing with the one it came
    from, so that one counts too, and is then refused by :func:`roll_back`)."""
    serving = _serving(stores)
    for version in stores.model_versions.list_versions(limit=1_000):
        if (
            version.seq < serving.seq
            and version.artifact_uri != serving.artifact_uri
            and version.status not in (PRUNED, CANDIDATE)
        ):
            return version
    raise NotFoundError(f"no version before {serving.version_id} to go back to")


def roll_back(
    stores: Stores, to: str, workspace: str = "default", actor: str | None = None
) -> ModelVersion:
    """Serve version ``to`` again: register a champion sharing its files.

    Raises NotFoundError for an unknown version or one whose files are gone, and
    ConflictError for the version already serving or one older than the newest erasure.
    """
    target = stores.model_versions.get(to)
    if target is None:
        raise NotFoundError(f"model version {to!r} not found")
    serving = _serving(stores)
    if target.artifact_uri == serving.artifact_uri:
        raise ConflictError(f"model version {to!r} is already serving")
    erased_at = last_erasure(stores, workspace)
    if erased_at is not None and target.created_at < erased_at:
        when = datetime.fromtimestamp(erased_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
        raise ConflictError(
            f"model version {to!r} was trained before a person was erased ({when}) and may "
            "still hold what it learned from them: train a new version instead"
        )
    try:
        stores.artifacts.open(target.artifact_uri)
    except NotFoundError:  # the message would name a server path
        raise NotFoundError(
            f"version {target.version_id} has no files any more (pruned): it cannot serve"
        ) from None
    stamp = datetime.now(UTC)
    version = replace(
        target,
        version_id=new_version_id(target.algorithm, stamp),
        status="champion",
        metrics={
            # what the champion/challenger check said stays with the version it judged
            **{k: v for k, v in target.metrics.items() if k != "gate"},
            "rolled_back_to": target.version_id,
            "rolled_back_from": serving.version_id,
        },
        created_at=stamp.timestamp(),
        seq=0,
    )
    registered = stores.model_versions.register(version)
    details = {"from": serving.version_id, "to": target.version_id, "seq": registered.seq}
    stores.audit.record(workspace, actor or "system", ROLLBACK_ACTION, version.version_id, details)
    return registered


@dataclass(frozen=True)
class PruneReport:
    pruned: list[str]
    """Versions whose files were deleted (now status ``pruned``)."""
    kept: list[str]
    freed_bytes: int


def prune(stores: Stores, keep: int, dry_run: bool = False) -> PruneReport:
    """Delete the files of every version but the newest ``keep`` (at least
    :data:`MIN_KEEP`) and the serving one; a folder a kept version shares (after a
    rollback) stays, and so do the rows sharing it. The pruned versions stay listed, with
    status ``pruned``; going back to one is refused (its files are gone)."""
    if keep < MIN_KEEP:
        raise ValidationError(f"keep: at least {MIN_KEEP} versions must be kept")
    versions = stores.model_versions.list_versions(limit=100_000)
    serving = stores.model_versions.latest("champion")
    kept = versions[:keep] + ([serving] if serving and serving not in versions[:keep] else [])
    kept_uris = {v.artifact_uri for v in kept}
    doomed = [v for v in versions if v.artifact_uri not in kept_uris and v.status != PRUNED]
    freed = 0
    if not dry_run:
        for uri in dict.fromkeys(v.artifact_uri for v in doomed):
            freed += stores.artifacts.delete(uri)
        stores.model_versions.set_status([v.version_id for v in doomed], PRUNED)
    return PruneReport([v.version_id for v in doomed], [v.version_id for v in kept], freed)


def last_erasure(stores: Stores, workspace: str = "default") -> float | None:
    """When the newest erasure in ``workspace`` happened (Unix seconds), or None."""
    entries = stores.audit.list(1, workspace=workspace, action=ERASE_ACTION)
    return entries[0].at if entries else None


def version_summary(version: Any, serving: str | None) -> dict[str, Any]:
    """What the CLI and the API show of a model version: whether it is the one servers use (the
    newest champion: ``serving`` is its id), how it was chosen, its validation NDCG@10,
    what it came from (a rollback, an erasure), what the champion/challenger check said
    and, for a blend, each model's weight."""
    metrics = version.metrics or {}
    summary = {
        "version_id": version.version_id,
        "seq": version.seq,
        "algorithm": version.algorithm,
        "status": version.status,
        "serving": version.version_id == serving,
        "created_at": datetime.fromtimestamp(version.created_at, UTC).isoformat(),
        "events": version.data_window.get("events"),
        "selection": metrics.get("selection"),
        "validation_ndcg@10": (metrics.get("validation") or {}).get("validation_ndcg@10"),
        "rolled_back_to": metrics.get("rolled_back_to"),
        "forgotten_from": metrics.get("forgotten_from"),
        "gate": (metrics.get("gate") or {}).get("verdict"),
    }
    if version.algorithm == "blend":
        components = (version.params or {}).get("components") or []
        summary["components"] = {c["algorithm"]: c.get("weight") for c in components}
    return summary


def _serving(stores: Stores) -> ModelVersion:
    serving = stores.model_versions.latest("champion")
    if serving is None:
        raise NotFoundError("no model version is serving yet: run `attune train` first")
    return serving
