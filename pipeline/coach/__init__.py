"""Coaching: talk metrics per call (plain functions), sentence tests, and what separates kept
accounts from lost ones (over stored calls): `metrics`, `sentences`, `stored_metrics`,
`kept_vs_lost` (with `significance` for the corrected comparisons and `references` for labels,
units and the published figures with the call types they apply to), `charts`."""

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
