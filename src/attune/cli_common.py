"""What every ``attune`` command shares: the consoles, failing cleanly, opening stores."""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TextIO

import pydantic
import typer
from pydantic_settings import SettingsError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from attune.config import Settings, get_settings
from attune.errors import AttuneError

console = Console(stderr=True)
out = Console()


def fail(message: str) -> NoReturn:
    console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code=1)


def show_logs(level: int = logging.INFO) -> None:
    """Log lines of long-running commands (worker, serve) on stderr, timestamped: what
    each scheduled job did, why a retrain was skipped, a failure's traceback."""
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
        )
    logging.getLogger("attune").setLevel(level)


def settings_or_fail() -> Settings:
    """The settings from the environment; a bad one is a clean error naming the
    variable, not a traceback."""
    try:
        return get_settings()
    except pydantic.ValidationError as exc:
        problems = [
            f"ATTUNE_{str(error['loc'][0]).upper() if error['loc'] else '?'}: {error['msg']}"
            for error in exc.errors()
        ]
        fail("bad setting: " + "; ".join(problems))
    except SettingsError as exc:  # a value that is not even JSON where JSON is expected
        field = re.search(r'field "(\w+)"', str(exc))
        name = f"ATTUNE_{field.group(1).upper()}" if field else "a setting"
        fail(f"bad setting: {name}: cannot read it ({exc.__cause__ or exc})")
    except AttuneError as exc:
        fail(exc.message)


@contextmanager
def session(
    workspace: str | None = None, *, existing: bool = False
) -> Iterator[tuple[Settings, Any]]:
    """Settings and open stores for one command, on ``workspace`` (default: the
    ATTUNE_WORKSPACE setting); AttuneErrors become a clean exit. ``existing``: the
    command only reads or removes, so a workspace nothing was written to is an error
    (a mistyped name), not a new empty workspace."""
    from attune.store.factory import open_stores, workspace_exists

    settings = settings_or_fail()
    stores = None
    try:
        settings = settings.for_workspace(workspace) if workspace else settings
    except ValueError as exc:
        fail(str(exc))
    if existing and not workspace_exists(settings):
        fail(f"no workspace named {settings.workspace!r}: nothing was ever written to it")
    try:
        stores = open_stores(settings)
        yield settings, stores
    except AttuneError as exc:
        fail(exc.message)
    finally:
        if stores is not None:
            stores.close()


def check_output(path: Path) -> None:
    """Fail now, before any work, if ``path`` cannot be written as a file: its folder is
    missing or read-only, or the path is a folder."""
    folder = path.parent
    if path.is_dir():
        fail(f"cannot write {path}: it is a folder; give a file name")
    if not folder.is_dir():
        fail(f"cannot write {path}: no folder {folder}")
    if not os.access(folder, os.W_OK | os.X_OK):
        fail(f"cannot write {path}: folder {folder} is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        fail(f"cannot write {path}: the file is read-only")


@contextmanager
def atomic_output(path: Path) -> Iterator[TextIO]:
    """A text file to write ``path`` through: a temporary file in the same folder, renamed
    over ``path`` only when the block succeeds, so a failure leaves an earlier ``path``
    as it was. An OSError while writing or renaming fails cleanly."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with temporary.open("x", encoding="utf-8") as handle:
            yield handle
        if path.exists():
            shutil.copymode(path, temporary)  # the output keeps its permissions
        os.replace(temporary, path)
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror or exc}")
    finally:
        temporary.unlink(missing_ok=True)


def write_output(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (see :func:`atomic_output`)."""
    with atomic_output(path) as handle:
        handle.write(text)


def progress_bar() -> Progress:
    """The progress bar of long-running commands (on stderr, kept when done)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
