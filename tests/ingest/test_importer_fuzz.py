"""Property tests for the bulk importers: any well-formed CSV, TSV or JSON-lines file, however
odd its cells, is read and imported without surprises.

Every example gets a fresh data folder and SQLite store. For each file:

- a file that lacks a required column is refused with a ValidationError naming it, and
  nothing is stored;
- otherwise every data row is counted once (accepted + duplicate + rejected = rows),
  every rejected row is in ``<file>.rejected.csv`` with its row number, a reason and its
  cells, and the store holds exactly the accepted events (items, users);
- an item or user id the REST API would refuse (blank, over 256 characters, NUL) is
  refused by the importer too.

The regression tests at the end name the bugs these properties found.
"""

from __future__ import annotations

import csv
import json
import math
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pydantic
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from attune.config import Settings
from attune.errors import ValidationError
from attune.ingest.files import read_table
from attune.ingest.importers import import_events, import_items, import_users, write_rejected
from attune.ingest.schemas import Id
from attune.ingest.service import IngestService
from attune.store.factory import Stores, open_stores
from tests.conftest import ADMIN_KEY

EVENT_REQUIRED = ("user_id", "item_id", "timestamp")
EVENT_OPTIONAL = ("value", "type", "event_id")
ITEM_OPTIONAL = ("title", "text", "categories", "tags", "available", "price", "created_at")
USER_OPTIONAL = ("locale", "region", "segment")
OTHER_KNOWN = (
    "language",
    "anonymous_id",
    "recommendation_id",
    "genres",
    "genre",
    "category",
    "rating",
)
KNOWN_COLUMNS = frozenset(  # extra columns are named otherwise (row, reason: rejected files)
    (
        *EVENT_REQUIRED,
        *EVENT_OPTIONAL,
        *ITEM_OPTIONAL,
        *USER_OPTIONAL,
        *OTHER_KNOWN,
        "row",
        "reason",
    )
)
FORMATS = (".csv", ".tsv", ".jsonl")
FUZZ = settings(
    max_examples=50,  # about 5 s per importer; the properties held over 2,000 random examples
    deadline=None,
    database=None,
    derandomize=True,  # a fixed seed: a failure reproduces
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
)

TIMES = [
    "1700000000",
    " 1700000000.25 ",
    "1700000000000",  # milliseconds: refused with a reason
    "2023-11-14T22:13:20Z",
    "2023-11-14 22:13:20+01:00",
    "2023-02-30",  # no such day
    "31/12/2023",
    "yesterday",
    "9999-12-31T23:59:59-01:00",
    "-99999999999999999999",
]
ODD_TEXT = [
    "",
    " ",
    "NaN",
    "nan",
    "NULL",
    "None",
    "inf",
    "-Infinity",
    "1e999",
    "\x00",
    "a\x00b",
    '"',
    'say "hi"',
    "line\nbreak",
    "cr\rlf\r\n",
    "\ufeffbom",
    "tab\there",
    "semi;colon|pipe,comma",
    "ünïcødé ✓ 中文 🎉",
    "x" * 300,
]
text_cells = st.one_of(
    st.sampled_from(ODD_TEXT),
    st.sampled_from(TIMES),
    st.sampled_from(["view", "purchase", "rating", "VIEW", "teleport", "true", "no", "maybe"]),
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["u1", "u2", "i1", "i2", " i1 ", "5", "05"]),  # repeats make duplicates
    st.text(max_size=20),
)
json_cells = st.one_of(
    text_cells,
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([1_700_000_000, 1_700_000_000_000, 5, 0, -1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(st.integers(max_value=9), max_size=2),
    st.dictionaries(st.sampled_from(["a", "b"]), st.integers(max_value=9), max_size=2),
)
API_ID = pydantic.TypeAdapter(Id, config=pydantic.ConfigDict(coerce_numbers_to_str=True))
"""The rules the REST API applies to an id (numbers are read as text)."""

extra_names = st.text(min_size=1, max_size=12).filter(
    lambda name: name.strip() != "" and name.strip() not in KNOWN_COLUMNS
)


@dataclass
class TableFile:
    """A generated file: its columns and rows as written, and where it lies."""

    columns: list[str]
    rows: list[dict[str, Any]]
    suffix: str
    bom: bool
    line_end: str

    @property
    def delimiter(self) -> str:
        return "\t" if self.suffix == ".tsv" else ","

    @property
    def quote_all(self) -> bool:
        """Python quotes a cell holding a lone "\r" only when "\r" ends lines: quote every
        cell then, or the file would not be well-formed."""
        cells = [*self.columns, *(str(v) for row in self.rows for v in row.values())]
        return self.line_end == "\n" and any("\r" in cell for cell in cells)

    @property
    def data_rows(self) -> int:
        """Rows a reader sees. In a one-column text file a cell of bare spaces and tabs
        makes a blank line, which is not a row (pandas, like most readers, skips it)."""
        if self.suffix == ".jsonl" or len(self.columns) != 1 or self.quote_all:
            return len(self.rows)

        def blank_line(cell: str) -> bool:
            return cell != "" and cell.strip(" \t") == "" and self.delimiter not in cell

        return sum(not blank_line(row.get(self.columns[0], "")) for row in self.rows)

    def write(self, folder: Path, stem: str) -> Path:
        path = folder / f"{stem}{self.suffix}"
        with path.open("w", encoding="utf-8-sig" if self.bom else "utf-8", newline="") as out:
            if self.suffix == ".jsonl":
                for row in self.rows:  # absent keys stay absent; NaN and Infinity as Python does
                    out.write(json.dumps(row, ensure_ascii=False) + self.line_end)
            else:
                writer = csv.writer(
                    out,
                    delimiter=self.delimiter,
                    lineterminator=self.line_end,
                    quoting=csv.QUOTE_ALL if self.quote_all else csv.QUOTE_MINIMAL,
                )
                writer.writerow(self.columns)
                for row in self.rows:
                    writer.writerow([row.get(column, "") for column in self.columns])
        return path


@st.composite
def table_files(draw: st.DrawFn, required: tuple[str, ...], optional: tuple[str, ...]) -> TableFile:
    """A CSV, TSV or JSON-lines file: usually with every required column (sometimes one
    short), some optional and some unknown columns, in any order."""
    suffix = draw(st.sampled_from(FORMATS))
    wanted = list(required)
    if draw(st.integers(0, 7)) == 0:  # now and then a file without a required column
        wanted.remove(draw(st.sampled_from(required)))
    wanted += draw(st.lists(st.sampled_from(optional), unique=True, max_size=len(optional)))
    extras = draw(st.lists(extra_names, unique_by=str.strip, min_size=not wanted, max_size=3))
    columns = draw(st.permutations(wanted + extras))
    cells = json_cells if suffix == ".jsonl" else text_cells
    row = st.fixed_dictionaries({}, optional={c: cells for c in columns})
    if suffix != ".jsonl":  # a CSV row has every column; an absent one is an empty cell
        row = st.fixed_dictionaries({c: cells for c in columns})
    rows = draw(st.lists(row, max_size=12))
    if suffix == ".jsonl":  # JSON lines have the columns of their keys: none without lines
        if rows:
            rows[0] = {**{c: "" for c in columns}, **rows[0]}
        else:
            columns = []
    return TableFile(
        columns=columns,
        rows=rows,
        suffix=suffix,
        bom=draw(st.booleans()),
        line_end=draw(st.sampled_from(["\n", "\r\n"])),
    )


@contextmanager
def fresh_deployment() -> Iterator[tuple[Path, Settings, Stores]]:
    """A new folder, settings and migrated SQLite store for one example."""
    with tempfile.TemporaryDirectory(prefix="attune-fuzz-") as folder:
        root = Path(folder)
        config = Settings(data_dir=root / "data", model_refresh_seconds=0, admin_key=ADMIN_KEY)
        stores = open_stores(config)
        try:
            yield root, config, stores
        finally:
            stores.close()


def missing_columns(table: TableFile, required: tuple[str, ...]) -> list[str]:
    return [c for c in required if c not in table.columns]


def api_refuses_id(cell: Any) -> bool:
    """Whether the API would refuse this cell as an id (blank cells are missing ids)."""
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return True
    if isinstance(cell, str) and not cell.strip():
        return True
    try:
        API_ID.validate_python(cell)
    except pydantic.ValidationError:
        return True
    return False


def check_ids_as_the_api(frame: pd.DataFrame, column: str, report: Any) -> None:
    """A row whose id the API would refuse is rejected, with a reason naming the id."""
    refused = {n + 1 for n, cell in enumerate(frame[column]) if api_refuses_id(cell)}
    reasons = {r["row"]: r["reason"] for r in report.rejected_rows}
    assert refused <= set(reasons), f"rows {sorted(refused - set(reasons))} were stored"
    assert all(column in reasons[row] for row in refused)


def check_rejected_file(report: Any, path: Path, fallback: Path, frame: pd.DataFrame) -> None:
    """Every rejected row, and only those, is in the rejected file with a reason and, for a
    text file, its cells exactly as read (a blank cell as an empty one)."""
    target = write_rejected(report, path, fallback)
    if report.rejected == 0:
        assert target is None and not (path.parent / f"{path.name}.rejected.csv").exists()
        return
    assert target == path.parent / f"{path.name}.rejected.csv"
    written = pd.read_csv(target, dtype=str, keep_default_na=False)
    assert len(written) == report.rejected
    assert sorted(int(r) for r in written["row"]) == sorted(r["row"] for r in report.rejected_rows)
    assert all(reason.strip() for reason in written["reason"]), "a rejected row without reason"
    if path.suffix != ".jsonl":
        for _, line in written.iterrows():
            original = frame.iloc[int(line["row"]) - 1]
            for column in frame.columns:
                cell = original[column]
                assert line[column] == ("" if cell.strip() == "" else cell), (line["row"], column)
    # the rejected file can itself be read back (fixed, then imported again)
    assert len(read_table(target)) == report.rejected


@given(table=table_files(EVENT_REQUIRED, EVENT_OPTIONAL))
@FUZZ
def test_event_import_accounts_for_every_row(table: TableFile) -> None:
    with fresh_deployment() as (root, config, stores):
        path = table.write(root, "events")
        frame = read_table(path)  # a well-formed file always reads
        service = IngestService(config, stores)
        missing = missing_columns(table, EVENT_REQUIRED)
        if missing:
            with pytest.raises(ValidationError, match="missing column") as refused:
                import_events(service, frame, source=path.name)
            assert all(column in refused.value.message for column in missing)
            assert stores.events.count() == 0
            return
        report = import_events(service, frame, source=path.name)
        assert report.total == table.data_rows
        assert report.accepted + report.duplicates + report.rejected == table.data_rows
        assert report.dropped == 0  # no consent rules are configured
        assert stores.events.count() == report.accepted
        assert len(report.rejected_rows) == report.rejected
        check_rejected_file(report, path, config.data_dir / "rejected", frame)


@given(table=table_files(("item_id",), ITEM_OPTIONAL))
@FUZZ
def test_item_import_accounts_for_every_row(table: TableFile) -> None:
    with fresh_deployment() as (root, config, stores):
        path = table.write(root, "items")
        frame = read_table(path)
        service = IngestService(config, stores)
        if "item_id" not in table.columns:
            with pytest.raises(ValidationError, match=r"missing column.*item_id"):
                import_items(service, frame, source=path.name)
            assert stores.catalog.count() == 0
            return
        report = import_items(service, frame, source=path.name)
        assert report.total == table.data_rows
        assert report.accepted + report.duplicates + report.rejected == table.data_rows
        assert stores.catalog.count() == report.accepted
        check_ids_as_the_api(frame, "item_id", report)
        check_rejected_file(report, path, config.data_dir / "rejected", frame)


@given(table=table_files(("user_id",), USER_OPTIONAL))
@FUZZ
def test_user_import_accounts_for_every_row(table: TableFile) -> None:
    with fresh_deployment() as (root, config, stores):
        path = table.write(root, "users")
        frame = read_table(path)
        service = IngestService(config, stores)
        if "user_id" not in table.columns:
            with pytest.raises(ValidationError, match=r"missing column.*user_id"):
                import_users(service, frame, source=path.name)
            assert stores.users.count() == 0
            return
        report = import_users(service, frame, source=path.name)
        assert report.total == table.data_rows
        assert report.accepted + report.duplicates + report.rejected == table.data_rows
        assert stores.users.count() == report.accepted
        check_ids_as_the_api(frame, "user_id", report)
        check_rejected_file(report, path, config.data_dir / "rejected", frame)


# Regressions: the bugs the properties above found, one example each.


def test_jsonl_keeps_ids_and_big_numbers_as_written(tmp_path: Path) -> None:
    """pandas read ``5`` beside a null as ``5.0`` (item "5.0"), rounded integer ids past
    2**53, refused a whole file for one integer past 2**64 and for a byte-order mark."""
    path = tmp_path / "events.jsonl"
    lines = [
        {"user_id": "u1", "item_id": 5, "event_id": 12345678901234567890, "n": 10**30},
        {"user_id": "u2", "item_id": None, "timestamp": 1_700_000_000},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8-sig")
    frame = read_table(path)
    assert list(frame.columns) == ["user_id", "item_id", "event_id", "n", "timestamp"]
    assert frame.loc[0, "item_id"] == 5 and frame.loc[0, "event_id"] == 12345678901234567890
    assert frame.loc[0, "n"] == 10**30


def test_jsonl_line_that_is_not_an_object_is_named(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"user_id": "u1"}\n\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(ValidationError, match="line 3 is not a JSON object"):
        read_table(path)
    path.write_text('{"user_id": "u1"}\n{"user_id": \n', encoding="utf-8")
    with pytest.raises(ValidationError, match="line 2 is not JSON"):
        read_table(path)


@pytest.mark.parametrize(
    ("name", "text", "columns"),
    [
        # csv.Sniffer counted cells too, and took "," for the delimiter of these two TSVs
        (
            "e.tsv",
            "user_id\titem_id\tprice, net\nu1\ti1\t5, 6\nu2\ti2\t7, 8\n",
            ["user_id", "item_id", "price, net"],
        ),
        ("e.tsv", ",note\tuser_id\titem_id\n", [",note", "user_id", "item_id"]),
        ("e.csv", 'user_id,item_id,note\nu1,i1,"a;b;c;d|e|f"\n', ["user_id", "item_id", "note"]),
        ("e.csv", "user_id;item_id;note\nu1;i1;a,b\n", ["user_id", "item_id", "note"]),
        ("e.txt", "user_id|item_id\nu1|i1\n", ["user_id", "item_id"]),
        ("e.csv", "user_id\nu1\n", ["user_id"]),
    ],
)
def test_delimiter_comes_from_the_header(tmp_path: Path, name: str, text: str, columns: list[str]):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    frame = read_table(path)
    assert list(frame.columns) == columns and len(frame) == text.count("\n") - 1


def test_rejected_file_quotes_a_lone_carriage_return(settings: Settings, sqlite_stores, tmp_path):
    """Python's csv writer left "a\rb" unquoted with "\n" line ends: the row split in two."""
    path = tmp_path / "events.csv"
    path.write_text('user_id,item_id,timestamp,note\n,i1,1700000000,"a\rb"\n', newline="")
    report = import_events(IngestService(settings, sqlite_stores), read_table(path))
    target = write_rejected(report, path, tmp_path / "fallback")
    assert target is not None and report.rejected == 1
    written = read_table(target)
    assert len(written) == 1 and written.loc[0, "note"] == "a\rb"


@pytest.mark.parametrize("bad_id", ["a\x00b", "x" * 257])
def test_item_and_user_ids_follow_the_api_rules(
    settings: Settings, sqlite_stores: Stores, bad_id: str
) -> None:
    """The item and user importers stored ids the API refuses (NUL, which PostgreSQL
    cannot hold, or past 256 characters)."""
    service = IngestService(settings, sqlite_stores)
    items = import_items(service, pd.DataFrame({"item_id": [bad_id, "i1"], "title": ["t", "t"]}))
    users = import_users(service, pd.DataFrame({"user_id": [bad_id, "u1"], "locale": ["fr", "fr"]}))
    for report, kind in ((items, "item_id"), (users, "user_id")):
        assert (report.accepted, report.rejected) == (1, 1)
        assert report.rejected_rows[0]["row"] == 1
        assert report.rejected_rows[0]["reason"].startswith(f"{kind}:")
    assert sqlite_stores.catalog.count() == 1 and sqlite_stores.users.count() == 1
