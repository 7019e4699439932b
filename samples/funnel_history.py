"""The sample world's sales funnel: opportunity stage histories and leads, with a known story.

Every rep moves deals through Salesforce's standard stages at about the same rates, except
WEAK_REP, who loses most deals at WEAK_STAGE (the proposal): the funnel tests recover that.
BUSY_REP takes on about three times the leads of the others and leaves half of his prospects
sitting in Prospecting, where they stall (too busy to follow up). New-business deals come from
converted leads and sit on prospect accounts (PRO-...); renewals and upsells sit on the sample
world's customers (a lost customer's last renewal is lost shortly before it left). Won deals name
the product sold, so the account plans have a basket per segment. Drawn from its own random
stream (SEED, 3), so the other CRM files stay byte-identical; the same seed gives the same files.
"""

from __future__ import annotations

import csv
from datetime import date, timedelta
from pathlib import Path

import numpy as np

STAGES = ["Prospecting", "Qualification", "Needs Analysis", "Value Proposition", "Id. Decision Makers",
          "Perception Analysis", "Proposal/Price Quote", "Negotiation/Review"]
WON, LOST = "Closed Won", "Closed Lost"
WEAK_REP, WEAK_STAGE = "Owen Hale", "Proposal/Price Quote"
BUSY_REP = "Daniel Brandt"
BUSY_ADVANCE, BUSY_STAYS_OPEN = 0.5, 0.85  # the busy rep's new leads: half never get past prospecting, left to stall
START = date(2025, 1, 6)
# chance to move on from each stage (the last: to Closed Won); the weak rep's proposal is far lower
ADVANCE = [0.86, 0.82, 0.88, 0.88, 0.86, 0.9, 0.72, 0.78]
WEAK_ADVANCE = 0.22
STAYS_OPEN = 0.2  # of the deals that do not move on, the share still open (the rest are lost)
SKIP_PERCEPTION = 0.3  # deals that go straight from Id. Decision Makers to the proposal
MEAN_DAYS = [6, 8, 10, 9, 8, 7, 12, 10]  # mean days in each stage
LOST_REASONS = ["Price", "Chose a competitor", "No decision", "Timing", "No budget"]
PRODUCTS = {  # segment → (product, weight) of won deals
    "SMB": [("Consumables", 0.6), ("Service Plan", 0.3), ("Equipment", 0.1)],
    "Mid-Market": [("Consumables", 0.45), ("Equipment", 0.3), ("Service Plan", 0.25)],
    "Enterprise": [("Consumables", 0.35), ("Equipment", 0.35), ("Delivery Plus", 0.3)],
}
AMOUNT = {"SMB": 4000.0, "Mid-Market": 18000.0, "Enterprise": 70000.0}
LEADS_PER_DAY = 0.25  # per rep and working day; the busy rep takes three times as many
CONVERT = 0.3  # share of leads that become a new-business opportunity
SOURCES = ["Web", "Referral", "Trade Show", "Outbound", "Partner"]
HEADERS = {
    "opportunities": ["opportunity_id", "account_id", "stage", "date", "rep", "amount", "kind", "lost_reason", "product"],
    "leads": ["lead_id", "created", "rep", "source", "converted_opportunity_id"],
}


def _accounts(crm_dir: Path) -> list[dict]:
    with (crm_dir / "accounts.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def _walk(rng, rep: str, start: date, as_of: date, stop_by: date | None = None):
    """The (stage, day) rows of one deal, from Prospecting to its end (or as far as as_of)."""
    rows, day = [], start
    for i, stage in enumerate(STAGES):
        if stage == "Perception Analysis" and rng.random() < SKIP_PERCEPTION:
            continue
        rows.append((stage, day))
        day = day + timedelta(days=max(1, int(rng.exponential(MEAN_DAYS[i]))))
        chance = WEAK_ADVANCE if rep == WEAK_REP and stage == WEAK_STAGE else ADVANCE[i]
        busy = rep == BUSY_REP and stage == "Prospecting"
        chance = BUSY_ADVANCE if busy else chance
        if stop_by is not None and day >= stop_by:
            return rows + [(LOST, min(day, stop_by))]
        if day > as_of:
            return rows  # still open at as_of
        if rng.random() >= chance:
            if rng.random() < (BUSY_STAYS_OPEN if busy else STAYS_OPEN):
                return rows  # open, and stalls once it sits long enough
            return rows + [(LOST, day)]
    return rows + [(WON, day)]


def _product(rng, segment: str) -> str:
    names, weights = zip(*PRODUCTS[segment])
    return str(rng.choice(names, p=np.array(weights) / sum(weights)))


def make_funnel(crm_dir: Path, seed: int, as_of: date) -> dict[str, int]:
    """Write opportunities.csv and leads.csv next to the other CRM files; returns row counts."""
    rng = np.random.default_rng([seed, 3])
    accounts = _accounts(crm_dir)
    reps = sorted({a["rep"] for a in accounts})
    opportunities, leads = [], []
    n_opp, n_lead, n_prospect = 0, 0, 0

    def deal(account_id: str, rep: str, segment: str, kind: str, start: date, stop_by: date | None = None) -> str:
        nonlocal n_opp
        n_opp += 1
        opp_id = f"OPP-{n_opp:05d}"
        amount = round(AMOUNT[segment] * float(rng.lognormal(0, 0.4)) * (0.5 if kind == "upsell" else 1.0), 2)
        product = _product(rng, segment)
        for stage, day in _walk(rng, rep, start, as_of, stop_by):
            reason = str(rng.choice(LOST_REASONS)) if stage == LOST else ""
            opportunities.append([opp_id, account_id, stage, day, rep, f"{amount:.2f}", kind, reason,
                                  product if stage == WON else ""])
        return opp_id

    workdays = [START + timedelta(days=i) for i in range((as_of - START).days + 1)
                if (START + timedelta(days=i)).weekday() < 5]
    for rep in reps:  # leads, some converted into new business on a prospect account
        rate = LEADS_PER_DAY * (3 if rep == BUSY_REP else 1)
        for day in workdays:
            for _ in range(int(rng.poisson(rate))):
                n_lead += 1
                converted = ""
                if rng.random() < CONVERT and day < as_of - timedelta(days=3):
                    n_prospect += 1
                    segment = str(rng.choice(list(AMOUNT), p=[0.5, 0.35, 0.15]))
                    start = day + timedelta(days=int(rng.integers(1, 4)))
                    converted = deal(f"PRO-{3000 + n_prospect}", rep, segment, "new", start)
                leads.append([f"LEAD-{n_lead:05d}", day, rep, str(rng.choice(SOURCES)), converted])
    for acc in accounts:  # renewals every year, now and then an upsell
        segment, rep = acc["segment"], acc["rep"]
        lost_on = date.fromisoformat(acc["lost_on"]) if acc["lost_on"] else None
        created = date.fromisoformat(acc["created"])
        first = max(START, created + timedelta(days=300)) + timedelta(days=int(rng.integers(0, 120)))
        day = first
        while day <= as_of - timedelta(days=5) and (lost_on is None or day < lost_on):
            renewal_by = lost_on - timedelta(days=int(rng.integers(5, 20))) if lost_on and lost_on - day < timedelta(days=365) else None
            if renewal_by is not None and renewal_by <= day + timedelta(days=7):
                break  # too close to leaving for one more renewal
            deal(acc["account_id"], rep, segment, "renewal", day, stop_by=renewal_by)
            if rng.random() < 0.35:
                up = day + timedelta(days=int(rng.integers(30, 150)))
                if up <= as_of - timedelta(days=5) and (lost_on is None or up < lost_on - timedelta(days=60)):
                    deal(acc["account_id"], rep, segment, "upsell", up)
            day += timedelta(days=365)
    opportunities.sort(key=lambda r: (r[3], r[0]))
    for name, rows in (("opportunities", opportunities), ("leads", leads)):
        with (crm_dir / f"{name}.csv").open("w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(HEADERS[name])
            for row in rows:
                w.writerow([v.isoformat() if isinstance(v, date) else v for v in row])
    return {"opportunities": len(opportunities), "leads": len(leads)}
