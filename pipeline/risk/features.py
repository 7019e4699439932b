"""Features per account as of a date, from cues and CRM events known by then (no look-ahead).

    feats = compute_features(session, "ACME", date(2026, 3, 31), FeatureOptions())
    feats["days_since_last_order"].value, feats["days_since_last_order"].evidence

Every feature reads only what happened on or before `as_of`: orders dated after it, cues of later
calls, and payments made after it (an invoice paid later was unpaid at as_of) are invisible.
Each value keeps its evidence (the orders, cues, dates behind it) for `risk explain`.
`order_features_frame` computes the order features for many accounts at once from an orders
DataFrame (account_id, date, amount): the same definitions, vectorised, for fits and backtests.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.store import Call, Contact, CrmEvent, Cue, Feature
from pipeline.types import CUE_LABELS
ORDER_FEATURES = ("days_since_last_order", "orders_365", "order_value_365", "order_value_trend",
                  "order_cadence", "tenure_days", "credit_notes_180")


@dataclass(frozen=True)
class FeatureOptions:
    # A cue counts half as much after this many days (recency decay of cue counts).
    cue_half_life_days: float = 30.0
    # Cues older than this many days are ignored.
    cue_window_days: int = 365
    # Cap of the days-since features, and their value when there never was an order or contact.
    max_days: int = 730
    # Window of order frequency and order value (days up to as_of).
    frequency_window_days: int = 365
    # Order value trend compares the last this-many days with the same span before.
    trend_window_days: int = 90
    # Window for credit notes and disputes.
    credit_window_days: int = 180
    # Window for late payments (invoices due in it).
    late_window_days: int = 365
    # Days after the due date before a payment counts as late.
    late_grace_days: int = 0
    # Support cases: count in the last this-many days, trend against the same span before.
    support_window_days: int = 90
    # New contacts and stakeholder changes: contacts added in the last this-many days.
    contacts_window_days: int = 90
    # A support case whose subject matches this (case-insensitive) is a dispute.
    dispute_pattern: str = r"invoice|billing|dispute|charge|refund|credit|overcharg"
    # A new contact whose role matches this is a stakeholder change.
    senior_role_pattern: str = (r"\b(ceo|cfo|coo|cto|cio|chief|vp|vice president|director|head|owner|"
                                r"founder|procurement|purchasing|buyer|controller)\b")
    # Cue labels that always get a feature (cue_<label>), even at zero.
    cue_labels: tuple[str, ...] = CUE_LABELS

    def __post_init__(self):
        if self.cue_half_life_days <= 0:
            raise ValueError(f"cue_half_life_days must be > 0, got {self.cue_half_life_days}")
        for name in ("frequency_window_days", "trend_window_days", "credit_window_days", "max_days"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")


@dataclass
class FeatureValue:
    name: str
    value: float | None  # None: not defined for this account (e.g. cadence with one order)
    evidence: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""  # plain words, e.g. "last order 2026-01-04"


def _iso(d) -> str:
    return d.isoformat() if hasattr(d, "isoformat") else str(d)


# --- orders (shared definitions) ----------------------------------------------------------------


def order_features(orders: list[tuple[date, float, dict]], as_of: date,
                   options: FeatureOptions) -> dict[str, FeatureValue]:
    """Order features of one account from (date, amount, attributes) rows; rows after as_of are ignored."""
    rows = sorted((o for o in orders if o[0] <= as_of), key=lambda o: o[0])
    pos = [o for o in rows if o[1] > 0]
    out: dict[str, FeatureValue] = {}

    def ev(o):
        e = {"kind": "order", "date": _iso(o[0]), "amount": o[1]}
        if o[2].get("invoice_id"):
            e["invoice_id"] = o[2]["invoice_id"]
        return e

    if pos:
        last = pos[-1][0]
        days = min((as_of - last).days, options.max_days)
        out["days_since_last_order"] = FeatureValue("days_since_last_order", float(days), [ev(pos[-1])],
                                                    f"last order {_iso(last)}")
        out["tenure_days"] = FeatureValue("tenure_days", float((as_of - pos[0][0]).days), [ev(pos[0])],
                                          f"first order {_iso(pos[0][0])}")
    else:
        out["days_since_last_order"] = FeatureValue("days_since_last_order", float(options.max_days),
                                                    [], "no order yet")
        out["tenure_days"] = FeatureValue("tenure_days", 0.0, [], "no order yet")
    lo = as_of - timedelta(days=options.frequency_window_days)
    recent = [o for o in pos if o[0] > lo]
    out["orders_365"] = FeatureValue("orders_365", float(len(recent)), [ev(o) for o in recent[-5:]],
                                     f"{len(recent)} orders in {options.frequency_window_days} days")
    value = sum(o[1] for o in recent)
    out["order_value_365"] = FeatureValue("order_value_365", float(value), [ev(o) for o in recent[-5:]],
                                          f"ordered {value:,.2f} in {options.frequency_window_days} days")
    w = options.trend_window_days
    now = [o for o in pos if o[0] > as_of - timedelta(days=w)]
    before = [o for o in pos if as_of - timedelta(days=2 * w) < o[0] <= as_of - timedelta(days=w)]
    r, p = sum(o[1] for o in now), sum(o[1] for o in before)
    out["order_value_trend"] = FeatureValue(
        "order_value_trend", float((r - p) / (r + p)) if r + p > 0 else 0.0,
        [ev(o) for o in before + now][-8:], f"{r:,.2f} in the last {w} days vs {p:,.2f} in the {w} before")
    days_set = sorted({o[0] for o in pos})
    if len(days_set) >= 2:
        gap = statistics.median([(b - a).days for a, b in zip(days_set, days_set[1:])])
        since = (as_of - days_set[-1]).days
        out["order_cadence"] = FeatureValue(
            "order_cadence", float(since / gap), [{"kind": "order", "date": _iso(d)} for d in days_set[-5:]],
            f"{since} days since the last order against a usual gap of {gap:g} days")
    else:
        out["order_cadence"] = FeatureValue("order_cadence", None, [], "fewer than two orders: no usual interval")
    credits = [o for o in rows if o[1] < 0 and o[0] > as_of - timedelta(days=options.credit_window_days)]
    out["credit_notes_180"] = FeatureValue("credit_notes_180", float(len(credits)), [ev(o) for o in credits],
                                           f"{len(credits)} credit notes in {options.credit_window_days} days")
    return out


def order_features_frame(orders, as_of: date, options: FeatureOptions):
    """ORDER_FEATURES for every account with an order on or before as_of, from a DataFrame with
    columns account_id, date, amount (vectorised; same definitions as `order_features`).
    order_cadence is NaN for accounts with fewer than two order days."""
    import numpy as np
    import pandas as pd

    t = pd.Timestamp(as_of)
    df = orders[orders["date"] <= t]
    pos = df[df["amount"] > 0]
    ids = pd.Index(df["account_id"].unique(), name="account_id")
    out = pd.DataFrame(index=ids)
    g = pos.groupby("account_id")["date"]
    last, first = g.max(), g.min()
    out["days_since_last_order"] = ((t - last).dt.days.clip(upper=options.max_days)
                                    .reindex(ids).fillna(options.max_days).astype(float))
    out["tenure_days"] = (t - first).dt.days.reindex(ids).fillna(0).astype(float)
    win = pos[pos["date"] > t - pd.Timedelta(days=options.frequency_window_days)].groupby("account_id")["amount"]
    out["orders_365"] = win.size().reindex(ids).fillna(0).astype(float)
    out["order_value_365"] = win.sum().reindex(ids).fillna(0).astype(float)
    w = pd.Timedelta(days=options.trend_window_days)
    r = pos[pos["date"] > t - w].groupby("account_id")["amount"].sum().reindex(ids).fillna(0)
    p = pos[(pos["date"] > t - 2 * w) & (pos["date"] <= t - w)].groupby("account_id")["amount"].sum()
    p = p.reindex(ids).fillna(0)
    out["order_value_trend"] = np.where(r + p > 0, (r - p) / (r + p).where(r + p > 0, 1), 0.0)
    u = pos[["account_id", "date"]].drop_duplicates().sort_values(["account_id", "date"])
    gaps = u.groupby("account_id")["date"].diff().dt.days
    med = gaps.groupby(u["account_id"]).median().reindex(ids)
    out["order_cadence"] = (t - last).dt.days.reindex(ids) / med
    cut = t - pd.Timedelta(days=options.credit_window_days)
    out["credit_notes_180"] = (df[(df["amount"] < 0) & (df["date"] > cut)].groupby("account_id").size()
                               .reindex(ids).fillna(0).astype(float))
    return out[list(ORDER_FEATURES)]


# --- everything else (from the store) -----------------------------------------------------------

_SUCCESS = {"answered", "replied", "held", "connected", "completed"}
_NO_ANSWER = {"unanswered", "no_reply", "no_answer", "voicemail", "left_voicemail", "busy"}


def _late_payments(orders: list[tuple[date, float, dict]], as_of: date, o: FeatureOptions) -> FeatureValue:
    late = []
    for when, amount, attrs in orders:
        due = attrs.get("due_date")
        if amount <= 0 or when > as_of or not due:
            continue
        due = date.fromisoformat(due)
        if not (as_of - timedelta(days=o.late_window_days) < due <= as_of):
            continue
        paid = attrs.get("paid_date")
        paid = date.fromisoformat(paid) if paid else None
        if paid is not None and paid > as_of:
            paid = None  # paid after as_of: unknown at as_of
        deadline = due + timedelta(days=o.late_grace_days)
        if (paid is not None and paid > deadline) or (paid is None and as_of > deadline):
            late.append({"kind": "invoice", "invoice_id": attrs.get("invoice_id"), "due": _iso(due),
                         "paid": _iso(paid) if paid else None, "amount": amount})
    return FeatureValue("late_payments_365", float(len(late)), late,
                        f"{len(late)} invoices paid late or unpaid past due")


def _contact_features(activities, call_dates: list[date], as_of: date, o: FeatureOptions) -> list[FeatureValue]:
    touches = []  # (date, reached?, evidence)
    for ev in activities:
        a = ev.attributes or {}
        reached = a.get("outcome") in _SUCCESS or a.get("direction") == "inbound"
        if reached or a.get("outcome") in _NO_ANSWER:
            touches.append((ev.occurred_on, reached, {"kind": a.get("type") or "activity",
                            "date": _iso(ev.occurred_on), "outcome": a.get("outcome"),
                            "direction": a.get("direction")}))
    touches += [(d, True, {"kind": "call", "date": _iso(d)}) for d in call_dates]
    touches = [t for t in touches if t[0] <= as_of]
    touches.sort(key=lambda t: (t[0], t[1]))
    reached = [t for t in touches if t[1]]
    if reached:
        days = min((as_of - reached[-1][0]).days, o.max_days)
        since = FeatureValue("days_since_last_contact", float(days), [reached[-1][2]],
                             f"last reached {_iso(reached[-1][0])}")
    else:
        since = FeatureValue("days_since_last_contact", None, [], "no contact on record")
    streak = []
    for t in reversed(touches):
        if t[1]:
            break
        streak.append(t[2])
    return [since, FeatureValue("unanswered_streak", float(len(streak)), streak,
                                f"{len(streak)} outreach attempts in a row without an answer")]


def _support_features(cases, as_of: date, o: FeatureOptions) -> list[FeatureValue]:
    w = timedelta(days=o.support_window_days)
    cases = [c for c in cases if c.occurred_on <= as_of]
    now = [c for c in cases if c.occurred_on > as_of - w]
    before = [c for c in cases if as_of - 2 * w < c.occurred_on <= as_of - w]

    def ev(c):
        a = c.attributes or {}
        return {"kind": "support", "date": _iso(c.occurred_on), "case_id": a.get("case_id"),
                "subject": a.get("subject"), "priority": a.get("priority")}

    pattern = re.compile(o.dispute_pattern, re.IGNORECASE)
    disputes = [c for c in cases if c.occurred_on > as_of - timedelta(days=o.credit_window_days)
                and pattern.search((c.attributes or {}).get("subject") or "")]
    return [
        FeatureValue("support_cases_90", float(len(now)), [ev(c) for c in now], f"{len(now)} cases opened"),
        FeatureValue("support_trend", float(len(now) - len(before)), [ev(c) for c in before + now],
                     f"{len(now)} cases in the last {o.support_window_days} days vs {len(before)} before"),
        FeatureValue("disputes_180", float(len(disputes)), [ev(c) for c in disputes],
                     f"{len(disputes)} billing disputes in {o.credit_window_days} days"),
    ]


def _contacts_features(contacts, as_of: date, o: FeatureOptions) -> list[FeatureValue]:
    lo = as_of - timedelta(days=o.contacts_window_days)
    new = [c for c in contacts if c.added_on is not None and lo < c.added_on <= as_of]
    senior = re.compile(o.senior_role_pattern, re.IGNORECASE)
    changes = [c for c in new if senior.search(c.role or "")]

    def ev(c):
        return {"kind": "contact", "date": _iso(c.added_on), "name": c.name, "role": c.role}

    return [FeatureValue("new_contacts_90", float(len(new)), [ev(c) for c in new], f"{len(new)} new contacts"),
            FeatureValue("stakeholder_changes_90", float(len(changes)), [ev(c) for c in changes],
                         f"{len(changes)} new decision makers")]


def _cue_features(rows, as_of: date, o: FeatureOptions) -> list[FeatureValue]:
    by_label: dict[str, list] = {label: [] for label in o.cue_labels}
    for cue, when in rows:
        age = (as_of - when).days
        if 0 <= age <= o.cue_window_days:
            by_label.setdefault(cue.label, []).append((cue, when, 0.5 ** (age / o.cue_half_life_days)))
    out = []
    for label, items in sorted(by_label.items()):
        items.sort(key=lambda t: t[1], reverse=True)
        evidence = [{"kind": "cue", "date": _iso(w), "quote": c.quote, "call_id": c.call_id,
                     "rule": f"{c.rule_name}@{c.rule_version}", "weight": round(d, 3)} for c, w, d in items[:5]]
        out.append(FeatureValue(f"cue_{label}", float(sum(d for _, _, d in items)), evidence,
                                f"{len(items)} {label.replace('_', ' ')} cues, decayed "
                                f"(half-life {o.cue_half_life_days:g} days)"))
    return out


def _day(value: datetime | None) -> date | None:
    return value.date() if value is not None else None


def compute_features(session: Session, account_id: str, as_of: date,
                     options: FeatureOptions | None = None) -> dict[str, FeatureValue]:
    """Every feature of one account as of a date, each with its evidence."""
    o = options or FeatureOptions()
    events = session.scalars(select(CrmEvent).where(CrmEvent.account_id == account_id,
                                                    CrmEvent.occurred_on <= as_of)).all()
    orders = [(e.occurred_on, float(e.amount or 0.0), e.attributes or {}) for e in events if e.kind == "order"]
    feats = list(order_features(orders, as_of, o).values())
    feats.append(_late_payments(orders, as_of, o))
    calls = session.execute(select(Call.id, Call.call_date, Call.created_at)
                            .where(Call.account_id == account_id)).all()
    call_day = {cid: _day(cd) or _day(ca) for cid, cd, ca in calls}
    feats += _contact_features([e for e in events if e.kind == "activity"],
                               [d for d in call_day.values() if d and d <= as_of], as_of, o)
    feats += _support_features([e for e in events if e.kind == "support"], as_of, o)
    contacts = session.scalars(select(Contact).where(Contact.account_id == account_id)).all()
    feats += _contacts_features(contacts, as_of, o)
    cues = session.scalars(select(Cue).where(Cue.call_id.in_(list(call_day)))).all() if call_day else []
    feats += _cue_features([(c, call_day[c.call_id]) for c in cues if call_day[c.call_id]
                            and call_day[c.call_id] <= as_of], as_of, o)
    return {f.name: f for f in feats}


def store_features(session: Session, account_id: str, as_of: date, features: dict[str, FeatureValue]) -> int:
    """Write features (those with a value) to table `features`, replacing the same (account, name, as_of)."""
    existing = {f.name: f for f in session.scalars(select(Feature).where(
        Feature.account_id == account_id, Feature.as_of == as_of))}
    n = 0
    for name, fv in features.items():
        if fv.value is None:
            continue
        row = existing.get(name) or Feature(account_id=account_id, name=name, as_of=as_of)
        row.value, row.evidence = fv.value, fv.evidence
        session.add(row)
        n += 1
    session.flush()
    return n
