"""Training started over the API (``POST /v1/models/train``).

A job fits in a child process (:func:`attune.training.schedule.train_in_child`), waited
on by a thread of the server that took the request, so the request returns at once and
requests keep their usual speed. One job runs per workspace in a server process at a
time. A job's state lives in the audit log (``model.train`` entries with the job id as
target: ``running``, then ``succeeded`` with the version or ``failed`` with the reason),
so any server on the same database can answer for it; a job whose server stopped before
it ended shows as ``lost`` once it has run far longer than it could.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from attune.config import Settings
from attune.errors import ConflictError, NotFoundError
from attune.store.factory import Stores
from attune.training.promotion import was_held
from attune.training.schedule import Trainer, stop_training_children, train_in_child

log = logging.getLogger(__name__)

TRAIN_ACTION = "model.train"
LOST_AFTER_SECONDS = 6 * 3600.0
"""A job with no outcome this long after its budget (or its start, untuned) is lost."""
STOPPED = "the server stopped before the fit ended; no version was registered"
SEARCH_ENTRIES = 5_000
"""How far back in the audit log a job is looked for."""


@dataclass
class TrainJob:
    job_id: str
    status: str
    """running, succeeded, failed or lost."""
    started_at: datetime
    tune_budget_seconds: float | None = None
    finished_at: datetime | None = None
    version_id: str | None = None
    error: str | None = None
    gate: bool = False
    """Whether the champion/challenger check decides if the version serves."""
    held: bool | None = None
    """Whether the check held the version back (status ``candidate``), once it succeeded."""


class TrainJobs:
    """The training jobs this server process runs (one per workspace at a time)."""

    def __init__(self, trainer: Trainer = train_in_child) -> None:
        self.trainer = trainer
        self._running: dict[str, str] = {}
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._lock = threading.Lock()

    def stop(self, timeout: float = 10.0) -> None:
        """The server is stopping: end the fits still running (their versions are never
        registered) and record those jobs as failed for that reason."""
        self._stopping = True
        stop_training_children(timeout)
        for thread in list(self._threads):
            thread.join(timeout)

    def start(
        self,
        settings: Settings,
        stores: Stores,
        actor: str | None,
        tune_budget_seconds: float | None,
        on_success: Callable[[], Any] = lambda: None,
        gate: bool = False,
    ) -> TrainJob:
        """Record and start a job; 409 while another of the workspace runs here."""
        workspace = settings.workspace
        with self._lock:
            running = self._running.get(workspace)
            if running is not None:
                raise ConflictError(f"training job {running} is still running")
            job_id = f"train-{secrets.token_hex(6)}"
            self._running[workspace] = job_id
        details = {"status": "running", "tune_budget_seconds": tune_budget_seconds, "gate": gate}
        stores.audit.record(workspace, actor, TRAIN_ACTION, job_id, details)
        thread = threading.Thread(
            target=self._run,
            args=(job_id, settings, stores, actor, tune_budget_seconds, gate, on_success),
            name=f"attune-{job_id}",
            daemon=True,
        )
        thread.start()
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        return TrainJob(job_id, "running", datetime.now(UTC), tune_budget_seconds, gate=gate)

    def _run(
        self,
        job_id: str,
        settings: Settings,
        stores: Stores,
        actor: str | None,
        budget: float | None,
        gate: bool,
        on_success: Callable[[], Any],
    ) -> None:
        try:
            version_id = self.trainer(settings, budget, gate)
            held = was_held(stores.model_versions.get(version_id))
            details: dict[str, Any] = {
                "status": "succeeded",
                "version_id": version_id,
                "held": held,
            }
        except Exception as exc:  # the job's outcome, for whoever asks
            error = STOPPED if self._stopping else str(exc)[:500]
            details = {"status": "failed", "error": error}
        try:
            if details["status"] == "succeeded" and not details["held"]:
                try:
                    on_success()  # e.g. this server loads the version before it says so
                except Exception:
                    log.exception("after training job %s", job_id)
            stores.audit.record(settings.workspace, actor, TRAIN_ACTION, job_id, details)
        finally:
            with self._lock:
                self._running.pop(settings.workspace, None)


def find_job(stores: Stores, workspace: str, job_id: str, now: float | None = None) -> TrainJob:
    """The job's state from the audit log (404 when it is not there)."""
    entries = [
        e
        for e in stores.audit.list(SEARCH_ENTRIES, workspace=workspace, action=TRAIN_ACTION)
        if e.target == job_id
    ]
    if not entries:
        raise NotFoundError(f"no training job {job_id}")
    first, last = entries[-1], entries[0]  # newest first
    budget = first.details.get("tune_budget_seconds")
    job = TrainJob(
        job_id,
        str(last.details.get("status", "running")),
        datetime.fromtimestamp(first.at, UTC),
        budget,
        gate=bool(first.details.get("gate", False)),
    )
    if last is not first:
        job.finished_at = datetime.fromtimestamp(last.at, UTC)
        job.version_id = last.details.get("version_id")
        job.error = last.details.get("error")
        job.held = last.details.get("held")
    elif (time.time() if now is None else now) - first.at > (budget or 0) + LOST_AFTER_SECONDS:
        job.status = "lost"
    return job
