"""Set up and clean the store: `churnwatch init` and `churnwatch purge`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from pipeline.cli.shared import (
    DbOption,
    JsonOption,
    app,
    console,
    get_settings,
    open_store,
    print_json,
)


@app.command()
def init(db: DbOption = None) -> None:
    """Create the database, or migrate it to the newest schema."""
    from pipeline import store

    settings = get_settings(db)
    engine = store.make_engine(settings.db_url)
    revision = store.init_db(engine)
    console.print(f"Database ready at [bold]{settings.db_url}[/bold] (schema {revision}).")

@app.command()
def purge(
    older_than: Annotated[int, typer.Option("--older-than", min=0, metavar="DAYS", help="Purge calls dated more than DAYS days ago (undated calls: by when they were stored).")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would be purged; change nothing.")] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete old calls' transcripts, cues and recording references; keep call metrics, features and risk scores."""
    from pipeline import store
    from pipeline.privacy import purge as retention

    _, engine = open_store(db, write=not dry_run)
    with store.session_scope(engine) as session:
        report = retention.purge(session, older_than, dry_run=dry_run)
    if as_json:
        print_json(report.to_dict())
        return
    table = Table("removed" if not dry_run else "would remove", "rows", title=f"Calls before {report.cutoff:%Y-%m-%d %H:%M} UTC")
    for label, n in [("calls", report.calls), ("transcript segments", report.segments), ("cues", report.cues),
                     ("cached transcripts", report.transcripts), ("utterance embeddings", report.embeddings),
                     ("recording references", report.sources),
                     ("quotes in reminders", report.reminders), ("quotes in outbox messages", report.outbox),
                     ("quotes in feature evidence", report.features), ("results of serve jobs", report.jobs),
                     ("uploaded recordings deleted", report.uploads)]:
        table.add_row(label, str(n))
    console.print(table)
    verb = "Would purge" if dry_run else "Purged"
    console.print(f"{verb} {report.calls} call(s); features, risk scores and call metrics are kept."
                  + (" Nothing was changed (--dry-run)." if dry_run else ""))
