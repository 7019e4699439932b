"""`churnwatch crm`: import CRM exports."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from pipeline.cli.shared import (
    DbOption,
    JsonOption,
    MapOption,
    PresetOption,
    app,
    console,
    err_console,
    fail,
    open_store,
    print_json,
)

crm_app = typer.Typer(help="Import CRM exports (accounts, orders, activities, contacts, support, opportunities, leads).", no_args_is_help=True)
app.add_typer(crm_app, name="crm")

DateOrderOption = Annotated[
    Optional[str],
    typer.Option("--date-order", help="dmy or mdy, for files whose slashed dates (03/04/2026) never show a day above 12."),
]


@crm_app.command("import")
def crm_import(
    file: Annotated[Path, typer.Argument(help="The CSV export to import.")],
    kind: Annotated[str, typer.Option("--kind", help="What the file holds: accounts, orders, activities, contacts, support, opportunities (stage history) or leads.")],
    column_map: MapOption = None,
    preset: PresetOption = None,
    date_order: DateOrderOption = None,
    locale: Annotated[Optional[str], typer.Option(
        "--locale", help="How the amounts are written: en_US (1,234.50), de_DE (1.234,50), fr_FR (1 234,50), "
                         "de_CH (1'234.50)... Default: what the file's amounts show; an amount that could be "
                         "read two ways is a bad row.")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import a CRM export; re-importing the same file changes nothing, bad rows are reported by line.

    The file is imported whole or not at all: a database that cannot be written (disk full,
    read-only) stops the import at once with the cause, and nothing of the file is stored."""
    from pipeline import store
    from pipeline import crm
    from pipeline.crm.presets import check_locale
    from pipeline.errors import StorageError

    locale = check_locale(locale)
    settings, engine = open_store(db, create=True, write=True)
    funnel = None
    if kind == "opportunities":  # stage names are checked against the team's stages
        from pipeline.funnel.stages import load_funnel

        funnel = load_funnel(settings.rules_dir / "funnel.yaml")
    try:
        with store.session_scope(engine) as session:
            report = crm.import_csv(session, file, kind, crm.parse_map(column_map), preset, date_order, funnel=funnel,
                                    locale=locale)
    except StorageError as e:
        fail(f"{file}: nothing was imported. {e}")
    if as_json:
        print_json(report.to_dict())
        raise typer.Exit(min(len(report.bad_rows), 100))
    console.print(f"{file}: {report.imported} imported, {report.updated} updated, "
                  f"{report.unchanged} unchanged, {len(report.bad_rows)} bad row(s).", highlight=False)
    for e in report.bad_rows[:50]:
        err_console.print(f"[yellow]skipped[/yellow] {escape(str(e))}", highlight=False)
    if len(report.bad_rows) > 50:
        err_console.print(f"... and {len(report.bad_rows) - 50} more bad rows (see --json).")
    for w in report.warnings[:20]:
        err_console.print(f"[yellow]warning[/yellow] {escape(str(w))}", highlight=False)
    if len(report.warnings) > 20:
        err_console.print(f"... and {len(report.warnings) - 20} more warnings (see --json).")
    # like ingest: the good rows are stored, and the exit code counts the bad ones
    raise typer.Exit(min(len(report.bad_rows), 100))
