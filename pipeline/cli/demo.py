"""`churnwatch demo`: the whole pipeline on the bundled samples."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from pipeline.cli.shared import (
    JsonOption,
    app,
    console,
    get_settings,
    print_json,
)


@app.command()
def demo(
    db: Annotated[Optional[str], typer.Option("--db", help="Database URL for the demo (default: a fresh churnwatch-demo.db here).")] = None,
    top: Annotated[int, typer.Option("--top", help="How many of the riskiest accounts to show.")] = 5,
    as_json: JsonOption = False,
) -> None:
    """Run the whole pipeline on the bundled sample calls and CRM data, on a fresh database."""
    from pipeline.flow import demo as demo_mod

    if db is None:
        Path("churnwatch-demo.db").unlink(missing_ok=True)
        db = "sqlite:///churnwatch-demo.db"
    settings = get_settings(db)
    report = demo_mod.run_demo(settings, top=top, progress=not as_json)
    if as_json:
        print_json(report.to_dict())
        return
    _print_demo(report)


def _print_demo(report) -> None:
    from pipeline.flow import demo as demo_mod

    console.rule("[bold]CRM data imported")
    for imp in report.imports:
        console.print(f"  {imp['file']:<16} {imp.get('imported', 0):>5} rows imported, "
                      f"{len(imp.get('bad_rows', []))} bad")
    console.rule("[bold]After each call: hints for the rep")
    for r in report.calls:
        name = Path(r.file).name
        if r.status != "ok":
            console.print(f"[yellow]{name}[/yellow]: {r.status} {r.error or ''}")
            continue
        for hint in r.hints:
            console.print(f"[bold]{name}[/bold] ({r.account_id})")
            console.print(hint.get("text", ""), highlight=False)
            console.print()
    console.rule(f"[bold]Riskiest accounts as of {report.as_of}")
    table = Table(show_lines=False)
    for col in ("account", "score", "flag", "top reasons"):
        table.add_column(col)
    for res in report.riskiest:
        reasons = "; ".join(demo_mod.top_reasons(res))
        table.add_row(res.account_id, f"{res.score:.0f}", "⚠" if res.flagged else "", reasons)
    console.print(table)
    console.rule("[bold]Open reminders")
    for rem in report.reminders:
        who = f" ({rem['rep']})" if rem.get("rep") else ""
        console.print(f"[bold]{str(rem.get('due', ''))[:10]}[/bold]  {rem.get('account') or rem['account_id']}{who}"
                      f" · {rem.get('title') or rem['reason']}", highlight=False)
        console.print(f"            {rem.get('message', '')}", highlight=False)
