"""Features of a whole book of accounts at once: what `risk score` computes for every account.

    book = load_book(session, account_ids, as_of)          # a few SELECTs for all accounts
    feats = book_features(book, as_of, options)             # account -> {name: FeatureValue}

The values, evidence lists and notes equal those of `pipeline.risk.features.compute_features`
for one account, item for item (tests/test_risk_bulk.py checks it); what differs is how they are
reached: each table is read once for the whole book (on SQLite straight from the driver, dates
and JSON decoded here; events in the order compute_features reads them, so one account's rows
of one kind arrive together and are taken as slices), the dates and cut-offs that depend only
on as_of are computed once, every date is parsed and written out once for the book, the order
windows are found by bisection, evidence is built only for the items a feature keeps, and the
one-account helpers run on plain tuples. `names` limits the work to the features a model scores.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from bisect import bisect_right
from itertools import groupby
from operator import itemgetter, sub

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

_first, _second = itemgetter(0), itemgetter(1)
_POSITIVE = (0.0).__lt__  # amount > 0 (False for NaN, as the comparison)


class _Event:
    """A support case as the one-account helpers read it (kind, occurred_on, amount, attributes)."""

    __slots__ = ("kind", "occurred_on", "amount", "attributes")

    def __init__(self, kind, occurred_on, amount, attributes):
        self.kind, self.occurred_on, self.amount, self.attributes = kind, occurred_on, amount, attributes


@dataclass
class BookRows:
    """One account's rows, split by kind: orders as (date, amount, attributes), activities as
    (date, attributes), support cases as events, calls as call_id -> day, contacts and cues as
    store rows."""

    orders: list = field(default_factory=list)
    activities: list = field(default_factory=list)
    cases: list = field(default_factory=list)
    call_day: dict = field(default_factory=dict)
    contacts: list = field(default_factory=list)
    cues: list = field(default_factory=list)


# crm_events up to as_of in the order compute_features reads one account's events (kind, then
# occurred_on, then id), accounts one after the other: the index on (account_id, kind,
# occurred_on) gives this order without a sort, and each (account, kind) is one run of rows
_EVENTS_SQL = ("SELECT account_id, kind, occurred_on, amount, attributes FROM crm_events "
               "WHERE occurred_on <= ? AND account_id BETWEEN ? AND ? ORDER BY account_id, kind, occurred_on, id")


def _events_sqlite(conn, as_of: date, first: str, last: str, chunk: int = 50_000):
    """Chunks of crm_events columns (account_id, kind, occurred_on, amount, attributes) of the
    accounts from `first` to `last`, straight from the SQLite driver (SQLAlchemy stores a date as
    YYYY-MM-DD and JSON as its text): each day string is parsed once, the JSON of a chunk decoded
    as one array."""
    days: dict[str, date] = {}
    cur = conn.connection.cursor()
    try:
        cur.execute(_EVENTS_SQL, (as_of.isoformat(), first, last))
        while rows := cur.fetchmany(chunk):
            accs, kinds, ons, amounts, texts = zip(*rows)
            if None in texts:
                texts = ["null" if t is None else t for t in texts]
            attrs = json.loads("[" + ",".join(texts) + "]")
            for on in set(ons) - days.keys():
                days[on] = date.fromisoformat(on[:10])
            yield accs, kinds, list(map(days.__getitem__, ons)), amounts, attrs
    finally:
        cur.close()


def _events_core(conn, as_of: date):
    q = (select(CrmEvent.account_id, CrmEvent.kind, CrmEvent.occurred_on, CrmEvent.amount, CrmEvent.attributes)
         .where(CrmEvent.occurred_on <= as_of)
         .order_by(CrmEvent.account_id, CrmEvent.kind, CrmEvent.occurred_on, CrmEvent.id))
    for part in conn.execute(q).partitions(50_000):
        yield tuple(zip(*part))


def load_book(session: Session, account_ids, as_of: date) -> dict[str, BookRows]:
    """The rows of every account in `account_ids`, one query per table, in the order
    `compute_features` reads them (events by kind, date and id; calls, contacts and cues by id).
    Events are taken a run of one account's one kind at a time, as slices of the columns."""
    wanted = set(account_ids)
    out = {a: BookRows() for a in wanted}
    if not wanted:
        return out
    session.flush()  # what compute_features would see (its queries autoflush)
    conn = session.connection()
    sqlite = conn.dialect.name == "sqlite"
    # on SQLite, only the rows of the accounts from the first to the last id: the index starts with
    # the account, so half a book (pipeline.risk.two_processes) reads only its half. (SQLite orders
    # text as Python does; PostgreSQL's collation may not, so there every row is read.)
    first, last = min(wanted), max(wanted)
    chunks = _events_sqlite(conn, as_of, first, last) if sqlite else _events_core(conn, as_of)
    get = out.get
    for accs, kinds, ons, amounts, attrs in chunks:
        i = 0
        for (acc, kind), run in groupby(zip(accs, kinds)):
            j = i + len(list(run))
            rows = get(acc)
            if rows is not None:
                if kind == "order":
                    rows.orders += zip(ons[i:j], [float(a or 0.0) for a in amounts[i:j]],
                                       [a or {} for a in attrs[i:j]])
                elif kind == "activity":
                    rows.activities += zip(ons[i:j], attrs[i:j])
                elif kind == "support":
                    rows.cases += [_Event(kind, ons[k], amounts[k], attrs[k]) for k in range(i, j)]
            i = j
    for rows in out.values():  # as order_features: by date, stable (the same order unless a
        if len(rows.orders) > 1:  # stored day carries a time)
            rows.orders.sort(key=_first)
    calls = {}
    q = (select(Call.account_id, Call.id, Call.call_date, Call.created_at)
         .where(Call.account_id.is_not(None)).order_by(Call.id))
    for acc, cid, cd, ca in conn.execute(q):
        if acc in wanted:
            out[acc].call_day[cid] = _day(cd) or _day(ca)
            calls[cid] = acc
    q = select(Contact.account_id, Contact.name, Contact.role, Contact.added_on).order_by(Contact.id)
    if sqlite:
        q = q.where(Contact.account_id.between(first, last))
    for r in conn.execute(q):
        rows = get(r.account_id)
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


class _Days(dict):
    """date -> its ISO text, made once per day of the book (most evidence items carry a date)."""

    def __missing__(self, d):
        text = self[d] = _iso(d)
        return text


class _Texts(dict):
    """ISO text -> date, parsed once per text of the book (due and paid dates)."""

    def __missing__(self, text):
        d = self[text] = date.fromisoformat(text)
        return d


class _Ordinals(dict):
    """date -> its day number, once per day of the book: (y - x).days == n[y] - n[x]."""

    def __missing__(self, d):
        n = self[d] = d.toordinal()
        return n


class _Book:
    """What depends only on as_of and the options: cut-off dates, patterns, parsed date strings,
    and the features of an account without support cases, new contacts or cues (copied per
    account)."""

    def __init__(self, as_of: date, o: FeatureOptions):
        self.as_of, self.o = as_of, o
        w = timedelta(days=o.trend_window_days)
        self.trend_now, self.trend_lo = as_of - w, as_of - 2 * w
        self.credit_lo = as_of - timedelta(days=o.credit_window_days)
        self.freq_lo = as_of - timedelta(days=o.frequency_window_days)
        self.late_lo = as_of - timedelta(days=o.late_window_days)
        self.contacts_lo = as_of - timedelta(days=o.contacts_window_days)
        self.grace = timedelta(days=o.late_grace_days)
        self.iso, self.dates, self.ordinal = _Days(), _Texts(), _Ordinals()
        self.no_cases = _support_features([], as_of, o)
        self.no_contacts = _contacts_features([], as_of, o)
        self.no_cues = _cue_features([], as_of, o)


def _order_ev(o, iso):
    e = {"kind": "order", "date": iso[o[0]], "amount": o[1]}
    invoice = o[2].get("invoice_id")
    if invoice:
        e["invoice_id"] = invoice
    return e


def _median(data: list[int]):
    """statistics.median (the same result and type: an int for an odd count), without its checks."""
    data = sorted(data)
    n = len(data)
    if n % 2 == 1:
        return data[n // 2]
    i = n // 2
    return (data[i - 1] + data[i]) / 2


def _orders(b: _Book, rows, names) -> list[FeatureValue]:
    """pipeline.risk.features.order_features for rows on or before as_of, sorted by date (as
    load_book leaves them): the same definitions, with the windows found by bisection and the
    day gaps taken from day numbers, so that little runs a Python step per order (the order
    features were a quarter of scoring 100,000 accounts)."""
    o, as_of, iso = b.o, b.as_of, b.iso
    pos = rows if all(map(_POSITIVE, map(_second, rows))) else [r for r in rows if r[1] > 0]
    out = []
    if pos:
        last = pos[-1][0]
        if "days_since_last_order" in names:
            out.append(FeatureValue("days_since_last_order", float(min((as_of - last).days, o.max_days)),
                                    [_order_ev(pos[-1], iso)], f"last order {iso[last]}"))
        if "tenure_days" in names:
            out.append(FeatureValue("tenure_days", float((as_of - pos[0][0]).days), [_order_ev(pos[0], iso)],
                                    f"first order {iso[pos[0][0]]}"))
    else:
        if "days_since_last_order" in names:
            out.append(FeatureValue("days_since_last_order", float(o.max_days), [], "no order yet"))
        if "tenure_days" in names:
            out.append(FeatureValue("tenure_days", 0.0, [], "no order yet"))
    if "orders_365" in names or "order_value_365" in names:
        recent = pos[bisect_right(pos, b.freq_lo, key=_first):]
        if "orders_365" in names:
            out.append(FeatureValue("orders_365", float(len(recent)), [_order_ev(r, iso) for r in recent[-5:]],
                                    f"{len(recent)} orders in {o.frequency_window_days} days"))
        if "order_value_365" in names:
            value = sum(map(_second, recent))
            out.append(FeatureValue("order_value_365", float(value), [_order_ev(r, iso) for r in recent[-5:]],
                                    f"ordered {value:,.2f} in {o.frequency_window_days} days"))
    if "order_value_trend" in names:
        w = o.trend_window_days
        split = bisect_right(pos, b.trend_now, key=_first)
        before, now = pos[bisect_right(pos, b.trend_lo, 0, split, key=_first):split], pos[split:]
        rv, pv = sum(map(_second, now)), sum(map(_second, before))
        out.append(FeatureValue("order_value_trend", float((rv - pv) / (rv + pv)) if rv + pv > 0 else 0.0,
                                [_order_ev(r, iso) for r in (before + now)[-8:]],
                                f"{rv:,.2f} in the last {w} days vs {pv:,.2f} in the {w} before"))
    if "order_cadence" in names:
        days_set = list(dict.fromkeys(map(_first, pos)))  # pos is sorted by date
        if len(days_set) >= 2:
            n = list(map(b.ordinal.__getitem__, days_set))
            gap = _median(list(map(sub, n[1:], n)))
            since = (as_of - days_set[-1]).days
            out.append(FeatureValue("order_cadence", float(since / gap),
                                    [{"kind": "order", "date": iso[d]} for d in days_set[-5:]],
                                    f"{since} days since the last order against a usual gap of {gap:g} days"))
        else:
            out.append(FeatureValue("order_cadence", None, [], "fewer than two orders: no usual interval"))
    if "credit_notes_180" in names:
        credits = [r for r in rows[bisect_right(rows, b.credit_lo, key=_first):] if r[1] < 0]
        out.append(FeatureValue("credit_notes_180", float(len(credits)),
                                [{**_order_ev(r, iso), "units": 1.0} for r in credits],
                                f"{len(credits)} credit notes in {o.credit_window_days} days"))
    return out


def _late(b: _Book, orders) -> FeatureValue:
    """pipeline.risk.features._late_payments (the same rule), with date strings parsed once."""
    as_of, lo, grace, day, iso, late = b.as_of, b.late_lo, b.grace, b.dates, b.iso, []
    for _, amount, attrs in orders:
        if amount <= 0:
            continue
        due = attrs.get("due_date")
        if not due:
            continue
        due = day[due]
        if not (lo < due <= as_of):
            continue
        paid = attrs.get("paid_date")
        paid = day[paid] if paid else None
        if paid is not None and paid > as_of:
            paid = None
        deadline = due + grace
        if (paid is not None and paid > deadline) or (paid is None and as_of > deadline):
            late.append({"kind": "invoice", "invoice_id": attrs.get("invoice_id"), "due": iso[due],
                         "paid": iso[paid] if paid else None, "amount": amount, "units": 1.0})
    return FeatureValue("late_payments_365", float(len(late)), late,
                        f"{len(late)} invoices paid late or unpaid past due")


def _touch_ev(t, iso):
    a = t[2]
    if a is None:
        return {"kind": "call", "date": iso[t[0]]}
    return {"kind": a.get("type") or "activity", "date": iso[t[0]], "outcome": a.get("outcome"),
            "direction": a.get("direction")}


_touch_order = itemgetter(0, 1)


def _contact(b: _Book, activities, call_days) -> list[FeatureValue]:
    """pipeline.risk.features._contact_features (the same rule) on (date, attributes) rows; the
    evidence of a touch is built only where a feature shows it."""
    as_of, o, iso = b.as_of, b.o, b.iso
    touches = []  # (date, reached?, attributes; None for a call)
    for on, a in activities:
        a = a or {}
        outcome = a.get("outcome")
        reached = outcome in _SUCCESS or a.get("direction") == "inbound"
        if reached or outcome in _NO_ANSWER:
            touches.append((on, reached, a))
    touches += [(d, True, None) for d in call_days]
    touches.sort(key=_touch_order)
    last = None
    for t in reversed(touches):
        if t[1]:
            last = t
            break
    if last is not None:
        since = FeatureValue("days_since_last_contact", float(min((as_of - last[0]).days, o.max_days)),
                             [_touch_ev(last, iso)], f"last reached {iso[last[0]]}")
    else:
        since = FeatureValue("days_since_last_contact", None, [], "no contact on record")
    streak = []
    for t in reversed(touches):
        if t[1]:
            break
        streak.append(_touch_ev(t, iso))
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
    call_days = [d for d in rows.call_day.values() if d and d <= as_of] if rows.call_day else []
    feats += _contact(b, rows.activities, call_days)
    # no case, no new contact or no cue: the same zero features for every such account
    feats += _support_features(rows.cases, as_of, o) if rows.cases else _fresh(b.no_cases)
    lo = b.contacts_lo
    if any(c.added_on is not None and lo < c.added_on <= as_of for c in rows.contacts):
        feats += _contacts_features(rows.contacts, as_of, o)
    else:
        feats += _fresh(b.no_contacts)
    cues = [(c, rows.call_day[c.call_id]) for c in rows.cues
            if rows.call_day.get(c.call_id) and rows.call_day[c.call_id] <= as_of] if rows.cues else None
    cue_feats = _cue_features(cues, as_of, o) if cues else _fresh(b.no_cues)
    if any(fv.evidence for fv in cue_feats):
        link_cue_refs(cue_feats, rows.orders, rows.cases, rows.contacts, as_of,
                      {e.get("invoice_id") for e in late.evidence}, o)
    feats += cue_feats
    return {f.name: f for f in feats}


def iter_book_features(book: dict[str, BookRows], account_ids, as_of: date, options: FeatureOptions,
                       names=None):
    """(account, {name: FeatureValue}) for each of `account_ids` in `book` (from `load_book`),
    one at a time, each account's rows dropped from `book` once its features are made (so the
    caller can score and forget them). `names`: the order features to compute (default all of
    ORDER_FEATURES; the others are cheap and always there)."""
    want = frozenset(ORDER_FEATURES if names is None else names)
    b = _Book(as_of, options)
    for acc in account_ids:
        yield acc, account_features(b, book.pop(acc), want)


def book_features(book: dict[str, BookRows], as_of: date, options: FeatureOptions,
                  names=None) -> dict[str, dict[str, FeatureValue]]:
    """Features of every account of `book` (from `load_book`): account -> {name: FeatureValue}.
    `names`: the order features to compute (default all of ORDER_FEATURES; the others are cheap
    and always there)."""
    return dict(iter_book_features(dict(book), list(book), as_of, options, names))
