"""The ``attune`` command line (Typer + Rich)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from attune.auth.cli import WorkspaceOption, audit_cmd, keys_app
from attune.cli_common import (
    atomic_output,
    check_output,
    console,
    out,
    progress_bar,
    settings_or_fail,
    show_logs,
    write_output,
)
from attune.cli_common import fail as _fail
from attune.cli_common import session as _session
from attune.cli_import import import_app, import_movielens_cmd
from attune.cli_privacy import retention_app, users_app
from attune.config import Settings
from attune.errors import AttuneError
from attune.training.promotion import version_summary
from attune.training.versions_cli import versions_app

if TYPE_CHECKING:
    pass

app = typer.Typer(help="Attune: an open-source AI personalization engine.", no_args_is_help=True)
app.add_typer(import_app, name="import")
app.add_typer(users_app, name="users")
app.add_typer(retention_app, name="retention")
app.add_typer(keys_app, name="keys")
app.command("audit")(audit_cmd)
app.add_typer(versions_app, name="versions")


@app.command()
def train(
    algorithm: Annotated[
        str | None,
        typer.Option(help="Model name (see `attune models`); default: chosen by validation"),
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Model parameter key=value")
    ] = None,
    tune: Annotated[
        bool, typer.Option("--tune", help="Tune every candidate, then pick or blend")
    ] = False,
    budget: Annotated[str, typer.Option(help="Tuning time budget, e.g. 90s, 10m, 1h")] = "10m",
    gate: Annotated[
        bool,
        typer.Option(
            "--gate",
            help="Serve it only if, on the newest events, it is not clearly worse than the "
            "serving version (else keep it as a candidate), as scheduled retrains do",
        ),
    ] = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Fit a model on every stored event and register it as the serving version."""
    from attune.training.pipeline import train as run_training

    params = dict(_parse_param(p) for p in param or [])
    seconds = _parse_duration(budget) if tune else None
    with _session(workspace) as (settings, stores):
        with progress_bar() as progress:
            task = progress.add_task("training", total=1000)

            def tell(message: str, fraction: float) -> None:
                progress.update(task, completed=int(1000 * fraction), description=message[:60])

            version = run_training(
                settings,
                stores,
                algorithm,
                params,
                progress=tell,
                tune_budget_seconds=seconds,
                gate=gate,
            )
        window = version.data_window
        console.print(
            f"model version [bold]{version.version_id}[/] ({version.algorithm}, "
            f"{version.metrics.get('selection')}) on {window['events']:,} events, "
            f"{window['users']:,} users, {window['items']:,} items "
            f"in {version.metrics['train_seconds']:.1f} s",
            soft_wrap=True,
        )
        checked = version.metrics.get("gate")
        if checked:
            held = checked["verdict"] == "held"
            style = "bold red" if held else "green"
            console.print(f"[{style}]check {checked['verdict']}[/]: {checked['reason']}")
            if held:
                console.print("it is kept as a candidate; the serving version stays")
        validation = version.metrics.get("validation") or {}
        if validation.get("best_per_algorithm"):
            console.print(_validation_table(version.algorithm, validation))
        for event_type, measured in (validation.get("value_modes") or {}).items():
            chosen = (version.metrics.get("value_modes") or {}).get(event_type, "ignore")
            tried = ", ".join(f"{mode} {value:.4f}" for mode, value in measured.items())
            console.print(f"value of {event_type!r} events counts as {chosen} ({tried})")


def _validation_table(chosen: str, validation: dict[str, Any]) -> Table:
    """Each candidate's best validation NDCG@10 (with a bar) and how many configurations
    it was given; the chosen model or blend last."""
    best = validation["best_per_algorithm"]
    trials = validation.get("trials_per_algorithm") or {}
    top = max([*best.values(), validation["validation_ndcg@10"], 1e-9])

    def bar(value: float) -> str:
        return "█" * round(24 * max(value, 0.0) / top)

    table = Table(title="validation NDCG@10 (temporal split)")
    table.add_column("model")
    table.add_column("NDCG@10", justify="right")
    table.add_column("trials", justify="right")
    table.add_column("")
    for name, value in sorted(best.items(), key=lambda kv: -kv[1]):
        table.add_row(name, f"{value:.4f}", str(trials.get(name, "")), f"[cyan]{bar(value)}")
    chosen_value = validation["validation_ndcg@10"]
    table.add_row(
        f"[bold]chosen: {chosen}",
        f"[bold]{chosen_value:.4f}",
        "",
        f"[bold green]{bar(chosen_value)}",
    )
    return table


def _parse_duration(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    value = text.strip().lower()
    try:
        if value and value[-1] in units:
            seconds = float(value[:-1]) * units[value[-1]]
        else:
            seconds = float(value)
    except ValueError:
        _fail(f"--budget wants a duration like 90s, 10m or 1h, got {text!r}")
    if not math.isfinite(seconds) or seconds <= 0:  # "nan" and "inf" parse as floats
        _fail(f"--budget must be a finite positive duration, got {text!r}")
    return seconds


def _parse_param(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        _fail(f"--param wants key=value, got {text!r}")
    try:
        return key.strip(), json.loads(raw)
    except json.JSONDecodeError:
        return key.strip(), raw


@app.command()
def evaluate(
    algorithm: Annotated[
        list[str] | None,
        typer.Option(
            "--algorithm", "-a", help="Model to evaluate (repeatable); 'auto' = what train picks"
        ),
    ] = None,
    split: Annotated[
        str, typer.Option(help="temporal-user, global-temporal or leave-last-one-out")
    ] = "temporal-user",
    k: Annotated[list[int] | None, typer.Option("--k", min=1, help="Cut-off (repeatable)")] = None,
    output: Annotated[Path, typer.Option(help="Where to write the JSON report")] = Path(
        "evaluation.json"
    ),
    budget: Annotated[str | None, typer.Option(help="Tune 'auto' for this long, e.g. 5m")] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Offline evaluation on the stored events: fit on the past, score the future."""
    from attune.training.offline import evaluate_models
    from attune.training.pipeline import weight_policy

    names = algorithm or ["auto", "ease", "item_knn", "popularity"]
    cutoffs = sorted(set(k or [10, 20]))
    seconds = _parse_duration(budget) if budget else None
    check_output(output)  # before the evaluation, which may take long
    with _session(workspace, existing=True) as (settings, stores):
        frame = stores.events.interaction_frame()
        if frame.empty:
            _fail("no events stored: import some first")
        items = stores.catalog.item_frame()
        categories = (
            dict(zip(items["item_id"], items["categories"], strict=True)) if len(items) else None
        )
        with progress_bar() as progress:
            task = progress.add_task("evaluating", total=1000)
            report = evaluate_models(
                frame,
                weight_policy(settings),
                names,
                split,
                cutoffs,
                categories,
                seconds,
                items=items,
                progress=lambda m, f: progress.update(
                    task, completed=int(1000 * f), description=m[:60]
                ),
            )
    write_output(output, json.dumps(report, indent=2))
    first, last = cutoffs[0], cutoffs[-1]
    columns = {
        f"ndcg@{first}": f"NDCG@{first}",
        f"recall@{last}": f"Recall@{last}",
        f"hit_rate@{first}": f"HR@{first}",
        f"map@{first}": f"MAP@{first}",
        f"mrr@{first}": f"MRR@{first}",
        f"coverage@{first}": f"Cov@{first}",
        f"diversity@{first}": f"Div@{first}",
        f"novelty@{first}": f"Nov@{first}",
        f"popularity_percentile@{first}": f"Pop@{first}",
    }
    if not any(f"diversity@{first}" in r["overall"] for r in report["models"].values()):
        del columns[f"diversity@{first}"]  # no categories stored: nothing to measure
    title = (
        f"{split} split: {report['train_events']:,} past / {report['test_events']:,} future events"
    )
    table = Table(title=title)
    table.add_column("model")
    for header in columns.values():
        table.add_column(header, justify="right", no_wrap=True, min_width=len(header))
    labels = {}
    for name, result in report["models"].items():
        labels[name] = f"auto ({result['chosen']['algorithm']})" if "chosen" in result else name
        table.add_row(
            labels[name], *(f"{result['overall'].get(c, float('nan')):.3f}" for c in columns)
        )
    out.print(table)
    _bar_chart(
        f"NDCG@{first}",
        {labels[n]: r["overall"][f"ndcg@{first}"] for n, r in report["models"].items()},
    )
    segments = Table(
        title=f"NDCG@{first} by segment (training interactions: new ≤5, light ≤30, heavy >30)"
    )
    segments.add_column("model")
    for segment in ("new", "light", "heavy"):
        segments.add_column(segment, justify="right")
    for name, result in report["models"].items():
        cells = []
        for segment in ("new", "light", "heavy"):
            seg = result["segments"].get(segment)
            cells.append(f"{seg[f'ndcg@{first}']:.4f} ({seg['users']})" if seg else "-")
        segments.add_row(name, *cells)
    out.print(segments)
    console.print(f"report written to [bold]{output}[/]")


def _bar_chart(title: str, values: dict[str, float]) -> None:
    """A horizontal bar per entry, scaled to the largest value."""
    from rich.bar import Bar

    top = max(values.values(), default=0.0) or 1.0
    chart = Table(title=title, show_header=False, box=None)
    chart.add_column("model")
    chart.add_column("bar", width=40)
    chart.add_column("value", justify="right")
    for label, value in sorted(values.items(), key=lambda kv: -kv[1]):
        chart.add_row(label, Bar(top, 0, value, color="green"), f"{value:.4f}")
    out.print(chart)


@app.command()
def stats(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    workspace: WorkspaceOption = None,
) -> None:
    """What is stored: events by type, users, items, model versions."""
    with _session(workspace, existing=True) as (_settings, stores):
        by_type = stores.events.count_by_type()
        versions = stores.model_versions.list_versions(limit=20)
        champion = stores.model_versions.latest("champion")
        serving = champion.version_id if champion else None
        report = {
            "events": by_type,
            "events_total": sum(by_type.values()),
            "users": stores.events.count_users(),
            "user_profiles": stores.users.count(),
            "items": stores.catalog.count(),
            "items_with_events": stores.events.count_items(),
            "model_versions": [version_summary(v, serving) for v in versions],
        }
    if as_json:
        out.print_json(json.dumps(report))
        return
    table = Table(title="Attune data")
    table.add_column("what")
    table.add_column("count", justify="right")
    for event_type, count in by_type.items():
        table.add_row(f"events: {event_type}", f"{count:,}")
    table.add_row("events (all)", f"{report['events_total']:,}")
    for key in ("users", "user_profiles", "items", "items_with_events"):
        table.add_row(key.replace("_", " "), f"{report[key]:,}")
    out.print(table)
    for v in report["model_versions"]:
        line = f"model {v['version_id']}  {v['algorithm']}  {v['status']}  events={v['events']}"
        if v["serving"]:
            line += "  (serving)"
        if v.get("validation_ndcg@10") is not None:
            line += f"  validation NDCG@10={v['validation_ndcg@10']:.4f}"
        if v.get("components"):
            line += "  (" + " + ".join(f"{w:g}×{a}" for a, w in v["components"].items()) + ")"
        out.print(line)


@app.command("batch-recommend")
def batch_recommend(
    users: Annotated[Path, typer.Option(help="File with one user id per line")],
    output: Annotated[Path, typer.Option(help="JSON lines: {user_id, items}")],
    n: Annotated[int, typer.Option(min=1, max=1000, help="Items per user")] = 10,
    workspace: WorkspaceOption = None,
) -> None:
    """Write recommendations for many users (also the export for email campaigns)."""
    from attune.engine.model_holder import ModelHolder
    from attune.engine.recommend import RecommendationService
    from attune.privacy.pseudonyms import Pseudonymizer

    ids = _read_user_ids(users)
    check_output(output)
    unknown = 0
    with _session(workspace, existing=True) as (settings, stores):
        service = RecommendationService(stores, ModelHolder(stores, settings=settings), settings)
        stored_id = Pseudonymizer.from_settings(settings)  # the ids events are stored under
        chunk = 256
        # written beside the output and renamed over it at the end: a failure keeps the old
        with progress_bar() as progress, atomic_output(output) as handle:
            task = progress.add_task("recommending", total=len(ids))
            for start in range(0, len(ids), chunk):
                part = ids[start : start + chunk]
                stored = [stored_id(user_id) for user_id in part]
                for user_id, rec in zip(part, service.for_users(stored, n), strict=True):
                    line = {"user_id": user_id, "items": [it.item_id for it in rec.items]}
                    handle.write(json.dumps(line) + "\n")
                unknown += len(part) - len(stores.events.user_histories(stored, limit=1))
                progress.advance(task, len(part))
        service.log.flush()  # every list handed out is in the recommendation log
    console.print(f"wrote {len(ids):,} lists to [bold]{output}[/]")
    if unknown:
        console.print(
            f"unknown users: {unknown:,} of {len(ids):,} have no stored events and got "
            "non-personal lists (a header line or a mistyped id?)",
            soft_wrap=True,
        )


def _read_user_ids(path: Path) -> list[str]:
    """The distinct non-blank lines of ``path``, in order (a UTF-8 byte-order mark, as
    spreadsheets and Notepad write, is not part of the first id)."""
    if not path.is_file():
        _fail(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"cannot read {path}: {exc}")
    return list(dict.fromkeys(line.strip() for line in text.splitlines() if line.strip()))


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Server processes sharing the port (one per core). More than one needs "
            "ATTUNE_REDIS_URL: the answer cache and live sessions must be shared",
        ),
    ] = 1,
) -> None:
    """Serve the REST API (and the demo page at /demo)."""
    import uvicorn

    from attune.api.app import create_app
    from attune.worker import BackgroundWorker

    settings = settings_or_fail()
    show_logs()
    if workers > 1:
        _prepare_workers(settings)
    console.print(f"Attune on [bold]http://{host}:{port}[/]  (API docs: /docs)")
    worker = BackgroundWorker(settings) if settings.embedded_worker else None
    if worker is not None and worker.start():
        console.print("scheduled jobs run in this process (ATTUNE_EMBEDDED_WORKER=false: off)")
    try:
        if workers == 1:
            app_or_factory: Any = create_app(settings)
        else:  # each process builds its app from the same environment
            app_or_factory = "attune.api.app:create_app"
            console.print(f"{workers} server processes")
        uvicorn.run(
            app_or_factory,
            factory=workers > 1,
            workers=workers if workers > 1 else None,
            host=host,
            port=port,
            log_level="info",
            access_log=False,
        )
    finally:
        if worker is not None:
            worker.stop()


def _prepare_workers(settings: Settings) -> None:
    """Refuse several server processes without shared live state, and do once, before
    they start, what each would otherwise race to do: migrate the schema and create the
    generated secret."""
    from attune.auth.signing import master_secret
    from attune.store.factory import open_stores

    if not settings.redis_url:
        _fail(
            "--workers above 1 needs ATTUNE_REDIS_URL: each process would otherwise keep "
            "its own answer cache and live sessions, and an event sent to one would not "
            "reach lists answered by another"
        )
    try:
        stores = open_stores(settings)
    except AttuneError as exc:
        _fail(exc.message)
        return
    from redis.exceptions import RedisError

    try:
        stores.cache.get("workers-check")  # Redis answers now, or the start fails here
        master_secret(settings)
    except RedisError as exc:
        _fail(f"cannot use ATTUNE_REDIS_URL: {exc}")
    except AttuneError as exc:
        _fail(exc.message)
    finally:
        stores.close()


@app.command()
def worker(
    once: Annotated[bool, typer.Option("--once", help="Run every job once, then exit")] = False,
) -> None:
    """Run the scheduled jobs (retention, retraining) until stopped (Ctrl-C or SIGTERM)."""
    import signal
    import threading

    from attune.training.schedule import stop_training_children
    from attune.worker import run_worker, wanted_jobs

    settings = settings_or_fail()
    show_logs()
    names = wanted_jobs(settings)
    console.print(f"worker jobs: {', '.join(names) or 'none configured'}")
    stop = threading.Event()
    stopped_by: list[int] = []

    def on_signal(number: int, _frame: object) -> None:
        # a fit in progress ends now (its version is not registered): a service manager
        # waits for a stop a minute or so, a re-tune takes up to its budget
        stopped_by.append(number)
        stop.set()
        stop_training_children()

    if not once:
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    try:
        jobs = run_worker(settings, stop, once=once)
    except AttuneError as exc:
        _fail(exc.message)
    for job in jobs:
        console.print(f"{job.name}: {job.runs} run(s), {job.failures} failed")
        if job.name == "retrain" and isinstance(job.last_result, dict):
            for workspace, outcome in job.last_result.items():
                console.print(f"  workspace {workspace}: {outcome}")
    if stopped_by:
        console.print(f"stopped ({signal.Signals(stopped_by[0]).name})")
        raise typer.Exit(code=130 if stopped_by[0] == signal.SIGINT else 0)
    if any(job.failures for job in jobs):
        raise typer.Exit(code=1)


@app.command()
def models() -> None:
    """List the model names the registry knows."""
    from attune.models.registry import available_models

    for name, path in sorted(available_models().items()):
        out.print(f"{name:16} {path}")


@app.command("db-upgrade")
def db_upgrade(workspace: WorkspaceOption = None) -> None:
    """Create or migrate the database schema to the newest version."""
    with _session(workspace) as (settings, _stores):
        console.print(f"schema up to date at {settings.sql_url.split('@')[-1]}")


def main() -> None:  # pragma: no cover - console entry
    try:
        app()
    except AttuneError as exc:
        console.print(f"[bold red]error:[/] {exc.message}")
        sys.exit(1)


@app.command()
def demo(
    sample: Annotated[
        Path, typer.Option(help="MovieLens folder to import when the store is empty")
    ] = Path("data/ml-latest-small"),
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
) -> None:
    """Import the sample (first run only), train if there is no model, then serve."""
    from attune.auth.cli import demo_key
    from attune.config import DEFAULT_WORKSPACE
    from attune.ingest.movielens import read_movielens

    with _session(DEFAULT_WORKSPACE) as (settings, stores):
        has_events = bool(stores.events.count_by_type())
        has_model = stores.model_versions.latest() is not None
    if not has_events:
        if not sample.is_dir():
            _fail(f"{sample}: sample data folder not found")
        read_movielens(sample)  # fail early on a bad folder, before any progress bar
        import_movielens_cmd(sample, workspace=DEFAULT_WORKSPACE)
    if not has_model or not has_events:
        train(algorithm=None, param=None, tune=False, budget="10m", workspace=DEFAULT_WORKSPACE)
    key = demo_key(settings)
    base = f"http://{host}:{port}"
    console.rule("[bold green]Attune demo")
    console.print(f"  demo page   [bold]{base}/demo#key={key}[/]", soft_wrap=True)
    scope = "ATTUNE_ADMIN_KEY" if settings.admin_key else "read and ingest scopes"
    console.print(f"  API key     [bold]{key}[/] ({scope})", soft_wrap=True)
    console.print(f"  API docs    {base}/docs")
    console.print(
        f"  try         curl -H 'Authorization: Bearer {key}' "
        f"'{base}/v1/users/1/recommendations?n=5'",
        soft_wrap=True,
    )
    console.print("  stop with Ctrl-C; data stays in ./attune-data")
    serve(host=host, port=port)
