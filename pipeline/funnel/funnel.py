"""Where deals are lost: the stage funnel, per team and per rep, segment or deal kind.

    report = stage_funnel(histories, funnel, FunnelOptions(until=date(2026, 11, 15), by="rep"))

Each opportunity's stage history is followed in time order (same-day changes in stage order):
- entered a stage: it has a row for it;
- advanced from it: a later row reaches a later stage (won is past every open stage);
- lost there: it ended lost, and this was its last open stage before the lost stage;
- stalled there: it is still open, sits in this stage, and has not moved for longer than
  `stalled_after_days` (rules/funnel.yaml) by `until`;
- open there: still open in this stage and not stalled (in progress: left out of the rates).
conversion = advanced / (entered - open); to_won = won / (entered - open anywhere), each with a
Wilson score interval (95% by default). median_days: the median of the days the opportunities
that left the stage spent in it. A deal that moved back a stage, or moved on after closing, is
counted as its rows say and named in `warnings`.

Per group (rep, segment or kind), `worst_stage` is the stage where the group falls furthest
below the rest of the team: (rest's conversion - group's conversion) x the group's decided deals,
the deals it lost there beyond the rest of the team's rate (at least `min_decided` decided deals);
`clear` when the group's interval there lies wholly below the rest of the team's.

`daily`: per rep and working day (Monday to Friday, `since`..`until`): leads taken, prospects
followed up (open opportunities that had a stage change or an outbound activity of the rep on
their account that day, each counted once a day) and deals won, with a reading in plain words
that tells a rep who takes on more leads than they can follow up from one who does not follow up.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any

from pipeline.errors import ChurnwatchError
from pipeline.funnel.stages import Funnel

__all__ = ["FunnelOptions", "FunnelReport", "LeadRow", "OpportunityHistory", "StageRow", "Touch",
           "stage_funnel", "wilson", "working_days"]

GROUPS = ("rep", "segment", "kind")


@dataclass(frozen=True)
class OpportunityHistory:
    opportunity_id: str
    account_id: str
    steps: tuple[tuple[str, date], ...]  # (the funnel's stage name, day entered), any order
    rep: str | None = None  # the deal's owner, else the account's rep
    segment: str | None = None  # the account's segment
    kind: str | None = None  # new | renewal | upsell
    amount: float | None = None


@dataclass(frozen=True)
class LeadRow:
    lead_id: str
    created: date
    rep: str | None = None
    source: str | None = None
    converted_opportunity_id: str | None = None


@dataclass(frozen=True)
class Touch:
    """An outbound CRM activity (call, e-mail, meeting) of a rep on an account."""

    account_id: str
    day: date
    rep: str | None


@dataclass(frozen=True)
class FunnelOptions:
    since: date | None = None  # opportunities whose first stage falls on or after this day
    until: date | None = None  # as of this day (rows after it are not seen); default: today
    by: str | None = None  # rep | segment | kind: a funnel per group too
    confidence: float = 0.95  # of the intervals on the conversions
    min_decided: int = 3  # fewest decided deals of a group in a stage to name it the worst

    def __post_init__(self):
        if self.by is not None and self.by not in GROUPS:
            raise ChurnwatchError(f"--by {self.by!r}: use one of {', '.join(GROUPS)}.")
        if self.since and self.until and self.since > self.until:
            raise ChurnwatchError(f"--since {self.since} is after --until {self.until}: pick an earlier --since.")
        if not 0.5 <= self.confidence < 1:
            raise ChurnwatchError(f"confidence {self.confidence}: use a share such as 0.95.")


@dataclass
class StageRow:
    stage: str
    entered: int = 0
    advanced: int = 0
    lost: int = 0
    stalled: int = 0
    open: int = 0  # in progress here: not in the rates
    won: int = 0  # of those that entered, how many were won in the end
    decided_for_won: int = 0  # entered and not in progress anywhere
    conversion: float | None = None  # advanced / (entered - open)
    conversion_ci: tuple[float, float] | None = None
    to_won: float | None = None  # won / decided_for_won
    to_won_ci: tuple[float, float] | None = None
    median_days: float | None = None
    days: list[int] = field(default_factory=list, repr=False)

    def finish(self, z: float) -> StageRow:
        decided = self.entered - self.open
        if decided > 0:
            self.conversion = round(self.advanced / decided, 4)
            self.conversion_ci = wilson(self.advanced, decided, z)
        if self.decided_for_won > 0:
            self.to_won = round(self.won / self.decided_for_won, 4)
            self.to_won_ci = wilson(self.won, self.decided_for_won, z)
        self.median_days = float(statistics.median(self.days)) if self.days else None
        return self

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("days")
        for key in ("conversion_ci", "to_won_ci"):
            d[key] = list(d[key]) if d[key] is not None else None
        return d


@dataclass
class FunnelReport:
    stages: list[StageRow]
    totals: dict[str, int]  # opportunities, won, lost, open, stalled
    groups: dict[str, dict[str, Any]]  # name → {"stages": [StageRow], "worst_stage", "worst"}
    daily: dict[str, dict[str, Any]]  # rep → per working day figures
    since: date | None
    until: date
    by: str | None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"since": self.since.isoformat() if self.since else None, "until": self.until.isoformat(),
                "by": self.by, "totals": self.totals, "stages": [s.to_dict() for s in self.stages],
                "groups": {name: {**g, "stages": [s.to_dict() for s in g["stages"]]} for name, g in self.groups.items()},
                "daily": self.daily, "warnings": self.warnings}


def wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval of a share (Wilson 1927): good for small counts and 0 or n."""
    if n <= 0:
        raise ValueError("wilson needs n > 0")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)


def _z(confidence: float) -> float:
    return statistics.NormalDist().inv_cdf(0.5 + confidence / 2)


def working_days(since: date, until: date) -> int:
    """Monday-to-Friday days from since to until, both counted."""
    if until < since:
        return 0
    days = (until - since).days + 1
    weeks, rest = divmod(days, 7)
    return weeks * 5 + sum((since + timedelta(days=i)).weekday() < 5 for i in range(rest))


# --- one opportunity ------------------------------------------------------------------------


@dataclass
class _Trace:
    history: OpportunityHistory
    steps: list[tuple[str, date]]
    entered: set[str]
    advanced: set[str]
    days_in: dict[str, int]  # stage → days spent there, over the visits that ended
    outcome: str  # won | lost | open
    lost_at: str | None = None
    sits_at: str | None = None  # the open stage it sits in now
    stalled: bool = False
    closed_on: date | None = None


def _follow(history: OpportunityHistory, funnel: Funnel, until: date, warnings: list[str]) -> _Trace | None:
    lost_rank = len(funnel.stages) + 1

    def rank(stage: str) -> int:
        p = funnel.position(stage)
        return lost_rank if p is None else p

    steps = sorted({s for s in history.steps if s[1] <= until}, key=lambda s: (s[1], rank(s[0])))
    if not steps:
        return None
    entered = {s for s, _ in steps if not funnel.is_closed(s)}
    advanced: set[str] = set()
    best_after = -1  # the furthest position reached after the step looked at
    for stage, _ in reversed(steps):
        p = funnel.position(stage)
        if p is not None and p < len(funnel.stages) and best_after > p:
            advanced.add(stage)
        if p is not None:
            best_after = max(best_after, p)
    days_in: dict[str, int] = defaultdict(int)
    for (stage, day), (_, next_day) in zip(steps, steps[1:]):
        if not funnel.is_closed(stage):
            days_in[stage] += (next_day - day).days
    oid = history.opportunity_id
    previous = None
    for i, (stage, day) in enumerate(steps):
        if funnel.is_closed(stage) and i < len(steps) - 1:
            warnings.append(f"{oid}: moved on after {stage} ({day}); counted from its rows, ending in "
                            f"{steps[-1][0]} ({steps[-1][1]})")
        p = funnel.position(stage)
        if previous is not None and p is not None and p < previous[1] and not funnel.is_closed(previous[0]):
            warnings.append(f"{oid}: went back from {previous[0]} to {stage} on {day}; counted as a step back")
        previous = (stage, p if p is not None else lost_rank)
    last_stage, last_day = steps[-1]
    trace = _Trace(history, steps, entered, advanced, dict(days_in), "open")
    if last_stage in funnel.won:
        trace.outcome, trace.closed_on = "won", last_day
    elif last_stage in funnel.lost:
        trace.outcome, trace.closed_on = "lost", last_day
        before = [s for s, _ in steps[:-1] if not funnel.is_closed(s)]
        trace.lost_at = before[-1] if before else None
        if not before:
            warnings.append(f"{oid}: lost on {last_day} without an open stage before; not counted in any stage")
    else:
        trace.sits_at = last_stage
        trace.stalled = (until - last_day).days > funnel.stalled_after_days
    return trace


def _stage_rows(traces: list[_Trace], funnel: Funnel, z: float) -> list[StageRow]:
    rows = {s: StageRow(s) for s in funnel.stages}
    for t in traces:
        in_progress = t.outcome == "open" and not t.stalled
        for stage in t.entered:
            row = rows[stage]
            row.entered += 1
            row.advanced += stage in t.advanced
            if not in_progress:
                row.decided_for_won += 1
                row.won += t.outcome == "won"
        for stage, days in t.days_in.items():
            rows[stage].days.append(days)
        if t.lost_at:
            rows[t.lost_at].lost += 1
        if t.sits_at:
            if t.stalled:
                rows[t.sits_at].stalled += 1
            else:
                rows[t.sits_at].open += 1
    return [rows[s].finish(z) for s in funnel.stages]


def _worst(group: list[StageRow], rest: list[StageRow], min_decided: int, z: float) -> dict[str, Any] | None:
    best = None
    for mine, others in zip(group, rest):
        n, m = mine.entered - mine.open, others.entered - others.open
        if n < min_decided or m <= 0:
            continue
        rest_rate = others.advanced / m
        shortfall = (rest_rate - mine.advanced / n) * n
        if shortfall > 0 and (best is None or shortfall > best["shortfall"]):
            best = {"stage": mine.stage, "conversion": round(mine.advanced / n, 4),
                    "rest_of_team": round(rest_rate, 4), "shortfall": round(shortfall, 2), "decided": n,
                    "lost": mine.lost, "stalled": mine.stalled,
                    # clear: the group's interval lies wholly below the rest of the team's
                    "clear": wilson(mine.advanced, n, z)[1] < wilson(others.advanced, m, z)[0]}
    return best


def _group_of(history: OpportunityHistory, by: str) -> str:
    return getattr(history, by) or "(none)"


# --- per rep per working day ------------------------------------------------------------------


def _daily(traces: list[_Trace], leads: list[LeadRow], touches: list[Touch], since: date, until: date,
           funnel: Funnel) -> dict[str, dict[str, Any]]:
    workdays = working_days(since, until)
    reps = sorted({t.history.rep for t in traces if t.history.rep} | {lead.rep for lead in leads if lead.rep})
    leads_n = defaultdict(int)
    for lead in leads:
        if lead.rep and since <= lead.created <= until:
            leads_n[lead.rep] += 1
    open_on: dict[tuple[str, str], list[_Trace]] = defaultdict(list)  # (rep, account) → their deals
    for t in traces:
        if t.history.rep:
            open_on[(t.history.rep, t.history.account_id)].append(t)

    def is_open(t: _Trace, day: date) -> bool:
        return t.steps[0][1] <= day and (t.closed_on is None or day < t.closed_on)

    followed: dict[str, set[tuple[str, date]]] = defaultdict(set)
    prospects: dict[str, set[str]] = defaultdict(set)
    won = defaultdict(int)
    for t in traces:
        rep = t.history.rep
        if not rep:
            continue
        for stage, day in t.steps[1:]:  # a stage change after the first row is a follow-up
            if since <= day <= until and (not funnel.is_closed(stage) or stage in funnel.won):
                followed[rep].add((t.history.opportunity_id, day))
        if t.outcome == "won" and since <= t.closed_on <= until:
            won[rep] += 1
        if t.steps[0][1] <= until and (t.closed_on is None or t.closed_on >= since):
            prospects[rep].add(t.history.opportunity_id)
    for touch in touches:
        if touch.rep and since <= touch.day <= until:
            for t in open_on.get((touch.rep, touch.account_id), ()):
                if is_open(t, touch.day):
                    followed[touch.rep].add((t.history.opportunity_id, touch.day))
    def per_day(n: int) -> float | None:
        return round(n / workdays, 3) if workdays else None

    out: dict[str, dict[str, Any]] = {}
    for rep in reps:
        carried = len(prospects[rep])
        out[rep] = {"leads": per_day(leads_n[rep]), "followed_up": per_day(len(followed[rep])), "won": per_day(won[rep]),
                    "working_days": workdays, "leads_total": leads_n[rep], "followed_up_total": len(followed[rep]),
                    "won_total": won[rep], "prospects": carried,
                    "follow_ups_per_prospect": round(len(followed[rep]) / carried, 3) if carried else None}
    _read_daily(out)
    return out


def _read_daily(daily: dict[str, dict[str, Any]]) -> None:
    """Add a plain-words reading per rep against the team's medians."""
    ratios = [d["follow_ups_per_prospect"] for d in daily.values() if d["follow_ups_per_prospect"] is not None]
    loads = [d["leads"] for d in daily.values() if d["leads"] is not None]
    if len(ratios) < 2:
        for d in daily.values():
            d["reading"] = None
        return
    team_ratio, team_load = statistics.median(ratios), statistics.median(loads) if loads else 0
    for d in daily.values():
        ratio, load = d["follow_ups_per_prospect"], d["leads"] or 0
        if ratio is None:
            d["reading"] = "no open prospects in the period"
        elif ratio < 0.75 * team_ratio and load > team_load:
            d["reading"] = ("takes on more new leads than the team and follows up less on each prospect: "
                            "too busy to follow up")
        elif ratio < 0.75 * team_ratio:
            d["reading"] = "does not follow up: fewer follow-ups per prospect than the team, without more new leads"
        else:
            d["reading"] = "follows up about as often as the team"


# --- the report -----------------------------------------------------------------------------


def stage_funnel(histories: list[OpportunityHistory], funnel: Funnel, options: FunnelOptions = FunnelOptions(),
                 leads: list[LeadRow] = (), touches: list[Touch] = ()) -> FunnelReport:
    """The funnel of the opportunities whose first stage falls in since..until (see the module)."""
    until = options.until or date.today()
    warnings: list[str] = []
    traces = []
    for h in histories:
        t = _follow(h, funnel, until, warnings)
        if t is not None and (options.since is None or t.steps[0][1] >= options.since):
            traces.append(t)
    if options.since is None:
        firsts = [t.steps[0][1] for t in traces] + [lead.created for lead in leads if lead.created <= until]
        since_daily = min(firsts) if firsts else until
    else:
        since_daily = options.since
    z = _z(options.confidence)
    stages = _stage_rows(traces, funnel, z)
    totals = {"opportunities": len(traces), "won": sum(t.outcome == "won" for t in traces),
              "lost": sum(t.outcome == "lost" for t in traces),
              "open": sum(t.outcome == "open" and not t.stalled for t in traces),
              "stalled": sum(t.stalled for t in traces)}
    groups: dict[str, dict[str, Any]] = {}
    if options.by:
        names = sorted({_group_of(t.history, options.by) for t in traces})
        for name in names:
            mine = [t for t in traces if _group_of(t.history, options.by) == name]
            rest = [t for t in traces if _group_of(t.history, options.by) != name] or mine
            rows, rest_rows = _stage_rows(mine, funnel, z), _stage_rows(rest, funnel, z)
            worst = _worst(rows, rest_rows, options.min_decided, z)
            groups[name] = {"stages": rows, "worst_stage": worst["stage"] if worst else None, "worst": worst,
                            "opportunities": len(mine), "won": sum(t.outcome == "won" for t in mine)}
    leads = [lead for lead in leads if lead.created <= until and (options.since is None or lead.created >= options.since)]
    daily = _daily(traces, list(leads), list(touches), since_daily, until, funnel)
    return FunnelReport(stages, totals, groups, daily, options.since, until, options.by, sorted(set(warnings)))
