"""Issue 18, reminders: which calls close which reminders, snoozing in the rep's day, overdue."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dbreset
import pytest
from sqlalchemy import select

from pipeline import reminders as remind
from pipeline.reminders.policies import load_policies
from pipeline.store import Account, CrmEvent, Reminder, Rep, session_scope
from pipeline.types import Cue, Segment

RULES = Path(__file__).resolve().parents[1] / "rules" / "reminders.yaml"
CALL = datetime(2026, 2, 19, 12, 0, tzinfo=UTC)  # a Thursday


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    return dbreset.fresh_url(request, tmp_path)


@pytest.fixture
def policies():
    return load_policies(RULES, env={})


@pytest.fixture
def engine(engine):
    with session_scope(engine) as s:
        rep = Rep(name="Nina Forde", email="nina@example.com")
        s.add(rep)
        s.flush()
        s.add(Account(id="ACC-1", name="Ashgrove Labs", rep_id=rep.id, created_on=date(2025, 1, 1)))
    return engine


def cancel_and_callback(s, policies, when=CALL):
    """The call of the issue: talk of cancelling, and "call me back in two weeks"."""
    cue = Cue(label="cancellation_intent", rule="kw", rule_version=1, start=40.0, end=43.0,
              speaker="customer", quote="We are thinking about cancelling.", score=1.0)
    segs = [Segment(75, 80, "Call me back in two weeks, we'll know more.", speaker="customer")]
    return remind.plan_after_call(s, account_id="ACC-1", rep_id=1, call_date=when, cues=[cue], segments=segs,
                                  risk_before=None, risk_after=None, policies=policies, now=when)


def activity(s, on: date, outcome: str, key: str):
    s.add(CrmEvent(account_id="ACC-1", kind="activity", occurred_on=on, attributes={"outcome": outcome},
                   source_key=key))
    s.flush()


def by_reason(s):
    return {r.reason: r for r in s.scalars(select(Reminder))}


# --- (1) a call never closes the reminders it created -----------------------------------------


def test_the_call_that_made_the_reminders_does_not_close_them(engine, policies):
    with session_scope(engine) as s:
        made = cancel_and_callback(s, policies)
        assert {r.reason for r in made} == {"cancellation_intent", "customer_request"}
        activity(s, CALL.date(), "reached", "the-call-itself")  # the CRM logged the same call
        summary = remind.plan_periodic(s, CALL.date() + timedelta(days=1), policies, CALL + timedelta(days=1))
        assert summary["attempts_applied"] == 0
        for r in by_reason(s).values():
            assert r.status == "open", r.reason
            assert not [e for e in r.evidence if e.get("type") == "attempt"]


def test_an_unanswered_try_on_the_call_day_is_not_a_follow_up_attempt(engine, policies):
    with session_scope(engine) as s:
        cancel_and_callback(s, policies)
        activity(s, CALL.date(), "no_answer", "same-day")
        assert remind.sync_crm_attempts(s, CALL.date() + timedelta(days=3), policies) == 0
        assert all(r.attempts == 0 for r in by_reason(s).values())


def test_a_later_call_closes_what_was_due_but_not_the_callback_asked_for_later(engine, policies):
    with session_scope(engine) as s:
        cancel_and_callback(s, policies)
        activity(s, date(2026, 2, 20), "reached", "next-day")  # the follow-up call, day after
        remind.sync_crm_attempts(s, date(2026, 2, 21), policies)
        r = by_reason(s)
        assert r["cancellation_intent"].status == "done"
        # the customer asked for a call in two weeks (5 March): a call on 20 Feb is not that call
        assert r["customer_request"].status == "open"
        activity(s, date(2026, 3, 5), "reached", "the-callback")
        remind.sync_crm_attempts(s, date(2026, 3, 6), policies)
        assert by_reason(s)["customer_request"].status == "done"


def test_a_repeat_mention_is_not_closed_by_the_call_that_repeated_it(engine, policies):
    with session_scope(engine) as s:
        (first, _) = sorted(cancel_and_callback(s, policies), key=lambda r: r.reason)
        later = CALL + timedelta(days=4)  # Monday: the customer says it again on the next call
        cue = Cue(label="cancellation_intent", rule="kw", rule_version=1, start=10.0, end=12.0,
                  speaker="customer", quote="We still plan to cancel.", score=1.0)
        remind.plan_after_call(s, account_id="ACC-1", rep_id=1, call_date=later, cues=[cue], segments=[],
                               risk_before=None, risk_after=None, policies=policies, now=later)
        activity(s, later.date(), "reached", "the-second-call")
        remind.sync_crm_attempts(s, later.date() + timedelta(days=1), policies)
        assert s.get(Reminder, first.id).status == "open"


# --- (4) snooze to the start of the rep's working day; overdue in the list --------------------


def with_reps(tmp_path, reps_yaml: str, name="r.yaml"):
    text = RULES.read_text()
    assert "  reps: {}" in text
    path = tmp_path / name
    path.write_text(text.replace("  reps: {}", "  reps:\n" + reps_yaml))
    return load_policies(path, env={})


def test_snooze_days_lands_on_the_start_of_the_working_day(engine, policies):
    now = datetime(2026, 2, 19, 14, 37, 12, tzinfo=UTC)  # Thursday afternoon
    with session_scope(engine) as s:
        (r, _) = cancel_and_callback(s, policies)
        remind.snooze_to_day(s, r.id, now, policies, days=7)
        assert r.due == datetime(2026, 2, 26, 9, 0, tzinfo=UTC) and r.status == "snoozed"
        remind.snooze_to_day(s, r.id, now, policies, days=2)  # Saturday → Monday
        assert r.due == datetime(2026, 2, 23, 9, 0, tzinfo=UTC)
        with pytest.raises(Exception, match="--days 0"):
            remind.snooze_to_day(s, r.id, now, policies, days=0)


def test_one_click_snooze_never_brings_a_reminder_forward(engine, policies):
    with session_scope(engine) as s:
        (r, _) = cancel_and_callback(s, policies)
        due = r.due
        before = due - timedelta(days=3)  # not due yet, afternoon
        remind.snooze_one_day(s, r.id, before.replace(hour=15), policies)
        assert r.due > due and r.due.hour == 9 and (r.due.date() - due.date()).days in (1, 2, 3)
        pushed = r.due
        later = pushed + timedelta(days=5, hours=6)  # long overdue: the next working day from today
        remind.snooze_one_day(s, r.id, later, policies)
        assert r.due.date() > later.date() and r.due.hour == 9 and r.due.weekday() < 5


def test_snooze_uses_the_reps_time_zone(engine, tmp_path):
    berlin = with_reps(tmp_path, '    "Nina Forde": {timezone: Europe/Berlin}\n')
    late = datetime(2026, 2, 19, 23, 30, tzinfo=UTC)  # already Friday 00:30 in Berlin
    with session_scope(engine) as s:
        (r, _) = cancel_and_callback(s, berlin)
        # new reminders fall due at 09:00 Berlin time (08:00 UTC in winter)
        assert r.due == datetime(2026, 2, 20, 8, 0, tzinfo=UTC)
        remind.snooze_to_day(s, r.id, late, berlin, days=7)
        assert r.due == datetime(2026, 2, 27, 8, 0, tzinfo=UTC)  # Friday 27th 09:00 in Berlin
        remind.snooze_to_day(s, r.id, late, berlin, day=date(2026, 4, 1))  # summer time: UTC+2
        assert r.due == datetime(2026, 4, 1, 7, 0, tzinfo=UTC)
        d = remind.reminder_to_dict(r, berlin, late)
        assert d["timezone"] == "Europe/Berlin" and d["due_local"].startswith("2026-04-01T09:00")


def test_unknown_time_zone_is_named_with_its_line(tmp_path):
    from pipeline.errors import RuleError

    with pytest.raises(RuleError, match=r"unknown time zone 'Berlin'.*Europe/Berlin") as info:
        with_reps(tmp_path, '    "Nina Forde": {timezone: Berlin}\n')
    assert "Berlin" in (tmp_path / "r.yaml").read_text().splitlines()[info.value.line - 1]


def cli(engine, *args):
    from typer.testing import CliRunner

    from pipeline.cli import app

    db = ["--db", engine.url.render_as_string(hide_password=False)]
    return CliRunner().invoke(app, [*args, *db])


def test_cli_snooze_days_keeps_no_time_of_day_and_list_marks_overdue(engine, policies, monkeypatch):
    for var in ("CHURNWATCH_WEBHOOK_URL", "CHURNWATCH_SMTP_HOST", "CHURNWATCH_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    with session_scope(engine) as s:
        ids = sorted(r.id for r in cancel_and_callback(s, policies))  # due in Feb 2026: long past
    out = cli(engine, "reminders", "snooze", str(ids[0]), "--days", "7", "--json")
    assert out.exit_code == 0, out.output
    due = datetime.fromisoformat(json.loads(out.output)["due"])
    assert (due.hour, due.minute, due.second, due.microsecond) == (9, 0, 0, 0)
    out = cli(engine, "reminders", "snooze", str(ids[0]), "--days", "7")
    assert out.exit_code == 0 and "09:00 UTC" in out.output and "Traceback" not in out.output
    out = cli(engine, "reminders", "list", "--json")
    rows = {r["id"]: r for r in json.loads(out.output)}
    assert rows[ids[0]]["overdue"] is False and rows[ids[1]]["overdue"] is True
    out = cli(engine, "reminders", "list")
    assert out.exit_code == 0 and out.output.count("OVERDUE") == 1 and "1 overdue" in out.output
