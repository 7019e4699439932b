"""`churnwatch reminders`: list, complete, snooze, plan and deliver reminders."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from pipeline.cli.shared import (
    DbOption,
    JsonOption,
    app,
    console,
    err_console,
    fail,
    open_store,
    parse_date_option,
    print_json,
)

reminders_app = typer.Typer(help="List, complete, snooze and deliver follow-up reminders.", no_args_is_help=True)
app.add_typer(reminders_app, name="reminders")


def _reminders_ctx(db: str | None):
    """Settings, an engine on an initialised store, and the reminder policies."""
    from pipeline.reminders.policies import load_policies

    settings, engine = open_store(db)
    policies = load_policies(settings.rules_dir / "reminders.yaml")
    return settings, engine, policies


def _account_label(session, reminder_id: int) -> str:
    from pipeline.store import Account, Reminder

    reminder = session.get(Reminder, reminder_id)
    account = session.get(Account, reminder.account_id) if reminder else None
    return (account.name if account and account.name else None) or (reminder.account_id if reminder else "?")


def _now():
    from datetime import timezone

    return datetime.now(timezone.utc)


@reminders_app.command("list")
def reminders_list(
    rep: Annotated[Optional[str], typer.Option("--rep", help="Only this rep's reminders (name or id).")] = None,
    due_before: Annotated[Optional[str], typer.Option("--due-before", help="Only reminders due before this date (YYYY-MM-DD).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Also list done, dropped (stopped) reminders.")] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List open reminders, soonest first."""
    from pipeline import reminders as remind
    from pipeline import store

    _, engine, policies = _reminders_ctx(db)
    statuses = ("open", "snoozed", "done", "dropped") if all_ else remind.OPEN
    now = _now()
    with store.session_scope(engine) as session:
        rows = [remind.reminder_to_dict(r, policies, now)
                for r in remind.list_reminders(session, rep, parse_date_option(due_before, "--due-before"), statuses)]
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("No reminders.")
        return
    table = Table("id", "due (rep's time)", "account", "what", "priority", "status", "tries")
    table.add_column("suggested action", ratio=1, min_width=30)
    for column in table.columns[:2]:
        column.no_wrap = True
    for r in rows:
        status = r["status"] if r["stage"] in ("first-try", "stopped") else f"{r['status']} ({r['stage']})"
        due = r["due_local"][:16].replace("T", " ") + ("" if r["timezone"] == "UTC" else f" {r['timezone']}")
        if r["overdue"]:
            due = f"[red]{due} OVERDUE[/red]"
        table.add_row(str(r["id"]), due, r["account"] or r["account_id"], r["title"],
                      r["priority"] or "", status, str(r["attempts"]), r["message"])
    console.print(table)
    late = sum(r["overdue"] for r in rows)
    if late:
        console.print(f"{late} overdue: call them first, or move them with `churnwatch reminders snooze ID --days N`.")


@reminders_app.command("done")
def reminders_done(
    reminder_id: Annotated[int, typer.Argument(help="The reminder's id (see `reminders list`).")],
    outcome: Annotated[str, typer.Option("--outcome", help="reached: close it; no-answer: count an unanswered try and reschedule.")] = "reached",
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Mark a reminder done, or record that the customer did not answer."""
    from pipeline import reminders as remind
    from pipeline import store

    _, engine, policies = _reminders_ctx(db)
    with store.session_scope(engine) as session:
        data = remind.reminder_to_dict(remind.complete(session, reminder_id, outcome, _now(), policies), policies)
    if as_json:
        print_json(data)
    elif data["status"] == "done":
        console.print(f"Reminder {reminder_id} done.")
    elif data["status"] == "dropped":
        console.print(f"Reminder {reminder_id}: {data['attempts']} unanswered tries, stopped.")
    else:
        console.print(f"Reminder {reminder_id}: try {data['attempts']} unanswered; next try {data['due'][:10]} ({data['stage']}).")


@reminders_app.command("snooze")
def reminders_snooze(
    reminder_id: Annotated[int, typer.Argument(help="The reminder's id (see `reminders list`).")],
    until: Annotated[Optional[str], typer.Option("--until", help="New due date (YYYY-MM-DD).")] = None,
    days: Annotated[Optional[int], typer.Option("--days", help="Snooze for this many days from now.")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Move a reminder to the start of a later working day, in the rep's time zone."""
    from pipeline import reminders as remind
    from pipeline import store

    if (until is None) == (days is None):
        fail("Give exactly one of --until YYYY-MM-DD or --days N.")
    day = parse_date_option(until, "--until")
    _, engine, policies = _reminders_ctx(db)
    now = _now()
    with store.session_scope(engine) as session:
        reminder = remind.snooze_to_day(session, reminder_id, now, policies, days=days, day=day)
        data = remind.reminder_to_dict(reminder, policies, now)
    if as_json:
        print_json(data)
    else:
        local = datetime.fromisoformat(data["due_local"])
        console.print(f"Reminder {reminder_id} snoozed until {local:%a %Y-%m-%d %H:%M} {data['timezone']} "
                      "(the start of the working day).", highlight=False)


@reminders_app.command("plan")
def reminders_plan(
    as_of: Annotated[Optional[str], typer.Option("--as-of", help="Plan as of this date (YYYY-MM-DD; default today).")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """The periodic job: count CRM call attempts, flag silent accounts and risk-threshold crossings."""
    from pipeline import reminders as remind
    from pipeline import store

    _, engine, policies = _reminders_ctx(db)
    day = parse_date_option(as_of, "--as-of") or _now().date()
    with store.session_scope(engine) as session:
        summary = remind.plan_periodic(session, day, policies, _now())
    if as_json:
        print_json(summary)
    else:
        console.print(f"As of {day}: {summary['attempts_applied']} call attempt(s) applied, "
                      f"{summary['silence_reminders']} new no-contact reminder(s), "
                      f"{summary['threshold_reminders']} new risk reminder(s).")


@reminders_app.command("deliver")
def reminders_deliver(
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Re-queue messages that gave up, then send.")] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send reminder messages (webhook, e-mail); failures stay queued for the next run.

    Open reminders that have no message on a channel set up since they were made (a webhook URL
    added later) are queued first; with `delivery.digest` each rep gets one message a day."""
    import httpx

    from pipeline import store
    from pipeline.reminders import outbox as deliver

    _, engine, policies = _reminders_ctx(db)
    now = _now()
    with store.session_scope(engine) as session, httpx.Client(timeout=10) as client:
        queued = deliver.queue_open_reminders(session, policies, now)
        deliver.queue_digests(session, policies, now, queued)
        waiting = {rid: (why, _account_label(session, rid)) for rid, why in queued.not_queued.items()}
        session.commit()
        if retry_failed:
            deliver.retry_failed(session, now)
        report = deliver.deliver_pending(session, now, client, policies.delivery.smtp,
                                         max_attempts=policies.delivery.max_attempts,
                                         backoff_seconds=policies.delivery.backoff_seconds)
    if as_json:
        print_json({**report.to_dict(), **queued.to_dict()})
        return
    if queued.queued:
        console.print(f"Queued {len(queued.queued)} open reminder(s) made before their channel was set up.",
                      soft_wrap=True)
    if queued.digests:
        console.print(f"{len(queued.digests)} daily digest(s) queued.")
    console.print(f"{len(report.sent)} sent, {len(report.retrying)} will be retried, {len(report.failed)} gave up.")
    reasons: dict[str, list[str]] = {}
    for rid, (why, label) in waiting.items():
        reasons.setdefault(why, []).append(f"reminder {rid}, {label}")
    for why, items in reasons.items():
        shown = "; ".join(items[:5]) + (f" and {len(items) - 5} more" if len(items) > 5 else "")
        err_console.print(f"[yellow]{len(items)} open reminder(s) not sent[/yellow] ({shown}): {why}.",
                          highlight=False, soft_wrap=True)
    for outbox_id, error in report.errors.items():
        err_console.print(f"[yellow]message {outbox_id}[/yellow]: {error}", highlight=False)
    if report.failed:
        fail("Some messages gave up; fix the target and run: churnwatch reminders deliver --retry-failed")


@reminders_app.command("outbox")
def reminders_outbox(
    status: Annotated[Optional[str], typer.Option("--status", help="Only pending, sent or failed messages.")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show queued, sent and failed reminder messages."""
    from pipeline import store
    from pipeline.reminders import outbox as deliver

    _, engine, _ = _reminders_ctx(db)
    with store.session_scope(engine) as session:
        rows = [{"id": m.id, "reminder_id": m.reminder_id, "channel": m.channel, "target": m.target,
                 "status": m.status, "attempts": m.attempts, "last_error": m.last_error,
                 "next_attempt_at": m.next_attempt_at.isoformat(), "sent_at": m.sent_at.isoformat() if m.sent_at else None}
                for m in deliver.list_outbox(session, status)]
    if as_json:
        print_json(rows)
        return
    table = Table("id", "reminder", "channel", "target", "status", "tries", "last error")
    for m in rows:
        table.add_row(str(m["id"]), "digest" if m["reminder_id"] is None else str(m["reminder_id"]), m["channel"], m["target"], m["status"],
                      str(m["attempts"]), m["last_error"] or "")
    console.print(table)


@reminders_app.command("export-ics")
def reminders_export_ics(
    file: Annotated[Path, typer.Argument(help="The .ics file to write.")],
    rep: Annotated[Optional[str], typer.Option("--rep", help="Only this rep's reminders (name or id).")] = None,
    events: Annotated[bool, typer.Option("--events", help="Write calendar events (VEVENT) instead of tasks (VTODO).")] = False,
    db: DbOption = None,
) -> None:
    """Write open reminders to an iCalendar file for Outlook, Google or Apple calendars."""
    from pipeline import reminders as remind
    from pipeline import store
    from pipeline.reminders import outbox as deliver

    _, engine, policies = _reminders_ctx(db)
    with store.session_scope(engine) as session:
        reminders = remind.list_reminders(session, rep)
        text = deliver.export_ics(session, reminders, policies, _now(), kind="VEVENT" if events else "VTODO")
    try:
        file.write_bytes(text.encode("utf-8"))
    except OSError as e:
        fail(f"Cannot write {file}: {e}")
    console.print(f"Wrote {len(reminders)} reminder(s) to {file}.")
