"""The note a rep reads right after a call: what we heard, where the account stands, what to do.

Written in sales language: "mentioned a competitor", "churn risk 72 out of 100, up 18", never
log-odds or rule names (those stay in `to_dict()` for machines). What each cue type means is its
`text` in rules/cue_types.yaml (pipeline.cues.cue_types).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from pipeline.cues.cue_types import CueTypes, load_cue_types
from pipeline.types import Cue

__all__ = ["HeardItem", "Hint", "ToDo", "mmss", "plain_factor", "post_call_hint"]

# What a reminder reason that is not a cue type means (the cue types' words are in cue_types.yaml).
REQUEST_HEARD = "asked for a call back"
# Risk factors of rules/risk.yaml in plain words, where the model gives no label of its own.
FACTORS = {
    "days_since_last_order": "a long time since the last order",
    "order_cadence": "orders coming slower than usual",
    "order_value_trend": "ordering less than before",
    "credit_notes_180": "credit notes in the last six months",
    "late_payments_365": "late payments this year",
    "days_since_last_contact": "no contact for a while",
    "unanswered_streak": "calls and e-mails going unanswered",
    "support_cases_90": "many support cases lately",
    "support_trend": "more support cases than before",
    "disputes_180": "disputed invoices",
    "new_contacts_90": "new people on their side",
    "stakeholder_changes_90": "people changing on their side",
}
PRIORITY_WORDS = {"urgent": "urgent", "high": "high priority", "normal": "", "low": "when you can"}


def mmss(seconds: float) -> str:
    """Seconds into the call as mm:ss (or h:mm:ss past an hour)."""
    total = max(0, round(seconds))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def _heard(cue_types: CueTypes) -> dict[str, str]:
    """Each cue type's words (English, as the note is written), then the call-back request's."""
    return {**{t.label: t.says("en") for t in cue_types.types}, "customer_request": REQUEST_HEARD}


def plain_factor(name: str, evidence: Mapping[str, Any] | None = None, cue_types: CueTypes | None = None) -> str:
    """A risk factor in plain words: the model's label, else "cue_competitor_mention" → "mentioned a competitor"
    (the cue type's text in `cue_types`, default: the default pack's)."""
    entry = (evidence or {}).get(name)
    if isinstance(entry, Mapping) and entry.get("label"):
        return str(entry["label"])
    if name in FACTORS:
        return FACTORS[name]
    for label, words in _heard(cue_types if cue_types is not None else load_cue_types()).items():
        if label in name:
            return words
    return name.replace("_", " ").strip()


@dataclass
class HeardItem:
    time: str  # mm:ss into the call
    label: str
    what: str  # plain words, e.g. "mentioned a competitor"
    quote: str


@dataclass
class ToDo:
    reminder_id: int | None
    reason: str
    action: str  # the suggested action in the rep's language
    due: str  # ISO timestamp
    priority: str | None = None


@dataclass
class Hint:
    account_id: str
    account_name: str
    call_id: int | None
    call_date: str | None  # ISO date
    heard: list[HeardItem] = field(default_factory=list)
    score_before: float | None = None
    score_after: float | None = None
    threshold: float | None = None
    above_threshold: bool = False
    crossed: bool = False  # went from below the alert line to above it on this call
    reasons: list[str] = field(default_factory=list)  # biggest risk drivers, plain words
    todo: list[ToDo] = field(default_factory=list)

    @property
    def change(self) -> float | None:
        if self.score_before is None or self.score_after is None:
            return None
        return round(self.score_after - self.score_before, 1)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "change": self.change}

    def render(self) -> str:
        """The note for the rep, as plain text."""
        day = datetime.fromisoformat(self.call_date).strftime("%a %d %b %Y") if self.call_date else ""
        lines = [f"{self.account_name}: your call{' on ' + day if day else ''}", ""]
        if self.heard:
            lines.append("What the customer said")
            lines += [f"  {h.time}  {h.what}: \"{h.quote}\"" for h in self.heard]
        else:
            lines.append("Nothing on this call suggests the customer might leave.")
        lines.append("")
        if self.score_after is not None:
            score = f"Churn risk: {self.score_after:.0f} out of 100"
            if self.change is not None and abs(self.change) >= 0.5:
                score += f" ({'up' if self.change > 0 else 'down'} {abs(self.change):.0f} from {self.score_before:.0f})"
            elif self.change is not None:
                score += " (no change)"
            if self.crossed:
                score += ". It just went above the alert line"
            elif self.above_threshold:
                score += ". Above the alert line"
            if self.threshold is not None and (self.crossed or self.above_threshold):
                score += f" of {self.threshold:.0f}"
            lines.append(score + ".")
            if self.reasons:
                lines.append("Why: " + "; ".join(self.reasons) + ".")
            lines.append("")
        if self.todo:
            lines.append("What to do")
            for i, item in enumerate(self.todo, 1):
                when = datetime.fromisoformat(item.due).strftime("%a %d %b")
                tag = PRIORITY_WORDS.get(item.priority or "", "")
                lines.append(f"  {i}. By {when}{' (' + tag + ')' if tag else ''}: {item.action}")
        else:
            lines.append("No follow-up needed from this call.")
        return "\n".join(lines)


def post_call_hint(account, call, cues: Sequence[Cue], risk_before, risk_after, new_reminders,
                   policies=None) -> Hint:
    """Build the rep's note after `ingest` from the stored call, its cues and the reminders made.

    `risk_before`/`risk_after` are anything with `score`, `flagged`, `contributions` (and
    optionally `threshold`); `policies` (optional) adds each reminder's priority, and its cue
    types say what each cue means.
    """
    cue_types = getattr(policies, "cue_types", None) or load_cue_types()
    heard_words = _heard(cue_types)
    heard = [
        HeardItem(time=mmss(c.start), label=c.label, what=heard_words.get(c.label, c.label.replace("_", " ")),
                  quote=c.quote)
        for c in sorted(cues, key=lambda c: c.start)
        if c.speaker != "rep"
    ]
    seen_times = {h.time for h in heard}
    for reminder in new_reminders:
        for e in reminder.evidence or []:
            if e.get("type") == "request" and e.get("call_id") in (None, getattr(call, "id", None)) \
                    and e.get("time") not in seen_times:
                heard.append(HeardItem(time=e["time"], label="customer_request",
                                       what=REQUEST_HEARD + f" ({e['phrase']})", quote=e["quote"]))
    heard.sort(key=lambda h: h.time.zfill(8))
    threshold = getattr(risk_after, "threshold", None)
    above = bool(risk_after is not None and (risk_after.score >= threshold if threshold is not None else risk_after.flagged))
    before_above = bool(risk_before is not None and (
        risk_before.score >= threshold if threshold is not None else risk_before.flagged))
    contributions: Mapping[str, float] = dict(getattr(risk_after, "contributions", None) or {})
    evidence = getattr(risk_after, "evidence", None) or {}
    reasons = [plain_factor(n, evidence, cue_types) for n, v in sorted(contributions.items(), key=lambda kv: -kv[1])
               if v > 0 and n != "intercept"][:3]
    todo = []
    for r in sorted(new_reminders, key=lambda r: r.due):
        policy = policies.policy(r.reason) if policies is not None else None
        due = r.due if r.due.tzinfo else r.due.replace(tzinfo=timezone.utc)
        todo.append(ToDo(reminder_id=r.id, reason=r.reason, action=r.message, due=due.isoformat(),
                         priority=policy.priority if policy else None))
    call_date = getattr(call, "call_date", None)
    return Hint(
        account_id=account.id,
        account_name=account.name or account.id,
        call_id=getattr(call, "id", None),
        call_date=call_date.date().isoformat() if call_date else None,
        heard=heard,
        score_before=round(risk_before.score, 1) if risk_before is not None else None,
        score_after=round(risk_after.score, 1) if risk_after is not None else None,
        threshold=threshold,
        above_threshold=above,
        crossed=above and not before_above,
        reasons=list(dict.fromkeys(reasons)),
        todo=todo,
    )
