"""Follow-up discipline and the rep's own actions on a reminder.

Each unanswered attempt (a CRM activity whose outcome is unanswered/no_reply/..., or
`churnwatch reminders done ID --outcome no-answer`) moves a reminder on: a retry after
`retry_after_days` until `max_unanswered` tries, then one try every `nurture_every_days`
for `nurture_attempts` more, then it stops (status "dropped", still listed with --all).
A reached call closes it. Attempts are kept as evidence entries, so each CRM activity
counts once however often the periodic job runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from pipeline.errors import ChurnwatchError
from pipeline.reminders.policies import Policies
from pipeline.store import Account, CrmEvent, Reminder, Rep

__all__ = [
    "OPEN", "complete", "counts_from", "get", "is_overdue", "list_reminders", "owner", "record_outcome",
    "reminder_to_dict", "rep_zone", "snooze", "snooze_one_day", "snooze_to_day", "stage", "sync_crm_attempts",
]

OPEN = ("open", "snoozed")  # statuses that still ask something of the rep


def _due(policies: Policies, day: date, zone: tzinfo | None = None) -> datetime:
    """`due_hour` (the start of the working day) on `day` in the rep's time zone, as UTC;
    a Saturday or Sunday moves to the Monday when `skip_weekends`."""
    if policies.skip_weekends:
        while day.weekday() >= 5:
            day += timedelta(days=1)
    return datetime.combine(day, time(policies.due_hour), tzinfo=zone or timezone.utc).astimezone(timezone.utc)


def owner(session: Session | None, account_id: str | None, rep_id: int | None = None) -> Rep | None:
    """The rep who owns the account (accounts.rep_id), else the rep given (the one on the call)."""
    if session is None:
        return None
    account = session.get(Account, account_id) if account_id else None
    rep_id = account.rep_id if account is not None and account.rep_id is not None else rep_id
    return session.get(Rep, rep_id) if rep_id is not None else None


def rep_zone(session: Session | None, policies: Policies, account_id: str | None,
             rep_id: int | None = None) -> ZoneInfo:
    """The time zone of the rep who owns the account (delivery.reps.<name>.timezone)."""
    rep = owner(session, account_id, rep_id)
    return policies.zone(rep.name if rep else None)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def record_outcome(reminder: Reminder, outcome: str, on: datetime, policies: Policies,
                   source: str = "manual", event_id: int | None = None) -> Reminder:
    """Apply an attempt: "reached" closes it; "no-answer" retries, then nurtures, then stops."""
    on = _aware(on)
    follow = policies.follow_up
    entry = {"type": "attempt", "on": on.date().isoformat(), "outcome": outcome, "source": source}
    if event_id is not None:
        entry["event_id"] = event_id
    reminder.evidence = list(reminder.evidence) + [entry]
    reminder.updated_at = on
    if outcome == "reached":
        reminder.status = "done"
        return reminder
    reminder.attempts = (reminder.attempts or 0) + 1
    n = reminder.attempts
    zone = rep_zone(object_session(reminder), policies, reminder.account_id, reminder.rep_id)
    day = on.astimezone(zone).date()
    if n < follow.max_unanswered:
        reminder.status, reminder.due = "open", _due(policies, day + timedelta(days=follow.retry_after_days), zone)
    elif n < follow.max_unanswered + follow.nurture_attempts:
        reminder.status, reminder.due = "open", _due(policies, day + timedelta(days=follow.nurture_every_days), zone)
    else:
        reminder.status = "dropped"  # stop: N unanswered, then the nurture tries, all missed
    return reminder


def stage(reminder: Reminder, policies: Policies) -> str:
    """Where a reminder is in the follow-up cadence: first-try, retry, nurture or stopped."""
    if reminder.status == "dropped":
        return "stopped"
    if not reminder.attempts:
        return "first-try"
    return "retry" if reminder.attempts < policies.follow_up.max_unanswered else "nurture"


def counts_from(reminder: Reminder) -> date:
    """The first day a CRM activity can count as a follow-up attempt on this reminder.

    A CRM activity has a date but no time, so one logged on the day of a call that made (or
    added to) the reminder is taken to be that call itself: only activities from the next day
    on count. A callback the customer asked for ("call me back in two weeks") is only answered
    by a call on or after the day they named; earlier calls neither close it nor move it.
    """
    first = _aware(reminder.created_at).date()
    call_days = [date.fromisoformat(str(e["call_date"])[:10]) for e in reminder.evidence or []
                 if e.get("type") in ("cue", "request") and e.get("call_date")]
    if call_days:
        first = max(first, max(call_days) + timedelta(days=1))
    if reminder.reason == "customer_request":
        asked = [e for e in reminder.evidence or [] if e.get("type") == "request" and e.get("when")]
        if asked:
            first = max(first, date.fromisoformat(str(asked[-1]["when"])[:10]))
    return first


def sync_crm_attempts(session: Session, as_of: date, policies: Policies) -> int:
    """Read CRM activities logged since each open reminder was made; returns attempts applied.

    Only activities after the call that made a reminder count (`counts_from`): the CRM's own
    entry for that call never closes the reminders the call created."""
    missed = {o.lower() for o in policies.follow_up.unanswered_outcomes}
    reached = {o.lower() for o in policies.follow_up.reached_outcomes}
    applied = 0
    for reminder in session.scalars(select(Reminder).where(Reminder.status.in_(OPEN)).order_by(Reminder.id)).all():
        seen = {e.get("event_id") for e in reminder.evidence if e.get("type") == "attempt"}
        first_day = counts_from(reminder)
        if first_day > as_of:
            continue
        events = session.scalars(
            select(CrmEvent).where(
                CrmEvent.account_id == reminder.account_id, CrmEvent.kind == "activity",
                CrmEvent.occurred_on >= first_day, CrmEvent.occurred_on <= as_of,
            ).order_by(CrmEvent.occurred_on, CrmEvent.id)
        ).all()
        for event in events:
            outcome = str((event.attributes or {}).get("outcome", "")).lower()
            if event.id in seen or reminder.status not in OPEN:
                continue
            on = datetime.combine(event.occurred_on, time(12), tzinfo=timezone.utc)
            if outcome in missed:
                record_outcome(reminder, "no-answer", on, policies, source="crm", event_id=event.id)
                applied += 1
            elif outcome in reached and policies.policy(reminder.reason) and policies.policy(reminder.reason).closed_by_contact:
                record_outcome(reminder, "reached", on, policies, source="crm", event_id=event.id)
                applied += 1
    session.flush()
    return applied


# --- what the CLI does with one reminder ------------------------------------------------------


def get(session: Session, reminder_id: int) -> Reminder:
    reminder = session.get(Reminder, reminder_id)
    if reminder is None:
        raise ChurnwatchError(f"No reminder with id {reminder_id}. See the open ones with: churnwatch reminders list")
    return reminder


def complete(session: Session, reminder_id: int, outcome: str, now: datetime, policies: Policies) -> Reminder:
    """`reminders done`: "reached" closes it, "no-answer" counts an unanswered attempt."""
    if outcome not in ("reached", "no-answer"):
        raise ChurnwatchError(f"Unknown outcome {outcome!r}; use reached or no-answer.")
    reminder = get(session, reminder_id)
    if reminder.status not in OPEN:
        raise ChurnwatchError(f"Reminder {reminder_id} is already {reminder.status}; nothing to do.")
    return record_outcome(reminder, outcome, now, policies)


def snooze(session: Session, reminder_id: int, until: datetime, now: datetime) -> Reminder:
    """Move a reminder's due time to `until` (which must be in the future)."""
    reminder = get(session, reminder_id)
    if reminder.status not in OPEN:
        raise ChurnwatchError(f"Reminder {reminder_id} is {reminder.status}; only open reminders can be snoozed.")
    if _aware(until) <= now:
        raise ChurnwatchError(f"Cannot snooze until {until:%Y-%m-%d}: that is not in the future.")
    reminder.status, reminder.due, reminder.updated_at = "snoozed", _aware(until), now
    return reminder


def snooze_to_day(session: Session, reminder_id: int, now: datetime, policies: Policies, *,
                  days: int | None = None, day: date | None = None) -> Reminder:
    """Snooze to the start of a working day (`due_hour`) in the rep's time zone: `days` days
    from the rep's today, or the date `day`. A weekend moves to the Monday (`skip_weekends`)."""
    if (days is None) == (day is None):
        raise ChurnwatchError("Give exactly one of --until YYYY-MM-DD or --days N.")
    if days is not None and days < 1:
        raise ChurnwatchError(f"--days {days}: snooze for 1 day or more.")
    reminder = get(session, reminder_id)
    zone = rep_zone(session, policies, reminder.account_id, reminder.rep_id)
    if days is not None:
        day = _aware(now).astimezone(zone).date() + timedelta(days=days)
    return snooze(session, reminder_id, _due(policies, day, zone), now)


def snooze_one_day(session: Session, reminder_id: int, now: datetime, policies: Policies) -> Reminder:
    """The inbox's one-click snooze: the start of the working day after the later of the rep's
    today and the day the reminder falls due, so a snooze never brings a reminder forward."""
    reminder = get(session, reminder_id)
    zone = rep_zone(session, policies, reminder.account_id, reminder.rep_id)
    base = max(_aware(now), _aware(reminder.due)).astimezone(zone).date()
    return snooze(session, reminder_id, _due(policies, base + timedelta(days=1), zone), now)


def dismiss(session: Session, reminder_id: int, now: datetime) -> Reminder:
    """The rep's "not relevant": the reminder is dropped (kept, with its evidence, for review)."""
    reminder = get(session, reminder_id)
    if reminder.status not in OPEN:
        raise ChurnwatchError(f"Reminder {reminder_id} is already {reminder.status}; nothing to do.")
    reminder.status, reminder.updated_at = "dropped", now
    return reminder


def is_overdue(reminder: Reminder, now: datetime) -> bool:
    return reminder.status in OPEN and _aware(reminder.due) < _aware(now)


def list_reminders(session: Session, rep: str | None = None, due_before: date | None = None,
                   statuses: Iterable[str] = OPEN) -> list[Reminder]:
    """Reminders by due time; `rep` is a rep's name or id."""
    query = select(Reminder).where(Reminder.status.in_(tuple(statuses)))
    if rep:
        rep_ids = select(Rep.id).where(Rep.name == rep)
        query = query.where(Reminder.rep_id.in_(rep_ids) if not rep.isdigit() else Reminder.rep_id == int(rep))
    if due_before:
        query = query.where(Reminder.due < datetime.combine(due_before, time(0), tzinfo=timezone.utc))
    return list(session.scalars(query.order_by(Reminder.due, Reminder.id)))


def reminder_to_dict(reminder: Reminder, policies: Policies | None = None,
                     now: datetime | None = None) -> dict[str, Any]:
    policy = policies.policy(reminder.reason) if policies else None
    session = object_session(reminder)
    account = session.get(Account, reminder.account_id) if session is not None else None
    now = now or datetime.now(timezone.utc)
    zone = rep_zone(session, policies, reminder.account_id, reminder.rep_id) if policies else timezone.utc
    return {
        "overdue": is_overdue(reminder, now),
        "due_local": _aware(reminder.due).astimezone(zone).isoformat(), "timezone": str(zone),
        "id": reminder.id, "account_id": reminder.account_id,
        "account": getattr(account, "name", None), "rep_id": reminder.rep_id, "reason": reminder.reason,
        "title": policy.text("title", None) if policy else reminder.reason,
        "priority": policy.priority if policy else None, "due": _aware(reminder.due).isoformat(),
        "status": reminder.status, "attempts": reminder.attempts,
        "stage": stage(reminder, policies) if policies else None,
        "message": reminder.message, "evidence": reminder.evidence,
    }
