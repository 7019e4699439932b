"""`churnwatch funnel`: where deals are lost, stage by stage, per rep, segment or deal kind."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from pipeline.cli.shared import DbOption, JsonOption, app, console, open_store, parse_date_option, print_json


def _pct(x) -> str:
    return "-" if x is None else f"{x * 100:.0f}%"


def _ci(ci) -> str:
    return "" if not ci else f" [{_pct(ci[0])}-{_pct(ci[1])}]"


@app.command("funnel")
def funnel_cmd(
    since: Annotated[Optional[str], typer.Option("--since", help="Only opportunities whose first "
        "stage is on or after this date, YYYY-MM-DD.")] = None,
    until: Annotated[Optional[str], typer.Option("--until", help="As of this date, YYYY-MM-DD "
        "(default: today); later stage changes are not seen.")] = None,
    by: Annotated[Optional[str], typer.Option("--by", help="Also a funnel per rep, segment or kind "
        "(new, renewal, upsell), with the stage each loses most.")] = None,
    as_json: JsonOption = False,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Also write funnel.png into this folder.")] = None,
    db: DbOption = None,
) -> None:
    """Per stage: deals that entered, moved on, were lost or stalled there, conversion with 95%
    interval, median days; per rep per working day: leads, follow-ups, wins."""
    from pipeline import funnel as fn
    from pipeline import store
    from pipeline.funnel.charts import plot_funnel
    from pipeline.store import funnel_queries

    options = fn.FunnelOptions(since=parse_date_option(since, "--since"), until=parse_date_option(until, "--until"), by=by)
    settings, engine = open_store(db)
    stages = fn.load_funnel(settings.rules_dir / "funnel.yaml")
    with store.session_scope(engine) as session:
        histories = fn.histories_from_rows(funnel_queries.opportunity_histories(session))
        leads = fn.leads_from_rows(funnel_queries.leads(session))
        touches = fn.touches_from_rows(funnel_queries.outbound_touches(session, options.until))
    report = fn.stage_funnel(histories, stages, options, leads, touches)
    charts = plot_funnel(report, plot) if plot else []
    if as_json:
        print_json({**report.to_dict(), "charts": [str(p) for p in charts]})
        return
    if not report.totals["opportunities"]:
        console.print("No opportunities yet: import a stage history with "
                      "churnwatch crm import FILE --kind opportunities", highlight=False)
        return
    t = report.totals
    table = Table("stage", "entered", "moved on", "lost here", "stalled", "in progress", "move on [95%]",
                  "to won [95%]", "median days",
                  title=f"{t['opportunities']} opportunities to {report.until}: {t['won']} won, {t['lost']} lost")
    for s in report.stages:
        table.add_row(s.stage, str(s.entered), str(s.advanced), str(s.lost), str(s.stalled), str(s.open),
                      _pct(s.conversion) + _ci(s.conversion_ci), _pct(s.to_won) + _ci(s.to_won_ci),
                      "-" if s.median_days is None else f"{s.median_days:.0f}")
    console.print(table)
    if report.groups:
        table = Table(report.by or "group", "deals", "won", "loses most at", "its move-on rate", "rest of team",
                      "deals lost beyond the team's rate", title=f"Where each {report.by} loses deals")
        for name, g in report.groups.items():
            w = g["worst"]
            stage = f"{w['stage']} ({'clear' if w['clear'] else 'within noise'})" if w else "-"
            table.add_row(name, str(g["opportunities"]), str(g["won"]), stage,
                          _pct(w["conversion"]) if w else "-", _pct(w["rest_of_team"]) if w else "-",
                          f"{w['shortfall']:.1f}" if w else "-")
        console.print(table)
    if report.daily:
        table = Table("rep", "leads / day", "follow-ups / day", "won / day", "follow-ups per prospect", "reading",
                      title="Per rep per working day")
        for rep, d in report.daily.items():
            table.add_row(rep, f"{d['leads']:.2f}" if d["leads"] is not None else "-",
                          f"{d['followed_up']:.2f}" if d["followed_up"] is not None else "-",
                          f"{d['won']:.2f}" if d["won"] is not None else "-",
                          "-" if d["follow_ups_per_prospect"] is None else f"{d['follow_ups_per_prospect']:.1f}",
                          d.get("reading") or "-")
        console.print(table)
    for w in report.warnings[:20]:
        console.print(f"[yellow]note[/yellow] {w}", highlight=False)
    if len(report.warnings) > 20:
        console.print(f"... and {len(report.warnings) - 20} more notes (see --json).")
    for p in charts:
        console.print(f"chart: {p}")
