"""``attune worker``: run the scheduled jobs of a deployment in a loop.

Jobs: retention (``retention_days``, every ``retention_interval_seconds``) and
retraining (every ``retrain_interval_seconds``; see :mod:`attune.training.schedule`). The
same scheduler runs as a background thread of ``attune serve`` (embedded mode) unless
``embedded_worker`` is off, which is what to do once a separate worker runs.

A job that fails is logged and tried again at its next time; it never stops the loop
or the other jobs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from attune.config import DEFAULT_WORKSPACE, Settings
from attune.errors import AttuneError
from attune.store.factory import Stores, open_stores

log = logging.getLogger(__name__)

MAX_SLEEP_SECONDS = 60.0
"""The loop wakes at least this often, so a stop request is never kept waiting long."""


@dataclass
class Job:
    """Something to run every ``interval_seconds`` (first run: as soon as the loop starts).

    Attributes:
        next_at: when it is due next, on the scheduler's clock.
        runs: completed runs; failures: runs that raised.
    """

    name: str
    interval_seconds: float
    run: Callable[[], Any]
    next_at: float = 0.0
    runs: int = 0
    failures: int = 0
    last_result: Any = None
    """What the last successful run returned (e.g. a retrain's outcome)."""


class Scheduler:
    """Runs due jobs, one at a time, in the calling thread."""

    def __init__(self, jobs: list[Job], clock: Callable[[], float] = time.monotonic) -> None:
        self.jobs = jobs
        self.clock = clock
        start = clock()
        for job in jobs:
            job.next_at = start

    def run_due(self) -> list[str]:
        """Run every job whose time has come; returns their names."""
        ran = []
        for job in self.jobs:
            if self.clock() < job.next_at:
                continue
            started = time.monotonic()
            try:
                job.last_result = job.run()
                job.runs += 1
                log.info(
                    "scheduled job %s done in %.1f s: %s; next in %.0f s",
                    job.name,
                    time.monotonic() - started,
                    job.last_result,
                    job.interval_seconds,
                )
            except Exception:
                job.failures += 1
                log.exception(
                    "scheduled job %s failed; next try in %.0f s", job.name, job.interval_seconds
                )
            job.next_at = self.clock() + job.interval_seconds
            ran.append(job.name)
        return ran

    def seconds_until_next(self) -> float:
        if not self.jobs:
            return MAX_SLEEP_SECONDS
        return max(0.0, min(job.next_at for job in self.jobs) - self.clock())

    def run_until(self, stop: threading.Event) -> None:
        """Run jobs as they fall due until ``stop`` is set."""
        while not stop.is_set():
            self.run_due()
            stop.wait(min(self.seconds_until_next(), MAX_SLEEP_SECONDS))


def workspaces(stores: Stores) -> list[str]:
    """The default workspace and every one an active API key belongs to (keys live in
    the default workspace's store)."""
    found = {key.workspace for key in stores.keys.list_keys(include_revoked=False)}
    return [DEFAULT_WORKSPACE, *sorted(found - {DEFAULT_WORKSPACE})]


def in_every_workspace(
    settings: Settings, stores: Stores, run: Callable[[Settings, Stores], Any]
) -> dict[str, Any]:
    """``run`` for every workspace (``stores``: the default one's), one after another,
    returning each one's result; one workspace failing does not keep the others from
    their turn, and the whole then fails naming it."""
    results: dict[str, Any] = {}
    failed: dict[str, str] = {}
    for name in workspaces(stores):
        own = settings if name == DEFAULT_WORKSPACE else settings.for_workspace(name)
        opened = stores if name == DEFAULT_WORKSPACE else open_stores(own)
        try:
            results[name] = run(own, opened)
        except Exception as exc:  # the next workspace still gets its turn
            log.exception("scheduled job failed in workspace %s", name)
            failed[name] = str(exc)
        finally:
            if opened is not stores:
                opened.close()
    if failed:
        raise AttuneError(
            "failed in " + "; ".join(f"workspace {name}: {error}" for name, error in failed.items())
        )
    return results


def wanted_jobs(settings: Settings) -> list[str]:
    """Names of the jobs these settings ask for."""
    from attune.privacy.retention import retention_configured

    wanted = ["retention"] if retention_configured(settings) else []
    if settings.retrain_interval_seconds:
        wanted.append("retrain")
    return wanted


def scheduled_jobs(settings: Settings, stores: Stores) -> list[Job]:
    """The jobs these settings ask for (:func:`wanted_jobs`), bound to ``stores``."""
    from attune.privacy.retention import run_retention
    from attune.training.schedule import retrain

    jobs = []
    if "retention" in wanted_jobs(settings):
        jobs.append(
            Job(
                "retention",
                settings.retention_interval_seconds,
                lambda: in_every_workspace(settings, stores, run_retention),
            )
        )
    if "retrain" in wanted_jobs(settings):
        jobs.append(
            Job(
                "retrain",
                settings.retrain_interval_seconds,
                lambda: in_every_workspace(settings, stores, retrain),
            )
        )
    return jobs


def run_worker(settings: Settings, stop: threading.Event, *, once: bool = False) -> list[Job]:
    """Open the stores and run the scheduled jobs until ``stop`` (or one round, ``once``)."""
    stores = open_stores(settings)
    try:
        scheduler = Scheduler(scheduled_jobs(settings, stores))
        if once:
            scheduler.run_due()
        else:
            scheduler.run_until(stop)
        return scheduler.jobs
    finally:
        stores.close()


class BackgroundWorker:
    """The worker loop in a daemon thread with its own stores (``attune serve``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Start the thread if any job is configured; returns whether it started."""
        if not wanted_jobs(self.settings):
            return False
        self._thread = threading.Thread(target=self._run, name="attune-worker", daemon=True)
        self._thread.start()
        return True

    def _run(self) -> None:
        try:
            run_worker(self.settings, self._stop)
        except Exception:
            log.exception("the embedded worker stopped")

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
