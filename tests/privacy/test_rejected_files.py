"""Erasure removes a person's rows from the files of rejected import rows, wherever
`attune import` wrote them, with pseudonymised ids too; other rows stay as written."""

from __future__ import annotations

from pathlib import Path

from attune.ingest.importers import ImportReport, write_rejected
from attune.privacy.pseudonyms import Pseudonymizer
from attune.privacy.rejected import RejectedFiles

KEY = Pseudonymizer(b"a-key-of-sixteen-characters")


def rejected(rows: list[dict[str, object]], source: Path, data_dir: Path) -> Path:
    report = ImportReport("events", rejected_rows=rows)
    written = write_rejected(report, source, data_dir / "rejected")
    assert written is not None
    return written


def test_pseudonymised_rows_go_and_the_rest_stay_byte_for_byte(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    outside = rejected(  # beside an input outside the data folder: found by the note
        [
            {"row": 1, "reason": "timestamp: bad", "user_id": "ann", "anonymous_id": ""},
            {"row": 2, "reason": "timestamp: bad", "user_id": "", "anonymous_id": "ann-phone"},
            {"row": 3, "reason": 'a, "quoted"\rcell', "user_id": "bob", "anonymous_id": ""},
        ],
        tmp_path / "inbox" / "events.csv",
        data_dir,
    )
    only_ann = rejected(
        [{"row": 1, "reason": "bad", "user_id": "ann", "anonymous_id": ""}],
        data_dir / "imports" / "more.csv",
        data_dir,
    )
    before = outside.read_bytes()

    files = RejectedFiles(data_dir, KEY)
    assert files.erase([KEY("ann"), KEY("ann-phone")]) == 3

    assert not only_ann.exists()  # nothing left in it
    lines = before.split(b"\r\n")
    assert outside.read_bytes().split(b"\r\n") == [lines[0], lines[3], b""]
    assert lines[3] == b'3,"a, ""quoted""\rcell",bob,'
    assert b"ann" not in outside.read_bytes()
    assert files.erase([KEY("ann")]) == 0  # again: nothing more
    assert files.erase([KEY("bob")]) == 1 and not outside.exists()
