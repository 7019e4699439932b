"""Churn and retention rates per period, overall and per rep or segment.

For each period (month or quarter), the accounts that existed at its start and were not yet lost
are the base; those lost within the period are churned. Accounts created during the period are
left out of its base. churn_rate = lost / base, retention_rate = 1 - churn_rate.
An account's start is its created date, else its first CRM event.

Revenue retention, from orders (credit notes are negative amounts and count against their
account): for the accounts of the base, their revenue in the period against their revenue in the
period before it. Net revenue retention = their revenue now / their revenue before (growth of
some accounts can make up for the loss of others; above 100% is possible). Gross revenue retention
counts no growth: each account's revenue now is capped at what it was before (at most 100%).
Accounts without revenue before do not change either rate; None when the base had none.

The period that has not ended by `until` (default: today) is marked `partial`: its account counts
are so far, and its revenue (up to `until`) is compared with the same number of days at the start
of the period before, so a half-finished quarter is not read as half the revenue. `since` leaves
out the periods that end before it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pipeline.errors import ChurnwatchError
from pipeline.store import Account, CrmEvent, Rep

PERIODS = ("month", "quarter")
GROUPS = ("rep", "segment")


@dataclass
class ChurnRow:
    period: str  # 2026-Q1 or 2026-03
    group: str | None  # the rep or segment, None for all accounts
    start: date
    base: int  # accounts open at the start of the period
    lost: int
    churn_rate: float
    retention_rate: float
    end: date | None = None  # last day counted (the period's last day, or `until` when partial)
    partial: bool = False  # the period has not ended by `until`: counts and revenue so far
    revenue_before: float = 0.0  # the base's revenue in the period before (same days when partial)
    revenue: float = 0.0  # the base's revenue in this period (so far)
    gross_revenue_retention: float | None = None  # sum(min(now, before)) / sum(before)
    net_revenue_retention: float | None = None  # sum(now) / sum(before)


def period_start(d: date, period: str) -> date:
    return date(d.year, d.month, 1) if period == "month" else date(d.year, 3 * ((d.month - 1) // 3) + 1, 1)


def next_start(d: date, period: str) -> date:
    step = 1 if period == "month" else 3
    m = d.month - 1 + step
    return date(d.year + m // 12, m % 12 + 1, 1)


def period_name(d: date, period: str) -> str:
    return f"{d.year}-{d.month:02d}" if period == "month" else f"{d.year}-Q{(d.month - 1) // 3 + 1}"


def churn_rates(session: Session, period: str = "quarter", by: str | None = None,
                until: date | None = None, since: date | None = None) -> list[ChurnRow]:
    """Churn, retention and revenue retention per period (and per rep or segment when `by` is given),
    from the period holding `since` (default: the first full one) to the one holding `until`."""
    if period not in PERIODS:
        raise ChurnwatchError(f"period {period!r}: use one of {', '.join(PERIODS)}.")
    if by is not None and by not in GROUPS:
        raise ChurnwatchError(f"--by {by!r}: use one of {', '.join(GROUPS)}.")
    if since is not None and until is not None and since > until:
        raise ChurnwatchError(f"--since {since} is after --until {until}: pick an earlier --since.")
    first_event = dict(session.execute(select(CrmEvent.account_id, func.min(CrmEvent.occurred_on))
                                       .group_by(CrmEvent.account_id)).all())
    rows = session.execute(select(Account, Rep.name).outerjoin(Rep, Account.rep_id == Rep.id)).all()
    accounts = []
    for acc, rep in rows:
        start = acc.created_on or first_event.get(acc.id)
        if start is None:
            continue
        group = None if by is None else ((rep if by == "rep" else acc.segment) or "(none)")
        accounts.append((acc.id, start, acc.lost_on if acc.status == "lost" or acc.lost_on else None, group))
    if not accounts:
        return []
    until = until or date.today()
    orders: dict[str, list[tuple[date, float]]] = defaultdict(list)
    for acc, day, amount in session.execute(select(CrmEvent.account_id, CrmEvent.occurred_on, CrmEvent.amount)
                                            .where(CrmEvent.kind == "order", CrmEvent.occurred_on <= until)):
        orders[acc].append((day, float(amount or 0.0)))

    def revenue(acc, lo: date, hi: date) -> float:  # orders on lo..hi
        return sum(a for d, a in orders.get(acc, ()) if lo <= d <= hi)

    p = next_start(period_start(min(a[1] for a in accounts), period), period)
    if since is not None:
        p = max(p, period_start(since, period))
    out = []
    while p <= until:
        end = next_start(p, period)
        partial = end - timedelta(days=1) > until
        last = until if partial else end - timedelta(days=1)
        prev = period_start(p - timedelta(days=1), period)
        prev_last = min(prev + (last - p), p - timedelta(days=1))
        base, lost = defaultdict(int), defaultdict(int)
        rev_now, rev_before, kept = defaultdict(float), defaultdict(float), defaultdict(float)
        for acc, start, lost_on, group in accounts:
            if start < p and (lost_on is None or lost_on >= p):
                base[group] += 1
                lost[group] += lost_on is not None and lost_on <= last
                before, now = revenue(acc, prev, prev_last), revenue(acc, p, last)
                if before > 0:
                    rev_before[group] += before
                    rev_now[group] += now
                    kept[group] += min(max(now, 0.0), before)
        for group in sorted(base, key=str):
            rate = lost[group] / base[group]
            rb = rev_before[group]
            out.append(ChurnRow(period_name(p, period), group, p, base[group], lost[group],
                                round(rate, 4), round(1 - rate, 4), last, partial, round(rb, 2),
                                round(rev_now[group], 2), round(kept[group] / rb, 4) if rb > 0 else None,
                                round(rev_now[group] / rb, 4) if rb > 0 else None))
        p = end
    return out
