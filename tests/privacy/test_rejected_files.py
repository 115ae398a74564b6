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


def test_erasure_in_one_workspace_leaves_another_workspaces_rejected_rows(
    tmp_path: Path,
) -> None:
    """The same id in two workspaces is two people: erasing it in one touches only the
    rejected files that workspace's imports wrote."""
    from attune.config import Settings

    default = Settings(data_dir=tmp_path / "data")
    shop = default.for_workspace("shop")
    row = [{"row": 1, "reason": "timestamp: bad", "user_id": "42", "anonymous_id": ""}]
    default_file = rejected(row, default.workspace_dir / "in" / "a.csv", default.workspace_dir)
    shop_file = rejected(row, shop.workspace_dir / "in" / "b.csv", shop.workspace_dir)
    outside = rejected(row, tmp_path / "inbox" / "c.csv", shop.workspace_dir)  # noted by shop

    # the default workspace's folder holds the others' folders: not its files
    assert RejectedFiles(default.workspace_dir, str).erase(["42"]) == 1
    assert not default_file.exists()
    assert shop_file.exists() and outside.exists()  # shop's "42" is someone else

    assert RejectedFiles(shop.workspace_dir, str).erase(["42"]) == 2
    assert not shop_file.exists() and not outside.exists()
