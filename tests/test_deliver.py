"""Delivery end to end: a local webhook receiver, a local SMTP server, the .ics export."""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dbreset
import httpx
import pytest
from sqlalchemy import func, select

from pipeline.reminders import outbox as deliver
from pipeline import reminders as remind
from pipeline.reminders.policies import load_policies
from pipeline.store import Account, Outbox, Reminder, Rep, session_scope
from pipeline.types import Cue

RULES = Path(__file__).resolve().parents[1] / "rules" / "reminders.yaml"
NOW = datetime(2026, 2, 19, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    """An empty database at head per test, on each backend, reused fast (tests/dbreset.py)."""
    return dbreset.fresh_url(request, tmp_path)


@pytest.fixture
def engine(engine):
    """The migrated database of conftest (SQLite and PostgreSQL) with a rep and an account."""
    with session_scope(engine) as s:
        rep = Rep(name="Nina Forde", email="nina@example.com")
        s.add(rep)
        s.flush()
        s.add(Account(id="ACC-1", name="Ashgrove Labs; Ltd, \"Lab\"", rep_id=rep.id))
    return engine


class Receiver:
    """A Slack-like webhook on 127.0.0.1: answers 500 to the first `fail_first` requests."""

    def __init__(self, fail_first: int = 1, delay_s: float = 0.0):
        self.bodies: list[dict] = []
        self.fail_first, self.requests, self.delay_s = fail_first, 0, delay_s
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(outer.delay_s)  # a slow Slack: lets two delivery runs overlap
                outer.requests += 1
                if outer.requests <= outer.fail_first:
                    self.send_response(500)
                    self.end_headers()
                    self.wfile.write(b"boom")
                    return
                outer.bodies.append(json.loads(body))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/reps"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def make_reminder(s, policies, label="competitor_mention", quote="We have an offer from Vendorly, frankly; it's cheaper.\nMuch."):
    cue = Cue(label=label, rule="kw", rule_version=1, start=161.0, end=164.0, speaker="customer",
              quote=quote, score=1.0)
    (r,) = remind.plan_after_call(s, account_id="ACC-1", rep_id=1, call_date=NOW, cues=[cue], segments=[],
                                  risk_before=None, risk_after=None, policies=policies, now=NOW)
    return r


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_webhook_first_try_fails_then_retry_succeeds(engine):
    with Receiver(fail_first=1) as rx:
        policies = load_policies(RULES, env={"CHURNWATCH_WEBHOOK_URL": rx.url})
        with session_scope(engine) as s:
            make_reminder(s, policies)
        with session_scope(engine) as s, httpx.Client(timeout=5) as client:
            first = deliver.deliver_pending(s, NOW, client, None, backoff_seconds=60)
            assert first.sent == [] and len(first.retrying) == 1
            msg = s.get(Outbox, first.retrying[0])
            assert msg.status == "pending" and msg.attempts == 1 and "HTTP 500" in msg.last_error
            assert msg.next_attempt_at == NOW + timedelta(seconds=60)
            # not due yet: nothing is sent, nothing is lost
            assert deliver.deliver_pending(s, NOW + timedelta(seconds=30), client, None).sent == []
            second = deliver.deliver_pending(s, NOW + timedelta(seconds=61), client, None)
            assert second.sent == [msg.id]
        with session_scope(engine) as s:
            msg = s.get(Outbox, msg.id)
            assert msg.status == "sent" and msg.attempts == 2 and msg.last_error is None
            assert s.scalar(select(func.count()).select_from(Outbox)) == 1
    assert rx.requests == 2 and len(rx.bodies) == 1
    body = rx.bodies[0]
    assert "Ashgrove Labs" in body["text"] and "Vendorly" in body["text"]
    assert body["blocks"][0]["type"] == "header" and "Competitor" in body["blocks"][0]["text"]["text"]


def test_webhook_gives_up_after_max_attempts_but_keeps_the_message(engine):
    with Receiver(fail_first=99) as rx:
        policies = load_policies(RULES, env={"CHURNWATCH_WEBHOOK_URL": rx.url})
        with session_scope(engine) as s:
            make_reminder(s, policies)
        waits, when = [], NOW
        with session_scope(engine) as s, httpx.Client(timeout=5) as client:
            for _ in range(4):
                report = deliver.deliver_pending(s, when, client, None, max_attempts=4, backoff_seconds=10)
                msg = s.scalars(select(Outbox)).one()
                waits.append((msg.next_attempt_at - when).total_seconds())
                when = msg.next_attempt_at
            assert report.failed == [msg.id] and msg.status == "failed" and msg.attempts == 4
            assert waits[:3] == [10, 20, 40]  # exponential backoff
            assert [m.id for m in deliver.list_outbox(s, "failed")] == [msg.id]
            assert deliver.deliver_pending(s, when + timedelta(days=1), client, None).sent == []
            assert deliver.retry_failed(s, when) == 1 and msg.status == "pending"
    assert rx.requests == 4


def test_two_delivery_runs_at_once_send_each_message_once(engine):
    """Cron and a manual `reminders deliver` overlapping: every message goes out exactly once."""
    with Receiver(fail_first=0, delay_s=0.05) as rx:
        with session_scope(engine) as s:
            for i in range(12):
                s.add(Outbox(channel="webhook", target=rx.url, payload={"text": f"message {i}"},
                             next_attempt_at=NOW - timedelta(minutes=1)))
        reports, errors = [], []

        def run():
            try:
                with session_scope(engine) as s, httpx.Client(timeout=5) as client:
                    reports.append(deliver.deliver_pending(s, NOW, client, None))
            except Exception as e:  # surfaced below: a thread's exception would otherwise vanish
                errors.append(e)

        threads = [threading.Thread(target=run) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in threads), "a delivery run hung"
    assert errors == []
    sent = sorted(i for r in reports for i in r.sent)
    assert len(sent) == 12 and len(set(sent)) == 12
    assert sorted(b["text"] for b in rx.bodies) == sorted(f"message {i}" for i in range(12))
    with session_scope(engine) as s:
        assert set(s.scalars(select(Outbox.status))) == {"sent"}


def test_reminder_and_its_messages_commit_together(engine):
    policies = load_policies(RULES, env={"CHURNWATCH_WEBHOOK_URL": "http://127.0.0.1:9/x"})
    with pytest.raises(RuntimeError), session_scope(engine) as s:
        make_reminder(s, policies)
        assert s.scalar(select(func.count()).select_from(Outbox)) == 1
        raise RuntimeError("crash before commit")
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(Reminder)) == 0
        assert s.scalar(select(func.count()).select_from(Outbox)) == 0


def test_email_server_down_first_then_retry(engine):
    from aiosmtpd.controller import Controller

    received = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append(envelope)
            return "250 OK"

    port = free_port()
    policies = load_policies(RULES, env={"CHURNWATCH_SMTP_HOST": "127.0.0.1", "CHURNWATCH_SMTP_PORT": str(port),
                                         "CHURNWATCH_SMTP_FROM": "churnwatch@test.local"})
    smtp = policies.delivery.smtp
    with session_scope(engine) as s:
        make_reminder(s, policies, "cancellation_intent", "We won't renew in May.")
    with session_scope(engine) as s:
        down = deliver.deliver_pending(s, NOW, None, smtp, backoff_seconds=5)
        assert down.sent == [] and len(down.retrying) == 1
        msg = s.get(Outbox, down.retrying[0])
        assert msg.channel == "email" and msg.target == "nina@example.com" and "Connection" in msg.last_error
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with session_scope(engine) as s:
            up = deliver.deliver_pending(s, NOW + timedelta(seconds=6), None, smtp)
            assert up.sent == [msg.id]
            assert s.get(Outbox, msg.id).attempts == 2 and s.get(Outbox, msg.id).status == "sent"
    finally:
        controller.stop()
    assert len(received) == 1
    envelope = received[0]
    assert envelope.mail_from == "churnwatch@test.local" and envelope.rcpt_tos == ["nina@example.com"]
    mail = message_from_bytes(envelope.content)
    assert "Talk of cancelling" in mail["Subject"]
    assert "We won't renew in May." in mail.get_payload(decode=True).decode()


def test_ics_export_parses_and_is_folded(engine):
    icalendar = pytest.importorskip("icalendar")
    policies = load_policies(RULES, env={})
    with session_scope(engine) as s:
        r1 = make_reminder(s, policies)
        r2 = make_reminder(s, policies, "org_change", "Die Beschaffung übernimmt ab März; wir müssen reden. " * 3)
        text = deliver.export_ics(s, [r1, r2], policies, NOW)
        event_text = deliver.export_ics(s, [r1], policies, NOW, kind="VEVENT")
    raw = text.encode("utf-8")
    assert raw.endswith(b"\r\n") and b"\n" not in raw.replace(b"\r\n", b"")
    assert all(len(line) <= 75 for line in raw.split(b"\r\n"))
    assert text.count("BEGIN:VTODO") == 2 and text.startswith("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n")
    cal = icalendar.Calendar.from_ical(text)
    todos = [c for c in cal.walk() if c.name == "VTODO"]
    assert [str(t["UID"]) for t in todos] == [f"reminder-{r1.id}@churnwatch", f"reminder-{r2.id}@churnwatch"]
    first = todos[0]
    assert first.decoded("DUE") == r1.due
    assert str(first["SUMMARY"]).startswith('Competitor in the picture: Ashgrove Labs; Ltd, "Lab"')
    assert "frankly; it's cheaper.\nMuch." in str(first["DESCRIPTION"])  # escaping round-trips
    assert "übernimmt ab März" in str(todos[1]["DESCRIPTION"])  # folding kept UTF-8 whole
    assert int(first["PRIORITY"]) == 3
    (event,) = [c for c in icalendar.Calendar.from_ical(event_text).walk() if c.name == "VEVENT"]
    assert event.decoded("DTSTART") == r1.due


def test_fold_and_escape_units():
    assert deliver.ics_escape("a,b;c\\d\ne") == "a\\,b\\;c\\\\d\\ne"
    folded = deliver.ics_fold("DESCRIPTION:" + "ü" * 80)
    parts = folded.split("\r\n")
    assert all(len(p.encode()) <= 75 for p in parts) and all(p.startswith(" ") for p in parts[1:])
    assert "".join(p[1:] if i else p for i, p in enumerate(parts)) == "DESCRIPTION:" + "ü" * 80
