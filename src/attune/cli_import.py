"""``attune import``: bulk-import events, items, users or a MovieLens folder, through
the same validation as the API; rejected rows go to a file beside the input."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from attune.auth.cli import WorkspaceOption
from attune.cli_common import console, progress_bar
from attune.cli_common import fail as _fail
from attune.cli_common import session as _session
from attune.config import Settings

if TYPE_CHECKING:
    from attune.store.factory import Stores

import_app = typer.Typer(
    help="Bulk-import events, items, users or a MovieLens folder.", no_args_is_help=True
)


def _summary(report: Any) -> None:
    table = Table(title=f"import {report.kind}", show_header=True)
    columns = ["total", "accepted", "duplicates", "rejected"]
    if getattr(report, "dropped", 0):  # events of people without tracking consent
        columns.append("dropped")
    for column in columns:
        table.add_column(column, justify="right")
    table.add_row(*(f"{getattr(report, c):,}" for c in columns))
    console.print(table)
    if report.rejected_file:
        console.print(f"rejected rows and their reasons: [bold]{report.rejected_file}[/]")


def _tell_servers_catalog_changed(settings: Settings, stores: Stores) -> None:
    """With Redis, running server processes re-read the catalog now (which items exist,
    which may be shown) rather than at their next check a few seconds later."""
    from attune.engine.broadcast import ServerBroadcast

    broadcast = ServerBroadcast.for_stores(stores)
    if broadcast is not None and broadcast.publish_catalog(settings.workspace):
        console.print("running servers told to re-read the catalog")


def _run_import(
    kind: str, path: Path, importer: Callable[..., Any], workspace: str | None, **options: Any
) -> None:
    from attune.ingest.files import read_table
    from attune.ingest.importers import write_rejected
    from attune.ingest.service import IngestService

    with _session(workspace) as (settings, stores):
        frame = read_table(path)
        service = IngestService(settings, stores)
        with progress_bar() as progress:
            task = progress.add_task(f"{kind} from {path.name}", total=len(frame))
            report = importer(
                service,
                frame,
                source=path.name,
                advance=lambda k: progress.advance(task, k),
                **options,
            )
        write_rejected(report, path, settings.workspace_dir / "rejected")
        _summary(report)
        if kind == "items" and report.accepted:
            _tell_servers_catalog_changed(settings, stores)
    _fail_if_all_rejected(report)


def _fail_if_all_rejected(report: Any) -> None:
    """Exit 1 when the file had rows and every one was rejected, so that a script
    (``attune import … && attune train``) stops; the first reason says why."""
    if not report.total or report.rejected < report.total:
        return
    first = report.rejected_rows[0]
    _fail(
        f"no row was imported: all {report.total:,} were rejected "
        f"(row {first['row']}: {first['reason']})"
    )


@import_app.command("events")
def import_events_cmd(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV, JSON lines or Parquet: user_id,item_id,timestamp[,type,value,event_id] "
            "('rating' is read as value)"
        ),
    ],
    event_type: Annotated[
        str, typer.Option("--type", help="Type of rows without a type column")
    ] = "view",
    workspace: WorkspaceOption = None,
) -> None:
    """Import events. Re-importing the same file adds nothing."""
    from attune.ingest.importers import import_events

    _run_import("events", file, import_events, workspace, default_type=event_type)


@import_app.command("items")
def import_items_cmd(
    file: Annotated[
        Path, typer.Argument(help="item_id[,title,text,categories,tags,available,price]")
    ],
    partial: Annotated[
        bool,
        typer.Option(
            "--partial",
            help="Change only the columns the file gives, on items already imported "
            "(blank cells keep the stored value): a stock or price feed",
        ),
    ] = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Import catalog items: each row replaces the whole item, unless --partial.

    Lists are '|'-separated; 'genres' is read as categories.
    """
    from attune.ingest.importers import import_items

    _run_import("items", file, import_items, workspace, partial=partial)


@import_app.command("users")
def import_users_cmd(
    file: Annotated[Path, typer.Argument(help="user_id and trait columns")],
    workspace: WorkspaceOption = None,
) -> None:
    """Import user profiles; every column but user_id is a trait."""
    from attune.ingest.importers import import_users

    _run_import("users", file, import_users, workspace)


@import_app.command("movielens")
def import_movielens_cmd(
    folder: Annotated[Path, typer.Argument(help="A MovieLens folder")],
    workspace: WorkspaceOption = None,
) -> None:
    """Import a MovieLens data set: ratings, titles, genres, tags and user traits."""
    from attune.ingest.importers import import_events, import_items, import_users
    from attune.ingest.movielens import read_movielens
    from attune.ingest.service import IngestService

    with _session(workspace) as (settings, stores):
        data = read_movielens(folder)
        service = IngestService(settings, stores)
        reports = []
        with progress_bar() as progress:
            for kind, frame, importer in (
                ("items", data.items, import_items),
                ("users", data.users, import_users),
                ("events", data.events, import_events),
            ):
                task = progress.add_task(f"{kind} ({data.layout})", total=len(frame))
                reports.append(
                    importer(
                        service,
                        frame,
                        source=f"{folder.name}/{kind}",
                        advance=lambda k, t=task: progress.advance(t, k),
                    )
                )
        for report in reports:
            _summary(report)
        if reports[0].accepted:
            _tell_servers_catalog_changed(settings, stores)
