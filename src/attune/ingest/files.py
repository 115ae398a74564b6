"""Read tabular files (CSV/TSV, JSON lines, Parquet) into string-typed data frames."""

from __future__ import annotations

import csv
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
            try:
                delimiter = csv.Sniffer().sniff(sample, delimiters=",\t;|").delimiter
            except csv.Error:
                delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
            frame = pd.read_csv(
                path, sep=delimiter, dtype=str, keep_default_na=False, encoding="utf-8-sig"
            )
        elif fmt == "jsonl":
            frame = pd.read_json(path, lines=True, dtype=False)
        else:
            frame = pd.read_parquet(path)
    except (ValueError, UnicodeDecodeError, OSError, pd.errors.ParserError) as exc:
        raise ValidationError(f"{path.name}: cannot read as {fmt}: {exc}") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame
