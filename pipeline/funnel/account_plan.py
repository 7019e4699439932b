"""Account-plan KPIs per account and per rep: response to outreach, contact, stakeholders, white
space and cross-sell.

    plans = account_plans(book, PlanOptions(as_of=date(2026, 11, 15)))
    reps = rep_summaries(plans)

Per account (from `pipeline.store.funnel_queries.account_book`):
- response rate: outbound calls and e-mails in the last `window_days` that were answered: their
  own outcome says reached (answered, replied ...), or the customer got in touch (an inbound
  activity or a recorded call) within `respond_within_days` after; with a 95% Wilson interval,
  and the rate of the last `recent_days` against the `recent_days` before (falling or not);
- days since the last two-way contact (answered, replied, inbound activity or recorded call);
- stakeholders by department and seniority (read from their job titles), the ones added in the
  last `recent_days` marked new; single-threaded when one contact is all the account has
  (CRM activities name no contact, so the contacts list is what tells);
- white space: departments that at least `white_space_share` of the peer accounts of the same
  segment have a contact in (with at least `min_peers` peers) and this account has not;
- cross-sell: products the segment's accounts usually bought (won deals with a product, at
  `basket_share` of the peers that bought any) that this account never bought.
Per rep: the same pooled over the rep's book. Churn and retention of the book come from
`pipeline.risk.churn_rate` (the CLI adds them).
"""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any

from pipeline.errors import ChurnwatchError
from pipeline.funnel.dormant import REACHED, last_two_way
from pipeline.funnel.funnel import wilson

__all__ = ["AccountPlan", "PlanOptions", "account_plans", "department_of", "rep_summaries", "seniority_of"]

# job-title words → department, first match wins (a title with none is its own department)
DEPARTMENTS = (
    ("Finance", r"financ|\bcfo\b|accounts|accounting|controller|treasur|bookkeep"),
    ("Procurement", r"procure|purchas|buyer|sourcing"),
    ("Operations", r"operation|\bcoo\b|logistic|supply|warehouse|production"),
    ("Facilities", r"facilit"),
    ("IT", r"\bit\b|\bcto\b|\bcio\b|technolog|systems|digital"),
    ("Office", r"office|admin"),
    ("Leadership", r"owner|\bceo\b|founder|president|managing director|general manager|practice manager|principal"),
    ("Sales and marketing", r"sales|marketing|commercial"),
    ("People", r"\bhr\b|human resources|people"),
)
EXECUTIVE = r"owner|chief|\bc[efoti]o\b|founder|president|director|\bvp\b|vice president|head of|partner|principal"
MANAGER = r"manager|lead\b|supervisor|coordinator"
OUTREACH_TYPES = ("call", "email", "e-mail")


def department_of(role: str | None) -> str:
    """The department a job title belongs to (Finance Director → Finance), else the title itself."""
    title = (role or "").strip()
    if not title:
        return "(no title)"
    low = title.lower()
    for name, pattern in DEPARTMENTS:
        if re.search(pattern, low):
            return name
    return title.split(",")[0].strip()


def seniority_of(role: str | None) -> str:
    """executive, manager or staff, from a job title."""
    low = (role or "").lower()
    if re.search(EXECUTIVE, low):
        return "executive"
    if re.search(MANAGER, low):
        return "manager"
    return "staff"


@dataclass(frozen=True)
class PlanOptions:
    as_of: date
    window_days: int = 180  # outreach counted over these days before as_of
    respond_within_days: int = 7  # an inbound contact this soon after an outbound try answers it
    recent_days: int = 90  # new stakeholders; the response rate now against the period before
    falling_by: float = 0.15  # the response rate is falling when it dropped by this share or more
    white_space_share: float = 0.5  # a department at this share of the segment's peers is expected
    basket_share: float = 0.5  # a product bought by this share of the segment's buyers is usual
    min_peers: int = 2  # fewest peer accounts to speak of a segment's usual departments or basket

    def __post_init__(self):
        for name in ("window_days", "respond_within_days", "recent_days", "min_peers"):
            if getattr(self, name) < 1:
                raise ChurnwatchError(f"{name} {getattr(self, name)}: use 1 or more.")


@dataclass
class AccountPlan:
    account_id: str
    name: str | None
    segment: str | None
    rep: str | None
    outreach: int  # outbound calls and e-mails in the window
    answered: int
    response_rate: float | None
    response_rate_ci: tuple[float, float] | None
    response_recent: float | None  # the last recent_days
    response_before: float | None  # the recent_days before those
    response_falling: bool
    days_since_two_way: int | None
    stakeholders: list[dict[str, Any]]  # {name, role, department, seniority, added, new}
    by_department: dict[str, int]
    by_seniority: dict[str, int]
    new_stakeholders: int
    single_threaded: bool
    white_space: list[str] = field(default_factory=list)  # departments peers have and this one lacks
    bought: list[str] = field(default_factory=list)  # products of won deals
    cross_sell: list[str] = field(default_factory=list)  # the segment's usual products not bought here

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["response_rate_ci"] = list(self.response_rate_ci) if self.response_rate_ci else None
        for s in d["stakeholders"]:
            s["added"] = s["added"].isoformat() if s["added"] else None
        return d


def _outreach(entry: dict[str, Any], options: PlanOptions) -> list[tuple[date, bool]]:
    """(day, answered) per outbound call or e-mail in the window."""
    start = options.as_of - timedelta(days=options.window_days)
    replies = sorted([a["day"] for a in entry["activities"] if str(a.get("direction") or "").lower() == "inbound"]
                     + list(entry.get("calls") or []))
    out = []
    for a in entry["activities"]:
        if (str(a.get("direction") or "").lower() != "outbound" or str(a.get("type") or "").lower() not in OUTREACH_TYPES
                or not start < a["day"] <= options.as_of):
            continue
        answered = str(a.get("outcome") or "").lower() in REACHED or any(
            a["day"] <= r <= a["day"] + timedelta(days=options.respond_within_days) for r in replies)
        out.append((a["day"], answered))
    return out


def _rate(tries: list[tuple[date, bool]]) -> float | None:
    return round(sum(ok for _, ok in tries) / len(tries), 4) if tries else None


def _plan_one(entry: dict[str, Any], options: PlanOptions) -> AccountPlan:
    tries = _outreach(entry, options)
    answered = sum(ok for _, ok in tries)
    cut = options.as_of - timedelta(days=options.recent_days)
    recent = _rate([t for t in tries if t[0] > cut])
    before = _rate([t for t in tries if cut - timedelta(days=options.recent_days) < t[0] <= cut])
    contact = last_two_way(entry)
    people = []
    for c in entry["contacts"]:
        new = c.get("added") is not None and c["added"] > cut
        people.append({"name": c["name"], "role": c.get("role"), "department": department_of(c.get("role")),
                       "seniority": seniority_of(c.get("role")), "added": c.get("added"), "new": new})
    return AccountPlan(
        entry["account_id"], entry.get("name"), entry.get("segment"), entry.get("rep"), len(tries), answered,
        _rate(tries), wilson(answered, len(tries)) if tries else None, recent, before,
        recent is not None and before is not None and recent <= before - options.falling_by,
        (options.as_of - contact).days if contact else None, people,
        dict(Counter(p["department"] for p in people)), dict(Counter(p["seniority"] for p in people)),
        sum(p["new"] for p in people), len(people) == 1,
        bought=sorted({d["product"] for d in entry.get("deals", []) if d.get("product") and d.get("won")}))


def account_plans(book: Iterable[dict[str, Any]], options: PlanOptions, won_stages: Iterable[str] = ("Closed Won",),
                  only: str | None = None) -> list[AccountPlan]:
    """The plan KPIs of every current customer (active, and it has ordered, or won a deal and is
    more than a bare id), or of
    the account `only` (whatever its status); white space and the basket come from its segment's
    current customers."""
    won_stages = set(won_stages)
    entries = []
    for e in book:
        deals = [{**d, "won": d.get("stage") in won_stages} for d in e.get("deals", [])]
        entries.append({**e, "deals": deals})
    # a bare account (no name, no segment, no orders) is only known from a deal: a prospect's
    customers = [e for e in entries if e.get("status") != "lost" and (
        e["orders"] or (any(d["won"] for d in e["deals"]) and (e.get("name") or e.get("segment"))))]
    wanted = [e for e in entries if e["account_id"] == only] if only else customers
    plans = {e["account_id"]: _plan_one(e, options) for e in {x["account_id"]: x for x in customers + wanted}.values()}
    by_segment: dict[str | None, list[AccountPlan]] = defaultdict(list)
    for e in customers:
        by_segment[e.get("segment")].append(plans[e["account_id"]])
    out = []
    for e in wanted:
        plan = plans[e["account_id"]]
        peers = [p for p in by_segment.get(e.get("segment"), []) if p.account_id != plan.account_id]
        if len(peers) >= options.min_peers:
            with_people = [p for p in peers if p.stakeholders]
            counts = Counter(dept for p in with_people for dept in set(p.by_department))
            usual = {d for d, n in counts.items() if with_people and n / len(with_people) >= options.white_space_share}
            plan.white_space = sorted(usual - set(plan.by_department))
            buyers = [p for p in peers if p.bought]
            basket = Counter(prod for p in buyers for prod in p.bought)
            if len(buyers) >= options.min_peers:
                plan.cross_sell = sorted(prod for prod, n in basket.items()
                                         if n / len(buyers) >= options.basket_share and prod not in plan.bought)
        out.append(plan)
    return out


def rep_summaries(plans: Iterable[AccountPlan]) -> dict[str, dict[str, Any]]:
    """Per rep: accounts, pooled response rate (with interval), single-threaded accounts, median
    days since two-way contact, accounts with white space and with a cross-sell opening."""
    out: dict[str, dict[str, Any]] = {}
    by_rep: dict[str, list[AccountPlan]] = defaultdict(list)
    for p in plans:
        by_rep[p.rep or "(no rep)"].append(p)
    for rep, mine in sorted(by_rep.items()):
        tries, ok = sum(p.outreach for p in mine), sum(p.answered for p in mine)
        days = [p.days_since_two_way for p in mine if p.days_since_two_way is not None]
        out[rep] = {"accounts": len(mine), "outreach": tries, "answered": ok,
                    "response_rate": round(ok / tries, 4) if tries else None,
                    "response_rate_ci": list(wilson(ok, tries)) if tries else None,
                    "response_falling": sorted(p.account_id for p in mine if p.response_falling),
                    "single_threaded": sorted(p.account_id for p in mine if p.single_threaded),
                    "median_days_since_two_way": statistics.median(days) if days else None,
                    "white_space_accounts": sum(bool(p.white_space) for p in mine),
                    "cross_sell_accounts": sum(bool(p.cross_sell) for p in mine),
                    "new_stakeholders": sum(p.new_stakeholders for p in mine)}
    return out
