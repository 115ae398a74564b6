"""Bulk import from files: every format reads the same events, bad rows are explained."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from attune.config import Settings
from attune.errors import ValidationError
from attune.ingest.files import read_table
from attune.ingest.importers import import_events, import_items, import_users, write_rejected
from attune.ingest.schemas import EventIn
from attune.ingest.service import IngestService
from attune.ingest.validation import derived_event_id
from attune.store.factory import Stores

T0 = 1_700_000_000

EVENTS = pd.DataFrame(
    {
        "user_id": ["u1", "u1", "u2", "u3", "u3"],
        "item_id": ["i1", "i2", "i1", "i3", "i1"],
        "type": ["view", "rating", "purchase", "view", "like"],
        "value": [None, 4.5, 2.0, None, None],
        "timestamp": [T0, T0 + 10, T0 + 20, T0 + 30, T0 + 40],
    }
)


def write(frame: pd.DataFrame, path: Path) -> Path:
    suffix = path.suffix
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    elif suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:  # pragma: no cover - a test bug
        raise AssertionError(suffix)
    return path


def stored_events(stores: Stores) -> list[tuple[str, str, str, float | None, float]]:
    frame = stores.events.interaction_frame()
    rows = []
    for user_id, item_id, kind, value, timestamp in frame.itertuples(index=False, name=None):
        rows.append((user_id, item_id, kind, None if pd.isna(value) else value, timestamp))
    return sorted(rows)


EXPECTED = sorted(
    [
        ("u1", "i1", "view", None, float(T0)),
        ("u1", "i2", "rating", 4.5, float(T0 + 10)),
        ("u2", "i1", "purchase", 2.0, float(T0 + 20)),
        ("u3", "i3", "view", None, float(T0 + 30)),
        ("u3", "i1", "like", None, float(T0 + 40)),
    ]
)


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_each_format_imports_the_same_events(
    settings: Settings, sqlite_stores: Stores, tmp_path: Path, suffix: str
):
    path = write(EVENTS, tmp_path / f"events{suffix}")
    service = IngestService(settings, sqlite_stores)
    report = import_events(service, read_table(path), source=path.name)
    assert (report.total, report.accepted, report.duplicates, report.rejected) == (5, 5, 0, 0)
    assert stored_events(sqlite_stores) == EXPECTED


def test_formats_agree_on_event_identity(settings: Settings, sqlite_stores: Stores, tmp_path):
    """Events without ids get content-derived ids: the same rows in another format are repeats."""
    service = IngestService(settings, sqlite_stores)
    first = write(EVENTS, tmp_path / "events.csv")
    assert import_events(service, read_table(first)).accepted == 5
    for suffix in (".tsv", ".jsonl", ".parquet"):
        report = import_events(service, read_table(write(EVENTS, tmp_path / f"e{suffix}")))
        assert (report.accepted, report.duplicates) == (0, 5), suffix
    assert sqlite_stores.events.count() == 5


def test_event_ids_extra_columns_and_progress(settings: Settings, sqlite_stores, tmp_path):
    frame = EVENTS.assign(event_id=[f"e{k}" for k in range(5)], campaign=["x", "", "y", "", ""])
    path = write(frame, tmp_path / "events.csv")
    advanced: list[int] = []
    report = import_events(
        IngestService(settings, sqlite_stores), read_table(path), advance=advanced.append
    )
    assert report.accepted == 5 and sum(advanced) == 5
    by_id = {r["event_id"]: r for r in sqlite_stores.events.user_events("u1")}
    assert set(by_id) == {"e0", "e1"}
    assert by_id["e0"]["properties"] == {"campaign": "x"}
    assert by_id["e1"]["properties"] is None


def test_missing_required_column_names_it(settings: Settings, sqlite_stores, tmp_path):
    path = write(EVENTS.drop(columns=["item_id"]), tmp_path / "events.csv")
    with pytest.raises(ValidationError, match="item_id"):
        import_events(IngestService(settings, sqlite_stores), read_table(path), source=path.name)
    assert sqlite_stores.events.count() == 0


def test_unknown_file_type_and_missing_file(tmp_path: Path):
    with pytest.raises(ValidationError, match="unknown file type"):
        read_table(write(EVENTS, tmp_path / "events.csv").rename(tmp_path / "events.xlsx"))
    with pytest.raises(ValidationError, match="no such file"):
        read_table(tmp_path / "absent.csv")


def test_bad_rows_are_rejected_with_row_and_reason(settings: Settings, sqlite_stores, tmp_path):
    frame = pd.DataFrame(
        {
            "user_id": ["u1", "u2", "", "u4", "u5"],
            "item_id": ["i1", "i2", "i3", "i4", "i5"],
            "type": ["view", "view", "view", "teleport", "view"],
            "timestamp": [str(T0), "yesterday", str(T0), str(T0), str(T0 * 1000)],
        }
    )
    path = write(frame, tmp_path / "events.csv")
    service = IngestService(settings, sqlite_stores)
    report = import_events(service, read_table(path), source=path.name)
    assert (report.accepted, report.rejected) == (1, 4)
    rows = {r["row"]: r for r in report.rejected_rows}
    assert set(rows) == {2, 3, 4, 5}  # 1-based data rows (the header is not counted)
    assert rows[2]["reason"].startswith("timestamp:") and rows[2]["user_id"] == "u2"
    assert "user_id" in rows[3]["reason"] and "anonymous_id" in rows[3]["reason"]
    assert rows[4]["reason"].startswith("type:") and "teleport" in rows[4]["reason"]
    assert "milliseconds" in rows[5]["reason"]

    target = write_rejected(report, path, settings.data_dir / "rejected")
    assert target == tmp_path / "events.csv.rejected.csv" and report.rejected_file == target
    written = pd.read_csv(target, dtype=str, keep_default_na=False)
    assert {"row", "reason", "user_id", "item_id", "type", "timestamp"} <= set(written.columns)
    assert list(written["row"]) == ["2", "3", "4", "5"]
    assert "teleport" in written.loc[written["row"] == "4", "reason"].item()
    assert written.loc[written["row"] == "2", "timestamp"].item() == "yesterday"


def test_nothing_rejected_writes_no_file(settings: Settings, sqlite_stores, tmp_path):
    path = write(EVENTS, tmp_path / "events.csv")
    report = import_events(IngestService(settings, sqlite_stores), read_table(path))
    assert write_rejected(report, path, tmp_path / "fallback") is None
    assert not (tmp_path / "events.csv.rejected.csv").exists()


def test_reimport_adds_nothing(settings: Settings, sqlite_stores, tmp_path):
    frame = pd.concat(
        [EVENTS.astype({"timestamp": str}), pd.DataFrame([{"user_id": "", "item_id": "x"}])]
    )
    path = write(frame.astype(object).fillna(""), tmp_path / "events.csv")
    service = IngestService(settings, sqlite_stores)
    first = import_events(service, read_table(path))
    second = import_events(service, read_table(path))
    assert (first.accepted, first.duplicates, first.rejected) == (5, 0, 1)
    assert (second.accepted, second.duplicates, second.rejected) == (0, 5, 1)
    assert sqlite_stores.events.count() == 5


def test_default_type_applies_without_a_type_column(settings: Settings, sqlite_stores, tmp_path):
    path = write(EVENTS.drop(columns=["type"]), tmp_path / "events.csv")
    service = IngestService(settings, sqlite_stores)
    report = import_events(service, read_table(path), default_type="purchase")
    assert report.accepted == 5
    assert sqlite_stores.events.count_by_type() == {"purchase": 5}

    blanks = EVENTS.assign(type=["", "rating", "", "", ""], user_id="v")
    report = import_events(
        service, read_table(write(blanks, tmp_path / "blanks.csv")), default_type="click"
    )
    assert report.accepted == 5
    assert sorted(e.type for e in sqlite_stores.events.user_history("v")) == [
        "click",
        "click",
        "click",
        "click",
        "rating",
    ]


def test_a_rating_column_is_the_value_unless_a_value_column_is_there(
    settings: Settings, sqlite_stores, tmp_path
):
    """MovieLens-style files name the value ``rating``: it weighs the event, not a property."""
    service = IngestService(settings, sqlite_stores)
    rated = EVENTS.drop(columns=["value"]).assign(rating=["5", "4.5", "", "1", "3"])
    report = import_events(service, read_table(write(rated, tmp_path / "rated.csv")))
    assert report.accepted == 5
    values = {(u, i): v for u, i, _k, v, _t in stored_events(sqlite_stores)}
    assert values == {
        ("u1", "i1"): 5.0,
        ("u1", "i2"): 4.5,
        ("u2", "i1"): None,
        ("u3", "i3"): 1.0,
        ("u3", "i1"): 3.0,
    }
    assert all(e["properties"] is None for e in sqlite_stores.events.user_events("u1"))

    both = EVENTS.assign(rating="2", user_id="w")  # a value column wins; rating is kept aside
    import_events(service, read_table(write(both, tmp_path / "both.csv")))
    kept = {e["item_id"]: e for e in sqlite_stores.events.user_events("w")}
    assert kept["i2"]["value"] == 4.5 and kept["i2"]["properties"] == {"rating": "2"}


def test_items_file_reads_genres_lists_properties_price_and_availability(
    settings: Settings, sqlite_stores: Stores, tmp_path: Path
):
    frame = pd.DataFrame(
        {
            "item_id": ["m1", "m2", "m3", "m4", ""],
            "title": ["Toy Story", "Heat", "Bad price", "Old", "no id"],
            "genres": ["Animation|Children's|Comedy", "Action | Crime", "", "Drama", ""],
            "tags": ["pixar|toys", "", "", "", ""],
            "price": ["9.99", "", "-3", "0", ""],
            "available": ["true", "false", "true", "0", ""],
            "year": ["1995", "1995", "", "1950", ""],
            "director": ["Lasseter", "Mann", "", "", ""],
        }
    )
    path = write(frame, tmp_path / "items.csv")
    report = import_items(IngestService(settings, sqlite_stores), read_table(path))
    assert (report.total, report.accepted, report.rejected) == (5, 3, 2)
    assert sorted(r["row"] for r in report.rejected_rows) == [3, 5]
    bad_price = next(r for r in report.rejected_rows if r["row"] == 3)
    assert bad_price["reason"].startswith("price:")

    toy = sqlite_stores.catalog.get_item("m1")
    assert toy["title"] == "Toy Story"
    assert toy["categories"] == ["Animation", "Children's", "Comedy"]
    assert toy["tags"] == ["pixar", "toys"]
    assert toy["price"] == 9.99 and toy["available"] is True
    assert toy["properties"] == {"year": "1995", "director": "Lasseter"}
    heat = sqlite_stores.catalog.get_item("m2")
    assert heat["categories"] == ["Action", "Crime"]
    assert heat["price"] is None and heat["available"] is False
    old = sqlite_stores.catalog.get_item("m4")
    assert old["price"] == 0.0 and old["available"] is False
    assert sqlite_stores.catalog.unavailable_item_ids() == {"m2", "m4"}

    target = write_rejected(report, path, settings.data_dir)
    assert target == tmp_path / "items.csv.rejected.csv"
    assert "reason" in pd.read_csv(target).columns


def test_item_file_with_a_repeated_id_keeps_the_last_row(settings, sqlite_stores, tmp_path):
    frame = pd.DataFrame({"item_id": ["a", "b", "a"], "title": ["first", "B", "second"]})
    report = import_items(
        IngestService(settings, sqlite_stores), read_table(write(frame, tmp_path / "i.csv"))
    )
    assert (report.accepted, report.duplicates) == (2, 1)
    assert sqlite_stores.catalog.get_item("a")["title"] == "second"


def test_items_without_an_item_id_column_are_refused(settings, sqlite_stores, tmp_path):
    path = write(pd.DataFrame({"title": ["x"]}), tmp_path / "items.csv")
    with pytest.raises(ValidationError, match="item_id"):
        import_items(IngestService(settings, sqlite_stores), read_table(path))


def test_users_file_other_columns_become_traits(settings, sqlite_stores, tmp_path):
    frame = pd.DataFrame(
        {
            "user_id": ["1", "2", ""],
            "age": ["24", "-3", "50"],
            "gender": ["M", "F", "F"],
            "zip_code": ["02138", "T8H1N", "1"],
            "score": ["1.5", "", ""],
            "unit": ["m²", "²", ""],  # str.isdigit() is true for "²" but int() refuses it
        }
    )
    path = write(frame, tmp_path / "users.tsv")
    report = import_users(IngestService(settings, sqlite_stores), read_table(path))
    assert (report.accepted, report.rejected) == (2, 1)
    assert report.rejected_rows[0]["row"] == 3
    one = sqlite_stores.users.get_user("1")["traits"]
    # numbers become ints; a zip code with a leading zero is an identifier and stays text
    assert one == {"age": 24, "gender": "M", "zip_code": "02138", "score": "1.5", "unit": "m²"}
    assert sqlite_stores.users.get_user("2")["traits"] == {
        "age": -3,
        "gender": "F",
        "zip_code": "T8H1N",
        "unit": "²",
    }


def test_json_lines_times_are_not_reinterpreted(settings, sqlite_stores, tmp_path):
    """pandas.read_json would turn a column named "timestamp" into dates by itself."""
    path = tmp_path / "events.jsonl"
    path.write_text(
        '{"user_id": 7, "item_id": 8, "type": "view", "timestamp": 1700000000}\n'
        '{"user_id": 7, "item_id": 9, "type": "view", "timestamp": "2023-11-14T22:13:20Z"}\n'
    )
    report = import_events(IngestService(settings, sqlite_stores), read_table(path))
    assert report.accepted == 2
    assert [(h.item_id, h.timestamp) for h in sqlite_stores.events.user_history("7")] == [
        ("8", float(T0)),
        ("9", float(T0)),
    ]


def test_parquet_integer_ids_beside_a_null_keep_their_digits(
    settings: Settings, sqlite_stores: Stores, tmp_path: Path
):
    """Bug bash CLI #3: an int64 id column with a null was read as floats ("10.0")."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "spark.parquet"
    table = {
        "user_id": pa.array([1, 2, 3], pa.int64()),
        "item_id": pa.array([10, None, 30], pa.int64()),
        "anonymous_id": pa.array(["007", None, "7"]),  # text ids stay text
        "timestamp": pa.array([T0, T0 + 1, T0 + 2], pa.int64()),
    }
    pq.write_table(pa.table(table), path)
    import_events(IngestService(settings, sqlite_stores), read_table(path))
    rows = {
        (e["user_id"], e["item_id"], e["anonymous_id"])
        for e in _events_of(sqlite_stores, "1", "2", "3")
    }
    assert rows == {("1", "10", "007"), ("2", None, None), ("3", "30", "7")}


def test_parquet_id_column_of_whole_floats_reads_as_integers(
    settings: Settings, sqlite_stores: Stores, tmp_path: Path
):
    """Bug bash CLI #3: pandas writes an int column with a null as double; ids stay "10"."""
    frame = pd.DataFrame(
        {"user_id": [1.0, 2.0], "item_id": [10.0, None], "value": [2.0, 1.5], "timestamp": T0}
    )
    path = write(frame, tmp_path / "floats.parquet")
    import_events(IngestService(settings, sqlite_stores), read_table(path))
    events = _events_of(sqlite_stores, "1", "2")
    rows = {(e["user_id"], e["item_id"], e["value"]) for e in events}
    assert rows == {("1", "10", 2.0), ("2", None, 1.5)}, "values stay floats"


def test_nullable_int_cells_become_their_digits(
    settings: Settings, sqlite_stores: Stores, tmp_path: Path
):
    """Bug bash CLI #5: pandas Int64 (numpy.int64) cells were refused as "not a string"."""
    frame = pd.DataFrame(
        {
            "user_id": pd.array([1, None, 3], dtype="Int64"),
            "item_id": pd.array([10, 20, None], dtype="Int64"),
            "timestamp": [T0, T0 + 1, T0 + 2],
        }
    )
    service = IngestService(settings, sqlite_stores)
    report = import_events(service, read_table(write(frame, tmp_path / "e5.parquet")))
    assert (report.accepted, report.rejected) == (2, 1)
    assert "user_id or anonymous_id" in report.rejected_rows[0]["reason"], "the null user"
    in_memory = frame.assign(user_id=pd.array([4, 5, 6], dtype="Int64"))  # not from a file
    assert import_events(service, in_memory).accepted == 3
    events = _events_of(sqlite_stores, "1", "3", "4", "5", "6")
    users = {(e["user_id"], e["item_id"]) for e in events}
    assert {("1", "10"), ("3", None), ("4", "10"), ("5", "20"), ("6", None)} == users


@pytest.mark.parametrize("missing", [pd.NaT, pd.NA], ids=["NaT", "NA"])
def test_a_missing_parquet_timestamp_is_a_blank_one(
    settings: Settings, sqlite_stores: Stores, tmp_path: Path, missing: object
):
    """Bug bash CLI #4: a NaT timestamp crashed the import (and lost the good rows)."""
    frame = pd.DataFrame(
        {
            "user_id": ["u1", "u2"],
            "item_id": ["a", "b"],
            "timestamp": pd.array([pd.Timestamp("2023-11-14 22:13:20"), missing], dtype=object),
        }
    )
    if missing is pd.NaT:  # a datetime column, as pandas writes it
        frame["timestamp"] = pd.to_datetime(frame["timestamp"])
    service = IngestService(settings, sqlite_stores)
    for source in (frame, read_table(write(frame, tmp_path / "e6.parquet"))):
        report = import_events(service, source)
        assert report.rejected == 0 and report.accepted + report.duplicates == 2
    (timed,) = sqlite_stores.events.user_history("u1")
    (untimed,) = sqlite_stores.events.user_history("u2")
    assert timed.timestamp == float(T0)
    assert untimed.timestamp > T0, "stamped with the import time, as a blank CSV cell is"


def test_reimporting_rows_without_timestamps_adds_nothing(
    settings: Settings, sqlite_stores: Stores, tmp_path: Path
):
    """Bug bash CLI #6: each import stamped blank timestamps anew, so re-imports duplicated."""
    path = tmp_path / "nots.csv"
    path.write_text("user_id,item_id,timestamp,value\nu1,i1,,1\nu2,i2,,1\nu3,i3,1700000000,1\n")
    service = IngestService(settings, sqlite_stores)
    first = import_events(service, read_table(path))
    stamped = {e["event_id"]: e["timestamp"] for e in _events_of(sqlite_stores, "u1", "u2", "u3")}
    second = import_events(service, read_table(path))
    assert (first.accepted, first.duplicates) == (3, 0)
    assert (second.accepted, second.duplicates) == (0, 3)
    assert {
        e["event_id"]: e["timestamp"] for e in _events_of(sqlite_stores, "u1", "u2", "u3")
    } == stamped


def test_untimed_ids_leave_time_out_only_for_untimed_events(settings: Settings, sqlite_stores):
    """Bug bash CLI #6: timed events keep their ids; live API events keep the arrival time."""
    timed = {"user_id": "u", "item_id": "i", "type": "view", "timestamp": T0}
    untimed = {"user_id": "u", "item_id": "j", "type": "view"}
    validator = IngestService(settings, sqlite_stores).validator
    timed_id = validator.parse(timed)[0].row["event_id"]
    assert validator.parse(timed, untimed_ids=True)[0].row["event_id"] == timed_id
    assert timed_id == derived_event_id(EventIn.model_validate(timed), float(T0))
    api = {validator.parse(untimed, received_at=t)[0].row["event_id"] for t in (T0, T0 + 1)}
    files = {
        validator.parse(untimed, received_at=t, untimed_ids=True)[0].row["event_id"]
        for t in (T0, T0 + 1)
    }
    assert (len(api), len(files)) == (2, 1)


def _events_of(stores: Stores, *user_ids: str) -> list[dict[str, Any]]:
    """The stored event rows of ``user_ids`` (with or without an item)."""
    return [e for user in user_ids for e in stores.events.user_events(user)]
