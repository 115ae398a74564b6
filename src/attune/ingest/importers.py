"""Bulk import of events, items and users from files, through the same validation as the API.

Rejected rows are written beside the input (``<name>.rejected.csv``) with their reasons;
if that folder is read-only, into the data folder instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pydantic

from attune.errors import ValidationError
from attune.ingest.schemas import Id, ItemBatchEntry, UserIn
from attune.ingest.service import IngestService
from attune.ingest.validation import error_list, item_row, merge_patch, patched_row
from attune.privacy.rejected import remember

Advance = Callable[[int], None]
CHUNK_ROWS = 5_000

EVENT_COLUMNS = (
    "event_id",
    "user_id",
    "anonymous_id",
    "item_id",
    "type",
    "value",
    "timestamp",
    "recommendation_id",
)
ITEM_COLUMNS = (
    "item_id",
    "title",
    "text",
    "categories",
    "tags",
    "available",
    "price",
    "language",
    "created_at",
    "regions",
    "translations",
)
ITEM_ALIASES = {"genres": "categories", "genre": "categories", "category": "categories"}
EVENT_ALIASES = {"rating": "value"}
"""Columns read as another where that one is absent (MovieLens-style files carry ``rating``)."""


@dataclass
class ImportReport:
    """What a bulk import did: counts, and where the rejected rows went."""

    kind: str
    total: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    dropped: int = 0  # events of people without tracking consent (not stored)
    rejected_file: Path | None = None
    rejected_rows: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "total": self.total,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "dropped": self.dropped,
            "rejected_file": str(self.rejected_file) if self.rejected_file else None,
        }


def _cell(value: Any) -> Any:
    """A cell as a plain Python value; empty text, NaN, ``NaT`` and ``pd.NA`` mean "not given".

    numpy numbers become Python ones: pydantic turns an ``int`` id into its digits but
    refuses a ``numpy.int64`` (a pandas ``Int64`` cell).
    """
    if isinstance(value, str):
        return None if value.strip() == "" else value
    if pd.api.types.is_scalar(value) and pd.isna(value):
        return None
    if isinstance(value, np.integer | np.floating | np.bool_):
        return value.item()
    return value


def _records(frame: pd.DataFrame) -> Iterator[tuple[int, dict[str, Any]]]:
    columns = list(frame.columns)
    for number, values in enumerate(frame.itertuples(index=False, name=None)):
        yield number, {c: _cell(v) for c, v in zip(columns, values, strict=True)}


def _aliased(frame: pd.DataFrame, aliases: dict[str, str]) -> pd.DataFrame:
    """``frame`` with each alias column renamed to its field, unless the field is there."""
    return frame.rename(
        columns={k: v for k, v in aliases.items() if k in frame.columns and v not in frame.columns}
    )


def _require(frame: pd.DataFrame, columns: tuple[str, ...], source: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValidationError(
            f"{source}: missing column(s) {', '.join(missing)}; found {', '.join(frame.columns)}"
        )


def _reason(errors: list[dict[str, Any]]) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc'][2:]) or 'row'}: {e['msg']}" for e in errors
    )


def import_events(
    service: IngestService,
    frame: pd.DataFrame,
    *,
    default_type: str = "view",
    source: str = "events",
    advance: Advance | None = None,
) -> ImportReport:
    """Store every valid row as an event (``type`` column or ``default_type``); a
    ``rating`` column is the value where there is no ``value`` column."""
    frame = _aliased(frame, EVENT_ALIASES)
    _require(frame, ("user_id", "item_id", "timestamp"), source)
    report = ImportReport("events", total=len(frame))
    extra = [c for c in frame.columns if c not in EVENT_COLUMNS]
    batch: list[dict[str, Any]] = []
    originals: list[tuple[int, dict[str, Any]]] = []

    def flush() -> None:
        # a row without a timestamp is the same event on every import (stamped with the
        # time of the first): re-importing a file adds nothing
        outcome = service.ingest_events(batch, loc_prefix="rows", untimed_ids=True)
        for (number, original), result in zip(originals, outcome.outcomes, strict=True):
            if result.status == "rejected":
                report.rejected_rows.append(
                    {"row": number + 1, "reason": _reason(result.errors or []), **original}
                )
        report.accepted += outcome.count("accepted")
        report.duplicates += outcome.count("duplicate")
        report.rejected += outcome.count("rejected")
        report.dropped += outcome.count("dropped")
        if advance:
            advance(len(batch))
        batch.clear()
        originals.clear()

    for number, record in _records(frame):
        event = {k: record.get(k) for k in EVENT_COLUMNS if record.get(k) is not None}
        event.setdefault("type", default_type)
        if extra:
            props = {k: record[k] for k in extra if record.get(k) is not None}
            if props:
                event["properties"] = props
        batch.append(event)
        originals.append((number, record))
        if len(batch) >= CHUNK_ROWS:
            flush()
    if batch:
        flush()
    return report


def import_items(
    service: IngestService,
    frame: pd.DataFrame,
    *,
    source: str = "items",
    advance: Advance | None = None,
    partial: bool = False,
) -> ImportReport:
    """Upsert every valid row as a catalog item; unknown columns become properties.

    ``partial``: each row changes only the fields its cells give (a stock or price feed
    of ``item_id,available``), on items the catalog already holds; blank cells keep the
    stored value, properties merge key by key (see :meth:`IngestService.patch_item`).
    """
    frame = _aliased(frame, ITEM_ALIASES)
    _require(frame, ("item_id",), source)
    report = ImportReport("items", total=len(frame))
    rows: list[dict[str, Any]] = []
    patches: dict[str, _Patch] = {}
    for number, record in _records(frame):
        fields = {
            k: record[k] for k in ITEM_COLUMNS if k != "item_id" and record.get(k) is not None
        }
        props = {k: v for k, v in record.items() if k not in ITEM_COLUMNS and v is not None}
        if props:
            fields["properties"] = props
        item_id = record.get("item_id")
        try:
            if item_id is None:
                raise ValueError("item_id is empty")
            # the id is held to the API's rules too (length, no NUL), not only the fields
            item = ItemBatchEntry.model_validate({**fields, "item_id": item_id})
            if partial:
                patch = patches.setdefault(item.item_id, _Patch())
                patch.add(number, fields, record)
            else:
                rows.append(item_row(item.item_id, item))
        except pydantic.ValidationError as exc:
            report.rejected_rows.append(
                {"row": number + 1, "reason": _reason(error_list(exc, ("rows", number))), **record}
            )
        except ValueError as exc:
            report.rejected_rows.append({"row": number + 1, "reason": str(exc), **record})
        if advance:
            advance(1)
    if partial:
        _patch_stored(service, patches, report)
    else:
        _store_unique(rows, "item_id", service.stores.catalog.upsert_items, report)
    return report


@dataclass
class _Patch:
    """The rows of a partial import that change one item, merged in file order."""

    fields: dict[str, Any] = field(default_factory=dict)
    rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)

    def add(self, number: int, fields: dict[str, Any], record: dict[str, Any]) -> None:
        self.fields = merge_patch(self.fields, fields)
        self.rows.append((number, record))


def _patch_stored(service: IngestService, patches: dict[str, _Patch], report: ImportReport) -> None:
    """Apply each item's rows to the stored item; the rows of items the catalog does not
    hold, or whose change makes an invalid item, are all rejected with the reason."""
    now = time.time()
    refused: dict[str, str] = {}

    def change(row: dict[str, Any]) -> dict[str, Any] | None:
        patch = patches[row["item_id"]]
        try:
            return patched_row(row, patch.fields, now)
        except pydantic.ValidationError as exc:
            refused[row["item_id"]] = _reason(error_list(exc, ("rows", patch.rows[-1][0])))
            return None

    written = {row["item_id"] for row in service.stores.catalog.patch_items(list(patches), change)}
    for item_id, patch in patches.items():
        if item_id in written:
            report.duplicates += len(patch.rows) - 1
            continue
        reason = refused.get(item_id, "not in the catalog: import it whole (without --partial)")
        for number, record in patch.rows:
            report.rejected_rows.append({"row": number + 1, "reason": reason, **record})
    report.rejected_rows.sort(key=lambda rejected: rejected["row"])
    report.accepted = len(written)
    report.rejected = len(report.rejected_rows)


class _UserEntry(UserIn):
    """A row of a users file: a profile and its id, held to the API's id rules."""

    user_id: Id


def import_users(
    service: IngestService,
    frame: pd.DataFrame,
    *,
    source: str = "users",
    advance: Advance | None = None,
) -> ImportReport:
    """Upsert every valid row as a user profile; other columns are traits."""
    _require(frame, ("user_id",), source)
    report = ImportReport("users", total=len(frame))
    rows: list[dict[str, Any]] = []
    for number, record in _records(frame):
        traits = {
            k: _number_or_text(v) for k, v in record.items() if k != "user_id" and v is not None
        }
        user_id = record.get("user_id")
        try:
            if user_id is None:
                raise ValueError("user_id is empty")
            user = _UserEntry.model_validate({"user_id": user_id, "traits": traits})
            rows.append(service.user_row(user.user_id, user))
        except pydantic.ValidationError as exc:
            report.rejected_rows.append(
                {"row": number + 1, "reason": _reason(error_list(exc, ("rows", number))), **record}
            )
        except ValueError as exc:
            report.rejected_rows.append({"row": number + 1, "reason": str(exc), **record})
        if advance:
            advance(1)
    _store_unique(rows, "user_id", service.stores.users.upsert_users, report)
    return report


def _store_unique(
    rows: list[dict[str, Any]],
    key: str,
    upsert: Callable[[list[dict[str, Any]]], int],
    report: ImportReport,
) -> None:
    """Upsert the last row per id; a repeated id in the file counts as a duplicate."""
    unique = {row[key]: row for row in rows}
    upsert(list(unique.values()))
    report.accepted = len(unique)
    report.duplicates = len(rows) - len(unique)
    report.rejected = len(report.rejected_rows)


def _number_or_text(value: Any) -> Any:
    """Whole numbers become ints; digits with a leading zero (zip codes, ids) stay text."""
    if isinstance(value, str):
        text = value.strip()
        digits = text.removeprefix("-")
        whole = digits.isascii() and digits.isdigit() and len(text) < 16
        if whole and (digits == "0" or not digits.startswith("0")):
            return int(text)
        return text
    return value


def write_rejected(report: ImportReport, source: Path, fallback_dir: Path) -> Path | None:
    """Write rejected rows beside ``source`` (or in ``fallback_dir`` if that is read-only).

    ``fallback_dir`` (``<data dir>/rejected``) also notes where the file went: the rows
    hold people's ids, and erasure removes them (:mod:`attune.privacy.rejected`).
    """
    if not report.rejected_rows:
        return None
    name = f"{source.name}.rejected.csv"
    frame = pd.DataFrame(report.rejected_rows)
    for folder in (source.parent, fallback_dir):
        target = folder / name
        try:
            folder.mkdir(parents=True, exist_ok=True)
            # RFC 4180 line ends: Python's csv writer quotes a cell holding "\r" only when
            # "\r" is part of the line end, and an unquoted one splits the row for readers
            frame.to_csv(target, index=False, lineterminator="\r\n")
        except OSError:
            continue
        report.rejected_file = target
        remember(target, fallback_dir)
        return target
    return None
