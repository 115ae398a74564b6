"""``attune keys create|list|revoke`` and ``attune audit`` (mounted by :mod:`attune.cli`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from attune.auth.audit import CLI_ACTOR
from attune.cli_common import settings_or_fail
from attune.config import DEFAULT_WORKSPACE, Settings
from attune.errors import AttuneError

keys_app = typer.Typer(help="API keys: create (shown once), list, revoke.", no_args_is_help=True)
console = Console(stderr=True)
out = Console()

WorkspaceOption = Annotated[
    str | None,
    typer.Option(
        "--workspace",
        "-w",
        help="Workspace (tenant); default: ATTUNE_WORKSPACE, else 'default'",
        show_default=False,
    ),
]


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M")


def _iso(seconds: float) -> str:
    """UTC Unix seconds as ISO 8601, as the API writes times."""
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


@contextmanager
def _stores(
    workspace: str | None = None, *, existing: bool = False
) -> Iterator[tuple[Settings, Any, Any]]:
    """Settings of the workspace, the default workspace's stores (which hold every key)
    and the workspace's own stores (its audit log); errors become a clean exit.
    ``existing``: a workspace nothing was written to is an error (a mistyped name)."""
    from attune.store.factory import open_stores, workspace_exists

    opened: list[Any] = []
    try:
        settings = settings_or_fail()
        if workspace:
            settings = settings.for_workspace(workspace)
        if existing and not workspace_exists(settings):
            name = settings.workspace
            raise ValueError(f"no workspace named {name!r}: nothing was written to it")
        home = open_stores(settings.for_workspace(DEFAULT_WORKSPACE))
        opened.append(home)
        own = home
        if not settings.is_default_workspace:
            own = open_stores(settings)
            opened.append(own)
        yield settings, home, own
    except (AttuneError, ValueError) as exc:
        console.print(f"[bold red]error:[/] {getattr(exc, 'message', exc)}", soft_wrap=True)
        raise typer.Exit(code=1) from exc
    finally:
        for stores in opened:
            stores.close()


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="What the key is for, e.g. 'web shop backend'")],
    kind: Annotated[
        str, typer.Option(help="secret (server side) or public (browser and app)")
    ] = "secret",
    scopes: Annotated[
        str | None,
        typer.Option(help="Secret keys: comma-separated ingest,read,admin (default: all)"),
    ] = None,
    workspace: WorkspaceOption = None,
    rate: Annotated[
        float | None, typer.Option(help="Requests per second (default: ATTUNE_*RATE_LIMIT*)")
    ] = None,
    burst: Annotated[int | None, typer.Option(help="Bucket size (default: from settings)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Create a key and print it once: it is stored only as a hash."""
    from attune.auth.manage import create_key
    from attune.auth.signing import master_secret

    wanted = [s.strip() for s in scopes.split(",") if s.strip()] if scopes is not None else None
    with _stores(workspace) as (settings, home, own):
        created = create_key(
            home.keys,
            own.audit,
            master_secret(settings),
            name=name,
            actor=CLI_ACTOR,
            kind=kind,  # type: ignore[arg-type]  # checked by create_key
            scopes=wanted,
            workspace=settings.workspace,
            rate_per_second=rate,
            burst=burst,
        )
    key = created.key
    if as_json:
        document = {
            "key_id": key.key_id,
            "workspace": key.workspace,
            "kind": key.kind,
            "scopes": list(key.scopes),
            "key": created.token,
            "signing_secret": created.signing_secret,
        }
        out.print_json(json.dumps(document))
        return
    lines = [
        f"[bold]{created.token}[/]",
        "",
        f"key id {key.key_id} · workspace {key.workspace} · {key.kind} · "
        f"scopes {', '.join(key.scopes)}",
    ]
    if created.signing_secret:
        lines += [
            "",
            "user-token signing secret (keep it on your server):",
            f"[bold]{created.signing_secret}[/]",
            "user token = hex HMAC-SHA256(signing secret, user id), sent as X-Attune-User-Token",
        ]
    lines += ["", "Shown only now: Attune keeps a hash. Send it as 'Authorization: Bearer …'."]
    out.print(Panel("\n".join(lines), title=f"API key '{key.name}'", expand=False))


@keys_app.command("list")
def keys_list(
    workspace: WorkspaceOption = None,
    every: Annotated[bool, typer.Option("--all", help="Keys of every workspace")] = False,
) -> None:
    """The keys of a workspace (never a secret)."""
    with _stores(workspace) as (settings, home, _own):
        keys = home.keys.list_keys(None if every else settings.workspace)
    table = Table(title="API keys" if every else f"API keys of workspace {settings.workspace}")
    table.add_column("key id", no_wrap=True)
    if every:
        table.add_column("workspace", no_wrap=True)
    table.add_column("name", overflow="fold")
    for column in ("kind", "scopes", "created", "last used", "status"):
        table.add_column(column, overflow="fold", no_wrap=column in ("kind", "status"))
    for key in keys:
        status = "[green]active[/]" if key.active else f"[red]revoked[/] {_day(key.revoked_at)}"
        cells = [key.key_id, *([key.workspace] if every else []), key.name, key.kind]
        cells += [" ".join(key.scopes), _day(key.created_at), _day(key.last_used_at), status]
        table.add_row(*cells)
    out.print(table)


def _day(seconds: float | None) -> str:
    return "-" if seconds is None else datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d")


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key id (see `keys list`)")],
) -> None:
    """Revoke a key: at once on servers that have not used it for ATTUNE_KEY_CACHE_SECONDS,
    within that time on the others."""
    from attune.auth.manage import revoke_key
    from attune.store.factory import open_stores

    with _stores() as (settings, home, _own):
        key = home.keys.get(key_id)
        if key is not None and key.workspace != DEFAULT_WORKSPACE:
            with_audit = open_stores(settings.for_workspace(key.workspace))
            try:
                revoke_key(home.keys, with_audit.audit, key_id, actor=CLI_ACTOR, workspace=None)
            finally:
                with_audit.close()
        else:
            revoke_key(home.keys, home.audit, key_id, actor=CLI_ACTOR, workspace=None)
    console.print(f"revoked {key_id}")


def audit_cmd(
    workspace: WorkspaceOption = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Newest entries to show")] = 50,
    action: Annotated[str | None, typer.Option(help="Only this action, e.g. key.create")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines")] = False,
) -> None:
    """The audit log of administrative actions, newest first."""
    with _stores(workspace, existing=True) as (settings, _home, own):
        entries = own.audit.list(limit, workspace=settings.workspace, action=action)
    if as_json:
        for e in entries:
            line = {"id": e.id, "at": _iso(e.at), "actor": e.actor, "action": e.action}
            typer.echo(json.dumps({**line, "target": e.target, "details": e.details}))
        return
    table = Table(title=f"audit log of workspace {settings.workspace}")
    for column in ("at (UTC)", "actor", "action", "target", "details"):
        table.add_column(column)
    for e in entries:
        details = json.dumps(e.details, ensure_ascii=False) if e.details else ""
        table.add_row(_when(e.at), e.actor or "-", e.action, e.target or "-", details)
    out.print(table)


DEMO_KEY_NAME = "attune demo"


def demo_key(settings: Settings) -> str:
    """The key ``attune demo`` prints: ATTUNE_ADMIN_KEY when set, else a new read+ingest key
    of the default workspace (earlier demo keys are revoked, so they do not pile up)."""
    from attune.auth.manage import create_key, revoke_key
    from attune.auth.signing import master_secret
    from attune.store.factory import open_stores

    if settings.admin_key is not None:
        return settings.admin_key.get_secret_value()
    home = open_stores(settings.for_workspace(DEFAULT_WORKSPACE))
    try:
        for old in home.keys.list_keys(DEFAULT_WORKSPACE, include_revoked=False):
            if old.name == DEMO_KEY_NAME:
                revoke_key(home.keys, home.audit, old.key_id, actor=CLI_ACTOR, workspace=None)
        created = create_key(
            home.keys,
            home.audit,
            master_secret(settings),
            name=DEMO_KEY_NAME,
            actor=CLI_ACTOR,
            scopes=["read", "ingest"],
        )
    finally:
        home.close()
    return created.token
