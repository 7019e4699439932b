"""Funnel: where deals and customers are lost, old customers to win back, account-plan KPIs.

    funnel = load_funnel(Path("rules/funnel.yaml"))
    report = stage_funnel(histories_from_rows(rows), funnel, FunnelOptions(by="rep"))

Plain functions over plain data: `pipeline.store.funnel_queries` reads the store, the CLI passes
its rows in; nothing here opens a session.
"""

from pipeline.funnel.account_plan import AccountPlan, PlanOptions, account_plans, rep_summaries
from pipeline.funnel.dormant import DormantAccount, DormantOptions, NurtureRules, dormant_accounts
from pipeline.funnel.funnel import (
    FunnelOptions,
    FunnelReport,
    LeadRow,
    OpportunityHistory,
    StageRow,
    Touch,
    stage_funnel,
    wilson,
    working_days,
)
from pipeline.funnel.stages import Funnel, load_funnel, stage_key


def histories_from_rows(rows) -> list[OpportunityHistory]:
    """OpportunityHistory per dict of `funnel_queries.opportunity_histories`."""
    return [OpportunityHistory(**row) for row in rows]


def leads_from_rows(rows) -> list[LeadRow]:
    return [LeadRow(**row) for row in rows]


def touches_from_rows(rows) -> list[Touch]:
    return [Touch(**row) for row in rows]


__all__ = [
    "AccountPlan", "DormantAccount", "DormantOptions", "Funnel", "FunnelOptions", "FunnelReport", "LeadRow",
    "NurtureRules", "OpportunityHistory", "PlanOptions", "StageRow", "Touch", "account_plans", "dormant_accounts",
    "histories_from_rows", "leads_from_rows", "load_funnel", "rep_summaries", "stage_funnel", "stage_key",
    "touches_from_rows", "wilson", "working_days",
]
