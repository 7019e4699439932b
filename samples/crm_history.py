"""Two years of CRM history (2024-11-01 .. as-of) for ~40 accounts with known outcomes.

Each account follows a health curve (1 = healthy, 0 = gone) that drives everything else: order
size and spacing, late payments, credit notes, support cases and their priority, unanswered
outreach, new contacts. Lost accounts mostly decline for months before `lost_on`; two churn
suddenly while looking fine; some kept accounts dip and recover; the four call accounts follow
their calls. The same seed gives byte-identical CSVs.
"""

from __future__ import annotations

import csv
import re
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from world import ACCOUNTS_FIXED, CALL_CONTACTS, CALLS, REPS

WINDOW_START = date(2024, 11, 1)
N_ACCOUNTS = 40
N_LOST = 9  # of the 36 accounts without calls: ~22% of all accounts
N_SUDDEN = 2  # lost accounts that show no decline
N_WOBBLY = 5  # kept accounts that dip (and mostly recover)

HEADERS = {
    "accounts": ["account_id", "name", "segment", "rep", "created", "status", "lost_on"],
    "orders": ["account_id", "date", "amount", "invoice_id", "due_date", "paid_date"],
    "activities": ["account_id", "date", "type", "direction", "outcome", "rep"],
    "contacts": ["account_id", "name", "email", "role", "added"],
    "support": ["account_id", "case_id", "opened", "closed", "priority", "subject"],
}

PLACES = [
    "Amberly",
    "Bramble",
    "Cobalt",
    "Dunmore",
    "Elmstead",
    "Fairhaven",
    "Glenrock",
    "Hollis",
    "Ironbridge",
    "Juniper",
    "Kingsley",
    "Larkspur",
    "Meadowvale",
    "Northcote",
    "Oakridge",
    "Pinecrest",
    "Redfern",
    "Silverbirch",
    "Thornbury",
    "Upland",
    "Westbrook",
    "Yarrow",
    "Ashcombe",
    "Blackwood",
    "Copperfield",
    "Driftwood",
    "Eastleigh",
    "Foxglove",
    "Greystone",
    "Harrowgate",
    "Kilnsea",
    "Lowther",
    "Marlow",
    "Netherby",
    "Orchard Lane",
    "Wrenfield",
]
KINDS = {
    "SMB": [
        "Dental",
        "Bakery",
        "Veterinary Clinic",
        "Florists",
        "Physio",
        "Opticians",
        "Print Shop",
        "Cafe",
    ],
    "Mid-Market": [
        "Foods",
        "Logistics",
        "Hotels",
        "Care Homes",
        "Engineering",
        "Clinics",
        "Builders",
        "Laboratories",
    ],
    "Enterprise": ["Group", "Holdings", "Manufacturing", "Health", "Retail Group"],
}
FIRST = [
    "Alice",
    "Ben",
    "Carla",
    "David",
    "Elena",
    "Farid",
    "Grace",
    "Hugo",
    "Imogen",
    "Jack",
    "Kira",
    "Liam",
    "Mona",
    "Nikhil",
    "Olga",
    "Paul",
    "Rosa",
    "Sam",
    "Tara",
    "Umar",
    "Vera",
    "Will",
    "Yusuf",
    "Zoe",
    "Chloe",
    "Martin",
    "Ines",
    "Robert",
]
LAST = [
    "Adams",
    "Baker",
    "Castillo",
    "Doyle",
    "Evans",
    "Fischer",
    "Gray",
    "Hughes",
    "Iqbal",
    "Jensen",
    "Kowalski",
    "Lopez",
    "Moreau",
    "Nolan",
    "Ortiz",
    "Price",
    "Reyes",
    "Shaw",
    "Turner",
    "Varga",
    "Walsh",
    "Young",
    "Brennan",
    "Marsh",
]
ROLES = [
    "Owner",
    "Operations Manager",
    "Purchasing Lead",
    "Finance Manager",
    "Office Manager",
    "Practice Manager",
    "Facilities Manager",
]
NEW_ROLES = [
    "Head of Procurement",
    "Finance Director",
    "Interim Operations Director",
    "Group Purchasing Manager",
]
SUBJECTS = [
    "Late delivery",
    "Damaged goods on arrival",
    "Wrong item shipped",
    "Portal login problem",
    "Invoice question",
    "Missing items in order",
    "Order portal slow",
    "Request for product documentation",
    "Change of delivery address",
    "Repeat delivery failure",
]
SEGMENT = {  # median order value, mean days between orders, payment terms, support cases/month
    "SMB": (1200.0, 30, 30, 0.10),
    "Mid-Market": (5200.0, 21, 30, 0.16),
    "Enterprise": (21000.0, 14, 45, 0.25),
}


def _d(s: str) -> date:
    return date.fromisoformat(s)


def _health_curve(points: list[tuple[date, float]]):
    xs = np.array([p[0].toordinal() for p in points], dtype=float)
    ys = np.array([p[1] for p in points], dtype=float)
    return lambda day: float(np.interp(day.toordinal(), xs, ys))


def _plan_accounts(rng: np.random.Generator, as_of: date) -> list[dict]:
    """The 40 accounts: 4 fixed by the calls, 36 drawn with a profile each."""
    ids = [f"ACC-{1001 + i}" for i in range(N_ACCOUNTS)]
    free = [a for a in ids if a not in ACCOUNTS_FIXED]
    profiles = ["lost"] * (N_LOST - N_SUDDEN) + ["sudden"] * N_SUDDEN + ["wobbly"] * N_WOBBLY
    profiles += ["kept"] * (len(free) - len(profiles))
    profiles = list(rng.permutation(profiles))
    places = list(rng.permutation(PLACES))
    reps = [sorted(REPS)[i % len(REPS)] for i in rng.permutation(len(free))]
    accounts = []
    for acc_id in ids:
        if acc_id in ACCOUNTS_FIXED:
            accounts.append({"account_id": acc_id, **ACCOUNTS_FIXED[acc_id]})
            continue
        profile = profiles.pop()
        segment = str(rng.choice(list(SEGMENT), p=[0.5, 0.35, 0.15]))
        name = f"{places.pop()} {rng.choice(KINDS[segment])}"
        if rng.random() < 0.12:  # a few accounts won during the window
            created = WINDOW_START + timedelta(days=int(rng.integers(30, 300)))
        else:
            created = date(2018, 1, 1) + timedelta(days=int(rng.integers(0, 2300)))
        accounts.append(
            {
                "account_id": acc_id,
                "name": name,
                "segment": segment,
                "rep": reps.pop(),
                "created": created.isoformat(),
                "profile": profile,
            }
        )
    for acc in accounts:
        acc["curve"], acc["lost_on"] = _curve_for(acc, rng, as_of)
    return accounts


def _curve_for(acc: dict, rng: np.random.Generator, as_of: date):
    start = max(_d(acc["created"]), WINDOW_START)
    p = acc["profile"]
    if p in ("lost", "sudden"):
        lost_on = start + timedelta(
            days=int(rng.integers(200, max(201, (as_of - start).days - 30)))
        )
        if p == "sudden":
            return _health_curve(
                [(start, 1.0), (lost_on - timedelta(days=20), 0.95), (lost_on, 0.8)]
            ), lost_on
        decline = timedelta(days=int(rng.integers(110, 260)))
        floor = float(rng.uniform(0.05, 0.3))
        return _health_curve(
            [(start, 1.0), (lost_on - decline, float(rng.uniform(0.85, 1.0))), (lost_on, floor)]
        ), lost_on
    if p == "wobbly":
        lo = start.toordinal() + 60
        mid = date.fromordinal(int(rng.integers(lo, as_of.toordinal() - 20)))
        width = timedelta(days=int(rng.integers(50, 120)))
        return _health_curve(
            [
                (start, 1.0),
                (mid - width, 1.0),
                (mid, float(rng.uniform(0.25, 0.5))),
                (mid + width, float(rng.uniform(0.7, 1.0))),
            ]
        ), None
    if p == "at_risk_kestrel":
        return _health_curve([(start, 1.0), (_d("2026-04-20"), 0.95), (as_of, 0.3)]), None
    if p == "at_risk_alder":
        return _health_curve(
            [(start, 1.0), (_d("2026-06-01"), 1.0), (_d("2026-08-01"), 0.55), (as_of, 0.25)]
        ), None
    return _health_curve(
        [(start, float(rng.uniform(0.85, 1.0))), (as_of, float(rng.uniform(0.85, 1.0)))]
    ), None


def _orders(acc, rng, end, as_of):
    value, every, terms, _ = SEGMENT[acc["segment"]]
    value *= float(rng.lognormal(0, 0.35))
    growth = 0.25 if acc["profile"] == "growing_brightwell" else float(rng.normal(0.05, 0.08))
    start = max(_d(acc["created"]), WINDOW_START)
    rows, day = [], start + timedelta(days=int(rng.integers(1, every)))
    while day <= end:
        h = acc["curve"](day)
        years = (day - WINDOW_START).days / 365.25
        amount = value * (1 + growth) ** years * (0.3 + 0.7 * h) * float(rng.lognormal(0, 0.22))
        if acc["profile"] == "growing_brightwell" and day >= _d("2026-08-01"):
            amount *= 1.3  # the new Leeds site
        due = day + timedelta(days=terms)
        late = rng.random() < 0.08 + 0.6 * (1 - h)
        paid = (
            due + timedelta(days=int(rng.integers(3, 15 + int(55 * (1 - h)))))
            if late
            else due - timedelta(days=int(rng.integers(0, min(terms, 25))))
        )
        if late and acc["lost_on"] and rng.random() < 0.5 * (1 - h):
            paid = None  # written off after they left
        rows.append([day, round(amount, 2), "INV", due, paid])
        if rng.random() < 0.02 + 0.1 * (1 - h):  # a credit note for a disputed part
            cn_day = day + timedelta(days=int(rng.integers(4, 25)))
            if cn_day <= end:
                rows.append(
                    [cn_day, -round(amount * float(rng.uniform(0.1, 0.4)), 2), "CN", cn_day, cn_day]
                )
        gap = every * (1 + 1.6 * (1 - h)) * float(rng.uniform(0.7, 1.3))
        day += timedelta(days=max(3, round(gap)))
    return rows


def _activities(acc, rng, end, as_of):
    seg = acc["segment"]
    start = max(_d(acc["created"]), WINDOW_START)
    rows, day = [], start + timedelta(days=int(rng.integers(1, 10)))
    every = {"SMB": 20, "Mid-Market": 14, "Enterprise": 9}[seg]
    while day <= end:
        h = acc["curve"](day)
        r = rng.random()
        kind = (
            "meeting"
            if (r < 0.12 and seg != "SMB" and h > 0.5)
            else ("call" if r < 0.45 else "email")
        )
        miss = rng.random() < 0.15 + 0.65 * (1 - h)
        outcome = {
            "meeting": "held",
            "call": "unanswered" if miss else "answered",
            "email": "no_reply" if miss else "replied",
        }[kind]
        rows.append([day, kind, "outbound", outcome])
        if rng.random() < 0.45 * h:  # the customer gets in touch
            inbound_day = day + timedelta(days=int(rng.integers(1, every)))
            if inbound_day <= end:
                kind = "call" if rng.random() < 0.4 else "email"
                rows.append(
                    [inbound_day, kind, "inbound", "answered" if kind == "call" else "replied"]
                )
        day += timedelta(days=max(2, round(every * float(rng.uniform(0.6, 1.4)))))
    if acc["lost_on"]:  # a win-back attempt or two that nobody answers
        for k in range(int(rng.integers(0, 3))):
            d = acc["lost_on"] + timedelta(days=int(rng.integers(10, 60)) + 30 * k)
            if d <= as_of:
                rows.append([d, "email", "outbound", "no_reply"])
    return rows


def _support(acc, rng, end, as_of):
    seg_rate = SEGMENT[acc["segment"]][3]
    start = max(_d(acc["created"]), WINDOW_START)
    rows, day = [], start
    while True:
        h = acc["curve"](day)
        rate = seg_rate * (1 + 3.5 * (1 - h)) / 30.0
        day += timedelta(days=int(rng.exponential(1 / rate)) + 1)
        if day > end:
            return rows
        h = acc["curve"](day)
        pri = str(
            rng.choice(
                ["low", "normal", "high", "urgent"],
                p=_norm([0.3 * h + 0.05, 0.5, 0.15 + 0.35 * (1 - h), 0.02 + 0.2 * (1 - h)]),
            )
        )
        closed = day + timedelta(days=int(rng.exponential(2 + 20 * (1 - h))) + 1)
        rows.append(
            [day, closed if closed <= min(end, as_of) else None, pri, str(rng.choice(SUBJECTS))]
        )


def _norm(p):
    p = np.array(p, dtype=float)
    return p / p.sum()


def _person(rng, used: set[str]) -> str:
    while True:
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        if name not in used:
            used.add(name)
            return name


def _contacts(acc, rng, used):
    slug = re.sub(r"[^a-z0-9]+", "-", acc["name"].lower().removesuffix(" gmbh")).strip("-")
    domain = f"{slug}.example.com"
    out = []
    if acc["account_id"] in CALL_CONTACTS:
        people = [(n, r, _d(a)) for n, r, a in CALL_CONTACTS[acc["account_id"]]]
        used.update(n for n, _, _ in people)
    else:
        n = {"SMB": 1, "Mid-Market": 2, "Enterprise": 3}[acc["segment"]] + int(rng.integers(0, 2))
        roles = list(rng.permutation(ROLES))
        people = [(_person(rng, used), roles[i], _d(acc["created"])) for i in range(n)]
        start = max(_d(acc["created"]), WINDOW_START)
        if acc["lost_on"] and acc["profile"] == "lost":  # a new decision maker before they leave
            when = acc["lost_on"] - timedelta(days=int(rng.integers(20, 130)))
            people.append((_person(rng, used), str(rng.choice(NEW_ROLES)), max(when, start)))
        elif rng.random() < (0.5 if acc["profile"] == "wobbly" else 0.2):  # ordinary turnover
            when = start + timedelta(days=int(rng.integers(30, 700)))
            if when <= (acc["lost_on"] or date.max):
                people.append((_person(rng, used), str(rng.choice(ROLES)), when))
    for name, role, added in people:
        email = f"{name.lower().replace(' ', '.')}@{domain}"
        out.append([name, email, role, added])
    return out


def _fit_calls(acc, orders, activities, support, as_of):
    """Make the call accounts' history say what their calls say."""
    acc_id = acc["account_id"]
    for call in CALLS:
        if call["account_id"] == acc_id:
            activities.append([_d(call["date"]), "call", "outbound", "answered"])
    sept = [o for o in orders if o[2] == "INV" and o[0].year == 2026 and o[0].month == 9]
    if acc_id in ("ACC-1003", "ACC-1018") and sept:  # "the September invoice will be late"
        sept[-1][4] = None
    if acc_id == "ACC-1003":
        orders.append([_d("2026-10-02"), 1840.0, "INV", _d("2026-11-01"), None])  # 40 boxes
        orders.append([_d("2026-10-28"), -690.0, "CN", _d("2026-10-28"), _d("2026-10-28")])
        support.append(
            [_d("2026-10-21"), _d("2026-10-28"), "normal", "Invoice does not match delivery"]
        )
    elif acc_id == "ACC-1007":
        support.append([_d("2026-08-12"), _d("2026-08-13"), "high", "Damaged goods on arrival"])
    elif acc_id == "ACC-1012":
        support.append([_d("2026-03-16"), _d("2026-04-02"), "normal", "Late delivery"])
        support.append([_d("2026-06-22"), _d("2026-07-20"), "high", "Portal login problem"])
        support.append([_d("2026-09-08"), _d("2026-11-03"), "high", "Scanner not working"])
    elif acc_id == "ACC-1018":
        support.append(
            [_d("2026-10-06"), _d("2026-10-07"), "normal", "Delivery of machine parts delayed"]
        )


def make_crm(out_dir: Path, seed: int, as_of: date) -> dict[str, int]:
    """Write accounts, orders, activities, contacts and support CSVs; returns row counts."""
    rng = np.random.default_rng([seed, 2])
    accounts = _plan_accounts(rng, as_of)
    tables = {k: [] for k in HEADERS}
    money, used_names = [], set(REPS)
    for acc in accounts:
        end = acc["lost_on"] or as_of
        orders = _orders(acc, rng, end, as_of)
        activities = _activities(acc, rng, end, as_of)
        support = _support(acc, rng, end, as_of)
        if acc["account_id"] in ACCOUNTS_FIXED:
            _fit_calls(acc, orders, activities, support, as_of)
        money += [[acc["account_id"], *o] for o in orders]
        for d, kind, direction, outcome in activities:
            tables["activities"].append(
                [acc["account_id"], d, kind, direction, outcome, acc["rep"]]
            )
        for name, email, role, added in _contacts(acc, rng, used_names):
            tables["contacts"].append([acc["account_id"], name, email, role, added])
        for opened, closed, pri, subject in support:
            tables["support"].append([acc["account_id"], opened, closed, pri, subject])
        tables["accounts"].append(
            [
                acc["account_id"],
                acc["name"],
                acc["segment"],
                acc["rep"],
                acc["created"],
                "lost" if acc["lost_on"] else "active",
                acc["lost_on"],
            ]
        )
    money.sort(key=lambda r: (r[1], r[0], r[3]))
    n = {"INV": 0, "CN": 0}
    for acc_id, day, amount, kind, due, paid in money:
        n[kind] += 1
        if paid is not None and paid > as_of:
            paid = None
        tables["orders"].append([acc_id, day, f"{amount:.2f}", f"{kind}-{n[kind]:05d}", due, paid])
    tables["contacts"].sort(key=lambda r: (r[0], r[4], r[1]))
    tables["activities"].sort(key=lambda r: (r[1], r[0]))
    tables["support"].sort(key=lambda r: (r[1], r[0]))
    tables["support"] = [[r[0], f"CS-{10001 + i}", *r[1:]] for i, r in enumerate(tables["support"])]
    for key, rows in tables.items():
        with (out_dir / f"{key}.csv").open("w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(HEADERS[key])
            for row in rows:
                w.writerow(
                    ["" if v is None else v.isoformat() if isinstance(v, date) else v for v in row]
                )
    return {k: len(v) for k, v in tables.items()}
