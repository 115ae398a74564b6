"""``attune versions list|rollback``: the registered model versions and going back to one
(mounted by :mod:`attune.cli`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from attune.auth.cli import WorkspaceOption
from attune.cli_common import console, out, session

versions_app = typer.Typer(
    help="Model versions: list them, go back to an earlier one.", no_args_is_help=True
)


def version_summary(version: Any, serving: str | None) -> dict[str, Any]:
    """What the CLI shows of a model version: whether it is the one servers use (the
    newest champion: ``serving`` is its id), how it was chosen, its validation NDCG@10,
    what it came from (a rollback, an erasure) and, for a blend, each model's weight."""
    metrics = version.metrics or {}
    summary = {
        "version_id": version.version_id,
        "seq": version.seq,
        "algorithm": version.algorithm,
        "status": version.status,
        "serving": version.version_id == serving,
        "created_at": datetime.fromtimestamp(version.created_at, UTC).isoformat(),
        "events": version.data_window.get("events"),
        "selection": metrics.get("selection"),
        "validation_ndcg@10": (metrics.get("validation") or {}).get("validation_ndcg@10"),
        "rolled_back_to": metrics.get("rolled_back_to"),
        "forgotten_from": metrics.get("forgotten_from"),
    }
    if version.algorithm == "blend":
        components = (version.params or {}).get("components") or []
        summary["components"] = {c["algorithm"]: c.get("weight") for c in components}
    return summary


def _origin(summary: dict[str, Any]) -> str:
    if summary["rolled_back_to"]:
        return f"rollback to {summary['rolled_back_to']}"
    if summary["forgotten_from"]:
        return f"{summary['forgotten_from']} after an erasure"
    return summary["selection"] or ""


@versions_app.command("list")
def versions_list(
    limit: Annotated[int, typer.Option(min=1, max=1_000, help="How many, newest first")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    workspace: WorkspaceOption = None,
) -> None:
    """The registered model versions, newest first; the serving one is marked."""
    with session(workspace) as (_settings, stores):
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

    with session(workspace) as (settings, stores):
        serving = stores.model_versions.latest("champion")
        target = to or previous_version(stores).version_id
        version = roll_back(stores, target, settings.workspace, actor=CLI_ACTOR)
    was = serving.version_id if serving else "-"
    console.print(
        f"now serving [bold]{target}[/] again (registered as {version.version_id}; was "
        f"{was}); servers switch on their next model check",
        soft_wrap=True,
    )
