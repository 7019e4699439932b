"""Churn and retention rates per period, overall and per rep or segment.

For each period (month or quarter), the accounts that existed at its start and were not yet lost
are the base; those lost within the period are churned. Accounts created during the period are
left out of its base. churn_rate = lost / base, retention_rate = 1 - churn_rate.
An account's start is its created date, else its first CRM event.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date

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


def period_start(d: date, period: str) -> date:
    return date(d.year, d.month, 1) if period == "month" else date(d.year, 3 * ((d.month - 1) // 3) + 1, 1)


def next_start(d: date, period: str) -> date:
    step = 1 if period == "month" else 3
    m = d.month - 1 + step
    return date(d.year + m // 12, m % 12 + 1, 1)


def period_name(d: date, period: str) -> str:
    return f"{d.year}-{d.month:02d}" if period == "month" else f"{d.year}-Q{(d.month - 1) // 3 + 1}"


def churn_rates(session: Session, period: str = "quarter", by: str | None = None,
                until: date | None = None) -> list[ChurnRow]:
    """Churn and retention per period (and per rep or segment when `by` is given)."""
    if period not in PERIODS:
        raise ChurnwatchError(f"period {period!r}: use one of {', '.join(PERIODS)}.")
    if by is not None and by not in GROUPS:
        raise ChurnwatchError(f"--by {by!r}: use one of {', '.join(GROUPS)}.")
    first_event = dict(session.execute(select(CrmEvent.account_id, func.min(CrmEvent.occurred_on))
                                       .group_by(CrmEvent.account_id)).all())
    rows = session.execute(select(Account, Rep.name).outerjoin(Rep, Account.rep_id == Rep.id)).all()
    accounts = []
    for acc, rep in rows:
        start = acc.created_on or first_event.get(acc.id)
        if start is None:
            continue
        group = None if by is None else ((rep if by == "rep" else acc.segment) or "(none)")
        accounts.append((start, acc.lost_on if acc.status == "lost" or acc.lost_on else None, group))
    if not accounts:
        return []
    until = until or max([a[1] for a in accounts if a[1]] + [date.today()])
    p = next_start(period_start(min(a[0] for a in accounts), period), period)
    out = []
    while p <= until:
        end = next_start(p, period)
        base, lost = defaultdict(int), defaultdict(int)
        for start, lost_on, group in accounts:
            if start < p and (lost_on is None or lost_on >= p):
                base[group] += 1
                lost[group] += lost_on is not None and lost_on < end
        for group in sorted(base, key=str):
            rate = lost[group] / base[group]
            out.append(ChurnRow(period_name(p, period), group, p, base[group], lost[group],
                                round(rate, 4), round(1 - rate, 4)))
        p = end
    return out
