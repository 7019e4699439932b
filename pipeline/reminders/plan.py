"""Reminders for reps: from cues, risk crossings, silence and the customer's own requests.

Policies come from rules/reminders.yaml (`load_policies`). There is at most one open reminder
per account and reason: a second competitor mention while one is open adds its quote to that
reminder's evidence. A new reminder enqueues its messages (outbox) in the same transaction.
Unanswered attempts move a reminder on (retry, then a slower nurture cadence, then stop).

The risk scorer is not imported: functions take any object with `score`, `flagged` and
`contributions` (and optionally `threshold`), e.g. `pipeline.risk.RiskResult` or a `RiskScore` row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pipeline.reminders import outbox as deliver
from pipeline.reminders.callback_dates import find_callback
from pipeline.errors import ChurnwatchError
from pipeline.reminders.followup import (
    OPEN,
    _aware,
    _due,
    rep_zone,
    sync_crm_attempts,
)
from pipeline.reminders.post_call_note import mmss, plain_factor
from pipeline.reminders.policies import Policies
from pipeline.store import Account, Call, CrmEvent, Reminder, Rep, RiskScore
from pipeline.types import Cue, Segment



class RiskLike(Protocol):
    score: float  # 0-100
    flagged: bool  # at or above the model's threshold
    contributions: Mapping[str, float]  # factor → log-odds


def is_above(risk: RiskLike | None, threshold: float | None = None) -> bool:
    if risk is None:
        return False
    limit = threshold if threshold is not None else getattr(risk, "threshold", None)
    return risk.score >= limit if limit is not None else bool(risk.flagged)


def _language(session: Session, policies: Policies, rep_id: int | None, call_language: str | None) -> str:
    if rep_id is not None:
        rep = session.get(Rep, rep_id)
        target = policies.delivery.reps.get(rep.name) if rep else None
        if target and target.language:
            return target.language
    return call_language or policies.default_language


def find_open(session: Session, account_id: str, reason: str) -> Reminder | None:
    return session.scalar(
        select(Reminder)
        .where(Reminder.account_id == account_id, Reminder.reason == reason, Reminder.status.in_(OPEN))
        .order_by(Reminder.id)
    )


def upsert_reminder(
    session: Session,
    policies: Policies,
    *,
    account_id: str,
    rep_id: int | None,
    reason: str,
    due_day: date,
    evidence: list[dict[str, Any]],
    now: datetime,
    language: str | None = None,
    when: str = "",
    quote: str = "",
    move_due: str = "earlier",
) -> tuple[Reminder, bool]:
    """Create the reminder, or add evidence to the open one for this account and reason.

    `move_due`: "earlier" keeps the sooner of the two due dates; "replace" takes the new one
    (the customer changed the date they asked for). Returns (reminder, created).
    """
    policy = policies.policy(reason)
    if policy is None:
        raise ChurnwatchError(f"No reminder policy for {reason!r} in reminders.yaml; add one under `cues:`.")
    due = _due(policies, due_day, rep_zone(session, policies, account_id, rep_id))
    existing = find_open(session, account_id, reason)
    if existing is not None:
        seen = {_key(e) for e in existing.evidence}
        existing.evidence = list(existing.evidence) + [e for e in evidence if _key(e) not in seen]
        if move_due == "replace" or due < _aware(existing.due):
            existing.due = due
            if move_due == "replace" and quote:
                existing.message = _message(session, policies, reason, account_id, due, language, when, quote)
        existing.updated_at = now
        return existing, False
    account = session.get(Account, account_id)
    if rep_id is None and account is not None:
        rep_id = account.rep_id
    reminder = Reminder(
        account_id=account_id,
        rep_id=rep_id,
        reason=reason,
        message=_message(session, policies, reason, account_id, due, language, when, quote),
        due=due,
        status="open",
        attempts=0,
        evidence=list(evidence),
        created_at=now,
        updated_at=now,
    )
    session.add(reminder)
    session.flush()
    deliver.enqueue_reminder(session, reminder, policies, now)
    return reminder, True


def _key(evidence: Mapping[str, Any]) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in evidence.items() if k != "recorded_at"))


def _message(session, policies, reason, account_id, due, language, when, quote) -> str:
    account = session.get(Account, account_id)
    name = (account.name if account and account.name else None) or account_id
    text = policies.policy(reason).text("action", language)
    return text.format(account=name, due=f"{due:%a %d %b}", when=when, quote=quote)


def plan_after_call(
    session: Session,
    account_id: str,
    rep_id: int | None,
    call_date: datetime,
    cues: Sequence[Cue],
    segments: Sequence[Segment],
    risk_before: RiskLike | None,
    risk_after: RiskLike | None,
    policies: Policies,
    now: datetime,
    *,
    call_id: int | None = None,
    language: str | None = None,
) -> list[Reminder]:
    """Create or update the reminders one call calls for; returns them (new and updated)."""
    call_date = _aware(call_date)
    if call_id is None or language is None:
        call = session.scalar(
            select(Call).where(Call.account_id == account_id, Call.call_date == call_date).order_by(Call.id.desc())
        )
        call_id = call_id if call_id is not None else (call.id if call else None)
        language = language or (call.language if call else None)
    lang = _language(session, policies, rep_id, language)
    day = call_date.date()
    out: dict[int, Reminder] = {}

    by_label: dict[str, list[Cue]] = {}
    for cue in cues:
        if cue.label in policies.cues and cue.speaker != "rep":
            by_label.setdefault(cue.label, []).append(cue)
    for label, found in by_label.items():
        evidence = [
            {"type": "cue", "label": c.label, "quote": c.quote, "time": mmss(c.start), "start": c.start,
             "call_id": call_id, "call_date": day.isoformat(), "rule": f"{c.rule}@{c.rule_version}"}
            for c in found
        ]
        reminder, _ = upsert_reminder(
            session, policies, account_id=account_id, rep_id=rep_id, reason=label,
            due_day=day + timedelta(days=policies.cues[label].due_in_days), evidence=evidence,
            now=now, language=lang, quote=found[0].quote,
        )
        out[reminder.id] = reminder

    request = None
    for seg in segments:
        if seg.speaker == "rep":
            continue
        found_request = find_callback(seg.text, day)
        if found_request is not None:
            request = (seg, found_request)  # the last request in the call wins
    if request is not None:
        seg, req = request
        evidence = [{"type": "request", "quote": req.sentence, "phrase": req.phrase, "time": mmss(seg.start),
                     "when": req.when.isoformat(), "call_id": call_id, "call_date": day.isoformat()}]
        reminder, _ = upsert_reminder(
            session, policies, account_id=account_id, rep_id=rep_id, reason="customer_request",
            due_day=req.when, evidence=evidence, now=now, language=lang, when=req.phrase,
            quote=req.sentence, move_due="replace",
        )
        out[reminder.id] = reminder

    crossed = plan_threshold(session, account_id, risk_before, risk_after, policies, now=now,
                             rep_id=rep_id, language=lang, as_of=day)
    if crossed is not None:
        out[crossed.id] = crossed

    # the call itself was contact: an open "no contact for a while" reminder is done
    silent = find_open(session, account_id, "silence")
    if silent is not None:
        silent.status, silent.updated_at = "done", now
    session.flush()
    return list(out.values())


def plan_threshold(
    session: Session,
    account_id: str,
    risk_before: RiskLike | None,
    risk_after: RiskLike | None,
    policies: Policies,
    *,
    now: datetime | None = None,
    rep_id: int | None = None,
    language: str | None = None,
    as_of: date | None = None,
    threshold: float | None = None,
) -> Reminder | None:
    """A reminder when the score goes from below the alert line to above it; else None."""
    if risk_after is None or is_above(risk_before, threshold) or not is_above(risk_after, threshold):
        return None
    now = now or datetime.now(timezone.utc)
    as_of = as_of or now.date()
    limit = threshold if threshold is not None else getattr(risk_after, "threshold", None)
    factors = getattr(risk_after, "evidence", None) or {}
    top = sorted(((n, v) for n, v in dict(risk_after.contributions or {}).items() if n != "intercept" and v > 0),
                 key=lambda kv: -kv[1])[:3]
    evidence = [{
        "type": "risk", "as_of": as_of.isoformat(),
        "score_before": round(risk_before.score, 1) if risk_before is not None else None,
        "score_after": round(risk_after.score, 1), "threshold": limit,
        "top": [[name, round(float(value), 3), plain_factor(name, factors)] for name, value in top],
    }]
    reminder, _ = upsert_reminder(
        session, policies, account_id=account_id, rep_id=rep_id, reason="risk_threshold",
        due_day=as_of + timedelta(days=policies.risk_threshold.due_in_days), evidence=evidence,
        now=now, language=language or policies.default_language,
    )
    return reminder


def _last_contacts(session: Session, as_of: date, policies: Policies) -> dict[str, date]:
    """The last day each account was spoken with: calls, and CRM activities that were not missed."""
    last: dict[str, date] = {}
    rows = session.execute(
        select(Call.account_id, func.max(Call.call_date)).where(Call.account_id.is_not(None)).group_by(Call.account_id)
    )
    for account_id, when in rows:
        if when is not None and _aware(when).date() <= as_of:
            last[account_id] = _aware(when).date()
    missed = {o.lower() for o in policies.follow_up.unanswered_outcomes}
    events = session.execute(
        select(CrmEvent.account_id, CrmEvent.occurred_on, CrmEvent.attributes)
        .where(CrmEvent.kind == "activity", CrmEvent.occurred_on <= as_of)
    )
    for account_id, on, attrs in events:
        if str((attrs or {}).get("outcome", "")).lower() in missed:
            continue
        if on > last.get(account_id, date.min):
            last[account_id] = on
    return last


def plan_silence(session: Session, as_of: date, policies: Policies, now: datetime | None = None) -> list[Reminder]:
    """Reminders for active accounts nobody has spoken with for `silence.after_days` days."""
    now = now or datetime.combine(as_of, time(policies.due_hour), tzinfo=timezone.utc)
    last = _last_contacts(session, as_of, policies)
    made = []
    for account in session.scalars(select(Account).where(Account.status == "active").order_by(Account.id)):
        since = last.get(account.id) or account.created_on
        if since is None or (as_of - since).days < policies.silence.after_days:
            continue
        evidence = [{"type": "silence", "last_contact": since.isoformat(), "days": (as_of - since).days}]
        reminder, created = upsert_reminder(
            session, policies, account_id=account.id, rep_id=account.rep_id, reason="silence",
            due_day=as_of + timedelta(days=policies.silence.due_in_days), evidence=evidence, now=now,
            language=_language(session, policies, account.rep_id, None),
        )
        if created:
            made.append(reminder)
    return made


def plan_threshold_from_scores(session: Session, as_of: date, policies: Policies, now: datetime | None = None) -> list[Reminder]:
    """Compare each account's two latest stored scores (risk_scores) up to `as_of`."""
    made = []
    accounts = session.scalars(select(RiskScore.account_id).where(RiskScore.as_of <= as_of).distinct())
    for account_id in list(accounts):
        scores = session.scalars(
            select(RiskScore).where(RiskScore.account_id == account_id, RiskScore.as_of <= as_of)
            .order_by(RiskScore.as_of.desc(), RiskScore.id.desc()).limit(2)
        ).all()
        before = scores[1] if len(scores) > 1 else None
        if _crossing_seen(session, account_id, scores[0].as_of):
            continue  # this crossing already made a reminder (open or handled)
        reminder = plan_threshold(session, account_id, before, scores[0], policies, now=now, as_of=scores[0].as_of)
        if reminder is not None:
            made.append(reminder)
    return made


def _crossing_seen(session: Session, account_id: str, as_of: date) -> bool:
    for reminder in session.scalars(
        select(Reminder).where(Reminder.account_id == account_id, Reminder.reason == "risk_threshold")
    ):
        if any(e.get("type") == "risk" and e.get("as_of") == as_of.isoformat() for e in reminder.evidence):
            return True
    return False


def plan_periodic(session: Session, as_of: date, policies: Policies, now: datetime | None = None) -> dict[str, int]:
    """The periodic job: CRM attempts, silence, and threshold crossings between stored scores."""
    now = now or datetime.now(timezone.utc)
    attempts = sync_crm_attempts(session, as_of, policies)
    silence = plan_silence(session, as_of, policies, now)
    crossed = plan_threshold_from_scores(session, as_of, policies, now)
    session.flush()
    return {"attempts_applied": attempts, "silence_reminders": len(silence), "threshold_reminders": len(crossed)}
