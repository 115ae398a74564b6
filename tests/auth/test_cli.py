"""`attune keys`, `attune audit` and `--workspace` as a user meets them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from attune.cli import app
from attune.config import Settings
from attune.store.factory import open_stores
from tests.conftest import two_taste_events


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ATTUNE_DATA_DIR", str(tmp_path / "data"))
    for name in ("ATTUNE_DATABASE_URL", "ATTUNE_WORKSPACE", "ATTUNE_ADMIN_KEY"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=False)

    return invoke


def test_keys_create_list_revoke_and_audit(run, tmp_path):
    result = run("keys", "create", "--name", "shop backend", "--scopes", "ingest,read", "--json")
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    assert created["key"].startswith("atk_sk_") and created["scopes"] == ["ingest", "read"]

    for nothing in ("", ","):  # once an admin key
        refused = run("keys", "create", "--name", "x", "--scopes", nothing)
        assert refused.exit_code == 1 and "at least one scope" in refused.output

    panel = run("keys", "create", "--name", "web", "--kind", "public")
    assert panel.exit_code == 0 and "atk_pk_" in panel.stdout and "atk_us_" in panel.stdout
    assert "Shown only now" in panel.stdout

    listing = run("keys", "list")
    assert listing.exit_code == 0 and created["key_id"] in listing.stdout
    assert created["key"] not in listing.stdout and "active" in listing.stdout

    assert run("keys", "revoke", created["key_id"]).exit_code == 0
    assert "revoked" in run("keys", "list").stdout
    missing = run("keys", "revoke", "0000000000000000")
    assert missing.exit_code == 1 and "no API key" in missing.output

    audit = run("audit", "--json")
    actions = [json.loads(line)["action"] for line in audit.stdout.splitlines() if line.strip()]
    assert actions == ["key.revoke", "key.create", "key.create"]
    assert created["key"] not in audit.stdout
    assert "key.create" in run("audit").stdout

    stores = open_stores(Settings(data_dir=tmp_path / "data"))
    try:
        stored = stores.keys.get(created["key_id"])
        assert stored is not None and not stored.active
    finally:
        stores.close()


def test_bad_options_fail_cleanly(run):
    result = run("keys", "create", "--name", "x", "--scopes", "root")
    assert result.exit_code == 1 and "unknown scopes" in result.output
    result = run("keys", "create", "--name", "x", "--workspace", "Not Valid")
    assert result.exit_code == 1 and "workspace" in result.output
    result = run("stats", "--workspace", "../etc")
    assert result.exit_code == 1 and "workspace" in result.output


def test_workspace_option_keeps_data_apart(run, tmp_path):
    events = tmp_path / "events.csv"
    rows = ["user_id,item_id,timestamp"]
    rows += [f"{e['user_id']},{e['item_id']},{e['timestamp']}" for e in two_taste_events()]
    events.write_text("\n".join(rows) + "\n")
    assert run("import", "events", str(events), "--workspace", "shop").exit_code == 0
    assert run("train", "--workspace", "shop").exit_code == 0

    shop = json.loads(run("stats", "--json", "--workspace", "shop").stdout)
    default = json.loads(run("stats", "--json").stdout)
    assert shop["events_total"] == 120 and len(shop["model_versions"]) == 1
    assert default["events_total"] == 0 and default["model_versions"] == []
    assert (tmp_path / "data" / "workspaces" / "shop" / "attune.db").exists()

    key = json.loads(run("keys", "create", "--name", "s", "--workspace", "shop", "--json").stdout)
    assert key["workspace"] == "shop"
    assert "key.create" in run("audit", "--workspace", "shop").stdout
    assert "key.create" not in run("audit").stdout
    assert key["key_id"] not in run("keys", "list").stdout
    assert key["key_id"] in run("keys", "list", "--all").stdout


def test_workspace_from_the_environment(run, tmp_path, monkeypatch):
    monkeypatch.setenv("ATTUNE_WORKSPACE", "lab")
    assert run("db-upgrade").exit_code == 0
    assert (tmp_path / "data" / "workspaces" / "lab" / "attune.db").exists()
