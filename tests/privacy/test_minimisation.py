"""Minimisation at ingestion (pseudonymised ids, scrubbed free text), bulk import included;
the privacy commands of the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from attune.cli import app
from attune.config import Settings
from attune.ingest.importers import import_events, import_users
from attune.ingest.service import IngestService
from attune.privacy.pseudonyms import Pseudonymizer
from attune.store.factory import Stores
from tests.privacy.traces import sql_traces

KEY = "pseudonym-key-for-tests-0123456789"
T0 = 1_700_000_000


def test_bulk_import_stores_pseudonyms_and_scrubbed_text(
    tmp_path: Path, stores: Stores, any_settings
):
    settings = any_settings.model_copy(
        update={"pseudonymize_user_ids": True, "pseudonym_key": SecretStr(KEY)}
    )
    service = IngestService(settings, stores)
    users = pd.DataFrame(
        {"user_id": ["carol", "dave"], "email": ["carol@example.org", "n/a"], "zip": ["02134", "9"]}
    )
    events = pd.DataFrame(
        {
            "user_id": ["carol", "carol", "dave"],
            "item_id": ["a", "b", "a"],
            "timestamp": [T0, T0 + 1, T0 + 2],
            "note": ["call me on +44 20 7946 0958", "paid 4111 1111 1111 1111", "fine"],
        }
    )
    assert import_users(service, users).accepted == 2
    assert import_events(service, events).accepted == 3
    key = Pseudonymizer(KEY.encode())
    assert sql_traces(stores.engine, "carol") == []
    assert stores.users.get_user(key("carol"))["traits"] == {"email": "[email]", "zip": "02134"}
    notes = [e["properties"]["note"] for e in stores.events.user_events(key("carol"))]
    assert sorted(notes) == ["call me on [phone]", "paid [card]"]


def test_scrubbing_can_be_switched_off(sqlite_stores: Stores, settings: Settings) -> None:
    service = IngestService(
        settings.model_copy(update={"scrub_personal_data": "off"}), sqlite_stores
    )
    service.ingest_events(
        [
            {
                "user_id": "u",
                "item_id": "a",
                "type": "search",
                "timestamp": T0,
                "context": {"page": "/?q=a@b.io"},
                "properties": {"query": "a@b.io"},
            }
        ]
    )
    (event,) = sqlite_stores.events.user_events("u")
    assert event["context"] == {"page": "/?q=a@b.io"} and event["properties"] == {"query": "a@b.io"}

    scrubbing = IngestService(settings, sqlite_stores)
    scrubbing.ingest_events(
        [
            {
                "user_id": "v",
                "item_id": "a",
                "type": "search",
                "timestamp": T0,
                "context": {"page": "/?q=a@b.io"},
                "properties": {"query": "a@b.io", "n": 3},
            }
        ]
    )
    (event,) = sqlite_stores.events.user_events("v")
    assert event["context"] == {"page": "/?q=[email]"}
    assert event["properties"] == {"query": "[email]", "n": 3}


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ATTUNE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("ATTUNE_DATABASE_URL", raising=False)
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=False)

    return invoke


def test_cli_export_then_erase(run, tmp_path: Path) -> None:
    events = tmp_path / "events.csv"
    events.write_text(
        "user_id,item_id,timestamp\nerin,a,1700000000\nerin,b,1700000001\nfrank,a,1700000002\n"
    )
    assert run("import", "events", str(events)).exit_code == 0
    exported = tmp_path / "erin.json"
    result = run("users", "export", "erin", "--output", str(exported))
    assert result.exit_code == 0, result.output
    document = json.loads(exported.read_text())
    assert [e["item_id"] for e in document["events"]] == ["a", "b"]

    result = run("users", "erase", "erin")
    assert result.exit_code == 0, result.output
    assert "events" in result.output and "2" in result.output
    missing = run("users", "export", "erin")
    assert missing.exit_code == 1 and "nothing is held" in missing.output
    assert run("users", "export", "frank").exit_code == 0


def test_cli_refuses_pseudonymisation_without_a_key(run, monkeypatch) -> None:
    monkeypatch.setenv("ATTUNE_PSEUDONYMIZE_USER_IDS", "true")
    monkeypatch.delenv("ATTUNE_PSEUDONYM_KEY", raising=False)
    from attune.cli import main

    monkeypatch.setattr("sys.argv", ["attune", "stats"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 1
