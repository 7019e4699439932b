"""Retention: old calls lose transcript, cues and recording; aggregates and young calls stay."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import dbreset
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.errors import ChurnwatchError
from pipeline.privacy.purge import purge
from pipeline.store import (
    Account,
    Call,
    Cue,
    Feature,
    RiskScore,
    Segment,
    TranscriptCache,
    UtteranceEmbedding,
    session_scope,
    text_sha256,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    """An empty database at head per test, on each backend, reused fast (tests/dbreset.py)."""
    return dbreset.fresh_url(request, tmp_path)


def _add_call(session, n: int, *, call_date, created_at=None, text=None) -> Call:
    call = Call(
        audio_sha256=f"{n:064d}",
        source=f"/recordings/call{n}.flac",
        account_id="acme",
        call_date=call_date,
        duration=180.0 + n,
        language="en",
        status="done",
        metrics={"talk_ratio": 0.4 + n / 100},
    )
    if created_at is not None:
        call.created_at = created_at
    session.add(call)
    session.flush()
    text = text or f"call {n}: we are looking at another vendor"
    seg = Segment(
        call_id=call.id,
        idx=0,
        speaker="customer",
        start=0.0,
        end=3.0,
        text=text,
        words=[{"word": " we", "start": 0.0, "end": 0.3, "probability": 1.0}],
    )
    session.add(seg)
    session.flush()
    session.add(
        Cue(
            call_id=call.id,
            segment_id=seg.id,
            rule_name="competitor",
            rule_version=1,
            label="competitor_mention",
            start=0.0,
            end=3.0,
            speaker="customer",
            quote=text,
            score=1.0,
            why="another vendor",
        )
    )
    session.add(
        TranscriptCache(
            audio_sha256=call.audio_sha256,
            engine="faster-whisper",
            model="tiny.en",
            transcript={"segments": [{"text": text}]},
        )
    )
    session.add(
        UtteranceEmbedding(text_sha256=text_sha256(text), model="m", dim=1, vector=b"\0\0\0\0")
    )
    return call


@pytest.fixture
def db(engine):
    """Calls 1 (400 days old), 2 (undated, created 200 days ago), 3 (10 days old) and aggregates."""
    with session_scope(engine) as s:
        s.add(Account(id="acme", name="Acme"))
        s.flush()
        _add_call(s, 1, call_date=NOW - timedelta(days=400))
        _add_call(s, 2, call_date=None, created_at=NOW - timedelta(days=200))
        _add_call(s, 3, call_date=NOW - timedelta(days=10))
        s.add(
            Feature(
                account_id="acme",
                name="cue.competitor_mention.90d",
                value=2.0,
                as_of=date(2025, 1, 1),
            )
        )
        s.add(
            RiskScore(
                account_id="acme",
                as_of=date(2025, 1, 1),
                score=71.0,
                threshold=50.0,
                flagged=True,
                model_version="v1",
                contributions={"competitor": 0.8},
            )
        )
    return engine


def _counts(engine) -> dict[str, int]:
    with session_scope(engine) as s:
        return {
            m.__tablename__: s.scalar(select(func.count()).select_from(m))
            for m in (Call, Segment, Cue, TranscriptCache, UtteranceEmbedding, Feature, RiskScore)
        }


def _calls(engine) -> dict[str, Call]:
    with session_scope(engine) as s:
        return {c.audio_sha256.lstrip("0"): c for c in s.scalars(select(Call))}


def test_purge_removes_old_transcripts_and_keeps_aggregates(db):
    with session_scope(db) as s:
        report = purge(s, older_than_days=90, now=NOW)
    assert (
        report.calls,
        report.segments,
        report.cues,
        report.transcripts,
        report.embeddings,
        report.sources,
    ) == (2, 2, 2, 2, 2, 2)
    assert report.cutoff == NOW - timedelta(days=90) and not report.dry_run
    assert _counts(db) == {
        "calls": 3,
        "segments": 1,
        "cues": 1,
        "transcripts": 1,
        "utterance_embeddings": 1,
        "features": 1,
        "risk_scores": 1,
    }
    calls = _calls(db)
    for n in ("1", "2"):  # purged, but the call and what was measured stay
        assert calls[n].status == "purged" and calls[n].source is None
        assert calls[n].duration == 180.0 + int(n) and calls[n].language == "en"
        assert calls[n].metrics == {"talk_ratio": 0.4 + int(n) / 100}
    young = calls["3"]
    assert young.status == "done" and young.source == "/recordings/call3.flac"
    with session_scope(db) as s:
        left = s.scalars(select(Segment.text)).all()
        assert left == ["call 3: we are looking at another vendor"]
        assert s.scalar(select(TranscriptCache.audio_sha256)) == young.audio_sha256


def test_dry_run_changes_nothing_and_reports_the_same_counts(db):
    before = _counts(db)
    with session_scope(db) as s:
        dry = purge(s, 90, NOW, dry_run=True)
    assert _counts(db) == before
    assert all(c.status == "done" for c in _calls(db).values())
    with session_scope(db) as s:
        real = purge(s, 90, NOW)
    assert dry.dry_run and (dry.calls, dry.segments, dry.cues, dry.transcripts) == (
        real.calls,
        real.segments,
        real.cues,
        real.transcripts,
    )


def test_policy_length_decides_which_calls_go(db):
    with session_scope(db) as s:
        assert purge(s, 300, NOW).call_ids == [1]
    with session_scope(db) as s:
        assert purge(s, 5, NOW).call_ids == [2, 3]  # call 1 is already gone
    with session_scope(db) as s:
        again = purge(s, 5, NOW)
    assert (again.calls, again.segments, again.cues) == (0, 0, 0)


def test_bad_policy_values_are_user_errors(db):
    with session_scope(db) as s:
        with pytest.raises(ChurnwatchError, match="-3"):
            purge(s, -3, NOW)
        with pytest.raises(ChurnwatchError, match="time zone"):
            purge(s, 30, datetime(2026, 1, 1))


# --- the command ------------------------------------------------------------------------------


@pytest.fixture
def cli_db(engine):
    """A young and an old call, dated from today (the command purges relative to now)."""
    url = engine.url.render_as_string(hide_password=False)
    with session_scope(engine) as s:
        s.add(Account(id="acme"))
        s.flush()
        _add_call(s, 1, call_date=datetime.now(UTC) - timedelta(days=400))
        _add_call(s, 2, call_date=datetime.now(UTC) - timedelta(days=1))
    return url, engine


def test_cli_purge_dry_run_then_for_real(cli_db):
    url, engine = cli_db
    runner = CliRunner()
    dry = runner.invoke(app, ["purge", "--older-than", "365", "--dry-run", "--db", url, "--json"])
    assert dry.exit_code == 0, dry.output
    data = json.loads(dry.output)
    assert data["dry_run"] is True and data["calls"] == 1 and data["segments"] == 1
    assert _counts(engine)["segments"] == 2
    real = runner.invoke(app, ["purge", "--older-than", "365", "--db", url])
    assert real.exit_code == 0, real.output
    assert "Purged 1 call" in real.output
    assert _counts(engine)["segments"] == 1


def test_cli_purge_rejects_a_negative_policy_in_one_line(cli_db):
    url, _ = cli_db
    result = CliRunner().invoke(app, ["purge", "--older-than", "-1", "--db", url])
    assert result.exit_code != 0 and "Traceback" not in result.output


# --- quotes copied out of the transcript (issue 19) -------------------------------------------

OLD_QUOTE = "we will not renew in November unless the price changes"
YOUNG_QUOTE = "please send the notice period of the contract"
CALLBACK = "Call me back in two weeks about the renewal."


def _copies(engine) -> dict[str, int]:
    """Reminders, outbox messages and features quoting an old (1) and a young (3) call."""
    from pipeline.store import Outbox, Reminder

    with session_scope(engine) as s:
        s.add(Account(id="acme", name="Acme"))
        s.flush()
        old = _add_call(s, 1, call_date=NOW - timedelta(days=400), text=OLD_QUOTE)
        _add_call(s, 4, call_date=NOW - timedelta(days=300), text=CALLBACK)
        young = _add_call(s, 3, call_date=NOW - timedelta(days=10), text=YOUNG_QUOTE)
        s.flush()
        old_id, young_id = old.id, young.id
        evidence = [
            {"type": "cue", "label": "cancel_intent", "quote": OLD_QUOTE, "time": "00:52", "call_id": old_id,
             "call_date": "2025-01-25"},
            {"type": "cue", "label": "cancel_intent", "quote": YOUNG_QUOTE, "time": "01:06", "call_id": young_id,
             "call_date": "2026-02-19"},
        ]
        cancel = Reminder(account_id="acme", reason="cancel_intent", due=NOW, evidence=evidence,
                          message=f'Acme talked about cancelling: "{OLD_QUOTE}"')
        callback = Reminder(account_id="acme", reason="customer_request", due=NOW,
                            message=f'Acme asked you to call in two weeks: "{CALLBACK}"',
                            evidence=[{"type": "request", "quote": CALLBACK, "phrase": "in two weeks",
                                       "time": "00:50", "call_id": old_id + 1, "call_date": "2025-05-05"}])
        s.add_all([cancel, callback])
        s.flush()
        body = f'Acme talked about cancelling\n\nWhat the customer said:\n  00:52  "{OLD_QUOTE}"\n  01:06  "{YOUNG_QUOTE}"'
        s.add(Outbox(reminder_id=cancel.id, channel="webhook", target="http://hook", status="sent",
                     payload={"text": body, "blocks": [{"type": "section", "text": {"type": "mrkdwn",
                                                                                    "text": body[:80]}}]}))
        s.add(Outbox(reminder_id=None, channel="email", target="maya@example.com", status="pending",
                     payload={"subject": "digest", "body": f'"{CALLBACK}" and "{YOUNG_QUOTE}"'}))
        s.add(Feature(account_id="acme", name="cue_cancel_intent", value=1.0, as_of=date(2026, 2, 1),
                      evidence=[{"kind": "cue", "date": "2025-01-25", "quote": OLD_QUOTE, "call_id": old_id}]))
    return {"old": old_id, "young": young_id}


def _everything(engine) -> str:
    """Every value of every column of every table, as one text."""
    from pipeline.store import Base

    out = []
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(select(table)):
                out += [json.dumps(v, default=str) if not isinstance(v, str) else v for v in row]
    return "\n".join(out)


def test_purge_removes_old_quotes_from_every_table(engine):
    ids = _copies(engine)
    assert OLD_QUOTE in _everything(engine) and CALLBACK in _everything(engine)
    with session_scope(engine) as s:
        dry = purge(s, 90, NOW, dry_run=True)
    assert (dry.reminders, dry.outbox, dry.features) == (2, 2, 1)
    assert OLD_QUOTE in _everything(engine)  # a dry run changes nothing
    with session_scope(engine) as s:
        report = purge(s, 90, NOW)
    assert (report.reminders, report.outbox, report.features) == (2, 2, 1)
    everything = _everything(engine)
    for quote in (OLD_QUOTE, CALLBACK, OLD_QUOTE[:20], CALLBACK[:20]):
        assert quote not in everything, quote
    assert YOUNG_QUOTE in everything  # the young call keeps its quotes
    from pipeline.store import Outbox, Reminder

    with session_scope(engine) as s:
        cancel = s.scalar(select(Reminder).where(Reminder.reason == "cancel_intent"))
        assert [e["quote"] for e in cancel.evidence] == ["", YOUNG_QUOTE]
        assert [e["label"] for e in cancel.evidence] == ["cancel_intent"] * 2  # the reasons stay
        assert cancel.message == 'Acme talked about cancelling: "[removed]"'
        hook = s.scalar(select(Outbox).where(Outbox.channel == "webhook"))
        assert hook.payload["blocks"][0]["text"]["text"].endswith("[removed]")  # cut short, still found
        assert ids["old"] in [e["call_id"] for e in cancel.evidence]
    with session_scope(engine) as s:
        again = purge(s, 90, NOW)
    assert (again.reminders, again.outbox, again.features) == (0, 0, 0)


def test_purge_removes_quotes_left_behind_by_an_earlier_purge(engine):
    """Calls purged before quotes were purged too: their reminders' quotes go on the next run."""
    _copies(engine)
    with session_scope(engine) as s:
        old = select(Call.id).where(Call.call_date < NOW - timedelta(days=90))
        s.execute(Cue.__table__.delete().where(Cue.call_id.in_(old)))
        s.execute(Segment.__table__.delete().where(Segment.call_id.in_(old)))
        s.execute(TranscriptCache.__table__.delete().where(TranscriptCache.audio_sha256.in_(
            select(Call.audio_sha256).where(Call.call_date < NOW - timedelta(days=90)))))
        s.execute(Call.__table__.update().where(Call.id.in_(old)).values(status="purged", source=None))
    with session_scope(engine) as s:
        report = purge(s, 90, NOW)
    assert report.calls == 0 and report.reminders == 2
    assert OLD_QUOTE not in _everything(engine) and CALLBACK not in _everything(engine)


def test_purge_removes_what_a_learned_model_cached_for_the_call(engine):
    """Learned models read a trimmed line, and a short reply together with the other speaker's
    turn before it; the embeddings and probabilities cached under those texts go with the call."""
    from pipeline.types import model_input

    question, reply = "Are you still happy with the service?", "  not really, no "
    with session_scope(engine) as s:
        s.add(Account(id="acme", name="Acme"))
        s.flush()
        call = _add_call(s, 1, call_date=NOW - timedelta(days=400), text=question)
        s.scalars(select(Segment).where(Segment.call_id == call.id)).one().speaker = "rep"  # rep asks
        s.add(Segment(call_id=call.id, idx=1, speaker="customer", start=3.0, end=4.0, text=reply, words=[]))
        for key, model in ((model_input(reply, None), "m"), (model_input(reply, question), "m"),
                           (model_input(reply, question), "m+learned-abc")):
            s.add(UtteranceEmbedding(text_sha256=text_sha256(key), model=model, dim=1, vector=b"\0\0\0\0"))
        s.add(UtteranceEmbedding(text_sha256=text_sha256("someone else's line"), model="m", dim=1,
                                 vector=b"\0\0\0\0"))
    with session_scope(engine) as s:
        report = purge(s, older_than_days=90, now=NOW)
    assert report.embeddings == 4  # the question's own row and the reply's three
    with session_scope(engine) as s:
        assert s.scalars(select(UtteranceEmbedding.text_sha256)).all() == [text_sha256("someone else's line")]


def test_purge_removes_what_was_cached_for_each_statement_of_a_turn(engine):
    """A turn of two statements is also read statement by statement; those rows go too."""
    from pipeline.types import clauses

    turn = "The invoice is still wrong after three emails, and nobody in billing has fixed it."
    parts = clauses(turn)
    assert len(parts) == 2
    with session_scope(engine) as s:
        s.add(Account(id="acme", name="Acme"))
        s.flush()
        _add_call(s, 1, call_date=NOW - timedelta(days=400), text=turn)
        for key in [turn, *parts]:
            s.add(UtteranceEmbedding(text_sha256=text_sha256(key), model="m+learned-abc", dim=1,
                                     vector=b"\0\0\0\0"))
    with session_scope(engine) as s:
        report = purge(s, older_than_days=90, now=NOW)
    assert report.embeddings == 4  # the turn's row from _add_call, and the three above
    with session_scope(engine) as s:
        assert s.scalars(select(UtteranceEmbedding.text_sha256)).all() == []
