"""What every ``attune`` command shares: the consoles, failing cleanly, opening stores."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console

from attune.config import Settings, get_settings
from attune.errors import AttuneError

console = Console(stderr=True)
out = Console()


def fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code=1)


@contextmanager
def session(workspace: str | None = None) -> Iterator[tuple[Settings, Any]]:
    """Settings and open stores for one command, on ``workspace`` (default: the
    ATTUNE_WORKSPACE setting); AttuneErrors become a clean exit."""
    from attune.store.factory import open_stores

    settings = get_settings()
    stores = None
    try:
        settings = settings.for_workspace(workspace) if workspace else settings
    except ValueError as exc:
        fail(str(exc))
    try:
        stores = open_stores(settings)
        yield settings, stores
    except AttuneError as exc:
        fail(exc.message)
    finally:
        if stores is not None:
            stores.close()
