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
# Features whose evidence is context, never an event that counts (the orders and contact dates
# behind a value carry no `units`): merging one event counted once (pipeline.risk.explain) has
# nothing to look at in them. tests/test_risk_bulk.py checks that none of their items has units.
CONTEXT_ONLY_FEATURES = frozenset({"days_since_last_order", "orders_365", "order_value_365", "order_value_trend",
                                   "order_cadence", "tenure_days", "days_since_last_contact", "unanswered_streak"})


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
    # A call where an invoice was disputed and a billing case opened within this many days of it
    # are one dispute (counted once in the score).
    link_window_days: int = 14
    # Cue labels that always get a feature (cue_<label>), even at zero.
    cue_labels: tuple[str, ...] = CUE_LABELS

    def __post_init__(self):
        if self.cue_half_life_days <= 0:
            raise ValueError(f"cue_half_life_days must be > 0, got {self.cue_half_life_days}")
        for name in ("frequency_window_days", "trend_window_days", "credit_window_days", "max_days"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")


@dataclass(slots=True)
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
    out["credit_notes_180"] = FeatureValue("credit_notes_180", float(len(credits)),
                                           [{**ev(o), "units": 1.0} for o in credits],
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
                         "paid": _iso(paid) if paid else None, "amount": amount, "units": 1.0})
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

    def ev(c, units=None):
        a = c.attributes or {}
        e = {"kind": "support", "date": _iso(c.occurred_on), "case_id": a.get("case_id"),
             "subject": a.get("subject"), "priority": a.get("priority")}
        if units is not None:
            e["units"] = units
        return e

    pattern = re.compile(o.dispute_pattern, re.IGNORECASE)
    disputes = [c for c in cases if c.occurred_on > as_of - timedelta(days=o.credit_window_days)
                and pattern.search((c.attributes or {}).get("subject") or "")]
    return [
        FeatureValue("support_cases_90", float(len(now)), [ev(c, 1.0) for c in now], f"{len(now)} cases opened"),
        FeatureValue("support_trend", float(len(now) - len(before)), [ev(c) for c in before] + [ev(c, 1.0) for c in now],
                     f"{len(now)} cases in the last {o.support_window_days} days vs {len(before)} before"),
        FeatureValue("disputes_180", float(len(disputes)), [ev(c, 1.0) for c in disputes],
                     f"{len(disputes)} billing disputes in {o.credit_window_days} days"),
    ]


def _contacts_features(contacts, as_of: date, o: FeatureOptions) -> list[FeatureValue]:
    lo = as_of - timedelta(days=o.contacts_window_days)
    new = [c for c in contacts if c.added_on is not None and lo < c.added_on <= as_of]
    senior = re.compile(o.senior_role_pattern, re.IGNORECASE)
    changes = [c for c in new if senior.search(c.role or "")]

    def ev(c):
        return {"kind": "contact", "date": _iso(c.added_on), "name": c.name, "role": c.role, "units": 1.0}

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
        # every cue keeps its evidence (units: its decayed weight), so one sentence or one dispute
        # said on a call and filed in the CRM can be counted once (pipeline.risk.explain)
        evidence = [{"kind": "cue", "date": _iso(w), "quote": c.quote, "call_id": c.call_id,
                     "segment_id": getattr(c, "segment_id", None), "rule": f"{c.rule_name}@{c.rule_version}",
                     "weight": round(d, 3), "units": d} for c, w, d in items]
        out.append(FeatureValue(f"cue_{label}", float(sum(d for _, _, d in items)), evidence,
                                f"{len(items)} {label.replace('_', ' ')} cues, decayed "
                                f"(half-life {o.cue_half_life_days:g} days)"))
    return out


def _day(value: datetime | None) -> date | None:
    return value.date() if value is not None else None


# --- which invoice, case or contact a call quote refers to --------------------------------------

_MONTHS = {m: i for i, names in enumerate((
    ("january", "januar", "jan"), ("february", "februar", "feb"), ("march", "märz", "maerz", "mar"),
    ("april", "apr"), ("may", "mai"), ("june", "juni", "jun"), ("july", "juli", "jul"), ("august", "aug"),
    ("september", "sept", "sep"), ("october", "oktober", "oct", "okt"), ("november", "nov"),
    ("december", "dezember", "dec", "dez")), 1) for m in names}
_MONTH_RE = re.compile(r"\b(" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\b", re.IGNORECASE)
_INVOICE_RE = re.compile(r"\b(invoice|invoices|bill|rechnung|rechnungen|factura|facture)\b", re.IGNORECASE)
# Cue labels whose quotes may refer to a billing dispute case opened near the call.
_DISPUTE_CUES = ("invoice_dispute",)


def _month_invoices(orders, month: int, on: date, late_ids: set) -> list[str]:
    """The invoice a quote means by "the <month> invoice" on a call on `on`: the account's invoice
    from the latest such month on or before the call; of several, the ones paid late or unpaid."""
    cands = [(d, a.get("invoice_id")) for d, amt, a in orders if amt > 0 and d <= on and d.month == month
             and a.get("invoice_id")]
    if not cands:
        return []
    year = max(d.year for d, _ in cands)
    ids = [i for d, i in cands if d.year == year]
    if len(ids) > 1:
        ids = [i for i in ids if i in late_ids]
    return ids if len(ids) == 1 else []


def link_cue_refs(cue_feats: list[FeatureValue], orders, cases, contacts, as_of: date,
                  late_ids: set, o: FeatureOptions) -> None:
    """Add to each cue's evidence the events its quote refers to (`refs`): an invoice or case id
    written in the quote, "the October invoice" (that month's invoice), a billing dispute case
    opened within `link_window_days` of a call where an invoice was disputed, a contact named in
    the quote. Evidence sharing a ref is one event and is counted once when scoring."""
    invoice_ids = {str(a["invoice_id"]): str(a["invoice_id"]) for _, amt, a in orders if a.get("invoice_id")}
    case_rows = [(c.occurred_on, (c.attributes or {}).get("case_id"), (c.attributes or {}).get("subject") or "")
                 for c in cases if c.occurred_on <= as_of]
    pattern = re.compile(o.dispute_pattern, re.IGNORECASE)
    names = []
    for c in contacts:
        if c.added_on is not None and c.added_on <= as_of and c.name:
            full = c.name.strip()
            first = full.split()[0]
            names.append((full.lower(), re.compile(r"\b" + re.escape(first) + r"\b", re.IGNORECASE)
                          if len(first) >= 3 else None))
    w = timedelta(days=o.link_window_days)
    for fv in cue_feats:
        label = fv.name[4:]
        for ev in fv.evidence:
            quote = ev.get("quote") or ""
            on = date.fromisoformat(ev["date"])
            refs = []
            low = quote.lower()
            for iid in invoice_ids:
                if iid.lower() in low:
                    refs.append(f"invoice:{iid}")
            for _, cid, _ in case_rows:
                if cid and str(cid).lower() in low:
                    refs.append(f"case:{cid}")
            if _INVOICE_RE.search(quote):
                for m in _MONTH_RE.findall(quote):
                    refs += [f"invoice:{i}" for i in _month_invoices(orders, _MONTHS[m.lower()], on, late_ids)]
            if label in _DISPUTE_CUES:
                refs += [f"case:{cid or d.isoformat() + ':' + subj}" for d, cid, subj in case_rows
                         if abs((d - on).days) <= w.days and pattern.search(subj)]
            for full, first in names:
                if full in low or (first is not None and first.search(quote)):
                    refs.append(f"contact:{full}")
            if refs:
                ev["refs"] = sorted(set(refs))


# --- all features of one account, from its rows -------------------------------------------------


@dataclass
class AccountRows:
    """What the features of one account are computed from (rows up to as_of, or more: later rows
    are ignored). Rows are ORM objects or Core rows with the same attribute names."""
    events: list = field(default_factory=list)  # CrmEvent-like: kind, occurred_on, amount, attributes
    calls: list = field(default_factory=list)  # (call_id, call_date, created_at)
    contacts: list = field(default_factory=list)  # Contact-like: name, role, added_on
    cues: list = field(default_factory=list)  # Cue-like: call_id, segment_id, label, quote, rule_name, rule_version


def features_from_rows(rows: AccountRows, as_of: date, o: FeatureOptions) -> dict[str, FeatureValue]:
    events = [e for e in rows.events if e.occurred_on <= as_of]
    orders = [(e.occurred_on, float(e.amount or 0.0), e.attributes or {}) for e in events if e.kind == "order"]
    feats = list(order_features(orders, as_of, o).values())
    late = _late_payments(orders, as_of, o)
    feats.append(late)
    call_day = {cid: _day(cd) or _day(ca) for cid, cd, ca in rows.calls}
    feats += _contact_features([e for e in events if e.kind == "activity"],
                               [d for d in call_day.values() if d and d <= as_of], as_of, o)
    cases = [e for e in events if e.kind == "support"]
    feats += _support_features(cases, as_of, o)
    feats += _contacts_features(rows.contacts, as_of, o)
    cue_feats = _cue_features([(c, call_day[c.call_id]) for c in rows.cues if call_day.get(c.call_id)
                               and call_day[c.call_id] <= as_of], as_of, o)
    if any(fv.evidence for fv in cue_feats):
        link_cue_refs(cue_feats, orders, cases, rows.contacts, as_of,
                      {e.get("invoice_id") for e in late.evidence}, o)
    feats += cue_feats
    return {f.name: f for f in feats}


def compute_features(session: Session, account_id: str, as_of: date,
                     options: FeatureOptions | None = None) -> dict[str, FeatureValue]:
    """Every feature of one account as of a date, each with its evidence."""
    o = options or FeatureOptions()
    # a fixed order (the one pipeline.risk.bulk_features.load_book reads): rows on the same day
    # keep their place in the evidence on every backend
    events = session.scalars(select(CrmEvent).where(CrmEvent.account_id == account_id,
                                                    CrmEvent.occurred_on <= as_of)
                             .order_by(CrmEvent.kind, CrmEvent.occurred_on, CrmEvent.id)).all()
    calls = session.execute(select(Call.id, Call.call_date, Call.created_at)
                            .where(Call.account_id == account_id).order_by(Call.id)).all()
    contacts = session.scalars(select(Contact).where(Contact.account_id == account_id).order_by(Contact.id)).all()
    ids = [c[0] for c in calls]
    cues = session.scalars(select(Cue).where(Cue.call_id.in_(ids)).order_by(Cue.call_id, Cue.id)).all() if ids else []
    return features_from_rows(AccountRows(list(events), list(calls), list(contacts), list(cues)), as_of, o)


def load_account_rows(session: Session, account_ids, as_of: date) -> dict[str, AccountRows]:
    """The rows of many accounts at once (one query per table, not per account), for scoring a
    whole book: `features_from_rows(rows[acc], as_of, options)` equals `compute_features`."""
    wanted = set(account_ids)
    out = {a: AccountRows() for a in wanted}
    few = len(wanted) <= 500
    def only(q, col):
        return q.where(col.in_(sorted(wanted))) if few else q

    conn = session.connection()  # Core rows: no ORM loading overhead
    q = select(CrmEvent.account_id, CrmEvent.kind, CrmEvent.occurred_on, CrmEvent.amount, CrmEvent.attributes)
    for r in conn.execute(only(q.where(CrmEvent.occurred_on <= as_of), CrmEvent.account_id)):
        if r.account_id in wanted:
            out[r.account_id].events.append(r)
    calls = {}
    q = select(Call.account_id, Call.id, Call.call_date, Call.created_at).where(Call.account_id.is_not(None))
    for acc, cid, cd, ca in conn.execute(only(q, Call.account_id)):
        if acc in wanted:
            out[acc].calls.append((cid, cd, ca))
            calls[cid] = acc
    q = select(Contact.account_id, Contact.name, Contact.role, Contact.added_on)
    for r in conn.execute(only(q, Contact.account_id)):
        if r.account_id in wanted:
            out[r.account_id].contacts.append(r)
    if calls:
        q = select(Cue.call_id, Cue.segment_id, Cue.label, Cue.quote, Cue.rule_name, Cue.rule_version)
        if len(calls) <= 500:
            q = q.where(Cue.call_id.in_(sorted(calls)))
        for r in conn.execute(q):
            if r.call_id in calls:
                out[calls[r.call_id]].cues.append(r)
    return out


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
