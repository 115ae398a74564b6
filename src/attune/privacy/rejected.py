"""The rows ``attune import`` rejected, as erasure sees them.

Rejected rows are written, with their reasons, to ``<input>.rejected.csv`` beside the
input file or in ``<data dir>/rejected/`` (:func:`attune.ingest.importers.write_rejected`).
They are the raw input, so they hold people's own user and anonymous ids. Every file
written is noted in ``<data dir>/rejected/files.txt`` (paths only), and erasure rewrites
each noted file, and every ``*.rejected.csv`` under the data folder, without the
person's rows.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

from attune.config import WORKSPACES_FOLDER

log = logging.getLogger(__name__)

SUFFIX = ".rejected.csv"
MANIFEST = "files.txt"
PERSON_COLUMNS = ("user_id", "anonymous_id")
"""Columns whose cell names a person (rejected events and users)."""

_lock = threading.Lock()  # one rewrite at a time in this process (see _exclusive)


def remember(path: Path, rejected_dir: Path) -> None:
    """Note that ``path`` holds rejected rows, so erasure finds it wherever it lies."""
    manifest = rejected_dir / MANIFEST
    entry = str(path.resolve())
    try:
        rejected_dir.mkdir(parents=True, exist_ok=True)
        with _exclusive(rejected_dir):
            known = manifest.read_text().splitlines() if manifest.is_file() else []
            if entry not in known:
                with manifest.open("a", encoding="utf-8") as handle:
                    handle.write(entry + "\n")
    except OSError:
        log.warning("could not note %s in %s: erasure may not find it", path, manifest)


def rejected_files(data_dir: Path) -> list[Path]:
    """Every rejected file erasure must clean: those noted, and those under ``data_dir``
    (one workspace's folder: other workspaces' folders nested in the default one's, under
    ``workspaces/``, are theirs)."""
    manifest = data_dir / "rejected" / MANIFEST
    found: dict[Path, None] = {}
    if manifest.is_file():
        for line in manifest.read_text(encoding="utf-8").splitlines():
            if line.strip() and Path(line).is_file():
                found[Path(line)] = None
    if data_dir.is_dir():
        nested = data_dir / WORKSPACES_FOLDER
        for path in data_dir.rglob(f"*{SUFFIX}"):
            if not path.is_relative_to(nested):
                found[path.resolve()] = None
    return list(found)


def erase_rows(path: Path, is_person: Callable[[str], bool]) -> int:
    """Rewrite ``path`` without the rows whose person columns ``is_person``; how many
    went. The file goes when no row is left."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        rows = list(reader)
    if header is None:
        return 0
    columns = [i for i, name in enumerate(header) if name.strip() in PERSON_COLUMNS]
    kept = [r for r in rows if not any(i < len(r) and r[i] and is_person(r[i]) for i in columns)]
    removed = len(rows) - len(kept)
    if not removed:
        return 0
    if not kept:
        path.unlink()
        return removed
    # a new file swapped in whole: a reader never sees half of it
    handle_fd, temp = tempfile.mkstemp(prefix=".erasing-", dir=path.parent)
    try:
        with os.fdopen(handle_fd, "w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out, lineterminator="\r\n")  # as written: RFC 4180
            writer.writerow(header)
            writer.writerows(kept)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return removed


class RejectedFiles:
    """The rejected files of one workspace, for erasure.

    Args:
        data_dir: the workspace's folder (``Settings.workspace_dir``; its ``rejected/``
            holds the note of every file its imports wrote).
        user_key: a person's own id → the id stored for it (the pseudonymiser).
    """

    def __init__(self, data_dir: Path, user_key: Callable[[str], str]) -> None:
        self.data_dir = data_dir
        self.user_key = user_key

    def erase(self, stored_ids: Collection[str]) -> int:
        """Remove the rows of anyone stored as one of ``stored_ids``; rows removed.

        A cell is the person's when it maps to one of their stored ids, so linked
        anonymous ids are found with pseudonymisation on too. A file that cannot be
        rewritten is logged (by path, never the id) and the others still are.
        """
        wanted = set(stored_ids)
        if not wanted:
            return 0

        def is_person(cell: str) -> bool:
            return cell in wanted or self.user_key(cell) in wanted

        removed = 0
        with _exclusive(self.data_dir / "rejected"):
            for path in rejected_files(self.data_dir):
                try:
                    removed += erase_rows(path, is_person)
                except (OSError, csv.Error, UnicodeDecodeError):
                    log.exception("could not remove an erased person's rows from %s", path)
        return removed


@contextlib.contextmanager
def _exclusive(folder: Path) -> Iterator[None]:
    """Hold the rejected files for one writer: threads here, and other processes
    through a lock file where the platform has ``flock``."""
    with _lock:
        try:
            import fcntl
        except ImportError:  # not POSIX: this process's lock only
            yield
            return
        try:
            folder.mkdir(parents=True, exist_ok=True)
            handle = (folder / ".lock").open("a")
        except OSError:
            yield
            return
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
