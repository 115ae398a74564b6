"""MovieLens readers (RecBole, GroupLens 100k, GroupLens CSV) and the CLI import end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from attune.cli import app
from attune.config import Settings
from attune.ingest.movielens import read_movielens
from attune.store.factory import open_stores

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
ML_100K = SHARED_DATA / "ml-100k"
ML_LATEST_SMALL = SHARED_DATA / "ml-latest-small"

needs_100k = pytest.mark.skipif(not ML_100K.is_dir(), reason=f"{ML_100K} is absent")
needs_latest = pytest.mark.skipif(
    not ML_LATEST_SMALL.is_dir(), reason=f"{ML_LATEST_SMALL} is absent"
)


@needs_100k
def test_recbole_ml_100k():
    data = read_movielens(ML_100K)
    assert data.layout == "recbole"

    events = data.events
    assert len(events) == 100_000
    assert list(events.columns) == ["user_id", "item_id", "type", "value", "timestamp"]
    assert set(events["type"]) == {"rating"}
    assert events["user_id"].nunique() == 943 and events["item_id"].nunique() == 1_682
    assert set(events["value"].astype(float)) == {1.0, 2.0, 3.0, 4.0, 5.0}
    first = events.iloc[0]
    assert (first["user_id"], first["item_id"], first["value"]) == ("196", "242", "3")
    assert float(first["timestamp"]) == 881250949

    items = data.items.set_index("item_id")
    assert len(items) == 1_682
    assert items.loc["1", "title"] == "Toy Story"
    assert items.loc["1", "categories"].split("|") == ["Animation", "Children's", "Comedy"]
    assert items.loc["1", "year"] == "1995"
    assert (items["title"].str.len() > 0).all()
    assert (items["categories"].str.len() > 0).mean() > 0.99

    users = data.users.set_index("user_id")
    assert len(users) == 943
    assert {"age", "gender", "occupation", "zip_code"} <= set(users.columns)
    assert users.loc["1", "age"] == "24" and users.loc["1", "occupation"] == "technician"
    assert users.loc["9", "zip_code"] == "01002"


@needs_latest
def test_grouplens_ml_latest_small():
    data = read_movielens(ML_LATEST_SMALL)
    assert data.layout == "grouplens-csv"
    assert len(data.events) == 100_836
    assert set(data.events["type"]) == {"rating"}
    assert set(data.events["value"].astype(float)) >= {0.5, 5.0}

    items = data.items.set_index("item_id")
    assert len(items) == 9_742
    assert items.loc["1", "title"] == "Toy Story"
    assert items.loc["1", "categories"] == "Adventure|Animation|Children|Comedy|Fantasy"
    assert items.loc["1", "year"] == "1995"
    tagged = items[items["tags"] != ""]
    assert len(tagged) > 1_000
    # tags.csv: user 2 tagged movie 60756 "funny" and "Highly quotable"
    assert {"funny", "Highly quotable"} <= set(items.loc["60756", "tags"].split("|"))
    for tags in tagged["tags"]:
        lowered = [t.lower() for t in tags.split("|")]
        assert len(lowered) == len(set(lowered)) and "" not in lowered
    assert len(data.users) == data.events["user_id"].nunique() == 610


def _tiny_grouplens_100k(folder: Path) -> Path:
    folder.mkdir()
    (folder / "u.data").write_text(
        "1\t10\t5\t874965758\n1\t20\t3\t876893171\n2\t10\t4\t888550871\n"
    )
    flags_10 = ["0"] * 19
    flags_10[3] = flags_10[5] = "1"  # Animation, Comedy
    flags_20 = ["0"] * 19
    flags_20[8] = "1"  # Drama
    lines = [
        "|".join(["10", "Amélie (2001)", "01-Jan-2001", "", "http://x", *flags_10]),
        "|".join(["20", "Cité des enfants perdus, La (1995)", "", "", "", *flags_20]),
    ]
    (folder / "u.item").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    (folder / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|01002\n")
    return folder


def test_grouplens_100k_layout(tmp_path: Path):
    data = read_movielens(_tiny_grouplens_100k(tmp_path / "ml-100k"))
    assert data.layout == "grouplens-100k"
    assert len(data.events) == 3 and set(data.events["type"]) == {"rating"}
    assert list(data.events["value"]) == ["5", "3", "4"]

    items = data.items.set_index("item_id")
    assert items.loc["10", "title"] == "Amélie"
    assert items.loc["10", "categories"] == "Animation|Comedy"
    assert items.loc["10", "year"] == "2001"
    assert items.loc["20", "title"] == "Cité des enfants perdus, La"
    assert items.loc["20", "categories"] == "Drama"

    users = data.users.set_index("user_id")
    assert users.loc["1"].to_dict() == {
        "age": "24",
        "gender": "M",
        "occupation": "technician",
        "zip_code": "85711",
    }
    assert users.loc["2", "zip_code"] == "01002"


def test_not_a_movielens_folder(tmp_path: Path):
    from attune.errors import ValidationError

    with pytest.raises(ValidationError, match="no MovieLens files"):
        read_movielens(tmp_path)
    with pytest.raises(ValidationError, match="not a folder"):
        read_movielens(tmp_path / "absent")


def test_cli_imports_a_movielens_folder(tmp_path: Path):
    folder = _tiny_grouplens_100k(tmp_path / "ml")
    runner = CliRunner()
    env = {"ATTUNE_DATA_DIR": str(tmp_path / "data")}
    result = runner.invoke(app, ["import", "movielens", str(folder)], env=env)
    assert result.exit_code == 0, result.output
    stats = runner.invoke(app, ["stats", "--json"], env=env)
    assert stats.exit_code == 0, stats.output
    report = json.loads(stats.stdout)
    assert report["events"] == {"rating": 3}
    assert report["users"] == 2 and report["user_profiles"] == 2 and report["items"] == 2

    stores = open_stores(Settings(data_dir=tmp_path / "data"))
    try:
        assert stores.users.get_user("2")["traits"]["zip_code"] == "01002"
        assert stores.catalog.get_item("10")["categories"] == ["Animation", "Comedy"]
    finally:
        stores.close()


@pytest.mark.slow
@needs_100k
def test_cli_import_ml_100k_twice_adds_nothing_the_second_time(tmp_path: Path):
    runner = CliRunner()
    env = {"ATTUNE_DATA_DIR": str(tmp_path / "data")}
    for _attempt in range(2):
        result = runner.invoke(app, ["import", "movielens", str(ML_100K)], env=env)
        assert result.exit_code == 0, result.output
        stats = runner.invoke(app, ["stats", "--json"], env=env)
        assert stats.exit_code == 0, stats.output
        report = json.loads(stats.stdout)
        assert report["events"] == {"rating": 100_000}
        assert report["events_total"] == 100_000
        assert report["users"] == 943 and report["user_profiles"] == 943
        assert report["items"] == 1_682 and report["items_with_events"] == 1_682

    stores = open_stores(Settings(data_dir=tmp_path / "data"))
    try:
        assert stores.catalog.get_item("1")["title"] == "Toy Story"
        assert stores.users.get_user("9")["traits"]["zip_code"] == "01002"
        assert stores.users.get_user("1")["traits"]["age"] == 24
    finally:
        stores.close()
