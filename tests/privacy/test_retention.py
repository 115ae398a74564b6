"""Retention per event type, with exact counts of what is deleted and kept; the worker."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from attune.cli import app
from attune.config import Settings
from attune.privacy.retention import SECONDS_PER_DAY, run_retention
from attune.store.factory import Stores, open_stores
from attune.store.sql.schema import events
from attune.worker import BackgroundWorker, Job, Scheduler, run_worker

NOW = 1_800_000_000.0
DAY = SECONDS_PER_DAY
RETENTION = {"view": 30, "purchase": 365, "*": 90}


def row(event_id: str, event_type: str, age_days: float) -> dict[str, object]:
    return {
        "event_id": event_id,
        "user_id": "u",
        "anonymous_id": None,
        "item_id": "i",
        "type": event_type,
        "value": None,
        "timestamp": NOW - age_days * DAY,
        "received_at": NOW,  # received today: age is when it happened, not when it arrived
        "context": None,
        "properties": None,
        "recommendation_id": None,
    }


def seed(stores: Stores) -> None:
    ages = {
        "view": [40, 31, 45, 60, 1000, 29, 1, 0],  # 5 past 30 days, 3 within
        "purchase": [400, 366, 100, 364],  # 2 past 365 days, 2 within
        "click": [100, 91, 95, 365, 10],  # "*": 4 past 90 days, 1 within
        "impression": [200, 200, 200],  # "*": all 3 past 90 days
    }
    stores.events.add_events(
        [row(f"{kind}-{k}", kind, age) for kind, days in ages.items() for k, age in enumerate(days)]
    )


EXPECTED = {"view": 5, "purchase": 2, "click": 4, "impression": 3}
LEFT = {"view": 3, "purchase": 2, "click": 1}


def test_dry_run_counts_and_run_deletes_exactly_what_is_past_retention(
    any_settings: Settings, stores: Stores
) -> None:
    settings = any_settings.model_copy(update={"retention_days": RETENTION})
    seed(stores)
    dry = run_retention(settings, stores, now=NOW, dry_run=True)
    assert dry.deleted == EXPECTED and dry.total == 14 and dry.dry_run
    assert sum(stores.events.count_by_type().values()) == 20  # nothing deleted
    report = run_retention(settings, stores, now=NOW)
    assert report.deleted == EXPECTED
    assert stores.events.count_by_type() == LEFT
    assert report.cutoff_of("view") == NOW - 30 * DAY
    assert report.cutoff_of("impression") == NOW - 90 * DAY  # from "*"
    assert run_retention(settings, stores, now=NOW).deleted == {}  # nothing left to do


def test_types_without_a_rule_are_kept_when_there_is_no_default(
    any_settings: Settings, stores: Stores
) -> None:
    settings = any_settings.model_copy(update={"retention_days": {"view": 30}})
    seed(stores)
    assert run_retention(settings, stores, now=NOW).deleted == {"view": 5}
    assert stores.events.count_by_type() == {"view": 3, "purchase": 4, "click": 5, "impression": 3}


def test_no_retention_configured_keeps_everything(sqlite_stores: Stores, settings: Settings):
    seed(sqlite_stores)
    report = run_retention(settings, sqlite_stores, now=NOW)
    assert report.deleted == {} and report.cutoffs == {}
    assert sum(sqlite_stores.events.count_by_type().values()) == 20


def test_retention_days_must_be_positive() -> None:
    with pytest.raises(ValueError, match="must be > 0"):
        Settings(retention_days={"view": -1})


def test_cli_retention_run_prints_what_it_deleted(tmp_path: Path, monkeypatch) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("ATTUNE_DATA_DIR", str(data))
    monkeypatch.delenv("ATTUNE_DATABASE_URL", raising=False)
    monkeypatch.setenv("ATTUNE_RETENTION_DAYS", json.dumps(RETENTION))
    settings = Settings(data_dir=data)
    stores = open_stores(settings)
    try:
        # ages relative to the real clock, since the command runs "now"
        shift = time.time() - NOW
        seed(stores)
        with stores.engine.begin() as conn:
            conn.execute(update(events).values(timestamp=events.c.timestamp + shift))
    finally:
        stores.close()
    runner = CliRunner()
    dry = runner.invoke(app, ["retention", "run", "--dry-run"], catch_exceptions=False)
    assert dry.exit_code == 0, dry.output
    assert "would delete" in dry.output and "14" in dry.output
    assert "recommendation log (kept 90 days): would delete 0 lists" in dry.output
    result = runner.invoke(app, ["retention", "run"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = {line.split("│")[1].strip(): line for line in result.output.splitlines() if "│" in line}
    assert lines["impression"].rstrip(" │").endswith("3")
    assert lines["view"].rstrip(" │").endswith("5")
    stores = open_stores(settings)
    try:
        assert stores.events.count_by_type() == LEFT
    finally:
        stores.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_scheduler_runs_jobs_when_due_and_survives_a_failing_one() -> None:
    clock = FakeClock()
    calls: list[str] = []

    def broken() -> None:
        calls.append("broken")
        raise RuntimeError("boom")

    jobs = [Job("often", 10, lambda: calls.append("often")), Job("broken", 25, broken)]
    scheduler = Scheduler(jobs, clock)
    assert scheduler.run_due() == ["often", "broken"]
    clock.now = 9
    assert scheduler.run_due() == []
    assert scheduler.seconds_until_next() == 1
    clock.now = 10
    assert scheduler.run_due() == ["often"]
    clock.now = 25
    assert scheduler.run_due() == ["often", "broken"]
    assert calls == ["often", "broken", "often", "often", "broken"]
    assert (jobs[0].runs, jobs[0].failures, jobs[1].runs, jobs[1].failures) == (3, 0, 0, 2)


def test_worker_and_embedded_thread_apply_retention(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        retention_days={"*": 30},
        retention_interval_seconds=3600,
    )
    stores = open_stores(settings)
    try:
        now = time.time()
        stores.events.add_events(
            [
                {**row("old", "view", 0), "timestamp": now - 40 * DAY},
                {**row("recent", "view", 0), "timestamp": now - 29 * DAY},
            ]
        )
        jobs = run_worker(settings, threading.Event(), once=True)
        assert [(j.name, j.runs, j.failures) for j in jobs] == [("retention", 1, 0)]
        assert [e["event_id"] for e in stores.events.user_events("u")] == ["recent"]

        stores.events.add_events([{**row("old2", "view", 0), "timestamp": now - 31 * DAY}])
        worker = BackgroundWorker(settings)
        assert worker.start()
        deadline = time.monotonic() + 20
        while stores.events.count_by_type() != {"view": 1} and time.monotonic() < deadline:
            time.sleep(0.05)
        worker.stop()
        assert stores.events.count_by_type() == {"view": 1}
    finally:
        stores.close()
    nothing = Settings(data_dir=tmp_path / "data", recommendation_log_days=None)
    assert not BackgroundWorker(nothing).start()  # no jobs


def logged(recommendation_id: str, age_days: float, user_id: str = "u") -> dict[str, object]:
    """One answered list as the recommendation log writes it, ``age_days`` old."""
    return {
        "recommendation_id": recommendation_id,
        "user_id": user_id,
        "placement": None,
        "model_version": "v1",
        "items": [{"item_id": "i", "score": 1.0, "source": "model", "position": 1}],
        "context": {},
        "created_at": NOW - age_days * DAY,
    }


def test_logged_lists_older_than_recommendation_log_days_are_deleted(
    any_settings: Settings, stores: Stores
) -> None:
    """Every answer adds a log row: the log keeps ``recommendation_log_days`` (90 by
    default), counted from when each list was answered; events are left alone."""
    assert any_settings.recommendation_log_days == 90
    seed(stores)
    ages = {"r-400": 400, "r-91": 91, "r-90.1": 90.1, "r-89": 89, "r-1": 1}
    stores.recommendation_logs.add([logged(rid, age) for rid, age in ages.items()])
    dry = run_retention(any_settings, stores, now=NOW, dry_run=True)
    assert (dry.logs_deleted, dry.log_cutoff) == (3, NOW - 90 * DAY)
    assert len(stores.recommendation_logs.for_user("u")) == 5  # a dry run deletes nothing
    report = run_retention(any_settings, stores, now=NOW)
    assert report.logs_deleted == 3 and report.deleted == {}
    left = {r["recommendation_id"] for r in stores.recommendation_logs.for_user("u")}
    assert left == {"r-89", "r-1"}
    assert sum(stores.events.count_by_type().values()) == 20  # no event rule: events stay
    assert run_retention(any_settings, stores, now=NOW).logs_deleted == 0


def test_expiring_logged_lists_goes_in_batches(stores: Stores) -> None:
    """Old rows go a batch per transaction, so the writer of new answers never waits
    behind one long delete; every old row goes, the newer ones stay."""
    store = stores.recommendation_logs
    store.add([logged(f"old-{k}", 100, f"p{k % 3}") for k in range(7)] + [logged("new", 1)])
    assert store.expire(NOW - 90 * DAY, batch=2) == 7
    assert store.get("new") is not None
    assert all(store.get(f"old-{k}") is None for k in range(7))


def test_recommendation_log_kept_forever_when_asked(sqlite_stores: Stores, settings: Settings):
    keep = settings.model_copy(update={"recommendation_log_days": None})
    sqlite_stores.recommendation_logs.add([logged("ancient", 5_000)])
    report = run_retention(keep, sqlite_stores, now=NOW)
    assert (report.log_cutoff, report.logs_deleted) == (None, 0)
    assert sqlite_stores.recommendation_logs.get("ancient") is not None


def test_recommendation_log_days_from_the_environment(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ATTUNE_RECOMMENDATION_LOG_DAYS", "null")
    assert Settings(data_dir=tmp_path).recommendation_log_days is None
    monkeypatch.setenv("ATTUNE_RECOMMENDATION_LOG_DAYS", "30")
    assert Settings(data_dir=tmp_path).recommendation_log_days == 30
    monkeypatch.setenv("ATTUNE_RECOMMENDATION_LOG_DAYS", "0")
    with pytest.raises(ValueError, match="recommendation_log_days"):
        Settings(data_dir=tmp_path)
