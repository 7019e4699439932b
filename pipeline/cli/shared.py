"""What every command module shares: the Typer app, consoles, common options, error handling.

Every command is thin: it parses options, loads models, calls the stage functions and prints.
Errors a user can fix (ChurnwatchError) are turned into one line and exit code 1 in one place,
`CatchUserErrors.invoke`, so no command needs its own try/except.
"""

from __future__ import annotations

import json
import sys
from datetime import date
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from pipeline.errors import ChurnwatchError
from pipeline.settings import Settings, load_settings


class CatchUserErrors(TyperGroup):
    """The root command group: a ChurnwatchError raised by any command becomes one red line."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ChurnwatchError as e:
            fail(e)


app = typer.Typer(
    cls=CatchUserErrors,
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
MapOption = Annotated[
    Optional[list[str]],
    typer.Option("--map", help="Column map, our field=their column, e.g. account_id=AccountId,date=CloseDate (repeatable)."),
]
PresetOption = Annotated[
    Optional[str], typer.Option("--preset", help="Column names of a report export: salesforce or hubspot.")
]


def get_settings(db: str | None = None, **overrides) -> Settings:
    return load_settings(db_url=db, **overrides)


def fail(error: Exception | str, code: int = 1):
    # escaped: a message quoting "pip install 'churnwatch[postgres]'" or a user's value keeps its brackets
    err_console.print(f"[red]error:[/red] {escape(str(error))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def open_store(db: str | None, create: bool = False, write: bool = False):
    """Settings and an engine on the store; create (or migrate) it, or insist it exists (a missing
    SQLite file is an error, not created). `write`: refuse now, naming the cause, a store that
    cannot be written (read-only file, no permission), before the command does any work."""
    from pipeline import store
    from pipeline.store.database import check_writable

    settings = get_settings(db)
    engine = store.make_engine(settings.db_url)
    store.init_db(engine) if create else store.ensure_db(engine)
    if write:
        check_writable(engine)
    return settings, engine


def parse_date_option(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"{option} {value!r} is not a date; use YYYY-MM-DD, e.g. 2026-03-31.")
