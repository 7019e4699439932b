"""Delivery that loses nothing: the outbox, Slack-compatible webhooks, SMTP e-mail, .ics export.

A reminder enqueues its messages (`enqueue_reminder`) in the same transaction that creates it,
so a reminder never exists without its messages. `deliver_pending` sends the due ones; a
failure keeps the message with its error and a next try after an exponential backoff, and only
after `max_attempts` tries is it marked `failed` (still listed, and `retry_failed` re-queues it).
Each message's result is committed as soon as it is known, so a crash never re-sends a sent one.
"""

from __future__ import annotations

import smtplib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from pipeline.store import Account, Outbox, Reminder, Rep

if TYPE_CHECKING:
    import httpx

    from pipeline.reminders.policies import Policies, Smtp

__all__ = [
    "DeliveryReport",
    "deliver_pending",
    "enqueue_reminder",
    "export_ics",
    "list_outbox",
    "retry_failed",
    "send_email",
    "send_webhook",
]

PRIORITY_MARK = {"urgent": ":rotating_light: ", "high": ":warning: ", "normal": "", "low": ""}


def _texts(session: Session, reminder: Reminder, policies: Policies) -> tuple[str, str, str]:
    """(title, subject, body) for a reminder, in words a rep reads."""
    account = session.get(Account, reminder.account_id)
    name = (account.name if account and account.name else None) or reminder.account_id
    policy = policies.policy(reminder.reason)
    title = policy.text("title", None) if policy else reminder.reason
    due = reminder.due if reminder.due.tzinfo else reminder.due.replace(tzinfo=timezone.utc)
    subject = f"{title}: {name}, due {due:%a %d %b}"
    quotes = [f"  {e['time']}  \"{e['quote']}\"" for e in reminder.evidence if e.get("quote")]
    body = reminder.message + (("\n\nWhat the customer said:\n" + "\n".join(quotes)) if quotes else "")
    why = [item[2] for e in reminder.evidence if e.get("type") == "risk" for item in e.get("top", []) if len(item) > 2]
    if why:
        body += "\n\nWhy: " + "; ".join(why) + "."
    return title, subject, body


def _webhook_payload(subject: str, body: str, priority: str) -> dict[str, Any]:
    text = PRIORITY_MARK.get(priority, "") + subject
    return {
        "text": f"{text}\n{body}",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": text[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": body[:3000]}},
        ],
    }


def enqueue_reminder(session: Session, reminder: Reminder, policies: Policies, now: datetime) -> list[Outbox]:
    """Queue the messages for a new reminder: webhook, the rep's e-mail, the manager if escalated."""
    d = policies.delivery
    policy = policies.policy(reminder.reason)
    priority = policy.priority if policy else "normal"
    _, subject, body = _texts(session, reminder, policies)
    rep = session.get(Rep, reminder.rep_id) if reminder.rep_id is not None else None
    targets: list[tuple[str, str, str]] = []  # (channel, target, audience)
    if d.webhook_url:
        targets.append(("webhook", d.webhook_url, "rep"))
    rep_email = (d.reps.get(rep.name).email if rep and d.reps.get(rep.name) else None) or (rep.email if rep else None)
    if d.smtp.host and rep_email:
        targets.append(("email", rep_email, "rep"))
    if policy is not None and policy.escalate:
        if d.manager_webhook_url and d.manager_webhook_url != d.webhook_url:
            targets.append(("webhook", d.manager_webhook_url, "manager"))
        if d.smtp.host and d.manager_email:
            targets.append(("email", d.manager_email, "manager"))
    rows = []
    for channel, target, audience in targets:
        subj = subject if audience == "rep" else f"[escalation{', ' + rep.name if rep else ''}] {subject}"
        if channel == "webhook":
            payload = _webhook_payload(subj, body, priority)
        else:
            payload = {"subject": subj, "body": body, "from": d.smtp.sender}
        row = Outbox(reminder_id=reminder.id, channel=channel, target=target, payload=payload,
                     status="pending", attempts=0, next_attempt_at=now, created_at=now)
        session.add(row)
        rows.append(row)
    session.flush()
    return rows


# --- sending ----------------------------------------------------------------------------------


class DeliveryError(Exception):
    """One failed try; the message stays in the outbox."""


def send_webhook(client: httpx.Client, url: str, payload: dict[str, Any]) -> None:
    import httpx

    try:
        response = client.post(url, json=payload)
    except httpx.HTTPError as e:
        raise DeliveryError(f"{type(e).__name__}: {e}") from None
    if response.status_code >= 300:
        raise DeliveryError(f"HTTP {response.status_code}: {response.text[:200]}")


def send_email(smtp: Smtp, to: str, subject: str, body: str, sender: str | None = None) -> None:
    msg = EmailMessage()
    msg["From"] = sender or smtp.sender
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(body)
    try:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_seconds) as server:
            if smtp.starttls:
                server.starttls()
            if smtp.username:
                server.login(smtp.username, smtp.password or "")
            server.send_message(msg)
    except (OSError, smtplib.SMTPException) as e:
        raise DeliveryError(f"{type(e).__name__}: {e}") from None


@dataclass
class DeliveryReport:
    sent: list[int] = field(default_factory=list)  # outbox ids
    retrying: list[int] = field(default_factory=list)  # failed this time, will be tried again
    failed: list[int] = field(default_factory=list)  # gave up after max_attempts (still listed)
    errors: dict[int, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"sent": self.sent, "retrying": self.retrying, "failed": self.failed, "errors": self.errors}


def deliver_pending(session: Session, now: datetime, webhook_client: httpx.Client | None, smtp: Smtp | None,
                    *, max_attempts: int = 6, backoff_seconds: float = 60, limit: int = 500,
                    commit: bool = True) -> DeliveryReport:
    """Send every pending message that is due; failures wait 1, 2, 4 ... backoffs and stay queued.

    `commit=True` commits after each message so a sent one is never sent again after a crash.
    Messages are claimed one at a time (`_claim_next`), so two `reminders deliver` runs at once
    (cron overlapping a manual run) never send the same message twice. With `commit=False` the
    claimed rows (PostgreSQL) or the whole database (SQLite) stay locked until the caller
    commits, so another run waits for this one or, on SQLite, gives up after its busy timeout.
    """
    report = DeliveryReport()
    seen: list[int] = []
    while len(seen) < limit:
        msg = _claim_next(session, now, seen)
        if msg is None:
            break
        seen.append(msg.id)
        msg.attempts = (msg.attempts or 0) + 1
        try:
            if msg.channel == "webhook":
                if webhook_client is None:
                    raise DeliveryError("no HTTP client given for webhooks")
                send_webhook(webhook_client, msg.target, msg.payload)
            elif msg.channel == "email":
                if smtp is None or not smtp.host:
                    raise DeliveryError("no SMTP host configured (delivery.smtp.host or CHURNWATCH_SMTP_HOST)")
                send_email(smtp, msg.target, msg.payload["subject"], msg.payload["body"], msg.payload.get("from"))
            else:
                raise DeliveryError(f"unknown channel {msg.channel!r}; use webhook or email")
        except DeliveryError as e:
            msg.last_error = str(e)
            report.errors[msg.id] = str(e)
            if msg.attempts >= max_attempts:
                msg.status = "failed"
                report.failed.append(msg.id)
            else:
                msg.next_attempt_at = now + timedelta(seconds=backoff_seconds * 2 ** (msg.attempts - 1))
                report.retrying.append(msg.id)
        else:
            msg.status, msg.sent_at, msg.last_error = "sent", now, None
            report.sent.append(msg.id)
        if commit:
            session.commit()
        else:
            session.flush()
    return report


def _claim_next(session: Session, now: datetime, skip: list[int]) -> Outbox | None:
    """The next due pending message, locked for this transaction.

    PostgreSQL: `FOR UPDATE SKIP LOCKED`, so a concurrent run takes the next message instead of
    this one and sees it `sent` once this transaction commits. SQLite: the store opens every
    transaction with BEGIN IMMEDIATE, so writers take turns and each re-reads the status here.
    `skip` holds the ids this run has handled already (a zero backoff would make a failed
    message due again at once)."""
    query = (select(Outbox).where(Outbox.status == "pending", Outbox.next_attempt_at <= now)
             .order_by(Outbox.next_attempt_at, Outbox.id).limit(1)
             .with_for_update(skip_locked=True).execution_options(populate_existing=True))
    if skip:
        query = query.where(Outbox.id.not_in(skip))
    return session.scalars(query).first()


def retry_failed(session: Session, now: datetime) -> int:
    """Put messages that gave up back in the queue (attempts are kept); returns how many."""
    result = session.execute(
        update(Outbox).where(Outbox.status == "failed").values(status="pending", next_attempt_at=now)
    )
    return result.rowcount or 0


def list_outbox(session: Session, status: str | None = None) -> list[Outbox]:
    query = select(Outbox).order_by(Outbox.id)
    if status:
        query = query.where(Outbox.status == status)
    return list(session.scalars(query))


# --- .ics export (RFC 5545) -------------------------------------------------------------------

_ICS_PRIORITY = {"urgent": 1, "high": 3, "normal": 5, "low": 9}


def ics_escape(text: str) -> str:
    """TEXT value escaping: backslash, semicolon, comma and newlines."""
    return (text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
            .replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n"))


def ics_fold(line: str) -> str:
    """Fold a content line at 75 octets (CRLF + space), never inside a UTF-8 character."""
    out, current, size = [], "", 0
    for ch in line:
        n = len(ch.encode("utf-8"))
        if size + n > 75:
            out.append(current)
            current, size = " ", 1
        current += ch
        size += n
    out.append(current)
    return "\r\n".join(out)


def _stamp(moment: datetime) -> str:
    moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def export_ics(session: Session, reminders: list[Reminder], policies: Policies, now: datetime,
               kind: str = "VTODO", host: str = "churnwatch") -> str:
    """An iCalendar file with one VTODO (or VEVENT, 15 minutes at the due time) per reminder."""
    if kind not in ("VTODO", "VEVENT"):
        raise ValueError(f"kind must be VTODO or VEVENT, got {kind!r}")
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//churnwatch//reminders//EN", "CALSCALE:GREGORIAN"]
    for r in reminders:
        _, subject, body = _texts(session, r, policies)
        policy = policies.policy(r.reason)
        lines += [f"BEGIN:{kind}", f"UID:reminder-{r.id}@{host}", f"DTSTAMP:{_stamp(now)}",
                  f"SUMMARY:{ics_escape(subject)}", f"DESCRIPTION:{ics_escape(body)}",
                  f"PRIORITY:{_ICS_PRIORITY.get(policy.priority if policy else 'normal', 5)}",
                  f"CATEGORIES:{ics_escape(r.reason)}"]
        if kind == "VTODO":
            lines += [f"DUE:{_stamp(r.due)}", "STATUS:NEEDS-ACTION"]
        else:
            lines += [f"DTSTART:{_stamp(r.due)}", "DURATION:PT15M", "STATUS:CONFIRMED"]
        lines.append(f"END:{kind}")
    lines.append("END:VCALENDAR")
    return "".join(ics_fold(line) + "\r\n" for line in lines)
