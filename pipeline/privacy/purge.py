"""Retention: forget what was said in old calls, keep what was learned from them.

`purge` removes, for every call older than the policy (its call_date, or created_at where the
date is unknown): the transcript (rows in `segments`, the cached transcript in `transcripts`),
the cues derived from it (`cues`), the sentence embeddings of its utterances
(`utterance_embeddings`, which encode the text) and the reference to the recording
(`Call.source` becomes None). The call is marked `status = "purged"`. What stays: the call row
with its duration, language, date, account, rep and coaching metrics, and the per-account
aggregates in `features` and `risk_scores`, so scores and trends keep their history.

The caller owns the session and commits; with dry_run=True nothing is changed and the report
says what would go.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, exists, func, or_, select, update
from sqlalchemy.orm import Session

from pipeline.errors import ChurnwatchError
from pipeline.store import Call, Cue, Segment, TranscriptCache, UtteranceEmbedding, text_sha256

__all__ = ["PurgeReport", "purge", "purge_cutoff"]

PURGED = "purged"
_CHUNK = 500  # ids per IN (...) clause; SQLite allows a few hundred bound parameters at least


@dataclass(frozen=True)
class PurgeReport:
    cutoff: datetime  # calls dated before this instant were purged
    dry_run: bool  # True: nothing was changed, the counts say what would go
    calls: int  # calls whose transcript, cues or recording reference were removed
    segments: int  # rows deleted from segments
    cues: int  # rows deleted from cues
    transcripts: int  # cached transcripts deleted (table transcripts)
    embeddings: int  # cached utterance embeddings deleted (table utterance_embeddings)
    sources: int  # recording references cleared (Call.source set to None)
    call_ids: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["cutoff"] = self.cutoff.isoformat()
        return data


def purge_cutoff(older_than_days: int, now: datetime | None = None) -> datetime:
    """The instant before which calls are purged: now minus the given number of days."""
    if (
        isinstance(older_than_days, bool)
        or not isinstance(older_than_days, int)
        or older_than_days < 0
    ):
        raise ChurnwatchError(
            f"older_than_days must be a whole number of days, 0 or more; got {older_than_days!r}."
        )
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise ChurnwatchError(
            f"now={now!r} has no time zone; pass e.g. datetime.now(timezone.utc)."
        )
    return now - timedelta(days=older_than_days)


def _chunks(ids: list[Any]):
    for i in range(0, len(ids), _CHUNK):
        yield ids[i : i + _CHUNK]


def _count(session: Session, model, column, ids: list[Any]) -> int:
    return sum(
        session.scalar(select(func.count()).select_from(model).where(column.in_(chunk))) or 0
        for chunk in _chunks(ids)
    )


def purge(
    session: Session, older_than_days: int, now: datetime | None = None, *, dry_run: bool = False
) -> PurgeReport:
    """Delete transcripts, cues and recording references of calls older than older_than_days.

    Calls already purged with nothing left to remove are not counted again, so running the
    same policy twice reports zero the second time.
    """
    cutoff = purge_cutoff(older_than_days, now)
    old = or_(Call.call_date < cutoff, and_(Call.call_date.is_(None), Call.created_at < cutoff))
    has_rest = or_(
        Call.status != PURGED,
        Call.source.is_not(None),
        exists().where(Segment.call_id == Call.id),
        exists().where(Cue.call_id == Call.id),
        exists().where(TranscriptCache.audio_sha256 == Call.audio_sha256),
    )
    rows = session.execute(
        select(Call.id, Call.audio_sha256, Call.source).where(old, has_rest).order_by(Call.id)
    ).all()
    ids = [r.id for r in rows]
    hashes = [r.audio_sha256 for r in rows]
    texts = {
        text_sha256(t)
        for chunk in _chunks(ids)
        for t in session.scalars(select(Segment.text).where(Segment.call_id.in_(chunk)))
    }
    keys = sorted(texts)
    report = PurgeReport(
        cutoff=cutoff,
        dry_run=dry_run,
        calls=len(ids),
        segments=_count(session, Segment, Segment.call_id, ids),
        cues=_count(session, Cue, Cue.call_id, ids),
        transcripts=_count(session, TranscriptCache, TranscriptCache.audio_sha256, hashes),
        embeddings=_count(session, UtteranceEmbedding, UtteranceEmbedding.text_sha256, keys),
        sources=sum(r.source is not None for r in rows),
        call_ids=ids,
    )
    if dry_run or not ids:
        return report
    for chunk in _chunks(ids):  # cues first: they point at segments
        session.execute(
            delete(Cue).where(Cue.call_id.in_(chunk)),
            execution_options={"synchronize_session": False},
        )
        session.execute(
            delete(Segment).where(Segment.call_id.in_(chunk)),
            execution_options={"synchronize_session": False},
        )
        session.execute(
            update(Call).where(Call.id.in_(chunk)).values(source=None, status=PURGED),
            execution_options={"synchronize_session": False},
        )
    for chunk in _chunks(hashes):
        session.execute(delete(TranscriptCache).where(TranscriptCache.audio_sha256.in_(chunk)))
    for chunk in _chunks(keys):
        session.execute(delete(UtteranceEmbedding).where(UtteranceEmbedding.text_sha256.in_(chunk)))
    session.flush()
    session.expire_all()  # loaded Call objects must not keep the removed segments and cues
    return report
