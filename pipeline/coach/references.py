"""What each coaching metric is called and measured in, and the published figures to place it by.

- `METRICS`: metric key → (label, unit), in display order; `label_with_unit` and `fmt` put the
  unit on every figure a table or chart shows.
- `REFERENCES`: published reference figures (vendor research, not ground truth, not about
  churn), each with the call types it was measured on. A band is shown only beside calls of a
  type it applies to (`applies`): the question band comes from discovery calls, and a renewal or
  a check-in is not held to it.
- `call_type_of`: a stored call's type. The store has no call type today (no column on `calls`,
  no purpose in CRM activities, whose `type` is only call/email/meeting; accounts carry no stage),
  so every call's type is unknown and a band limited to some call types is shown for no call.
  Once `calls.call_type` exists (set from the upload or the CRM), those bands apply by themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

# metric key → (label, unit) for the tables and charts, in display order
METRICS = {
    "talk_ratio_rep": ("rep talk ratio", "%"),
    "longest_monologue_s": ("longest rep monologue", "s"),
    "longest_customer_story_s": ("longest customer story", "s"),
    "questions_rep": ("rep questions per call", "questions"),
    "questions_rep_per_hour": ("rep questions per hour", "questions/h"),
    "interactivity_per_min": ("speaker switches per minute", "switches/min"),
    "patience_s": ("patience (pause before rep answers)", "s"),
    "wpm_rep": ("rep speaking pace", "words/min"),
    "wpm_customer": ("customer speaking pace", "words/min"),
    "filler_rate_rep": ("rep filler rate", "fillers/100 words"),
    "overlap_s": ("overlap (dual-channel)", "s"),
}


_COUNTS = ("questions",)  # whole numbers per call; every other unit is shown with one decimal


def label_with_unit(key: str) -> str:
    """'longest rep monologue (s)'; a ratio is shown in percent, a difference of one in points."""
    label, unit = METRICS.get(key, (key, ""))
    return f"{label} ({unit})" if unit else label


def fmt(key: str, value, unit: bool = True, diff: bool = False) -> str:
    """A metric's value as a person reads it: '43%', '12.5 s', '11 questions'; `diff` for a
    difference ('+4.0 pts', '+1.50 s'); '-' when missing."""
    if value is None:
        return "-"
    _, u = METRICS.get(key, (key, ""))
    if u == "%":  # a share in percent; a difference of shares in points
        return (f"{value * 100:+.1f}" + (" pts" if unit else "")) if diff else f"{value * 100:.0f}%"
    if diff:
        text = f"{value:+.2f}"
    elif u in _COUNTS and float(value).is_integer():
        text = str(int(value))
    else:
        text = f"{value:.1f}"
    return f"{text} {u}" if unit and u else text


@dataclass(frozen=True)
class Reference:
    low: float | None
    high: float | None
    source: str
    # call types the figure was measured on (see `call_type_of`); None: any sales call
    call_types: tuple[str, ...] | None = None
    kind: str = "published reference"  # vendor research on B2B sales calls; NOT ground truth

    def applies(self, call_type: str | None) -> bool:
        """Whether this figure may be shown beside a call of this type (None: type unknown)."""
        return self.call_types is None or call_type in self.call_types

    def band_text(self, key: str) -> str:
        """'11-14 questions', 'under 150 s', '43%'."""
        if self.low is None:
            return f"under {fmt(key, self.high)}"
        if self.low == self.high:
            return fmt(key, self.low)
        return f"{fmt(key, self.low, unit=False)}-{fmt(key, self.high)}"

    def where(self) -> str:
        """'for discovery calls', or '' when the figure applies to any call."""
        return f"for {' and '.join(t.replace('_', '-') for t in self.call_types)} calls" if self.call_types else ""


# Published reference figures, from vendor research on B2B sales calls (new business: calls of
# deals later won), not ground truth and not about churn: useful to place a rep, not to grade them.
REFERENCES = {
    # Gong Labs, "The highest converting talk-to-listen ratio in sales" (C. Orlob, 2016, 25,537
    # B2B calls; revisited 2025): 43:57 talk:listen on successful calls, average reps 65-75%.
    # https://www.gong.io/resources/labs/talk-to-listen-conversion-ratio/
    "talk_ratio_rep": Reference(0.43, 0.43, "Gong Labs 2016: 43% rep talk on successful sales calls"),
    # Gong Labs monologue research, as cited in the churnwatch coaching issue (longest rep
    # monologue under about 2.5 minutes on successful calls); not re-verified here.
    "longest_monologue_s": Reference(None, 150.0, "Gong Labs: longest monologue under ~2.5 min"),
    # Gong & SalesLoft discovery-call benchmark (2017, 519,000 calls): 11-14 questions per call
    # had the highest success rate, with diminishing returns above. Measured on discovery calls
    # only: a renewal, a check-in or a billing call is not held to it.
    "questions_rep": Reference(11.0, 14.0, "Gong/SalesLoft 2017: 11-14 questions per discovery call",
                               call_types=("discovery",)),
    # Gong Labs "patience" (pause before responding), as cited in the churnwatch coaching issue:
    # about 0.6-1.0 s for top performers; not re-verified here.
    "patience_s": Reference(0.6, 1.0, "Gong Labs: 0.6-1.0 s pause before answering"),
}

# spellings of the same call type in uploads and CRM exports
_CALL_TYPE_ALIASES = {"discovery_call": "discovery", "intro": "discovery", "checkin": "check_in",
                      "qbr": "qbr", "quarterly_business_review": "qbr"}


def normalise_call_type(value: str | None) -> str | None:
    """'Check-in' → 'check_in', 'Discovery call' → 'discovery'; blank → None."""
    if value is None or not str(value).strip():
        return None
    key = "_".join(str(value).strip().lower().replace("-", " ").split())
    return _CALL_TYPE_ALIASES.get(key, key)


def call_type_of(call) -> str | None:
    """A stored call's type (discovery, renewal, check_in, ...), None when not known. Read from
    `call.call_type` where the store keeps one; the store has no such column yet (module docstring)."""
    return normalise_call_type(getattr(call, "call_type", None))


def reference_note(key: str, ref: Reference, n_calls: int, types_known: int) -> str:
    """Why a reference band is not shown beside these calls, in plain words."""
    label = METRICS.get(key, (key, ""))[0]
    if types_known == 0:
        return (f"{label}: no reference shown. The {ref.band_text(key)} figure is {ref.where()}, and "
                f"churnwatch does not know the type of these {n_calls} call(s) (the store keeps no call type).")
    unknown = f"; {n_calls - types_known} more have no type" if types_known < n_calls else ""
    return (f"{label}: no reference shown. The {ref.band_text(key)} figure is {ref.where()}; none of the "
            f"{types_known} call(s) of known type is one{unknown}.")
