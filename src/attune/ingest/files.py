"""Read tabular files (CSV/TSV, JSON lines, Parquet) into string-typed data frames."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pandas as pd

from attune.errors import ValidationError

FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
DELIMITERS = ",\t;|"
ID_COLUMNS = frozenset({"event_id", "user_id", "anonymous_id", "item_id", "recommendation_id"})
"""Columns that hold identifiers: their values are text, and a number in one is its digits."""


def file_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValidationError(
            f"{path.name}: unknown file type {path.suffix!r}; use .csv, .tsv, .jsonl or .parquet"
        )
    return fmt


def read_table(path: Path) -> pd.DataFrame:
    """Every column as text (missing cells as empty strings), header names stripped."""
    if not path.is_file():
        raise ValidationError(f"{path}: no such file")
    fmt = file_format(path)
    try:
        if fmt == "csv":
            with path.open(newline="", encoding="utf-8-sig") as handle:
                sample = handle.read(64_000)
            delimiter = csv_delimiter(sample, path.suffix.lower())
            frame = pd.read_csv(
                path, sep=delimiter, dtype=str, keep_default_na=False, encoding="utf-8-sig"
            )
        elif fmt == "jsonl":
            frame = read_json_lines(path)
        else:
            frame = read_parquet(path)
    except (ValueError, UnicodeDecodeError, OSError, pd.errors.ParserError) as exc:
        raise ValidationError(f"{path.name}: cannot read as {fmt}: {exc}") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def read_parquet(path: Path) -> pd.DataFrame:
    """Columns typed as Arrow typed them; cells come out as Python values, nulls as ``pd.NA``.

    Read with Arrow-backed dtypes: numpy-backed pandas would turn an integer column with
    a null into floats (id 10 into "10.0"). An id column of whole floats (an integer
    column pandas wrote as double because of a null) is read back as integers too.
    """
    frame = pd.read_parquet(path, dtype_backend="pyarrow")
    for column in frame.columns:
        if str(column).strip() in ID_COLUMNS and _whole_floats(frame[column]):
            frame[column] = frame[column].astype("int64[pyarrow]")
    return frame


def _whole_floats(column: pd.Series) -> bool:
    """Whether ``column`` holds floats that are all whole numbers within int64 (nulls aside)."""
    if not pd.api.types.is_float_dtype(column.dtype):
        return False
    values = column.dropna().astype(float)
    return bool(((values % 1 == 0) & (values.abs() < 2.0**63)).all())


def csv_delimiter(sample: str, suffix: str) -> str:
    """The delimiter of a delimited text file, judged by its header line alone.

    Tab for ``.tsv``, comma otherwise, when the header splits on it; else whichever of
    ``, tab ; |`` splits the header into the most columns (a ``;`` export from a
    spreadsheet). Cells are never consulted: text in them (``csv.Sniffer`` reads it too)
    would make the choice depend on the data.
    """
    natural = "\t" if suffix == ".tsv" else ","

    def width(delimiter: str) -> int:
        try:
            return len(next(csv.reader(io.StringIO(sample), delimiter=delimiter), []))
        except csv.Error:
            return 0

    if width(natural) >= 2:
        return natural
    widest = max(DELIMITERS, key=width)  # the first of the widest, in DELIMITERS order
    return widest if width(widest) >= 2 else natural


def read_json_lines(path: Path) -> pd.DataFrame:
    """One row per non-blank line, each a JSON object; values kept as JSON gave them.

    Read with :mod:`json` rather than pandas, which turns ``5`` into ``5.0`` beside a null,
    rounds integers past 2**53, refuses those past 2**64 and a byte-order mark, and so would
    change ids or refuse a whole file for one cell.
    """
    records: list[dict[str, object]] = []
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValidationError(f"{path.name}: line {number} is not JSON: {exc}") from None
            if not isinstance(record, dict):
                raise ValidationError(f"{path.name}: line {number} is not a JSON object")
            records.append(record)
    return pd.DataFrame(records, dtype=object)  # object: no column turned into floats
