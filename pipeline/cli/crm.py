"""`churnwatch crm`: import CRM exports."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from pipeline.cli.shared import (
    DbOption,
    JsonOption,
    MapOption,
    PresetOption,
    app,
    console,
    err_console,
    open_store,
    print_json,
)

crm_app = typer.Typer(help="Import CRM exports (accounts, orders, activities, contacts, support).", no_args_is_help=True)
app.add_typer(crm_app, name="crm")

DateOrderOption = Annotated[
    Optional[str],
    typer.Option("--date-order", help="dmy or mdy, for files whose slashed dates (03/04/2026) never show a day above 12."),
]


@crm_app.command("import")
def crm_import(
    file: Annotated[Path, typer.Argument(help="The CSV export to import.")],
    kind: Annotated[str, typer.Option("--kind", help="What the file holds: accounts, orders, activities, contacts or support.")],
    column_map: MapOption = None,
    preset: PresetOption = None,
    date_order: DateOrderOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import a CRM export; re-importing the same file changes nothing, bad rows are reported by line."""
    from pipeline import store
    from pipeline import crm

    settings, engine = open_store(db, create=True)
    with store.session_scope(engine) as session:
        report = crm.import_csv(session, file, kind, crm.parse_map(column_map), preset, date_order)
    if as_json:
        print_json(report.to_dict())
        raise typer.Exit(min(len(report.bad_rows), 100))
    console.print(f"{file}: {report.imported} imported, {report.updated} updated, "
                  f"{report.unchanged} unchanged, {len(report.bad_rows)} bad row(s).", highlight=False)
    for e in report.bad_rows[:50]:
        err_console.print(f"[yellow]skipped[/yellow] {e}", highlight=False)
    if len(report.bad_rows) > 50:
        err_console.print(f"... and {len(report.bad_rows) - 50} more bad rows (see --json).")
    # like ingest: the good rows are stored, and the exit code counts the bad ones
    raise typer.Exit(min(len(report.bad_rows), 100))
