"""The manager's funnel page: where deals are lost, stage by stage, and per rep.

The same report as `churnwatch funnel --by rep` (pipeline.funnel): per stage the deals that
entered, moved on, were lost or stalled there, the move-on rate with its 95% interval and the
median days; the stage each rep loses most against the rest of the team; each rep's daily
figures. The funnel is drawn on the server as SVG.
"""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Request

from pipeline import store
from pipeline.web.i18n import Translator
from pipeline.web.pages.common import page_caller, render, require

router = APIRouter()


def funnel_svg(stages, t: Translator, width: int = 720, row: int = 34) -> str:
    """One centred bar per stage, as wide as the deals that entered it, split into moved on,
    lost, stalled and in progress."""
    top, label_w = 8, 190
    height = top + row * max(len(stages), 1) + 30
    widest = max([s.entered for s in stages] or [1]) or 1
    room = width - label_w - 10
    parts = (("advanced", "#2e7d32", t("moved on")), ("lost", "#c62828", t("lost here")),
             ("stalled", "#ef8f00", t("stalled here")), ("open", "#9aa5b1", t("in progress")))
    title = t("Funnel: deals that entered each stage")
    out = [f'<svg class="chart funnel" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
           f"<title>{escape(title)}</title>"]
    for i, s in enumerate(stages):
        y = top + i * row
        bar = room * s.entered / widest
        x = label_w + (room - bar) / 2
        out.append(f'<text x="{label_w - 8}" y="{y + row * 0.62:.1f}" text-anchor="end">{escape(s.stage)}</text>')
        for key, colour, name in parts:
            n = getattr(s, key)
            if not n or not s.entered:
                continue
            w = bar * n / s.entered
            out.append(f'<rect class="{key}" x="{x:.1f}" y="{y + 4}" width="{w:.1f}" height="{row - 8}" '
                       f'fill="{colour}" data-value="{n}"><title>{escape(s.stage)}: {n} {escape(name)}</title></rect>')
            if w > 24:
                out.append(f'<text x="{x + w / 2:.1f}" y="{y + row * 0.62:.1f}" text-anchor="middle" '
                           f'fill="#fff">{n}</text>')
            x += w
    legend_y = height - 10
    x = label_w
    for _, colour, name in parts:
        out.append(f'<rect x="{x}" y="{legend_y - 10}" width="12" height="12" fill="{colour}"/>'
                   f'<text x="{x + 16}" y="{legend_y}">{escape(name)}</text>')
        x += 24 + 8 * len(name)
    out.append("</svg>")
    return "".join(out)


@router.get("/funnel")
def funnel_page(request: Request):
    who = page_caller(request)
    require(who, "manager", "admin")
    t = Translator(who.lang)
    from pipeline import funnel as fn
    from pipeline.store import funnel_queries

    stages_file = request.app.state.settings.rules_dir / "funnel.yaml"
    stages = fn.load_funnel(stages_file)
    options = fn.FunnelOptions(by="rep")
    with store.session_scope(request.app.state.engine) as session:
        histories = fn.histories_from_rows(funnel_queries.opportunity_histories(session))
        leads = fn.leads_from_rows(funnel_queries.leads(session))
        touches = fn.touches_from_rows(funnel_queries.outbound_touches(session, options.until))
    report = fn.stage_funnel(histories, stages, options, leads, touches)
    return render(request, who, "funnel.html", report=report, chart=funnel_svg(report.stages, t))
