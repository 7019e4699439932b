"""Delivery that loses nothing: the outbox, Slack-compatible webhooks, SMTP e-mail, .ics export.

A reminder enqueues its messages (`enqueue_reminder`) in the same transaction that creates it,
so a reminder never exists without its messages. `deliver_pending` sends the due ones; a
failure keeps the message with its error and a next try after an exponential backoff, and only
after `max_attempts` tries is it marked `failed` (still listed, and `retry_failed` re-queues it).
Each message's result is committed as soon as it is known, so a crash never re-sends a sent one.
A webhook that answers after the timeout may have the message although the try failed: every
try of a message carries the same `Idempotency-Key` header, so such a receiver can drop the retry.
"""

from __future__ import annotations

import hashlib
import smtplib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from pipeline.reminders.followup import OPEN, owner
from pipeline.reminders.post_call_note import plain_factor
from pipeline.store import Account, Outbox, Reminder, Rep, RiskScore

if TYPE_CHECKING:
    import httpx

    from pipeline.reminders.policies import Policies, Smtp

__all__ = [
    "DeliveryReport",
    "QueueReport",
    "Route",
    "deliver_pending",
    "enqueue_hint",
    "enqueue_reminder",
    "export_ics",
    "idempotency_key",
    "list_outbox",
    "queue_digests",
    "queue_open_reminders",
    "retry_failed",
    "routes_for",
    "send_email",
    "send_webhook",
]

PRIORITY_MARK = {"urgent": ":rotating_light: ", "high": ":warning: ", "normal": "", "low": ""}
META = "churnwatch"  # our bookkeeping in a payload (audience, digest day); never sent


def _score_lines(session: Session, reminder: Reminder) -> tuple[str | None, list[str]]:
    """("Churn risk: 72 out of 100, above the alert line of 60.", [why ...]) for the account:
    the crossing in the reminder's own evidence, else the account's latest stored score."""
    risk = next((e for e in reversed(reminder.evidence or []) if e.get("type") == "risk"), None)
    if risk is not None:
        score, limit = risk.get("score_after"), risk.get("threshold")
        why = [item[2] for item in risk.get("top", []) if len(item) > 2]
    else:
        row = session.scalar(select(RiskScore).where(RiskScore.account_id == reminder.account_id)
                             .order_by(RiskScore.as_of.desc(), RiskScore.id.desc()).limit(1))
        if row is None:
            return "Churn risk: not scored yet.", []
        score, limit = row.score, row.threshold
        top = sorted(((n, v) for n, v in (row.contributions or {}).items()
                      if n != "intercept" and isinstance(v, (int, float)) and v > 0), key=lambda kv: -kv[1])[:3]
        why = [plain_factor(n) for n, _ in top]
    if score is None:
        return None, why
    line = f"Churn risk: {float(score):.0f} out of 100"
    if limit is not None:
        line += (f", above the alert line of {float(limit):.0f}" if float(score) >= float(limit)
                 else f", below the alert line of {float(limit):.0f}")
    return line + ".", list(dict.fromkeys(why))


def _texts(session: Session, reminder: Reminder, policies: Policies) -> tuple[str, str, str]:
    """(title, subject, body) for a reminder, in words a rep reads: the account, what to do,
    what the customer said, the churn score and why, and a link to the account."""
    account = session.get(Account, reminder.account_id)
    name = (account.name if account and account.name else None) or reminder.account_id
    policy = policies.policy(reminder.reason)
    title = policy.text("title", None) if policy else reminder.reason
    due = reminder.due if reminder.due.tzinfo else reminder.due.replace(tzinfo=timezone.utc)
    rep = owner(session, reminder.account_id, reminder.rep_id)
    local = due.astimezone(policies.zone(rep.name if rep else None))
    subject = f"{title}: {name}, due {local:%a %d %b}"
    quotes = [f"  {e['time']}  \"{e['quote']}\"" for e in reminder.evidence if e.get("quote")]
    body = reminder.message + (("\n\nWhat the customer said:\n" + "\n".join(quotes)) if quotes else "")
    score, why = _score_lines(session, reminder)
    if score or why:
        body += "\n"
    if score:
        body += "\n" + score
    if why:
        body += "\nWhy: " + "; ".join(why) + "."
    link = policies.delivery.account_link(reminder.account_id)
    if link:
        body += f"\n\nOpen {name}: {link}"
    return title, subject, body


def _webhook_payload(subject: str, body: str, priority: str, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    text = PRIORITY_MARK.get(priority, "") + subject
    payload: dict[str, Any] = {
        "text": f"{text}\n{body}",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": text[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": body[:3000]}},
        ],
    }
    if meta:
        payload[META] = meta
    return payload


@dataclass
class Route:
    channel: str  # webhook | email
    target: str  # URL or address
    audience: str  # rep (the account's rep, or the team channel for them) | manager


def rep_routes(session: Session, policies: Policies, rep: Rep | None) -> list[Route]:
    """Where a rep hears about their reminders: their own webhook (delivery.reps.<name>.webhook_url),
    else the team webhook; and their e-mail (delivery.reps.<name>.email, else the rep's stored
    address) when an SMTP host is set."""
    d = policies.delivery
    conf = d.reps.get(rep.name) if rep is not None else None
    routes = []
    hook = (conf.webhook_url if conf else None) or d.webhook_url
    if hook:
        routes.append(Route("webhook", hook, "rep"))
    email = (conf.email if conf else None) or (rep.email if rep is not None else None)
    if d.smtp.host and email:
        routes.append(Route("email", email, "rep"))
    return routes


def routes_for(session: Session, reminder: Reminder, policies: Policies) -> list[Route]:
    """Every message a reminder calls for: the owning rep's (see `rep_routes`), and the manager's
    when its policy escalates."""
    d = policies.delivery
    policy = policies.policy(reminder.reason)
    routes = rep_routes(session, policies, owner(session, reminder.account_id, reminder.rep_id))
    if policy is not None and policy.escalate:
        hooks = {r.target for r in routes if r.channel == "webhook"}
        if d.manager_webhook_url and d.manager_webhook_url not in hooks:
            routes.append(Route("webhook", d.manager_webhook_url, "manager"))
        if d.smtp.host and d.manager_email:
            routes.append(Route("email", d.manager_email, "manager"))
    return routes


def _queue(session: Session, reminder: Reminder, policies: Policies, now: datetime, routes: list[Route]) -> list[Outbox]:
    d = policies.delivery
    policy = policies.policy(reminder.reason)
    priority = policy.priority if policy else "normal"
    _, subject, body = _texts(session, reminder, policies)
    rep = owner(session, reminder.account_id, reminder.rep_id)
    rows = []
    for route in routes:
        meta = {"audience": route.audience, "kind": "reminder"}
        subj = subject if route.audience == "rep" else f"[escalation{', ' + rep.name if rep else ''}] {subject}"
        if route.channel == "webhook":
            payload = _webhook_payload(subj, body, priority, meta)
        else:
            payload = {"subject": subj, "body": body, "from": d.smtp.sender, META: meta}
        row = Outbox(reminder_id=reminder.id, channel=route.channel, target=route.target, payload=payload,
                     status="pending", attempts=0, next_attempt_at=now, created_at=now)
        session.add(row)
        rows.append(row)
    session.flush()
    return rows


def enqueue_hint(session: Session, *, call_id: int, account_id: str | None, rep: Rep | None, text: str,
                 policies: Policies, now: datetime, link: str | None = None) -> list[Outbox]:
    """Queue the post-call hint for the rep's own channels (see `rep_routes`), right after the
    call is stored (`churnwatch serve`'s workers call this in the transaction that finishes the
    job, so a stored call has its hint queued exactly once)."""
    account = session.get(Account, account_id) if account_id else None
    name = (account.name if account is not None and account.name else None) or account_id or "the account"
    subject = f"After your call with {name}"
    body = text.strip() + (f"\n\nOpen the call: {link}" if link else "")
    rows = []
    for route in rep_routes(session, policies, rep):
        meta = {"audience": "rep", "kind": "hint", "call_id": call_id}
        if route.channel == "webhook":
            payload = _webhook_payload(subject, body, "normal", meta)
        else:
            payload = {"subject": subject, "body": body, "from": policies.delivery.smtp.sender, META: meta}
        row = Outbox(reminder_id=None, channel=route.channel, target=route.target, payload=payload,
                     status="pending", attempts=0, next_attempt_at=now, created_at=now)
        session.add(row)
        rows.append(row)
    session.flush()
    return rows


def enqueue_reminder(session: Session, reminder: Reminder, policies: Policies, now: datetime) -> list[Outbox]:
    """Queue the messages for a new reminder: the owning rep's channels, the manager if escalated.
    With `delivery.digest` the rep hears about it in the day's digest instead (`queue_digests`)."""
    routes = routes_for(session, reminder, policies)
    if policies.delivery.digest:
        routes = [r for r in routes if r.audience != "rep"]
    return _queue(session, reminder, policies, now, routes)


def _audience(msg: Outbox, policies: Policies) -> str:
    meta = (msg.payload or {}).get(META) or {}
    if meta.get("audience"):
        return meta["audience"]
    d = policies.delivery  # messages queued before audiences were recorded
    return "manager" if msg.target in (d.manager_webhook_url, d.manager_email) else "rep"


@dataclass
class QueueReport:
    queued: dict[int, list[str]] = field(default_factory=dict)  # reminder id → channels queued now
    not_queued: dict[int, str] = field(default_factory=dict)  # reminder id → why, in words
    digests: list[int] = field(default_factory=list)  # outbox ids of digests queued now

    def to_dict(self) -> dict[str, Any]:
        return {"queued": self.queued, "not_queued": self.not_queued, "digests": self.digests}


def no_channel_reason(session: Session, reminder: Reminder, policies: Policies) -> str:
    """Why a reminder has nowhere to go, and what to set."""
    d = policies.delivery
    rep = owner(session, reminder.account_id, reminder.rep_id)
    if not d.webhook_url and not d.smtp.host and not any(r.webhook_url for r in d.reps.values()):
        return ("no delivery channel is set up: set delivery.webhook_url in rules/reminders.yaml "
                "(or CHURNWATCH_WEBHOOK_URL), or an SMTP host (CHURNWATCH_SMTP_HOST) and the reps' e-mail addresses")
    if rep is None:
        return ("the account has no rep and there is no team channel: set delivery.webhook_url "
                "in rules/reminders.yaml (or CHURNWATCH_WEBHOOK_URL)")
    return (f"{rep.name} has no webhook or e-mail address and there is no team channel: add them under "
            f"delivery.reps in rules/reminders.yaml, e.g. \"{rep.name}\": {{email: name@example.com}}")


def queue_open_reminders(session: Session, policies: Policies, now: datetime) -> QueueReport:
    """Queue open reminders on every channel they have no message on yet, e.g. reminders made
    before a webhook or SMTP host was configured; say why for those that have nowhere to go.
    A channel a reminder already has a message on (sent, pending or failed) is left alone, so
    running this on every `reminders deliver` never sends anything twice."""
    report = QueueReport()
    for reminder in session.scalars(select(Reminder).where(Reminder.status.in_(OPEN)).order_by(Reminder.id)):
        routes = routes_for(session, reminder, policies)
        if not routes:
            report.not_queued[reminder.id] = no_channel_reason(session, reminder, policies)
            continue
        if policies.delivery.digest:
            routes = [r for r in routes if r.audience != "rep"]  # the digest carries the rep's
        have = {(m.channel, _audience(m, policies))
                for m in session.scalars(select(Outbox).where(Outbox.reminder_id == reminder.id))}
        missing = [r for r in routes if (r.channel, r.audience) not in have]
        if missing:
            _queue(session, reminder, policies, now, missing)
            report.queued[reminder.id] = [r.channel for r in missing]
    session.flush()
    return report


def queue_digests(session: Session, policies: Policies, now: datetime, report: QueueReport | None = None) -> QueueReport:
    """`delivery.digest`: one message a day per rep, from `digest_hour` (default `due_hour`) in the
    rep's time zone, listing their open reminders soonest first, overdue ones marked."""
    report = report or QueueReport()
    if not policies.delivery.digest:
        return report
    hour = policies.delivery.digest_hour if policies.delivery.digest_hour is not None else policies.due_hour
    by_rep: dict[int | None, list[Reminder]] = {}
    for reminder in session.scalars(select(Reminder).where(Reminder.status.in_(OPEN)).order_by(Reminder.due, Reminder.id)):
        rep = owner(session, reminder.account_id, reminder.rep_id)
        by_rep.setdefault(rep.id if rep else None, []).append(reminder)
    earlier = [m for m in session.scalars(select(Outbox).where(Outbox.reminder_id.is_(None),
                                                               Outbox.created_at >= now - timedelta(days=2)))
               if ((m.payload or {}).get(META) or {}).get("kind") == "digest"]
    for rep_id, reminders in by_rep.items():
        rep = session.get(Rep, rep_id) if rep_id is not None else None
        local = now.astimezone(policies.zone(rep.name if rep else None))
        if local.hour < hour:
            continue
        day = local.date().isoformat()
        if any(m.payload[META].get("rep_id") == rep_id and m.payload[META].get("day") == day for m in earlier):
            continue
        routes = rep_routes(session, policies, rep)
        if not routes:
            for r in reminders:
                report.not_queued[r.id] = no_channel_reason(session, r, policies)
            continue
        subject, body = _digest_text(session, policies, rep, reminders, now, local)
        meta = {"kind": "digest", "audience": "rep", "rep_id": rep_id, "day": day,
                "reminders": [r.id for r in reminders]}
        for route in routes:
            payload = (_webhook_payload(subject, body, "normal", meta) if route.channel == "webhook"
                       else {"subject": subject, "body": body, "from": policies.delivery.smtp.sender, META: meta})
            row = Outbox(reminder_id=None, channel=route.channel, target=route.target, payload=payload,
                         status="pending", attempts=0, next_attempt_at=now, created_at=now)
            session.add(row)
            session.flush()
            report.digests.append(row.id)
    return report


def _digest_text(session, policies, rep, reminders, now, local) -> tuple[str, str]:
    late = sum(_aware_due(r) < now for r in reminders)
    who = rep.name if rep else "accounts without a rep"
    subject = (f"Your follow-ups for {local:%a %d %b}, {who}: {len(reminders)} open"
               + (f", {late} overdue" if late else ""))
    lines = []
    for r in reminders:
        account = session.get(Account, r.account_id)
        name = (account.name if account and account.name else None) or r.account_id
        policy = policies.policy(r.reason)
        title = policy.text("title", None) if policy else r.reason
        due = _aware_due(r).astimezone(local.tzinfo)
        mark = "OVERDUE since" if _aware_due(r) < now else "due"
        score, why = _score_lines(session, r)
        line = f"- {name}: {title}, {mark} {due:%a %d %b}. {r.message}"
        if score:
            line += f" {score}"
        if why:
            line += " Why: " + "; ".join(why) + "."
        link = policies.delivery.account_link(r.account_id)
        if link:
            line += f" {link}"
        lines.append(line)
    return subject, "\n".join(lines)


def _aware_due(reminder: Reminder) -> datetime:
    return reminder.due if reminder.due.tzinfo else reminder.due.replace(tzinfo=timezone.utc)


# --- sending ----------------------------------------------------------------------------------


class DeliveryError(Exception):
    """One failed try; the message stays in the outbox."""


def idempotency_key(msg: Outbox) -> str:
    """The same key on every try of one message, another for every other message: a receiver that
    answered too slowly (the try timed out, yet it got the message) can drop the retry."""
    created = msg.created_at.isoformat() if msg.created_at else ""
    return "churnwatch-" + hashlib.sha256(f"{msg.id}|{created}|{msg.target}".encode()).hexdigest()[:32]


def send_webhook(client: httpx.Client, url: str, payload: dict[str, Any], key: str | None = None) -> None:
    """POST the payload; `key` goes in the Idempotency-Key header, the same on every retry."""
    import httpx

    try:
        response = client.post(url, json=payload, headers={"Idempotency-Key": key} if key else None)
    except httpx.TimeoutException as e:
        raise DeliveryError(f"{type(e).__name__}: no answer in time ({e}); the receiver may have the message, "
                            "so the retry carries the same Idempotency-Key") from None
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
                send_webhook(webhook_client, msg.target, {k: v for k, v in msg.payload.items() if k != META},
                             idempotency_key(msg))
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
