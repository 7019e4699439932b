"""Features of a whole book of accounts at once: what `risk score` computes for every account.

    book = load_book(session, account_ids, as_of)          # a few SELECTs for all accounts
    feats = book_features(book, as_of, options)             # account -> {name: FeatureValue}

The values, evidence lists and notes equal those of `pipeline.risk.features.compute_features`
for one account, item for item (tests/test_risk_bulk.py checks it); what differs is how they are
reached: each table is read once for the whole book (on SQLite straight from the driver, dates
and JSON decoded here), the dates and cut-offs that depend only on as_of are computed once,
every due and paid date string is parsed once for the book, and the one-account helpers run on
plain tuples. `names` limits the work to the features a model scores.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.risk.features import (
    _NO_ANSWER,
    _SUCCESS,
    ORDER_FEATURES,
    FeatureOptions,
    FeatureValue,
    _contacts_features,
    _cue_features,
    _day,
    _iso,
    _support_features,
    link_cue_refs,
)
from pipeline.store import Call, Contact, CrmEvent, Cue


class _Event:
    """A CRM event as the one-account helpers read it (kind, occurred_on, amount, attributes)."""

    __slots__ = ("kind", "occurred_on", "amount", "attributes")

    def __init__(self, kind, occurred_on, amount, attributes):
        self.kind, self.occurred_on, self.amount, self.attributes = kind, occurred_on, amount, attributes


@dataclass
class BookRows:
    """One account's rows, split by kind: orders as (date, amount, attributes), activities and
    support cases as events, calls as call_id -> day, contacts and cues as store rows."""

    orders: list = field(default_factory=list)
    activities: list = field(default_factory=list)
    cases: list = field(default_factory=list)
    call_day: dict = field(default_factory=dict)
    contacts: list = field(default_factory=list)
    cues: list = field(default_factory=list)


def _events_sqlite(conn, as_of: date, chunk: int = 50_000):
    """Chunks of (account_id, kind, occurred_on, amount, attributes) of crm_events up to as_of,
    in id order, straight from the SQLite driver (SQLAlchemy stores a date as YYYY-MM-DD and
    JSON as its text): each day string is parsed once, the JSON of a chunk decoded as one array."""
    days: dict[str, date] = {}
    cur = conn.connection.cursor()
    try:
        cur.execute("SELECT account_id, kind, occurred_on, amount, attributes FROM crm_events "
                    "WHERE occurred_on <= ? ORDER BY id", (as_of.isoformat(),))
        while rows := cur.fetchmany(chunk):
            attrs = json.loads("[" + ",".join("null" if r[4] is None else r[4] for r in rows) + "]")
            for on in {r[2] for r in rows} - days.keys():
                days[on] = date.fromisoformat(on[:10])
            yield [(acc, kind, days[on], amount, a) for (acc, kind, on, amount, _), a in zip(rows, attrs)]
    finally:
        cur.close()


def _events_core(conn, as_of: date):
    q = (select(CrmEvent.account_id, CrmEvent.kind, CrmEvent.occurred_on, CrmEvent.amount, CrmEvent.attributes)
         .where(CrmEvent.occurred_on <= as_of).order_by(CrmEvent.id))
    yield from conn.execute(q).partitions(50_000)


def _on(e):
    return e.occurred_on


def _first(t):
    return t[0]


def load_book(session: Session, account_ids, as_of: date) -> dict[str, BookRows]:
    """The rows of every account in `account_ids`, one query per table, in the order
    `compute_features` reads them (events by date then id; calls, contacts and cues by id)."""
    wanted = set(account_ids)
    out = {a: BookRows() for a in wanted}
    session.flush()  # what compute_features would see (its queries autoflush)
    conn = session.connection()
    chunks = _events_sqlite(conn, as_of) if conn.dialect.name == "sqlite" else _events_core(conn, as_of)
    get = out.get
    for chunk in chunks:
        for acc, kind, on, amount, attrs in chunk:
            rows = get(acc)
            if rows is None:
                continue
            if kind == "order":
                rows.orders.append((on, float(amount or 0.0), attrs or {}))
            elif kind == "activity":
                rows.activities.append(_Event(kind, on, amount, attrs))
            elif kind == "support":
                rows.cases.append(_Event(kind, on, amount, attrs))
    for rows in out.values():  # id order -> (date, id) order (sorts are stable)
        if len(rows.orders) > 1:
            rows.orders.sort(key=_first)
        if len(rows.activities) > 1:
            rows.activities.sort(key=_on)
        if len(rows.cases) > 1:
            rows.cases.sort(key=_on)
    calls = {}
    q = (select(Call.account_id, Call.id, Call.call_date, Call.created_at)
         .where(Call.account_id.is_not(None)).order_by(Call.id))
    for acc, cid, cd, ca in conn.execute(q):
        if acc in wanted:
            out[acc].call_day[cid] = _day(cd) or _day(ca)
            calls[cid] = acc
    q = select(Contact.account_id, Contact.name, Contact.role, Contact.added_on).order_by(Contact.id)
    for r in conn.execute(q):
        rows = out.get(r.account_id)
        if rows is not None:
            rows.contacts.append(r)
    if calls:
        q = (select(Cue.call_id, Cue.segment_id, Cue.label, Cue.quote, Cue.rule_name, Cue.rule_version)
             .order_by(Cue.call_id, Cue.id))
        for r in conn.execute(q):
            acc = calls.get(r.call_id)
            if acc is not None:
                out[acc].cues.append(r)
    return out


class _Book:
    """What depends only on as_of and the options: cut-off dates, patterns, parsed date strings."""

    def __init__(self, as_of: date, o: FeatureOptions):
        self.as_of, self.o = as_of, o
        self.freq_lo = as_of - timedelta(days=o.frequency_window_days)
        w = timedelta(days=o.trend_window_days)
        self.trend_now, self.trend_lo = as_of - w, as_of - 2 * w
        self.credit_lo = as_of - timedelta(days=o.credit_window_days)
        self.late_lo = as_of - timedelta(days=o.late_window_days)
        self.grace = timedelta(days=o.late_grace_days)
        self.dates: dict[str, date] = {}
        # the features of an account without support cases, or without cues (copied per account)
        self.no_cases = _support_features([], as_of, o)
        self.no_cues = _cue_features([], as_of, o)

    def day(self, text: str) -> date:
        d = self.dates.get(text)
        if d is None:
            d = self.dates[text] = date.fromisoformat(text)
        return d


def _order_ev(o):
    e = {"kind": "order", "date": _iso(o[0]), "amount": o[1]}
    if o[2].get("invoice_id"):
        e["invoice_id"] = o[2]["invoice_id"]
    return e


def _median(data: list[int]):
    """statistics.median (the same result and type: an int for an odd count), without its checks."""
    data = sorted(data)
    n = len(data)
    if n % 2 == 1:
        return data[n // 2]
    i = n // 2
    return (data[i - 1] + data[i]) / 2


def _orders(b: _Book, orders, names) -> list[FeatureValue]:
    """pipeline.risk.features.order_features for rows on or before as_of (the same definitions)."""
    o, as_of = b.o, b.as_of
    rows = sorted(orders, key=lambda r: r[0])
    pos = [r for r in rows if r[1] > 0]
    out = []
    if pos:
        last = pos[-1][0]
        if "days_since_last_order" in names:
            out.append(FeatureValue("days_since_last_order", float(min((as_of - last).days, o.max_days)),
                                    [_order_ev(pos[-1])], f"last order {_iso(last)}"))
        if "tenure_days" in names:
            out.append(FeatureValue("tenure_days", float((as_of - pos[0][0]).days), [_order_ev(pos[0])],
                                    f"first order {_iso(pos[0][0])}"))
    else:
        if "days_since_last_order" in names:
            out.append(FeatureValue("days_since_last_order", float(o.max_days), [], "no order yet"))
        if "tenure_days" in names:
            out.append(FeatureValue("tenure_days", 0.0, [], "no order yet"))
    if "orders_365" in names or "order_value_365" in names:
        recent = [r for r in pos if r[0] > b.freq_lo]
        if "orders_365" in names:
            out.append(FeatureValue("orders_365", float(len(recent)), [_order_ev(r) for r in recent[-5:]],
                                    f"{len(recent)} orders in {o.frequency_window_days} days"))
        if "order_value_365" in names:
            value = sum(r[1] for r in recent)
            out.append(FeatureValue("order_value_365", float(value), [_order_ev(r) for r in recent[-5:]],
                                    f"ordered {value:,.2f} in {o.frequency_window_days} days"))
    if "order_value_trend" in names:
        w = o.trend_window_days
        now = [r for r in pos if r[0] > b.trend_now]
        before = [r for r in pos if b.trend_lo < r[0] <= b.trend_now]
        rv, pv = sum(r[1] for r in now), sum(r[1] for r in before)
        out.append(FeatureValue("order_value_trend", float((rv - pv) / (rv + pv)) if rv + pv > 0 else 0.0,
                                [_order_ev(r) for r in before + now][-8:],
                                f"{rv:,.2f} in the last {w} days vs {pv:,.2f} in the {w} before"))
    if "order_cadence" in names:
        days_set = sorted({r[0] for r in pos})
        if len(days_set) >= 2:
            gap = _median([(y - x).days for x, y in zip(days_set, days_set[1:])])
            since = (as_of - days_set[-1]).days
            out.append(FeatureValue("order_cadence", float(since / gap),
                                    [{"kind": "order", "date": _iso(d)} for d in days_set[-5:]],
                                    f"{since} days since the last order against a usual gap of {gap:g} days"))
        else:
            out.append(FeatureValue("order_cadence", None, [], "fewer than two orders: no usual interval"))
    if "credit_notes_180" in names:
        credits = [r for r in rows if r[1] < 0 and r[0] > b.credit_lo]
        out.append(FeatureValue("credit_notes_180", float(len(credits)),
                                [{**_order_ev(r), "units": 1.0} for r in credits],
                                f"{len(credits)} credit notes in {o.credit_window_days} days"))
    return out


def _late(b: _Book, orders) -> FeatureValue:
    """pipeline.risk.features._late_payments (the same rule), with date strings parsed once."""
    as_of, late = b.as_of, []
    for when, amount, attrs in orders:
        due = attrs.get("due_date")
        if amount <= 0 or not due:
            continue
        due = b.day(due)
        if not (b.late_lo < due <= as_of):
            continue
        paid = attrs.get("paid_date")
        paid = b.day(paid) if paid else None
        if paid is not None and paid > as_of:
            paid = None
        deadline = due + b.grace
        if (paid is not None and paid > deadline) or (paid is None and as_of > deadline):
            late.append({"kind": "invoice", "invoice_id": attrs.get("invoice_id"), "due": _iso(due),
                         "paid": _iso(paid) if paid else None, "amount": amount, "units": 1.0})
    return FeatureValue("late_payments_365", float(len(late)), late,
                        f"{len(late)} invoices paid late or unpaid past due")


def _contact(b: _Book, activities, call_days) -> list[FeatureValue]:
    """pipeline.risk.features._contact_features (the same rule)."""
    as_of, o = b.as_of, b.o
    touches = []
    for ev in activities:
        a = ev.attributes or {}
        outcome = a.get("outcome")
        reached = outcome in _SUCCESS or a.get("direction") == "inbound"
        if reached or outcome in _NO_ANSWER:
            touches.append((ev.occurred_on, reached, {"kind": a.get("type") or "activity",
                            "date": _iso(ev.occurred_on), "outcome": outcome, "direction": a.get("direction")}))
    touches += [(d, True, {"kind": "call", "date": _iso(d)}) for d in call_days]
    touches.sort(key=lambda t: (t[0], t[1]))
    last = None
    for t in reversed(touches):
        if t[1]:
            last = t
            break
    if last is not None:
        since = FeatureValue("days_since_last_contact", float(min((as_of - last[0]).days, o.max_days)), [last[2]],
                             f"last reached {_iso(last[0])}")
    else:
        since = FeatureValue("days_since_last_contact", None, [], "no contact on record")
    streak = []
    for t in reversed(touches):
        if t[1]:
            break
        streak.append(t[2])
    return [since, FeatureValue("unanswered_streak", float(len(streak)), streak,
                                f"{len(streak)} outreach attempts in a row without an answer")]


def _fresh(feats: list[FeatureValue]) -> list[FeatureValue]:
    return [FeatureValue(f.name, f.value, [], f.note) for f in feats]


def account_features(b: _Book, rows: BookRows, names) -> dict[str, FeatureValue]:
    """Every feature in `names` of one account (rows up to as_of), as `features_from_rows`."""
    as_of, o = b.as_of, b.o
    feats = _orders(b, rows.orders, names)
    late = _late(b, rows.orders)
    feats.append(late)
    call_days = [d for d in rows.call_day.values() if d and d <= as_of]
    feats += _contact(b, rows.activities, call_days)
    # no case, or no cue: the same zero features for every such account (built once per book)
    feats += _support_features(rows.cases, as_of, o) if rows.cases else _fresh(b.no_cases)
    feats += _contacts_features(rows.contacts, as_of, o)
    cues = [(c, rows.call_day[c.call_id]) for c in rows.cues
            if rows.call_day.get(c.call_id) and rows.call_day[c.call_id] <= as_of]
    cue_feats = _cue_features(cues, as_of, o) if cues else _fresh(b.no_cues)
    if any(fv.evidence for fv in cue_feats):
        link_cue_refs(cue_feats, rows.orders, rows.cases, rows.contacts, as_of,
                      {e.get("invoice_id") for e in late.evidence}, o)
    feats += cue_feats
    return {f.name: f for f in feats}


def book_features(book: dict[str, BookRows], as_of: date, options: FeatureOptions,
                  names=None) -> dict[str, dict[str, FeatureValue]]:
    """Features of every account of `book` (from `load_book`): account -> {name: FeatureValue}.
    `names`: the order features to compute (default all of ORDER_FEATURES; the others are cheap
    and always there)."""
    want = frozenset(ORDER_FEATURES if names is None else names)
    b = _Book(as_of, options)
    return {acc: account_features(b, rows, want) for acc, rows in book.items()}
