"""The command line as a user meets it: import, train, stats, batch-recommend."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from attune.cli import app
from tests.conftest import two_taste_events


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ATTUNE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("ATTUNE_DATABASE_URL", raising=False)
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=False)

    return invoke


@pytest.fixture
def events_csv(tmp_path: Path) -> Path:
    path = tmp_path / "events.csv"
    lines = ["user_id,item_id,timestamp"]
    lines += [f"{e['user_id']},{e['item_id']},{e['timestamp']}" for e in two_taste_events()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_import_train_stats_and_batch_recommend(run, events_csv, tmp_path):
    result = run("import", "events", str(events_csv), "--type", "click")
    assert result.exit_code == 0, result.output
    assert "120" in result.output
    trained = run("train")
    assert trained.exit_code == 0
    # each candidate's validation score and how many configurations it was given
    table = trained.output[trained.output.index("validation NDCG@10") :]
    assert "trials" in table and "chosen:" in table
    assert any("item_knn" in line and "█" in line for line in table.splitlines())
    stats = json.loads(run("stats", "--json").stdout)
    assert stats["events"] == {"click": 120}
    assert stats["users"] == 40 and len(stats["model_versions"]) == 1
    (version,) = stats["model_versions"]
    assert version["selection"] == "validated-defaults", "how the model was chosen"
    assert 0 < version["validation_ndcg@10"] <= 1, "and how it did on validation"
    assert "validation NDCG@10=" in run("stats").stdout
    assert version["serving"] is True

    users = tmp_path / "users.txt"
    users.write_text("u0\nu1\nnobody\n\nu0\n")
    out = tmp_path / "recs.jsonl"
    result = run("batch-recommend", "--users", str(users), "--n", "2", "--output", str(out))
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["user_id"] for line in lines] == ["u0", "u1", "nobody"]
    assert all(len(line["items"]) == 2 for line in lines)
    assert all(i.startswith("a") for i in lines[0]["items"])
    assert all(i.startswith("b") for i in lines[1]["items"])

    assert run("train", "--algorithm", "popularity").exit_code == 0
    newest, older = json.loads(run("stats", "--json").stdout)["model_versions"]
    assert (newest["serving"], older["serving"]) == (True, False), "one version serves"


def test_train_gate_says_what_the_check_found(run, events_csv):
    run("import", "events", str(events_csv))
    first = run("train", "--algorithm", "item_knn", "--gate")
    assert first.exit_code == 0 and "check" not in first.output  # nothing served: no check
    again = run("train", "--algorithm", "item_knn", "--gate")
    assert again.exit_code == 0
    assert "check inconclusive: no events newer than the serving version's data" in again.output
    newest = json.loads(run("stats", "--json").stdout)["model_versions"][0]
    assert newest["serving"] is True  # inconclusive: the new version serves


def test_reimport_adds_nothing(run, events_csv):
    run("import", "events", str(events_csv))
    result = run("import", "events", str(events_csv))
    assert result.exit_code == 0
    stats = json.loads(run("stats", "--json").stdout)
    assert stats["events_total"] == 120


def test_rejected_rows_are_reported_beside_the_file(run, tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_text(
        "user_id,item_id,timestamp\nu1,i1,1700000000\n,i2,1700000000\nu3,i3,yesterday\n"
    )
    result = run("import", "events", str(path))
    assert result.exit_code == 0
    rejected = (tmp_path / "mixed.csv.rejected.csv").read_text()
    assert "timestamp" in rejected and "user_id or anonymous_id" in rejected
    assert json.loads(run("stats", "--json").stdout)["events_total"] == 1


def test_train_with_nothing_stored_fails_cleanly(run):
    result = run("train")
    assert result.exit_code == 1
    assert "import or send events first" in result.output


def test_missing_file_and_bad_param_fail_cleanly(run, tmp_path):
    result = run("import", "events", str(tmp_path / "nope.csv"))
    assert result.exit_code == 1 and "no such file" in result.output
    result = run("train", "--param", "neighbors")
    assert result.exit_code == 1 and "key=value" in result.output


def test_models_lists_the_registry(run):
    result = run("models")
    assert "item_knn" in result.stdout and "popularity" in result.stdout


def test_evaluate_prints_a_table_and_writes_json(run, events_csv, tmp_path):
    run("import", "events", str(events_csv))
    output = tmp_path / "eval.json"
    result = run("evaluate", "-a", "item_knn", "-a", "popularity", "--output", str(output))
    assert result.exit_code == 0, result.output
    assert "NDCG@10" in result.stdout and "item_knn" in result.stdout
    report = json.loads(output.read_text())
    assert report["split"] == "temporal-user"
    knn, pop = report["models"]["item_knn"]["overall"], report["models"]["popularity"]["overall"]
    assert knn["ndcg@10"] > pop["ndcg@10"], "taste beats popularity on the two-taste world"
    assert {"recall@20", "hit_rate@10", "map@10", "mrr@10", "coverage@10", "novelty@10"} <= set(knn)
    result = run("evaluate", "--split", "sideways")
    assert result.exit_code == 1 and "unknown split" in result.output


def test_versions_list_and_rollback(run, events_csv):
    assert run("import", "events", str(events_csv)).exit_code == 0
    assert run("train", "--algorithm", "item_knn").exit_code == 0
    assert run("train", "--algorithm", "popularity").exit_code == 0
    newest, older = json.loads(run("versions", "list", "--json").stdout)
    assert (newest["algorithm"], newest["status"], newest["serving"]) == (
        "popularity",
        "champion",
        True,
    )
    assert (older["status"], older["serving"]) == ("retired", False)
    assert "serving" in run("versions", "list").stdout

    result = run("versions", "rollback")
    assert result.exit_code == 0, result.output
    assert older["version_id"] in result.output
    back = json.loads(run("versions", "list", "--json").stdout)[0]
    assert back["serving"] and back["algorithm"] == "item_knn"
    assert back["rolled_back_to"] == older["version_id"]

    refused = run("versions", "rollback", "--to", back["version_id"])
    assert refused.exit_code == 1 and "already serving" in refused.output
    unknown = run("versions", "rollback", "--to", "nope")
    assert unknown.exit_code == 1 and "not found" in unknown.output

    assert run("train", "--algorithm", "ease").exit_code == 0
    dry = run("versions", "prune", "--keep", "2", "--dry-run")
    assert dry.exit_code == 0 and f"would prune {newest['version_id']}" in dry.output
    assert run("versions", "prune", "--keep", "1").exit_code != 0, "at least two are kept"
    assert run("versions", "prune", "--keep", "2").exit_code == 0
    statuses = {
        v["version_id"]: v["status"] for v in json.loads(run("versions", "list", "--json").stdout)
    }
    assert statuses[newest["version_id"]] == "pruned"
    assert statuses[older["version_id"]] == "retired", "shared by the kept rollback"


@pytest.mark.parametrize("budget", ["nan", "inf", "-inf", "1e999s", "0", "-5m"])
def test_a_budget_must_be_finite_and_positive(run, events_csv, budget):
    """Bug bash CLI #2: ``--budget nan`` tuned forever, spewing tracebacks."""
    run("import", "events", str(events_csv))
    for command in (["train", "--tune"], ["evaluate", "-a", "auto"]):
        result = run(*command, "--budget", budget)
        assert result.exit_code == 1, (command, result.output)
        assert "--budget must be a finite positive duration" in result.output


def test_evaluate_refuses_an_unwritable_output_before_evaluating(
    run, events_csv, tmp_path, monkeypatch
):
    """Bug bash CLI #8: a bad ``--output`` failed with a traceback after the whole run."""
    import attune.training.offline

    run("import", "events", str(events_csv))

    def no_evaluation(*args: object, **kwargs: object) -> None:
        raise AssertionError("the output path is checked first")

    monkeypatch.setattr(attune.training.offline, "evaluate_models", no_evaluation)
    for output, reason in ((tmp_path / "nodir" / "e.json", "no folder"), (tmp_path, "folder")):
        result = run("evaluate", "-a", "popularity", "--output", str(output))
        assert result.exit_code == 1
        assert f"cannot write {output}" in result.output and reason in result.output


def test_evaluate_wants_a_positive_cutoff(run, events_csv, tmp_path):
    """Bug bash CLI #12: ``--k 0`` wrote NaN into the report; ``--k -5`` crashed."""
    run("import", "events", str(events_csv))
    output = tmp_path / "e.json"
    for k in ("0", "-5"):
        result = run("evaluate", "-a", "popularity", "--k", k, "--output", str(output))
        assert result.exit_code == 2 and "--k" in result.output
    assert not output.exists()


@pytest.fixture
def served(run, events_csv) -> None:
    """Events imported and a popularity model serving."""
    run("import", "events", str(events_csv))
    assert run("train", "--algorithm", "popularity").exit_code == 0


def test_batch_recommend_refuses_an_unwritable_output(run, served, tmp_path):
    """Bug bash CLI #9: a missing folder or a folder as ``--output`` gave tracebacks."""
    users = tmp_path / "users.txt"
    users.write_text("u0\n")
    for output, reason in ((tmp_path / "nodir" / "r.jsonl", "no folder"), (tmp_path, "folder")):
        result = run("batch-recommend", "--users", str(users), "--output", str(output))
        assert result.exit_code == 1
        assert f"cannot write {output}" in result.output and reason in result.output


def test_batch_recommend_refuses_a_read_only_place(run, served, tmp_path, monkeypatch):
    """Bug bash CLI #9: an unwritable folder or file fails cleanly, before any list is made."""
    users, locked, kept = tmp_path / "users.txt", tmp_path / "locked", tmp_path / "kept.jsonl"
    users.write_text("u0\n")
    locked.mkdir()
    kept.write_text("")
    real_access = os.access

    def access(path: object, mode: int, **kwargs: object) -> bool:  # as if not root
        writing = bool(mode & os.W_OK) and Path(str(path)) in (locked, kept)
        return real_access(path, mode, **kwargs) and not writing

    monkeypatch.setattr(os, "access", access)
    for output, reason in ((locked / "r.jsonl", "not writable"), (kept, "read-only")):
        result = run("batch-recommend", "--users", str(users), "--output", str(output))
        assert result.exit_code == 1, result.output
        assert f"cannot write {output}" in result.output and reason in result.output
        assert "recommending" not in result.output


def test_a_failed_batch_recommend_keeps_the_earlier_output(run, events_csv, tmp_path):
    """Bug bash CLI #10: the output was truncated before the model was found missing."""
    run("import", "events", str(events_csv))  # no model trained
    folder = tmp_path / "out"
    folder.mkdir()
    users, output = tmp_path / "users.txt", folder / "keep.jsonl"
    users.write_text("u0\n")
    output.write_text('{"old": "campaign"}\n')
    result = run("batch-recommend", "--users", str(users), "--output", str(output))
    assert result.exit_code == 1 and "no trained model" in result.output
    assert output.read_text() == '{"old": "campaign"}\n'
    assert [p.name for p in folder.iterdir()] == ["keep.jsonl"], "no temporary file left"

    assert run("train", "--algorithm", "popularity").exit_code == 0
    assert run("batch-recommend", "--users", str(users), "--output", str(output)).exit_code == 0
    assert [json.loads(line)["user_id"] for line in output.read_text().splitlines()] == ["u0"]
    assert [p.name for p in folder.iterdir()] == ["keep.jsonl"]


def test_batch_recommend_reads_past_a_bom_and_counts_unknown_users(run, served, tmp_path):
    """Bug bash CLI #11: a byte-order mark made the first id unknown, silently."""
    users, output = tmp_path / "users.txt", tmp_path / "r.jsonl"
    users.write_bytes(b"\xef\xbb\xbfu0\r\nu1\r\nuser_id\r\nu1\r\n")
    result = run("batch-recommend", "--users", str(users), "--output", str(output))
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert [line["user_id"] for line in lines] == ["u0", "u1", "user_id"]
    assert "unknown users: 1 of 3" in result.output

    users.write_text("u0\nu1\n")
    result = run("batch-recommend", "--users", str(users), "--output", str(output))
    assert result.exit_code == 0 and "unknown users" not in result.output


def test_import_fails_when_every_row_is_rejected(run, tmp_path):
    """Bug bash CLI #13: ``import … --type weird`` rejected every row and exited 0."""
    path = tmp_path / "t.csv"
    path.write_text("user_id,item_id,timestamp\nu1,i1,1700000000\nu2,i1,1700000000\n")
    result = run("import", "events", str(path), "--type", "weird")
    assert result.exit_code == 1
    assert "rejected" in result.output and "t.csv.rejected.csv" in result.output  # the summary
    assert "no row was imported: all 2 were rejected" in result.output
    assert "unknown event type 'weird'" in result.output
    assert run("import", "events", str(path)).exit_code == 0
    assert run("import", "events", str(path)).exit_code == 0, "duplicates are not rejections"
    header_only = tmp_path / "empty.csv"
    header_only.write_text("user_id,item_id,timestamp\n")
    assert run("import", "events", str(header_only)).exit_code == 0


def test_batch_recommend_finds_people_stored_under_pseudonyms(
    run, events_csv, tmp_path, monkeypatch
):
    """With pseudonymised ids, events are stored under a keyed hash: the export must look
    people up by it (it passed raw ids, and everyone got the popular list)."""
    monkeypatch.setenv("ATTUNE_PSEUDONYMIZE_USER_IDS", "true")
    monkeypatch.setenv("ATTUNE_PSEUDONYM_KEY", "pseudonym-key-for-tests-0123456789")
    assert run("import", "events", str(events_csv)).exit_code == 0
    assert run("train").exit_code == 0
    users, output = tmp_path / "users.txt", tmp_path / "r.jsonl"
    users.write_text("u0\nu1\n")
    result = run("batch-recommend", "--users", str(users), "--output", str(output))
    assert result.exit_code == 0, result.output
    assert "unknown users" not in result.output
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert [line["user_id"] for line in lines] == ["u0", "u1"]  # the ids as given
    # u0 and u1 have different tastes (two_taste_events): their lists differ
    assert lines[0]["items"] != lines[1]["items"]


def test_train_and_evaluate_fall_back_when_nobody_can_be_validated(run, tmp_path):
    """Everyone has a single event: nobody keeps history once their newest is held out,
    so no candidate can be judged. Training falls back to the default model (it showed
    a RuntimeError traceback), and so does evaluating what it would choose."""
    path = tmp_path / "one_each.csv"
    rows = [f"u{k},i{k % 30},{1_700_000_000 + k}" for k in range(100)]
    path.write_text("user_id,item_id,timestamp\n" + "\n".join(rows) + "\n")
    assert run("import", "events", str(path)).exit_code == 0
    trained = run("train")
    assert trained.exit_code == 0, trained.output
    assert "item_knn" in trained.output
    report = tmp_path / "evaluation.json"
    evaluated = run("evaluate", "--split", "global-temporal", "--output", str(report))
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(report.read_text())["models"]["auto"]["chosen"]["algorithm"] == "item_knn"


def test_a_partial_items_import_changes_only_the_columns_given(run, tmp_path):
    """A stock or price feed (``item_id,available,price``) must not clear titles and
    categories, as a whole-item import does; rows of items not imported yet, or that
    would make an invalid item, are rejected with the reason."""
    from attune.config import Settings
    from attune.store.factory import open_stores

    full = tmp_path / "items.csv"
    full.write_text(
        "item_id,title,genres,price,color\n"
        "1,Heat (1995),Action|Crime,10,red\n2,Up (2009),Animation,8,blue\n"
    )
    assert run("import", "items", str(full)).exit_code == 0
    feed = tmp_path / "stock.csv"
    feed.write_text("item_id,available,price,stock\n1,false,,0\n2,true,7.5,\n9,true,1,\n2,,-3,\n")
    result = run("import", "items", str(feed), "--partial")
    assert result.exit_code == 0, result.output
    stores = open_stores(Settings())
    try:
        heat, up = stores.catalog.get_item("1"), stores.catalog.get_item("2")
        assert stores.catalog.get_item("9") is None
    finally:
        stores.close()
    assert heat["title"] == "Heat (1995)" and heat["categories"] == ["Action", "Crime"]
    assert heat["available"] is False and heat["price"] == 10  # a blank cell keeps it
    assert heat["properties"] == {"color": "red", "stock": "0"}  # CSV cells are text
    # its second row (a negative price) is refused on its own; the first one applies
    assert up["price"] == 7.5 and up["title"] == "Up (2009)"
    rejected = (tmp_path / "stock.csv.rejected.csv").read_text()
    assert "not in the catalog" in rejected and "greater than or equal to 0" in rejected

    # an availability feed by region; an unknown item's every row is refused, and a
    # file of nothing else fails
    regional = tmp_path / "regions.csv"
    regional.write_text("item_id,regions\n1,EU|US\n")
    assert run("import", "items", str(regional), "--partial").exit_code == 0
    stores = open_stores(Settings())
    try:
        heat = stores.catalog.get_item("1")
    finally:
        stores.close()
    assert heat["regions"] == ["EU", "US"] and "regions" not in (heat["properties"] or {})
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("item_id,price\nnoA,1\nnoA,2\n")
    failed = run("import", "items", str(unknown), "--partial")
    assert failed.exit_code == 1 and "all 2 were rejected" in failed.output
    assert (tmp_path / "unknown.csv.rejected.csv").read_text().count("noA") == 2


@pytest.mark.parametrize("value", ["x", '{"*": 0}'])
def test_a_bad_setting_is_a_clean_error_naming_the_variable(run, monkeypatch, value):
    monkeypatch.setenv("ATTUNE_RETENTION_DAYS", value)
    result = run("stats")
    assert result.exit_code == 1
    assert "bad setting: ATTUNE_RETENTION_DAYS" in result.output
    assert "Traceback" not in result.output


def test_reading_a_mistyped_workspace_fails_and_creates_nothing(run, tmp_path):
    for command in (["stats"], ["audit"], ["versions", "list"], ["users", "export", "u1"]):
        result = run(*command, "--workspace", "nope")
        assert result.exit_code == 1, command
        assert "no workspace named 'nope'" in result.output, command
    assert not (tmp_path / "data" / "workspaces" / "nope").exists()
    assert run("stats").exit_code == 0  # the default workspace is made on first use
