"""Reminder policies, deduplication, the stop rule, silence, threshold crossing, the post-call hint."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dbreset
import pytest
from sqlalchemy import func, select

from pipeline import reminders as remind
from pipeline.errors import RuleError
from pipeline.reminders.policies import load_policies
from pipeline.store import (
    Account,
    Call,
    CrmEvent,
    Outbox,
    Reminder,
    Rep,
    RiskScore,
    session_scope,
)
from pipeline.types import Cue, Segment

RULES = Path(__file__).resolve().parents[1] / "rules" / "reminders.yaml"
CALL = datetime(2026, 2, 19, 12, 0, tzinfo=UTC)  # a Thursday


@dataclass
class Risk:
    score: float
    threshold: float = 60.0
    contributions: dict = field(default_factory=dict)

    @property
    def flagged(self) -> bool:
        return self.score >= self.threshold


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    """An empty database at head per test, on each backend, reused fast (tests/dbreset.py)."""
    return dbreset.fresh_url(request, tmp_path)


@pytest.fixture
def policies():
    return load_policies(RULES, env={"CHURNWATCH_WEBHOOK_URL": "http://127.0.0.1:9/hook",
                                     "CHURNWATCH_MANAGER_EMAIL": "boss@example.com",
                                     "CHURNWATCH_SMTP_HOST": "127.0.0.1"})


@pytest.fixture
def engine(engine):
    """The migrated database of conftest (SQLite and PostgreSQL) with a rep and two accounts."""
    with session_scope(engine) as s:
        rep = Rep(name="Nina Forde", email="nina@example.com")
        s.add(rep)
        s.flush()
        s.add(Account(id="ACC-1", name="Ashgrove Labs", rep_id=rep.id, created_on=date(2025, 1, 1)))
        s.add(Account(id="ACC-2", name="Bellhaven Dental", rep_id=rep.id, created_on=date(2025, 1, 1)))
    return engine


def cue(label, start=161.0, quote="We have an offer from Vendorly.", speaker="customer"):
    return Cue(label=label, rule=f"{label}_kw", rule_version=1, start=start, end=start + 3,
               speaker=speaker, quote=quote, score=1.0)


def plan(s, policies, cues=(), segments=(), before=None, after=None, when=CALL, account="ACC-1"):
    return remind.plan_after_call(s, account_id=account, rep_id=1, call_date=when, cues=list(cues),
                                  segments=list(segments), risk_before=before, risk_after=after,
                                  policies=policies, now=when)


def open_count(s, account="ACC-1", reason=None):
    q = select(func.count()).select_from(Reminder).where(Reminder.account_id == account, Reminder.status.in_(remind.OPEN))
    return s.scalar(q.where(Reminder.reason == reason) if reason else q)


# --- policies ---------------------------------------------------------------------------------


def test_default_policies_cover_every_cue_label(policies):
    from pipeline.cues.rule_files import CUE_LABELS

    assert set(policies.cues) == set(CUE_LABELS)
    assert policies.cues["competitor_mention"].due_in_days == 2
    assert policies.cues["cancellation_intent"].due_in_days == 1 and policies.cues["cancellation_intent"].escalate


def test_env_overrides_file(tmp_path):
    p = load_policies(RULES, env={"CHURNWATCH_SMTP_PORT": "2525", "CHURNWATCH_WEBHOOK_URL": "http://h/x"})
    assert p.delivery.smtp.port == 2525 and p.delivery.webhook_url == "http://h/x"
    with pytest.raises(RuleError, match="CHURNWATCH_SMTP_PORT='abc'"):
        load_policies(RULES, env={"CHURNWATCH_SMTP_PORT": "abc"})


@pytest.mark.parametrize("old,new,expect,on_line", [
    ("due_in_days: 2\n", "due_in_days: two\n", r"reminders\.yaml:\d+: cues\.competitor_mention\.due_in_days: .*'two'", "two"),
    ("  competitor_mention:", "  competitor_mentioned:", r"unknown cue label 'competitor_mentioned'", "cues:"),
    ("priority: urgent", "priority: asap", r"priority: .*'asap'", "asap"),
    ("{account} within 2 days. Ask", "{acount} within 2 days. Ask", r"unknown placeholder \{acount\}", "{acount}"),
    ("  starttls: false", "  password: hunter2\n    starttls: false", r"CHURNWATCH_SMTP_PASSWORD", "hunter2"),
])
def test_bad_policy_file_names_file_line_and_value(tmp_path, old, new, expect, on_line):
    text = RULES.read_text()
    assert old in text
    bad = tmp_path / "reminders.yaml"
    bad.write_text(text.replace(old, new, 1))
    with pytest.raises(RuleError, match=expect) as info:
        load_policies(bad, env={})
    assert str(bad) in str(info.value)
    assert on_line in bad.read_text().splitlines()[info.value.line - 1]


# --- cue policies and dedupe ------------------------------------------------------------------


def test_competitor_mention_makes_one_reminder_due_in_two_days(engine, policies):
    with session_scope(engine) as s:
        made = plan(s, policies, [cue("competitor_mention")])
        assert len(made) == 1
        r = made[0]
        assert r.reason == "competitor_mention" and r.status == "open"
        assert r.due == datetime(2026, 2, 21, 9, tzinfo=UTC) + timedelta(days=2)  # Sat → Mon
        assert "Ashgrove Labs" in r.message
        assert r.evidence[0]["time"] == "02:41" and "Vendorly" in r.evidence[0]["quote"]
        channels = {(o.channel, o.target) for o in s.scalars(select(Outbox))}
        assert channels == {("webhook", "http://127.0.0.1:9/hook"), ("email", "nina@example.com")}


def test_cancellation_is_due_next_day_and_escalates(engine, policies):
    with session_scope(engine) as s:
        (r,) = plan(s, policies, [cue("cancellation_intent", quote="We won't renew.")])
        assert r.due.date() == date(2026, 2, 20)
        targets = {o.target for o in s.scalars(select(Outbox).where(Outbox.reminder_id == r.id))}
        assert "boss@example.com" in targets


def test_second_mention_updates_evidence_not_a_new_reminder(engine, policies):
    with session_scope(engine) as s:
        (first,) = plan(s, policies, [cue("competitor_mention")])
        outbox_before = s.scalar(select(func.count()).select_from(Outbox))
        later = CALL + timedelta(days=1)
        (again,) = plan(s, policies, [cue("competitor_mention", 30.0, "Vendorly is cheaper.")], when=later)
        assert again.id == first.id
        assert open_count(s, reason="competitor_mention") == 1
        assert [e["quote"] for e in again.evidence] == ["We have an offer from Vendorly.", "Vendorly is cheaper."]
        assert s.scalar(select(func.count()).select_from(Outbox)) == outbox_before  # no second message
        # once it is done, a new mention is a new reminder
        remind.complete(s, first.id, "reached", later, policies)
        (third,) = plan(s, policies, [cue("competitor_mention", 50.0, "Still Vendorly.")], when=later)
        assert third.id != first.id and open_count(s, reason="competitor_mention") == 1


def test_rep_speech_and_unknown_labels_make_no_reminder(engine, policies):
    with session_scope(engine) as s:
        assert plan(s, policies, [cue("competitor_mention", speaker="rep"), cue("small_talk")]) == []
        assert open_count(s) == 0


# --- the customer's own date ------------------------------------------------------------------


def test_call_me_back_in_two_weeks_is_dated_from_the_call(engine, policies):
    segs = [Segment(10, 14, "Call me back in two weeks, we'll know more.", speaker="rep"),
            Segment(75, 80, "Honestly, call me back in two weeks, we'll know more.", speaker="customer")]
    with session_scope(engine) as s:
        (r,) = plan(s, policies, segments=segs)
        assert r.reason == "customer_request" and r.due.date() == date(2026, 3, 5)
        assert "in two weeks" in r.message and r.evidence[0]["time"] == "01:15"
        # the customer changes the date on the next call: the same reminder moves
        (moved,) = plan(s, policies, segments=[Segment(5, 8, "Ring me next Tuesday instead.", speaker="customer")],
                        when=CALL + timedelta(days=7))
        assert moved.id == r.id and moved.due.date() == date(2026, 3, 3)


# --- follow-up discipline ---------------------------------------------------------------------


def test_unanswered_attempts_then_nurture_then_stop(engine, policies):
    f = policies.follow_up
    assert (f.max_unanswered, f.retry_after_days, f.nurture_every_days, f.nurture_attempts) == (3, 2, 14, 2)
    with session_scope(engine) as s:
        (r,) = plan(s, policies, [cue("competitor_mention")])
        day = CALL
        gaps = []
        for i in range(f.max_unanswered + f.nurture_attempts):
            day = day + timedelta(days=1)
            remind.complete(s, r.id, "no-answer", day, policies)
            if r.status == "open":
                gaps.append((r.due.date() - day.date()).days)
        assert r.attempts == 5 and r.status == "dropped"
        assert remind.stage(r, policies) == "stopped"
        # Mon-Fri days: retries after ~2 days (weekend moves to Monday), then every ~14 days
        assert all(2 <= g <= 4 for g in gaps[:2]) and all(14 <= g <= 16 for g in gaps[2:])
        assert len(gaps) == 4
        with pytest.raises(Exception, match="already dropped"):
            remind.complete(s, r.id, "no-answer", day, policies)


def test_crm_activities_count_as_attempts_once(engine, policies):
    with session_scope(engine) as s:
        (r,) = plan(s, policies, [cue("competitor_mention")])
        s.add_all([
            CrmEvent(account_id="ACC-1", kind="activity", occurred_on=date(2026, 2, 10),
                     attributes={"outcome": "unanswered"}, source_key="old"),  # before the reminder
            CrmEvent(account_id="ACC-1", kind="activity", occurred_on=date(2026, 2, 23),
                     attributes={"outcome": "no_reply"}, source_key="a1"),
            CrmEvent(account_id="ACC-1", kind="activity", occurred_on=date(2026, 2, 25),
                     attributes={"outcome": "unanswered"}, source_key="a2"),
        ])
        s.flush()
        assert remind.sync_crm_attempts(s, date(2026, 3, 1), policies) == 2
        assert remind.sync_crm_attempts(s, date(2026, 3, 1), policies) == 0  # idempotent
        assert r.attempts == 2 and r.status == "open"
        s.add(CrmEvent(account_id="ACC-1", kind="activity", occurred_on=date(2026, 2, 27),
                       attributes={"outcome": "reached"}, source_key="a3"))
        s.flush()
        remind.sync_crm_attempts(s, date(2026, 3, 1), policies)
        assert r.status == "done"


# --- threshold and silence --------------------------------------------------------------------


@pytest.mark.parametrize("before,after,expected", [
    (40, 72, True), (None, 72, True), (65, 80, False), (40, 55, False), (70, 30, False), (59.9, 60.0, True),
])
def test_threshold_crossing(engine, policies, before, after, expected):
    with session_scope(engine) as s:
        b = Risk(before) if before is not None else None
        a = Risk(after, contributions={"cue_competitor_mention": 1.2, "orders_trend": 0.4, "tenure": -0.3})
        r = remind.plan_threshold(s, "ACC-1", b, a, policies, now=CALL)
        assert (r is not None) is expected
        if expected:
            assert r.reason == "risk_threshold"
            assert r.evidence[0]["top"][0][0] == "cue_competitor_mention"


def test_threshold_from_stored_scores(engine, policies):
    with session_scope(engine) as s:
        for day, score in [(date(2026, 2, 1), 40.0), (date(2026, 2, 8), 70.0)]:
            s.add(RiskScore(account_id="ACC-2", as_of=day, score=score, threshold=60.0,
                            flagged=score >= 60, model_version="t", contributions={}))
        s.flush()
        assert len(remind.plan_threshold_from_scores(s, date(2026, 2, 5), policies, CALL)) == 0
        assert len(remind.plan_threshold_from_scores(s, date(2026, 2, 9), policies, CALL)) == 1
        assert len(remind.plan_threshold_from_scores(s, date(2026, 2, 9), policies, CALL)) == 0  # dedupe


def test_silence_after_thirty_days_without_contact(engine, policies):
    with session_scope(engine) as s:
        s.add(Call(audio_sha256="a" * 64, account_id="ACC-1", call_date=CALL - timedelta(days=40)))
        s.add(Call(audio_sha256="b" * 64, account_id="ACC-2", call_date=CALL - timedelta(days=40)))
        # an unanswered attempt is not contact; a held meeting is
        s.add(CrmEvent(account_id="ACC-1", kind="activity", occurred_on=(CALL - timedelta(days=5)).date(),
                       attributes={"outcome": "unanswered"}, source_key="x1"))
        s.add(CrmEvent(account_id="ACC-2", kind="activity", occurred_on=(CALL - timedelta(days=5)).date(),
                       attributes={"outcome": "held"}, source_key="x2"))
        s.flush()
        made = remind.plan_silence(s, CALL.date(), policies)
        assert [r.account_id for r in made] == ["ACC-1"]
        assert made[0].evidence[0]["days"] == 40
        assert remind.plan_silence(s, CALL.date(), policies) == []  # one open per account and reason
        plan(s, policies, when=CALL + timedelta(days=1))  # a call is contact: the reminder is done
        assert open_count(s, reason="silence") == 0


# --- list, snooze, hint -----------------------------------------------------------------------


def test_list_snooze_and_filters(engine, policies):
    with session_scope(engine) as s:
        plan(s, policies, [cue("competitor_mention")])
        plan(s, policies, [cue("org_change", quote="Procurement takes over.")], account="ACC-2")
        assert [r.reason for r in remind.list_reminders(s)] == ["competitor_mention", "org_change"]
        assert len(remind.list_reminders(s, rep="Nina Forde")) == 2 and remind.list_reminders(s, rep="Nobody") == []
        assert len(remind.list_reminders(s, due_before=date(2026, 2, 24))) == 1
        first = remind.list_reminders(s)[0]
        remind.snooze(s, first.id, CALL + timedelta(days=10), CALL)
        assert [r.reason for r in remind.list_reminders(s)] == ["org_change", "competitor_mention"]
        with pytest.raises(Exception, match="not in the future"):
            remind.snooze(s, first.id, CALL - timedelta(days=1), CALL)
        with pytest.raises(Exception, match="No reminder with id 999"):
            remind.complete(s, 999, "reached", CALL, policies)


def test_post_call_hint_in_sales_language(engine, policies):
    segs = [Segment(200, 204, "Call me back in two weeks.", speaker="customer")]
    cues = [cue("competitor_mention"), cue("pricing_request", 62.0, "What would the renewal cost?")]
    with session_scope(engine) as s:
        before, after = Risk(54.0), Risk(72.0, contributions={"cue_competitor_mention_90d": 0.9, "orders_trend": 0.3})
        made = plan(s, policies, cues, segs, before, after)
        account, call = s.get(Account, "ACC-1"), Call(id=7, call_date=CALL, audio_sha256="c" * 64)
        hint = remind.post_call_hint(account, call, cues, before, after, made, policies=policies)
        text = hint.render()
    assert hint.change == 18.0 and hint.crossed
    assert [h.time for h in hint.heard] == ["01:02", "02:41", "03:20"]
    assert "02:41  mentioned a competitor: \"We have an offer from Vendorly.\"" in text
    assert "up 18 from 54" in text and "alert line of 60" in text
    assert "Why: mentioned a competitor" in text
    assert "log" not in text.lower() and "_" not in text  # no engineering words or field names
    assert len(hint.todo) == len(made) == 4 and "(urgent)" not in text and "(high priority)" in text
    d = hint.to_dict()
    assert d["change"] == 18.0 and d["heard"][1]["label"] == "competitor_mention"


def test_quiet_call_hint(engine, policies):
    with session_scope(engine) as s:
        account = s.get(Account, "ACC-1")
        hint = remind.post_call_hint(account, Call(call_date=CALL, audio_sha256="d" * 64), [],
                                     Risk(20.0), Risk(20.2), [])
    text = hint.render()
    assert "Nothing on this call" in text and "No follow-up needed" in text and "no change" in text


def test_action_in_the_reps_language(engine, policies, tmp_path):
    with session_scope(engine) as s:
        s.add(Call(audio_sha256="e" * 64, account_id="ACC-1", call_date=CALL, language="de"))
        s.flush()
        (r,) = plan(s, policies, [cue("competitor_mention", quote="Wir haben ein Angebot von Vendorly.")])
        assert r.message.startswith("Rufen Sie Ashgrove Labs innerhalb von 2 Tagen an")
    # a language set for the rep in reminders.yaml wins over the call's language
    text = RULES.read_text().replace("  reps: {}", '  reps:\n    "Nina Forde": {language: en}')
    (tmp_path / "r.yaml").write_text(text)
    english = load_policies(tmp_path / "r.yaml", env={})
    with session_scope(engine) as s:
        (r,) = plan(s, english, [cue("org_change", quote="Neue Einkaufsleitung.")])
        assert r.message.startswith("Find out who now decides at Ashgrove Labs")


def test_hint_names_risk_reasons_in_plain_words(engine):
    after = Risk(75.0, contributions={"intercept": 3.0, "cue_usage_decline": 0.2, "days_since_last_order": 0.9,
                                      "tenure": -0.5})
    after.evidence = {"cue_usage_decline": {"label": "using less"}}
    with session_scope(engine) as s:
        hint = remind.post_call_hint(s.get(Account, "ACC-1"), Call(call_date=CALL, audio_sha256="f" * 64), [],
                                     Risk(70.0), after, [])
    assert hint.reasons == ["a long time since the last order", "using less"]
    assert not hint.crossed and "Above the alert line of 60" in hint.render()


def test_cli_commands_have_help_and_work(engine, tmp_path, monkeypatch):
    import click
    from typer.main import get_command
    from typer.testing import CliRunner

    from pipeline.cli import app

    group = get_command(app).commands["reminders"]
    for name, command in group.commands.items():
        assert command.help, name
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"{name} {param.name}"
    with session_scope(engine) as s:
        (r,) = plan(s, load_policies(RULES, env={}), [cue("competitor_mention")])
        rid = r.id
    for var in ("CHURNWATCH_WEBHOOK_URL", "CHURNWATCH_SMTP_HOST", "CHURNWATCH_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    db = ["--db", engine.url.render_as_string(hide_password=False)]
    runner = CliRunner()
    out = runner.invoke(app, ["reminders", "list", "--json", "--rep", "Nina Forde", *db])
    assert out.exit_code == 0, out.output
    assert [x["id"] for x in json.loads(out.output)] == [rid]
    out = runner.invoke(app, ["reminders", "done", str(rid), "--outcome", "no-answer", *db])
    assert out.exit_code == 0 and "try 1 unanswered" in out.output
    out = runner.invoke(app, ["reminders", "snooze", str(rid), "--until", "2099-01-05", *db])
    assert out.exit_code == 0 and "2099-01-05 09:00" in out.output
    out = runner.invoke(app, ["reminders", "done", "999", *db])
    assert out.exit_code == 1 and "No reminder with id 999" in out.output
    out = runner.invoke(app, ["reminders", "export-ics", str(tmp_path / "r.ics"), *db])
    assert out.exit_code == 0 and (tmp_path / "r.ics").read_bytes().count(b"BEGIN:VTODO") == 1
    out = runner.invoke(app, ["reminders", "plan", "--as-of", "2026-04-01", "--json", *db])
    assert out.exit_code == 0 and json.loads(out.output)["silence_reminders"] == 2  # no calls stored for either
