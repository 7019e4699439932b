"""Managers' verdicts on stored cues, and lines the rules missed: the feedback learned models refit from.

A verdict copies the cue's (already redacted) quote, its language and the other speaker's turn
before it, so a refit needs nothing else and the verdict outlives its call's purge. Marking a cue
again replaces the earlier verdict (one per cue).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.errors import ChurnwatchError
from pipeline.store.tables import Call, Cue, CueVerdict, Segment

VERDICTS = ("right", "wrong")


@dataclass(frozen=True)
class ReviewItem:
    cue_id: int
    call_id: int
    account_id: str | None
    call_date: datetime | None
    label: str
    rule: str
    rule_version: int
    score: float
    start: float
    quote: str
    why: str | None
    verdict: str | None  # right | wrong | None (not reviewed yet)


@dataclass(frozen=True)
class VerdictRow:
    text: str
    label: str
    verdict: str  # right | wrong | missed
    lang: str
    context: str | None


def cues_for_review(session: Session, *, label: str | None = None, since: datetime | None = None,
                    include_reviewed: bool = False, limit: int = 50) -> list[ReviewItem]:
    """Stored cues, newest call first, with their verdict if any."""
    q = (select(Cue, Call, CueVerdict.verdict)
         .join(Call, Call.id == Cue.call_id)
         .outerjoin(CueVerdict, CueVerdict.cue_id == Cue.id)
         .order_by(Call.call_date.desc().nulls_last(), Cue.id.desc()))
    if label:
        q = q.where(Cue.label == label)
    if since:
        q = q.where(Call.call_date >= since)
    if not include_reviewed:
        q = q.where(CueVerdict.id.is_(None))
    out = []
    for cue, call, verdict in session.execute(q.limit(limit)):
        out.append(ReviewItem(cue.id, call.id, call.account_id, call.call_date, cue.label, cue.rule_name,
                              cue.rule_version, cue.score, cue.start, cue.quote, cue.why, verdict))
    return out


def mark_cue(session: Session, cue_id: int, verdict: str, reviewer: str | None = None,
             note: str | None = None) -> CueVerdict:
    """Record (or replace) a manager's verdict on one stored cue."""
    if verdict not in VERDICTS:
        raise ChurnwatchError(f"Verdict {verdict!r} is not valid; use right or wrong.")
    cue = session.get(Cue, cue_id)
    if cue is None:
        raise ChurnwatchError(f"No stored cue with id {cue_id}. List cues to review with: churnwatch rules review")
    call = session.get(Call, cue.call_id)
    context = None
    if cue.segment_id is not None:
        seg = session.get(Segment, cue.segment_id)
        if seg is not None and seg.idx > 0:
            prev = session.scalar(select(Segment).where(Segment.call_id == seg.call_id, Segment.idx == seg.idx - 1))
            if prev is not None and prev.speaker != seg.speaker:
                context = prev.text
    row = session.scalar(select(CueVerdict).where(CueVerdict.cue_id == cue_id))
    if row is None:
        row = CueVerdict(cue_id=cue_id, call_id=cue.call_id, label=cue.label, text=cue.quote)
        session.add(row)
    row.verdict, row.reviewer, row.note, row.context = verdict, reviewer, note, context
    row.lang = ((call.language if call else None) or "en").split("-")[0]
    session.flush()
    return row


def add_missed(session: Session, text: str, label: str, lang: str = "en", context: str | None = None,
               reviewer: str | None = None, note: str | None = None) -> CueVerdict:
    """A line that should have been a cue of `label` (the caller checks the label is declared)."""
    if not text.strip():
        raise ChurnwatchError("A missed line needs its text, e.g. --missed \"we'll pay in March\".")
    row = CueVerdict(verdict="missed", label=label, text=text.strip(), lang=lang, context=context,
                     reviewer=reviewer, note=note)
    session.add(row)
    session.flush()
    return row


def all_verdicts(session: Session) -> list[VerdictRow]:
    rows = session.scalars(select(CueVerdict).order_by(CueVerdict.id))
    return [VerdictRow(r.text, r.label, r.verdict, r.lang or "en", r.context) for r in rows]
