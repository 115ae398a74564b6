"""``attune users`` and ``attune retention``: one person's data (erase, export) and
deleting events past their retention."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from attune.auth.cli import WorkspaceOption
from attune.cli_common import console, out
from attune.cli_common import session as _session

users_app = typer.Typer(help="One person's data: erase it, export it.", no_args_is_help=True)
retention_app = typer.Typer(help="Delete events past their retention.", no_args_is_help=True)


@users_app.command("erase")
def users_erase(
    user_id: Annotated[str, typer.Argument(help="The person's user id")],
    workspace: WorkspaceOption = None,
) -> None:
    """Erase everything held about a person (events, profile, consent, logs, models).

    The current model version forgets them here and a new version without them is
    published (or retrained) before the command returns; running servers load it on
    their next model check. With Redis, the erasure is also broadcast, so every server
    process on that Redis forgets them at once."""
    from attune.auth.audit import CLI_ACTOR
    from attune.engine.broadcast import ServerBroadcast
    from attune.engine.model_holder import ModelHolder
    from attune.privacy.service import PrivacyService

    with _session(workspace, existing=True) as (settings, stores):
        holder = ModelHolder(stores, settings=settings)
        broadcast = ServerBroadcast.for_stores(stores)
        models = broadcast.forgetting(settings.workspace, holder) if broadcast else holder
        report = PrivacyService(settings, stores, models).erase(user_id, actor=CLI_ACTOR)
        with console.status("saving a model version without them"):
            holder.wait_for_jobs()
    table = Table(title=f"erased {user_id}")
    table.add_column("store")
    table.add_column("removed", justify="right")
    for store, count in report.erased.items():
        table.add_row(store, f"{count:,}")
    out.print(table)
    reach = "broadcast to running servers; " if broadcast else ""
    console.print(
        f"{report.total:,} entries over {report.identities} id(s). Models: "
        f"{_model_outcome(report.models)} ({reach}servers load the new version on their "
        "next model check)",
        soft_wrap=True,
    )


def _model_outcome(models: dict[str, str]) -> str:
    """What each role of the served version did ("exact": forgotten in place and saved;
    "refit scheduled": retrained without them), in one line."""
    if not models:
        return "no trained model"
    return ", ".join(f"{role} {outcome}" for role, outcome in sorted(models.items()))


@users_app.command("export")
def users_export(
    user_id: Annotated[str, typer.Argument(help="The person's user id")],
    output: Annotated[
        Path | None, typer.Option(help="Write the JSON here (default: stdout)")
    ] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Everything held about a person, as JSON."""
    from attune.privacy.service import PrivacyService

    with _session(workspace, existing=True) as (settings, stores):
        document = PrivacyService(settings, stores).export(user_id)
    text = json.dumps(document, indent=2, ensure_ascii=False)
    if output is None:
        out.print_json(text)
    else:
        output.write_text(text + "\n", encoding="utf-8")
        console.print(f"wrote {len(document['events']):,} events to [bold]{output}[/]")


@retention_app.command("run")
def retention_run(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count what would be deleted")
    ] = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Delete events older than ATTUNE_RETENTION_DAYS allows for their type, and logged
    recommendation lists older than ATTUNE_RECOMMENDATION_LOG_DAYS."""
    from datetime import UTC, datetime

    from attune.privacy.retention import retention_configured, run_retention

    with _session(workspace, existing=True) as (settings, stores):
        if not retention_configured(settings):
            console.print(
                "no retention configured (ATTUNE_RETENTION_DAYS, "
                "ATTUNE_RECOMMENDATION_LOG_DAYS): nothing to do"
            )
            return
        report = run_retention(settings, stores, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    table = Table(title=f"retention ({'dry run' if dry_run else 'applied'})")
    table.add_column("event type")
    table.add_column("kept for (days)", justify="right")
    table.add_column("older than", justify="left")
    table.add_column(verb, justify="right")
    types = sorted(set(report.deleted) | set(settings.retention_days))
    for event_type in types:
        days = settings.retention_days.get(event_type, settings.retention_days.get("*"))
        cutoff = report.cutoff_of(event_type)
        when = datetime.fromtimestamp(cutoff, UTC).strftime("%Y-%m-%d %H:%M") if cutoff else "-"
        label = "* (every other type)" if event_type == "*" else event_type
        count = report.deleted.get(event_type, 0)
        table.add_row(label, f"{days:g}", when, f"{count:,}")
    table.add_row("[bold]total", "", "", f"[bold]{report.total:,}")
    out.print(table)
    if report.log_cutoff is not None:
        when = datetime.fromtimestamp(report.log_cutoff, UTC).strftime("%Y-%m-%d %H:%M")
        out.print(
            f"recommendation log (kept {settings.recommendation_log_days:g} days): {verb} "
            f"{report.logs_deleted:,} lists answered before {when}"
        )
