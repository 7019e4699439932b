"""Issue 18, delivery: reminders made before a channel existed, routing to the owning rep, the
message's content (account, score, why, link), and the daily digest per rep."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dbreset
import httpx
import pytest
from sqlalchemy import select

from pipeline import reminders as remind
from pipeline.reminders import outbox as deliver
from pipeline.reminders.policies import load_policies
from pipeline.store import Account, Outbox, Rep, RiskScore, session_scope
from pipeline.types import Cue
from test_deliver import Receiver

RULES = Path(__file__).resolve().parents[1] / "rules" / "reminders.yaml"
NOW = datetime(2026, 2, 19, 12, 0, tzinfo=UTC)  # a Thursday


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    return dbreset.fresh_url(request, tmp_path)


@pytest.fixture
def engine(engine):
    """Nina owns ACC-1 and ACC-2; Omar owns ACC-3."""
    with session_scope(engine) as s:
        nina, omar = Rep(name="Nina Forde", email="nina@example.com"), Rep(name="Omar Haddad")
        s.add_all([nina, omar])
        s.flush()
        s.add(Account(id="ACC-1", name="Ashgrove Labs", rep_id=nina.id))
        s.add(Account(id="ACC-2", name="Bellhaven Dental", rep_id=nina.id))
        s.add(Account(id="ACC-3", name="Corvid Freight", rep_id=omar.id))
    return engine


def policies_with(tmp_path, env=None, digest: bool = False, reps: str = ""):
    text = RULES.read_text()
    assert "  reps: {}" in text and "  digest: false" in text
    if reps:
        text = text.replace("  reps: {}", "  reps:\n" + reps)
    if digest:
        text = text.replace("  digest: false", "  digest: true")
    path = tmp_path / f"reminders-{abs(hash((digest, reps)))}.yaml"
    path.write_text(text)
    return load_policies(path, env=env or {})


def reminder(s, policies, account="ACC-1", label="competitor_mention", rep_id=1, when=NOW):
    cue = Cue(label=label, rule="kw", rule_version=1, start=161.0, end=164.0, speaker="customer",
              quote="We have an offer from Vendorly.", score=1.0)
    (r,) = remind.plan_after_call(s, account_id=account, rep_id=rep_id, call_date=when, cues=[cue], segments=[],
                                  risk_before=None, risk_after=None, policies=policies, now=when)
    return r


def rows(s):
    return list(s.scalars(select(Outbox).order_by(Outbox.id)))


# --- (2) reminders made before a channel was configured ---------------------------------------


def test_reminders_made_before_the_webhook_are_queued_when_it_appears(engine, tmp_path):
    with session_scope(engine) as s:
        first = reminder(s, load_policies(RULES, env={}))
        assert rows(s) == []  # no channel yet: nothing queued, and nothing said
    with Receiver(fail_first=0) as rx:
        policies = load_policies(RULES, env={"CHURNWATCH_WEBHOOK_URL": rx.url})
        with session_scope(engine) as s:
            report = deliver.queue_open_reminders(s, policies, NOW + timedelta(days=1))
            assert report.queued == {first.id: ["webhook"]} and report.not_queued == {}
            assert deliver.queue_open_reminders(s, policies, NOW + timedelta(days=1)).queued == {}  # once only
        with session_scope(engine) as s, httpx.Client(timeout=5) as client:
            sent = deliver.deliver_pending(s, NOW + timedelta(days=1), client, None)
            assert len(sent.sent) == 1
        with session_scope(engine) as s:  # sent once: a later run queues nothing again
            assert deliver.queue_open_reminders(s, policies, NOW + timedelta(days=2)).queued == {}
    assert len(rx.bodies) == 1 and "Ashgrove Labs" in rx.bodies[0]["text"]
    assert "churnwatch" not in rx.bodies[0]  # our bookkeeping is not posted


def test_deliver_says_why_an_open_reminder_is_not_queued(engine, tmp_path):
    with session_scope(engine) as s:
        nina = reminder(s, load_policies(RULES, env={}))
        omar = reminder(s, load_policies(RULES, env={}), account="ACC-3", rep_id=2)
        nothing = deliver.queue_open_reminders(s, load_policies(RULES, env={}), NOW)
        assert set(nothing.not_queued) == {nina.id, omar.id}
        assert "no delivery channel is set up" in nothing.not_queued[nina.id]
        assert "CHURNWATCH_WEBHOOK_URL" in nothing.not_queued[nina.id]
        # e-mail only: Nina has an address, Omar has none
        mail = deliver.queue_open_reminders(s, load_policies(RULES, env={"CHURNWATCH_SMTP_HOST": "127.0.0.1"}), NOW)
        assert mail.queued == {nina.id: ["email"]}
        assert "Omar Haddad has no webhook or e-mail address" in mail.not_queued[omar.id]
        assert "delivery.reps" in mail.not_queued[omar.id]


def test_cli_deliver_queues_old_reminders_and_explains_the_rest(engine, monkeypatch):
    from typer.testing import CliRunner

    from pipeline.cli import app

    for var in ("CHURNWATCH_WEBHOOK_URL", "CHURNWATCH_SMTP_HOST", "CHURNWATCH_CONFIG", "CHURNWATCH_MANAGER_EMAIL",
                "CHURNWATCH_MANAGER_WEBHOOK_URL"):
        monkeypatch.delenv(var, raising=False)
    with session_scope(engine) as s:
        reminder(s, load_policies(RULES, env={}))
    db = ["--db", engine.url.render_as_string(hide_password=False)]
    out = CliRunner().invoke(app, ["reminders", "deliver", *db])
    assert out.exit_code == 0, out.output
    assert "1 open reminder(s) not sent" in out.output and "no delivery channel is set up" in out.output
    assert "Traceback" not in out.output
    with Receiver(fail_first=0) as rx:
        monkeypatch.setenv("CHURNWATCH_WEBHOOK_URL", rx.url)
        out = CliRunner().invoke(app, ["reminders", "deliver", *db])
        assert out.exit_code == 0, out.output
        assert "1 sent" in out.output and "made before their channel was set up" in out.output
        out = CliRunner().invoke(app, ["reminders", "deliver", "--json", *db])
        assert json.loads(out.output)["sent"] == []  # nothing twice
    assert len(rx.bodies) == 1


# --- (3) routing to the owning rep, and what a message says -----------------------------------


def test_messages_go_to_the_owning_reps_own_webhook_else_the_team(engine, tmp_path):
    reps = '    "Omar Haddad": {webhook_url: "http://127.0.0.1:9/omar", email: omar@example.com}\n'
    policies = policies_with(tmp_path, {"CHURNWATCH_WEBHOOK_URL": "http://127.0.0.1:9/team",
                                        "CHURNWATCH_SMTP_HOST": "127.0.0.1"}, reps=reps)
    with session_scope(engine) as s:
        # Nina had the call, but Omar owns the account: Omar hears about it, on his own channels
        omar = reminder(s, policies, account="ACC-3", rep_id=1)
        assert {(o.channel, o.target) for o in rows(s) if o.reminder_id == omar.id} == {
            ("webhook", "http://127.0.0.1:9/omar"), ("email", "omar@example.com")}
        # Nina has no webhook of her own: the team channel, and her stored e-mail
        nina = reminder(s, policies, account="ACC-1")
        assert {(o.channel, o.target) for o in rows(s) if o.reminder_id == nina.id} == {
            ("webhook", "http://127.0.0.1:9/team"), ("email", "nina@example.com")}


def test_message_names_account_score_why_and_links_to_the_account(engine, tmp_path):
    policies = policies_with(tmp_path, {"CHURNWATCH_WEBHOOK_URL": "http://127.0.0.1:9/team",
                                        "CHURNWATCH_BASE_URL": "https://churnwatch.example.com/"})
    with session_scope(engine) as s:
        s.add(RiskScore(account_id="ACC-1", as_of=date(2026, 2, 18), score=71.6, threshold=60.0, flagged=True,
                        model_version="t", contributions={"intercept": 2.0, "days_since_last_order": 0.9,
                                                          "cue_competitor_mention_90d": 0.5, "tenure": -0.4}))
        s.flush()
        reminder(s, policies)
        (msg,) = rows(s)
    text = msg.payload["text"]
    assert "Ashgrove Labs" in text
    assert "Churn risk: 72 out of 100, above the alert line of 60." in text
    assert "Why: a long time since the last order; mentioned a competitor." in text
    assert "https://churnwatch.example.com/accounts/ACC-1" in text
    assert "_" not in text.split("Why:")[1]  # no factor names


def test_message_without_a_score_says_so(engine):
    policies = load_policies(RULES, env={"CHURNWATCH_WEBHOOK_URL": "http://127.0.0.1:9/team"})
    with session_scope(engine) as s:
        reminder(s, policies)
        (msg,) = rows(s)
    assert "Churn risk: not scored yet." in msg.payload["text"] and "/accounts/" not in msg.payload["text"]


def test_daily_digest_per_rep_instead_of_one_message_per_reminder(engine, tmp_path):
    reps = '    "Omar Haddad": {webhook_url: "http://127.0.0.1:9/omar", timezone: America/New_York}\n'
    policies = policies_with(tmp_path, {"CHURNWATCH_WEBHOOK_URL": "http://127.0.0.1:9/team",
                                        "CHURNWATCH_MANAGER_EMAIL": "boss@example.com",
                                        "CHURNWATCH_SMTP_HOST": "127.0.0.1"},
                             digest=True, reps=reps)
    with session_scope(engine) as s:
        a = reminder(s, policies, account="ACC-1")
        b = reminder(s, policies, account="ACC-2", label="cancellation_intent")  # escalates
        c = reminder(s, policies, account="ACC-3", rep_id=2)
        # per reminder, only the manager's copy of the escalation goes out at once
        assert [(o.reminder_id, o.target) for o in rows(s)] == [(b.id, "boss@example.com")]
        morning = datetime(2026, 2, 23, 10, 0, tzinfo=UTC)  # 10:00 UTC, 05:00 in New York
        report = deliver.queue_digests(s, policies, morning)
        digests = [o for o in rows(s) if o.reminder_id is None]
        assert {o.target for o in digests} == {"http://127.0.0.1:9/team", "nina@example.com"}
        hook = next(o for o in digests if o.channel == "webhook")
        assert hook.payload["churnwatch"]["reminders"] == [b.id, a.id]  # soonest first
        text = hook.payload["text"]
        assert "Nina Forde: 2 open, 2 overdue" in text and "Ashgrove Labs" in text and "Bellhaven Dental" in text
        assert text.count("OVERDUE since") == 2 and "Corvid Freight" not in text
        assert len(report.digests) == 2
        assert deliver.queue_digests(s, policies, morning + timedelta(hours=3)).digests == []  # 08:00 in New York
        assert len(deliver.queue_digests(s, policies, morning + timedelta(hours=4)).digests) == 1  # 09:00: Omar's
        again = deliver.queue_digests(s, policies, morning + timedelta(hours=5))
        assert again.digests == []  # one a day per rep
        omar = [o for o in rows(s) if o.reminder_id is None and o.target.endswith("/omar")]
        assert len(omar) == 1 and "Corvid Freight" in omar[0].payload["text"] and c.id in omar[0].payload["churnwatch"]["reminders"]
        nxt = deliver.queue_digests(s, policies, morning + timedelta(days=1))
        assert len(nxt.digests) == 2  # the next day, Nina's again


# --- issue 19: a receiver slower than the timeout ----------------------------------------------


def test_a_retry_after_a_timeout_carries_the_same_idempotency_key(engine, tmp_path):
    """The receiver got the first try but answered after the timeout: the retry is the same message
    under the same Idempotency-Key, so the receiver can drop it; another message has another key."""
    seen: list[tuple[str | None, str]] = []

    def slow_then_fast(request: httpx.Request) -> httpx.Response:
        seen.append((request.headers.get("Idempotency-Key"), json.loads(request.content)["text"]))
        if len(seen) == 1:
            raise httpx.ReadTimeout("timed out", request=request)
        return httpx.Response(200, text="ok")

    policies = policies_with(tmp_path, env={"CHURNWATCH_WEBHOOK_URL": "https://hooks.example.com/x"})
    with session_scope(engine) as s:
        reminder(s, policies)
    with session_scope(engine) as s, httpx.Client(transport=httpx.MockTransport(slow_then_fast)) as client:
        first = deliver.deliver_pending(s, NOW, client, None, backoff_seconds=0)
        assert first.retrying and "Idempotency-Key" in first.errors[first.retrying[0]]
        second = deliver.deliver_pending(s, NOW + timedelta(seconds=1), client, None)
        assert second.sent == first.retrying
        reminder(s, policies, account="ACC-2")
        deliver.queue_open_reminders(s, policies, NOW)
        third = deliver.deliver_pending(s, NOW + timedelta(seconds=2), client, None)
        assert len(third.sent) == 1
    (k1, t1), (k2, t2), (k3, _) = seen
    assert k1 and k1 == k2 and t1 == t2  # one message, tried twice, one key
    assert k3 and k3 != k1
