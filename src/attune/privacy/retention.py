"""Retention: delete events older than their type allows (setting ``retention_days``),
and the log of answered lists older than ``recommendation_log_days``.

``retention_days`` maps an event type to the days its events are kept, ``"*"`` to the
days of every type not listed; an empty mapping (the default) keeps everything. Age is
the event's own ``timestamp`` (when it happened), not when Attune received it. The
recommendation log (what was shown to whom) is kept ``recommendation_log_days`` (90 by
default; None keeps it all) by when each list was answered. Run by ``attune retention
run``, by ``attune worker`` and by the embedded worker of ``attune serve`` every
``retention_interval_seconds``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from attune.config import Settings
from attune.store.factory import Stores

log = logging.getLogger(__name__)

SECONDS_PER_DAY = 86_400.0
EVERY_OTHER_TYPE = "*"


@dataclass(frozen=True, slots=True)
class RetentionReport:
    """What one retention run deleted (or, dry, would delete).

    Attributes:
        ran_at: UTC Unix seconds the cutoffs were computed from.
        cutoffs: per event type (and ``"*"``), the UTC Unix time before which events go.
        deleted: events deleted per type (types with none are absent).
        log_cutoff: the UTC Unix time before which logged lists go (None: kept).
        logs_deleted: logged lists deleted.
    """

    ran_at: float
    cutoffs: dict[str, float]
    deleted: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False
    log_cutoff: float | None = None
    logs_deleted: int = 0

    @property
    def total(self) -> int:
        return sum(self.deleted.values())

    def cutoff_of(self, event_type: str) -> float | None:
        return self.cutoffs.get(event_type, self.cutoffs.get(EVERY_OTHER_TYPE))


def retention_configured(settings: Settings) -> bool:
    """Whether these settings ask retention to delete anything (events or log rows)."""
    return bool(settings.retention_days) or settings.recommendation_log_days is not None


def retention_cutoffs(retention_days: dict[str, float], now: float) -> dict[str, float]:
    """Per type (and ``"*"``), the time before which events are past retention."""
    return {kind: now - days * SECONDS_PER_DAY for kind, days in retention_days.items()}


def run_retention(
    settings: Settings, stores: Stores, *, now: float | None = None, dry_run: bool = False
) -> RetentionReport:
    """Apply ``settings.retention_days`` to the stored events and
    ``settings.recommendation_log_days`` to the recommendation log, once."""
    ran_at = time.time() if now is None else now
    cutoffs = retention_cutoffs(settings.retention_days, ran_at)
    deleted: dict[str, int] = {}
    if cutoffs:
        per_type = {k: v for k, v in cutoffs.items() if k != EVERY_OTHER_TYPE}
        deleted = stores.events.expire_events(per_type, cutoffs.get(EVERY_OTHER_TYPE), dry_run)
    log_cutoff = None
    logs_deleted = 0
    if settings.recommendation_log_days is not None:
        log_cutoff = ran_at - settings.recommendation_log_days * SECONDS_PER_DAY
        logs_deleted = stores.recommendation_logs.expire(log_cutoff, dry_run)
    report = RetentionReport(ran_at, cutoffs, deleted, dry_run, log_cutoff, logs_deleted)
    if report.total and not dry_run:
        log.info("retention deleted %d events: %s", report.total, deleted)
    if logs_deleted and not dry_run:
        log.info("retention deleted %d logged recommendation lists", logs_deleted)
    return report
