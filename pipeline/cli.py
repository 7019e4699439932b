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
# --- END init ---

# --- BEGIN models ---
models_app = typer.Typer(help="Install, verify and list model weights (no hub needed).", no_args_is_help=True)
app.add_typer(models_app, name="models")
# --- END models ---

# --- BEGIN transcribe ---
# --- END transcribe ---

# --- BEGIN ingest ---
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
