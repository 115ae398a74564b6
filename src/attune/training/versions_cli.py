"""``attune versions list|rollback|prune``: the registered model versions, going back to one,
and deleting the files of old ones (mounted by :mod:`attune.cli`)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from attune.auth.cli import WorkspaceOption
from attune.cli_common import console, out, session
from attune.training.promotion import MIN_KEEP, version_summary

versions_app = typer.Typer(
    help="Model versions: list them, go back to an earlier one, delete old files.",
    no_args_is_help=True,
)


def _origin(summary: dict[str, Any]) -> str:
    if summary["rolled_back_to"]:
        return f"rollback to {summary['rolled_back_to']}"
    if summary["forgotten_from"]:
        return f"{summary['forgotten_from']} after an erasure"
    origin = summary["selection"] or ""
    if summary["gate"] == "held":
        return f"{origin}, held back by the champion/challenger check".lstrip(", ")
    return origin


@versions_app.command("list")
def versions_list(
    limit: Annotated[int, typer.Option(min=1, max=1_000, help="How many, newest first")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    workspace: WorkspaceOption = None,
) -> None:
    """The registered model versions, newest first; the serving one is marked."""
    with session(workspace, existing=True) as (_settings, stores):
        champion = stores.model_versions.latest("champion")
        serving = champion.version_id if champion else None
        rows = [version_summary(v, serving) for v in stores.model_versions.list_versions(limit)]
    if as_json:
        out.print_json(json.dumps(rows))
        return
    if not rows:
        console.print("no model version yet: run `attune train`")
        return
    table = Table(title="model versions (newest first)")
    for column in ("seq", "version", "algorithm", "status", "created (UTC)", "events"):
        table.add_column(column, justify="right" if column in ("seq", "events") else "left")
    table.add_column("validation NDCG@10", justify="right")
    table.add_column("origin")
    for row in rows:
        ndcg = row["validation_ndcg@10"]
        table.add_row(
            str(row["seq"]),
            f"[bold]{row['version_id']}[/]" if row["serving"] else row["version_id"],
            row["algorithm"],
            "[green]serving[/]" if row["serving"] else row["status"],
            row["created_at"][:16].replace("T", " "),
            f"{row['events']:,}" if row["events"] is not None else "-",
            f"{ndcg:.4f}" if ndcg is not None else "-",
            _origin(row),
        )
    out.print(table)


@versions_app.command("rollback")
def versions_rollback(
    to: Annotated[
        str | None,
        typer.Option(help="The version to serve again (default: the one served before)"),
    ] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Serve an earlier model version again; running servers switch on their next model
    check. Versions trained before a person was erased cannot come back."""
    from attune.auth.audit import CLI_ACTOR
    from attune.training.promotion import previous_version, roll_back

    with session(workspace, existing=True) as (settings, stores):
        target = to or previous_version(stores).version_id
        version = roll_back(stores, target, settings.workspace, actor=CLI_ACTOR)
    console.print(
        f"now serving [bold]{target}[/] again (registered as {version.version_id}; was "
        f"{version.metrics['rolled_back_from']}); servers switch on their next model check",
        soft_wrap=True,
    )


@versions_app.command("prune")
def versions_prune(
    keep: Annotated[
        int, typer.Option(min=MIN_KEEP, help="How many of the newest versions keep their files")
    ] = 5,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would go")] = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Delete the files of older model versions (never the serving one's); they stay
    listed as `pruned` and can no longer be rolled back to."""
    from attune.training.promotion import prune

    with session(workspace, existing=True) as (_settings, stores):
        report = prune(stores, keep, dry_run=dry_run)
    verb = "would prune" if dry_run else "pruned"
    for version_id in report.pruned:
        out.print(f"{verb} {version_id}")
    freed = f", {report.freed_bytes / 1e6:,.1f} MB freed" if not dry_run else ""
    console.print(
        f"{verb} {len(report.pruned)} version(s), kept {len(report.kept)}{freed}", soft_wrap=True
    )
