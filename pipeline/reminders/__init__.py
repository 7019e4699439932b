"""Reminders: policies, planning after calls and at night, follow-up actions, the customer's own
callback dates, the post-call note for the rep, and the outbox that delivers them."""

from pipeline.reminders.followup import (
    OPEN,
    complete,
    get,
    is_overdue,
    list_reminders,
    record_outcome,
    reminder_to_dict,
    snooze,
    snooze_one_day,
    snooze_to_day,
    stage,
    sync_crm_attempts,
)
from pipeline.reminders.plan import (
    RiskLike,
    plan_after_call,
    plan_periodic,
    plan_silence,
    plan_threshold,
    plan_threshold_from_scores,
)
from pipeline.reminders.policies import Policies, load_policies
from pipeline.reminders.post_call_note import Hint, plain_factor, post_call_hint

__all__ = [
    "OPEN", "Hint", "Policies", "RiskLike", "complete", "get", "is_overdue", "list_reminders", "load_policies",
    "plain_factor", "plan_after_call", "plan_periodic", "plan_silence", "plan_threshold",
    "plan_threshold_from_scores", "post_call_hint", "record_outcome", "reminder_to_dict", "snooze", "snooze_one_day",
    "snooze_to_day", "stage",
    "sync_crm_attempts",
]
