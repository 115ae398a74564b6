"""Erasure: remove a person from every store and from the loaded models.

A person is their stored user id plus every anonymous id seen on their events (the
device or cookie ids they used before identifying themselves). Their history is read
first, then every store kind erases each id (:meth:`Stores.erase_user`: events,
profile, consent, preferences, live session, cache entries, recommendation logs, saved
model artifacts…) and their rows of the files of rejected import rows, then the serving
models forget them from that history, and the erasure is written to the audit log under
a keyed hash of the id, never the id.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from attune.privacy.rejected import RejectedFiles
from attune.store.factory import Stores
from attune.store.protocols import HistoryEvent

log = logging.getLogger(__name__)

ERASE_ACTION = "user.erase"
ANSWER_TRACES = ("recommendation_logs", "cache", "sessions")
"""Stores a request writes to: swept again at the end of an erasure."""
REFIT = "refit scheduled"
"""What a model role reports when only a refit removes the person (see ModelHolder)."""


class ForgettingModels(Protocol):
    """What erasure needs from the model holder (:class:`attune.engine.ModelHolder`)."""

    def forget_user(self, user_id: str, history: list[HistoryEvent]) -> dict[str, str]: ...


@dataclass(frozen=True, slots=True)
class ErasureReport:
    """What an erasure removed.

    Attributes:
        erased: rows, keys or entries removed per store kind, over all the person's ids.
        identities: how many stored ids were erased (user id + linked anonymous ids).
        models: what each serving model did (from ``ModelHolder.forget_user``).
    """

    erased: dict[str, int]
    identities: int
    models: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.erased.values())


def person_ids(stores: Stores, stored_id: str) -> list[str]:
    """The stored id and the anonymous ids linked to it by shared events."""
    return [stored_id, *sorted(stores.events.linked_anonymous_ids(stored_id))]


def person_events(stores: Stores, ids: Iterable[str]) -> list[dict[str, Any]]:
    """Every event of any of ``ids``, oldest first, each once."""
    seen: dict[str, dict[str, Any]] = {}
    for pid in ids:
        for row in stores.events.iter_user_events(pid):
            seen.setdefault(row["event_id"], row)
    return sorted(seen.values(), key=lambda r: (r["timestamp"], r["event_id"]))


def histories_by_id(events: Iterable[dict[str, Any]]) -> dict[str, list[HistoryEvent]]:
    """Item events per stored id, attributed as training attributes them (the user id,
    else the anonymous id), oldest first, with their contexts."""
    found: dict[str, list[HistoryEvent]] = {}
    for r in events:
        owner = r["user_id"] or r["anonymous_id"]
        if r["item_id"] is not None and owner is not None:
            event = HistoryEvent(
                r["item_id"], r["type"], r["value"], r["timestamp"], r.get("context")
            )
            found.setdefault(owner, []).append(event)
    return found


def _merge(outcomes: list[dict[str, str]]) -> dict[str, str]:
    """Per model role, the least exact outcome over the person's ids."""
    merged: dict[str, str] = {}
    for outcome in outcomes:
        for role, result in outcome.items():
            merged[role] = result if merged.get(role, result) == result else REFIT
    return merged


def erase_person(
    stores: Stores,
    stored_id: str,
    *,
    models: ForgettingModels | None = None,
    workspace: str = "default",
    actor: str | None = None,
    rejected: RejectedFiles | None = None,
    settle: Callable[[], None] | None = None,
) -> ErasureReport:
    """Erase everything held about the person stored as ``stored_id``.

    ``rejected``: the files of rejected import rows to remove the person's rows from
    (counted as ``rejected_files``). ``settle``: writes what this process still holds
    back (its queue of logged lists), called before the stores are swept a second time
    once the models have forgotten the person: lists answered meanwhile (here or in
    another process) were made from what is being erased, and their logs and cached
    answers go too.
    """
    ids = person_ids(stores, stored_id)
    histories = histories_by_id(person_events(stores, ids))  # read before deleting
    erased: Counter[str] = Counter()
    for pid in ids:
        erased.update(stores.erase_user(pid))
    if rejected is not None:
        erased["rejected_files"] = rejected.erase(ids)
    outcomes = []
    if models is not None:
        for pid, history in histories.items():
            outcomes.append(models.forget_user(pid, history))
    forgotten = _merge(outcomes)
    if settle is not None:
        settle()
    for pid in ids:  # what lists answered during the erasure wrote again
        for kind in ANSWER_TRACES:
            erased[kind] += getattr(stores, kind).erase_user(pid)
    report = ErasureReport(dict(erased), len(ids), forgotten)
    audit = getattr(stores, "audit", None)
    if audit is not None:
        audit.record(
            workspace,
            actor,
            ERASE_ACTION,
            audit.user_target(stored_id),
            {"identities": len(ids), "erased": report.erased, "models": forgotten},
        )
    log.info("erased a person: %d ids, %d entries", len(ids), report.total)
    return report
