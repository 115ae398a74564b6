"""Scheduled retraining: the worker's ``retrain`` job.

Every ``retrain_interval_seconds`` the worker refits the serving configuration on every
stored event (what a plain ``attune train`` does: the last tuned configuration, or the
validated defaults), once at least ``retrain_min_new_events`` events arrived since the
serving version was made; when the last tuning is older than
``retune_interval_seconds`` it tunes again instead (``attune train --tune``, within
``retune_budget_seconds``), so the choice of model follows the data as it changes.
The new version becomes the champion and servers load it within seconds, unless the
champion/challenger check (``retrain_gate``, :mod:`attune.training.gate`) finds the
serving version clearly better on the newest events: then it is kept as a
``candidate`` and the champion goes on serving. With ``keep_model_versions`` the files
of older versions are then pruned.

Training runs in a child process: a fit holds the interpreter for long stretches, and
in the serving process (embedded mode) every request would wait behind it.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Literal

from attune.config import Settings
from attune.errors import AttuneError
from attune.store.factory import Stores

log = logging.getLogger(__name__)

Action = Literal["skipped", "trained", "tuned", "held"]
CHILD_NAME = "attune-retrain"
"""The name of the process a fit runs in."""
Trainer = Callable[[Settings, float | None, bool], str]
"""Trains and registers a version (settings, tune budget or None, whether the
champion/challenger check decides if it serves) and returns its id."""


@dataclass
class RetrainOutcome:
    """What one run of the job did, and why."""

    action: Action
    reason: str
    new_events: int
    version_id: str | None = None
    pruned: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        done = self.action if self.version_id is None else f"{self.action} {self.version_id}"
        pruned = f"; files of {len(self.pruned)} older versions deleted" if self.pruned else ""
        return f"{done} ({self.reason}){pruned}"


def train_in_child(
    settings: Settings, tune_budget_seconds: float | None, gate: bool = False
) -> str:
    """Train (and register) a version in a fresh process; returns its id. The process
    is a daemon: a server shutting down does not wait for a fit to end. ``gate``: as
    :func:`attune.training.pipeline.train`'s."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(
        target=_train, args=(send, settings, tune_budget_seconds, gate), name=CHILD_NAME
    )
    child.daemon = True
    child.start()
    send.close()
    try:
        kind, value = receive.recv()
    except EOFError:
        child.join()
        raise AttuneError(
            f"the training process ended without a result (exit code {child.exitcode})"
        ) from None
    finally:
        receive.close()
    child.join()
    if kind == "error":
        raise AttuneError(f"training failed: {value}")
    return str(value)


def stop_training_children(timeout: float = 10.0) -> int:
    """End the fits :func:`train_in_child` started from this process that still run (a
    server or worker shutting down: a fit left behind would register and promote a
    version after its server is gone); how many were ended."""
    children = [c for c in multiprocessing.active_children() if c.name == CHILD_NAME]
    for child in children:
        child.terminate()
    for child in children:
        child.join(timeout)
        if child.is_alive():
            child.kill()
    return len(children)


def _train(
    send: Connection, settings: Settings, tune_budget_seconds: float | None, gate: bool
) -> None:
    from attune.store.factory import open_stores
    from attune.training.pipeline import train

    # Ctrl-C at a terminal reaches the whole process group: the parent decides whether
    # this fit ends (stop_training_children), not the key press
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        stores = open_stores(settings)
        try:
            version = train(settings, stores, tune_budget_seconds=tune_budget_seconds, gate=gate)
        finally:
            stores.close()
        send.send(("ok", version.version_id))
    except Exception as exc:  # reported to the parent, which logs it as the job's failure
        log.exception("training failed")  # the traceback, on this process's stderr
        send.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        send.close()


def last_tuned_at(stores: Stores) -> float | None:
    """When the configuration in force was tuned (a plain retrain reusing it names the
    version it was tuned in), or None when it never was."""
    from attune.training.pipeline import last_tuned

    version = last_tuned(stores)
    if version is None:
        return None
    tuned_in = version.metrics.get("tuned_in")
    origin = stores.model_versions.get(tuned_in) if tuned_in else None
    return (origin or version).created_at


def tuning_due(settings: Settings, stores: Stores, now: float) -> bool:
    """Whether this retrain should tune: re-tuning is on and the last tuning is older
    than its interval (or there was none)."""
    if not settings.retune_interval_seconds:
        return False
    tuned_at = last_tuned_at(stores)
    return tuned_at is None or now - tuned_at >= settings.retune_interval_seconds


def retrain(
    settings: Settings,
    stores: Stores,
    trainer: Trainer = train_in_child,
    now: float | None = None,
) -> RetrainOutcome:
    """One run of the scheduled job: skip, retrain or re-tune, then prune.

    ``trainer(settings, tune_budget_seconds, gate) -> version id`` does the training (a
    child process by default)."""
    from attune.training.promotion import prune, was_held

    now = time.time() if now is None else now
    serving = stores.model_versions.latest("champion")
    since = serving.created_at if serving is not None else 0.0
    new_events = stores.events.count_received_since(since)
    if new_events == 0 or (serving is not None and new_events < settings.retrain_min_new_events):
        reason = f"{new_events} new events since the serving version"
        if serving is not None:
            reason += f", {settings.retrain_min_new_events} needed"
        return RetrainOutcome("skipped", reason, new_events)
    tune = tuning_due(settings, stores, now)
    budget = settings.retune_budget_seconds if tune else None
    version_id = trainer(settings, budget, settings.retrain_gate)
    reason = f"{new_events} new events since the serving version"
    made = stores.model_versions.get(version_id)
    gate = (made.metrics.get("gate") if made is not None else None) or {}
    if was_held(made):
        outcome = RetrainOutcome("held", f"{reason}; {gate.get('reason')}", new_events, version_id)
    else:
        checked = f"; check {gate['verdict']}" if gate else ""
        action: Action = "tuned" if tune else "trained"
        outcome = RetrainOutcome(action, reason + checked, new_events, version_id)
    if settings.keep_model_versions:
        outcome.pruned = prune(stores, settings.keep_model_versions).pruned
    log.info(
        "scheduled retrain: %s %s (%s); %d older versions pruned",
        outcome.action,
        outcome.version_id,
        outcome.reason,
        len(outcome.pruned),
    )
    return outcome
