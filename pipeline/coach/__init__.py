"""Coaching: talk metrics per call (plain functions), sentence tests, and what separates kept
accounts from lost ones (over stored calls)."""

from pipeline.coach.metrics import CallMetrics, CoachOptions, call_metrics
from pipeline.coach.sentences import (
    count_fillers,
    is_backchannel,
    is_question,
    split_sentences,
)

__all__ = [
    "CallMetrics", "CoachOptions", "call_metrics", "count_fillers", "is_backchannel", "is_question",
    "split_sentences",
]
