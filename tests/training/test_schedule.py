"""Scheduled retraining: the worker refits on new events, re-tunes when due, prunes."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from attune.config import Settings
from attune.errors import AttuneError, NotFoundError
from attune.ingest.service import IngestService
from attune.store.factory import Stores, open_stores
from attune.training.pipeline import train
from attune.training.schedule import last_tuned_at, retrain, train_in_child, tuning_due
from attune.worker import in_every_workspace, run_worker, wanted_jobs, workspaces
from tests.conftest import two_taste_events


def _in_process(settings: Settings, stores: Stores, calls: list) -> object:
    """A trainer that trains here (the child process is tested once, below)."""

    def trainer(_settings: Settings, budget: float | None, gate: bool) -> str:
        calls.append(budget)
        return train(settings, stores, tune_budget_seconds=budget, gate=gate).version_id

    return trainer


def _more_events(settings: Settings, stores: Stores, n_users: int, start: int) -> None:
    events = [{**e, "user_id": f"new-{e['user_id']}"} for e in two_taste_events(n_users, start)]
    IngestService(settings, stores).ingest_events(events)


def test_retrain_waits_for_enough_new_events_then_serves_a_new_version(
    settings: Settings, sqlite_stores: Stores
) -> None:
    stores = sqlite_stores
    settings = settings.model_copy(update={"retrain_min_new_events": 20})
    calls: list = []
    trainer = _in_process(settings, stores, calls)

    first = retrain(settings, stores, trainer)  # nothing stored yet
    assert (first.action, first.new_events, calls) == ("skipped", 0, [])

    IngestService(settings, stores).ingest_events(two_taste_events())
    initial = retrain(settings, stores, trainer)  # no version yet: any event is enough
    assert initial.action == "trained"
    serving = stores.model_versions.latest("champion")
    assert serving.version_id == initial.version_id

    _more_events(settings, stores, 4, 1_800_000_000)  # 12 events: fewer than 20
    waiting = retrain(settings, stores, trainer)
    assert (waiting.action, waiting.new_events) == ("skipped", 12)
    assert str(waiting) == "skipped (12 new events since the serving version, 20 needed)"

    _more_events(settings, stores, 10, 1_800_100_000)
    again = retrain(settings, stores, trainer)
    assert again.action == "trained" and again.new_events >= 20
    newest = stores.model_versions.latest("champion")
    assert newest.version_id == again.version_id != serving.version_id
    assert newest.data_window["users"] > serving.data_window["users"]  # the new people count
    assert calls == [None, None]  # re-tuning is off by default


def test_retune_runs_when_the_last_tuning_is_older_than_its_interval(
    settings: Settings, sqlite_stores: Stores
) -> None:
    stores = sqlite_stores
    settings = settings.model_copy(
        update={"retune_interval_seconds": 3_600.0, "retune_budget_seconds": 5.0}
    )
    calls: list = []
    trainer = _in_process(settings, stores, calls)
    IngestService(settings, stores).ingest_events(two_taste_events())
    assert tuning_due(settings, stores, time.time())  # never tuned

    tuned = retrain(settings, stores, trainer)
    assert (tuned.action, calls) == ("tuned", [5.0])
    tuned_at = last_tuned_at(stores)
    assert tuned_at == stores.model_versions.get(tuned.version_id).created_at

    _more_events(settings, stores, 4, 1_800_000_000)
    plain = retrain(settings, stores, trainer, now=tuned_at + 60)
    assert (plain.action, calls[-1]) == ("trained", None)
    # the plain refit reuses the tuned configuration; its tuning time is the original's
    assert last_tuned_at(stores) == tuned_at
    _more_events(settings, stores, 4, 1_800_100_000)
    assert tuning_due(settings, stores, tuned_at + 3_601)
    later = retrain(settings, stores, trainer, now=tuned_at + 3_601)
    assert (later.action, calls[-1]) == ("tuned", 5.0)


def test_retrain_prunes_all_but_the_newest_versions(
    settings: Settings, sqlite_stores: Stores
) -> None:
    stores = sqlite_stores
    settings = settings.model_copy(update={"keep_model_versions": 2})
    trainer = _in_process(settings, stores, [])
    IngestService(settings, stores).ingest_events(two_taste_events())
    made = []
    for k in range(3):
        _more_events(settings, stores, 2, 1_800_000_000 + k * 10_000)
        made.append(retrain(settings, stores, trainer))
    oldest = stores.model_versions.get(made[0].version_id)
    assert made[-1].pruned == [oldest.version_id] and oldest.status == "pruned"
    with pytest.raises(NotFoundError):  # its files are gone
        stores.artifacts.open(oldest.artifact_uri)
    stores.artifacts.open(stores.model_versions.get(made[1].version_id).artifact_uri)
    assert stores.model_versions.latest("champion").version_id == made[-1].version_id


def test_keeping_one_version_is_refused() -> None:
    with pytest.raises(ValueError, match="keep_model_versions"):
        Settings(keep_model_versions=1)


def test_worker_retrains_in_a_child_process(tmp_path: Path) -> None:
    """The real path: the worker's job trains in a separate process, which registers the
    version in the shared store; a failure there is the job's failure, not a crash."""
    settings = Settings(
        data_dir=tmp_path / "data", retrain_interval_seconds=3_600, recommendation_log_days=None
    )
    assert wanted_jobs(settings) == ["retrain"]
    assert wanted_jobs(settings.model_copy(update={"recommendation_log_days": 90})) == [
        "retention",
        "retrain",
    ]
    stores = open_stores(settings)
    try:
        IngestService(settings, stores).ingest_events(two_taste_events())
        jobs = run_worker(settings, threading.Event(), once=True)
        assert [(j.name, j.runs, j.failures) for j in jobs] == [("retrain", 1, 0)]
        version = stores.model_versions.latest("champion")
        outcome = jobs[0].last_result["default"]
        assert str(outcome).startswith(f"trained {version.version_id} (120 new")
        assert version is not None and version.data_window["users"] == 40
    finally:
        stores.close()
    with pytest.raises(AttuneError, match=r"training failed: .*no events"):
        train_in_child(Settings(data_dir=tmp_path / "empty"), None, gate=True)


def test_every_workspace_with_a_key_is_retrained_and_one_failing_spares_the_others(
    settings: Settings, sqlite_stores: Stores
) -> None:
    from attune.auth.manage import create_key
    from attune.auth.signing import master_secret

    stores = sqlite_stores
    for workspace, people in (("shop2", 10), ("broken", 4)):
        master = master_secret(settings)
        create_key(stores.keys, stores.audit, master, actor="t", name="k", workspace=workspace)
        own = settings.for_workspace(workspace)
        opened = open_stores(own)
        try:
            IngestService(own, opened).ingest_events(two_taste_events(people))
        finally:
            opened.close()
    assert workspaces(stores) == ["default", "broken", "shop2"]
    shop = settings.for_workspace("shop2")
    IngestService(settings, stores).ingest_events(two_taste_events())

    def trainer(own: Settings, budget: float | None, _gate: bool) -> str:
        if own.workspace == "broken":
            raise RuntimeError("disk full")
        opened = open_stores(own)
        try:
            return train(own, opened, tune_budget_seconds=budget).version_id
        finally:
            opened.close()

    with pytest.raises(AttuneError, match="workspace broken: disk full"):
        in_every_workspace(settings, stores, lambda own, opened: retrain(own, opened, trainer))
    assert stores.model_versions.latest("champion").data_window["users"] == 40
    shop_stores = open_stores(shop)
    try:
        assert shop_stores.model_versions.latest("champion").data_window["users"] == 10
    finally:
        shop_stores.close()


def test_retention_reaches_every_workspace_too(settings: Settings, sqlite_stores: Stores) -> None:
    from attune.auth.manage import create_key
    from attune.auth.signing import master_secret
    from attune.privacy.retention import run_retention

    settings = settings.model_copy(update={"retention_days": {"*": 30}})
    master = master_secret(settings)
    create_key(sqlite_stores.keys, sqlite_stores.audit, master, actor="t", name="k", workspace="eu")
    eu = settings.for_workspace("eu")
    old = [{**e, "timestamp": time.time() - 40 * 86_400} for e in two_taste_events(2)]
    eu_stores = open_stores(eu)
    try:
        IngestService(eu, eu_stores).ingest_events(old)
        reports = in_every_workspace(settings, sqlite_stores, run_retention)
        assert set(reports) == {"default", "eu"} and reports["eu"].total == len(old)
        assert eu_stores.events.count() == 0
    finally:
        eu_stores.close()


def test_each_scheduled_run_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Operators watch a worker's log: every run says what it did (a skipped retrain
    included), not only a summary at exit."""
    import logging

    from attune.worker import Job, Scheduler

    scheduler = Scheduler([Job("retrain", 60.0, lambda: {"default": "skipped: 0 new events"})])
    with caplog.at_level(logging.INFO, logger="attune.worker"):
        assert scheduler.run_due() == ["retrain"]
    assert "scheduled job retrain done" in caplog.text
    assert "skipped: 0 new events" in caplog.text


def test_the_worker_stops_on_ctrl_c_with_its_summary(tmp_path: Path) -> None:
    """Ctrl-C exited 0 without a word; a stop now says so and exits 130 (SIGINT)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    env = {
        **os.environ,
        "ATTUNE_DATA_DIR": str(tmp_path / "data"),
        "ATTUNE_RETRAIN_INTERVAL_SECONDS": "3600",
    }
    env.pop("ATTUNE_DATABASE_URL", None)
    worker = subprocess.Popen(
        [str(Path(sys.executable).parent / "attune"), "worker"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(8)  # started, its first retrain run (nothing to train on) logged
        worker.send_signal(signal.SIGINT)
        output, _ = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 130, output
    assert "scheduled job retrain" in output and "stopped (SIGINT)" in output
    assert "retrain: " in output  # the summary
