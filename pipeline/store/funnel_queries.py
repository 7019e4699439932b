"""The reads behind `churnwatch funnel` and `churnwatch accounts`: plain dicts, no ORM rows out.

`opportunity_histories` gives each opportunity with its stage changes, owner, segment and kind;
`leads` the leads; `outbound_touches` the outbound CRM activities (calls, e-mails, meetings);
`account_book` everything the account-plan and reactivation figures need per account (orders,
activities, contacts, calls, won deals). `pipeline.funnel` turns these into its dataclasses.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from pipeline.store.tables import Account, Call, Contact, CrmEvent, Lead, Opportunity, OpportunityStage, Rep

__all__ = ["account_book", "leads", "opportunity_histories", "outbound_touches"]


def opportunity_histories(session: Session) -> list[dict[str, Any]]:
    """{opportunity_id, account_id, steps: [(stage, day)], rep, segment, kind, amount} per opportunity;
    the rep is the deal's owner, else the account's."""
    deal_rep, account_rep = aliased(Rep), aliased(Rep)
    rows = session.execute(
        select(Opportunity.id, Opportunity.account_id, deal_rep.name, account_rep.name, Account.segment,
               Opportunity.kind, Opportunity.amount)
        .join(Account, Account.id == Opportunity.account_id)
        .outerjoin(deal_rep, deal_rep.id == Opportunity.rep_id)
        .outerjoin(account_rep, account_rep.id == Account.rep_id)
        .order_by(Opportunity.id))
    steps: dict[str, list] = defaultdict(list)
    for opp_id, stage, day in session.execute(
            select(OpportunityStage.opportunity_id, OpportunityStage.stage, OpportunityStage.entered_on)
            .order_by(OpportunityStage.opportunity_id, OpportunityStage.entered_on, OpportunityStage.id)):
        steps[opp_id].append((stage, day))
    return [{"opportunity_id": oid, "account_id": acc, "steps": tuple(steps.get(oid, ())), "rep": rep or acc_rep,
             "segment": segment, "kind": kind, "amount": amount}
            for oid, acc, rep, acc_rep, segment, kind, amount in rows]


def leads(session: Session) -> list[dict[str, Any]]:
    """{lead_id, created, rep, source, converted_opportunity_id} per lead."""
    rows = session.execute(select(Lead.id, Lead.created_on, Rep.name, Lead.source, Lead.converted_opportunity_id)
                           .outerjoin(Rep, Rep.id == Lead.rep_id).order_by(Lead.created_on, Lead.id))
    return [{"lead_id": i, "created": c, "rep": r, "source": s, "converted_opportunity_id": o} for i, c, r, s, o in rows]


def _activities(session: Session, until: date | None):
    query = select(CrmEvent.account_id, CrmEvent.occurred_on, CrmEvent.attributes).where(CrmEvent.kind == "activity")
    if until is not None:
        query = query.where(CrmEvent.occurred_on <= until)
    return session.execute(query.order_by(CrmEvent.occurred_on, CrmEvent.id))


def outbound_touches(session: Session, until: date | None = None) -> list[dict[str, Any]]:
    """{account_id, day, rep} per outbound CRM activity; the rep is the activity's, else the account's."""
    owners = dict(session.execute(select(Account.id, Rep.name).join(Rep, Rep.id == Account.rep_id)).all())
    out = []
    for account_id, day, attributes in _activities(session, until):
        attributes = attributes or {}
        if str(attributes.get("direction") or "").lower() == "outbound":
            out.append({"account_id": account_id, "day": day, "rep": attributes.get("rep") or owners.get(account_id)})
    return out


def account_book(session: Session, as_of: date | None = None) -> dict[str, dict[str, Any]]:
    """Per account: {account_id, name, segment, status, lost_on, created_on, rep, orders: [(day, amount)],
    activities: [{day, type, direction, outcome}], contacts: [{name, role, email, added}],
    calls: [day], deals: [{opportunity_id, kind, product, amount, stage, day}] (each deal's last
    stage)}, everything up to `as_of`."""
    book: dict[str, dict[str, Any]] = {}
    for acc, rep in session.execute(select(Account, Rep.name).outerjoin(Rep, Rep.id == Account.rep_id)
                                    .order_by(Account.id)):
        book[acc.id] = {"account_id": acc.id, "name": acc.name, "segment": acc.segment, "status": acc.status,
                        "lost_on": acc.lost_on, "created_on": acc.created_on, "rep": rep, "orders": [],
                        "activities": [], "contacts": [], "calls": [], "deals": []}
    orders = select(CrmEvent.account_id, CrmEvent.occurred_on, CrmEvent.amount).where(CrmEvent.kind == "order")
    if as_of is not None:
        orders = orders.where(CrmEvent.occurred_on <= as_of)
    for account_id, day, amount in session.execute(orders.order_by(CrmEvent.occurred_on, CrmEvent.id)):
        book[account_id]["orders"].append((day, float(amount or 0.0)))
    for account_id, day, attributes in _activities(session, as_of):
        a = attributes or {}
        book[account_id]["activities"].append({"day": day, "type": a.get("type"), "direction": a.get("direction"),
                                               "outcome": a.get("outcome")})
    for c in session.scalars(select(Contact).order_by(Contact.account_id, Contact.id)):
        if as_of is None or c.added_on is None or c.added_on <= as_of:
            book[c.account_id]["contacts"].append({"name": c.name, "role": c.role, "email": c.email, "added": c.added_on})
    for account_id, moment in session.execute(select(Call.account_id, Call.call_date)
                                              .where(Call.account_id.is_not(None), Call.call_date.is_not(None))):
        if account_id in book and (as_of is None or moment.date() <= as_of):
            book[account_id]["calls"].append(moment.date())
    last: dict[str, tuple] = {}
    for opp_id, stage, day in session.execute(
            select(OpportunityStage.opportunity_id, OpportunityStage.stage, OpportunityStage.entered_on)
            .order_by(OpportunityStage.entered_on, OpportunityStage.id)):
        if as_of is None or day <= as_of:
            last[opp_id] = (stage, day)
    for opp in session.scalars(select(Opportunity).order_by(Opportunity.id)):
        if opp.id in last and opp.account_id in book:
            stage, day = last[opp.id]
            book[opp.account_id]["deals"].append({"opportunity_id": opp.id, "kind": opp.kind, "product": opp.product,
                                                  "amount": opp.amount, "stage": stage, "day": day})
    for entry in book.values():
        entry["calls"].sort()
    return book
