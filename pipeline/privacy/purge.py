"""Retention: forget what was said in old calls, keep what was learned from them.

`purge` removes, for every call older than the policy (its call_date, or created_at where the
date is unknown): the transcript (rows in `segments`, the cached transcript in `transcripts`),
the cues derived from it (`cues`), the sentence embeddings of its utterances
(`utterance_embeddings`, which encode the text) and the reference to the recording
(`Call.source` becomes None). The call is marked `status = "purged"`. What stays: the call row
with its duration, language, date, account, rep and coaching metrics, and the per-account
aggregates in `features` and `risk_scores`, so scores and trends keep their history.

Calls that came in through `churnwatch serve` also lose what their job kept: the job's result
(the cues and the hint, which quote the customer) is emptied, and the uploaded recording that
churnwatch itself stored (a `source = "upload"` job's file) is deleted from disk.

What was said in those calls is also copied elsewhere, and goes too: the quotes in reminders'
evidence and in their messages ("asked you to call in two weeks: \"...\""), in the payloads of
outbox messages (pending or sent), and in the evidence of stored features. Evidence entries that
name an old call lose their quote (it becomes ""); any other text that holds one of those quotes
verbatim has it replaced by `QUOTE_REMOVED`, also where a message cut it short. The entries
themselves stay (the cue's label, time, date, call id), so reminders and scores keep their
reasons. Cue verdicts (`cue_verdicts`) are kept on purpose: they are the training set.

The caller owns the session and commits; with dry_run=True nothing is changed and the report
says what would go.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, delete, exists, func, or_, select, update
from sqlalchemy.orm import Session

from pipeline.errors import ChurnwatchError
from pipeline.types import clauses, model_input
from pipeline.store import (
    Call,
    Cue,
    Feature,
    Job,
    Outbox,
    Reminder,
    Segment,
    TranscriptCache,
    UtteranceEmbedding,
    text_sha256,
)
from pipeline.store.lookups import in_chunks

__all__ = ["QUOTE_REMOVED", "PurgeReport", "purge", "purge_cutoff"]

PURGED = "purged"
QUOTE_REMOVED = "[removed]"  # what a purged quote becomes in messages and payloads
_MIN_QUOTE = 8  # shorter quotes ("ok", "yes") are not searched for in other text
_MIN_CUT = 12  # the shortest beginning of a quote that counts when a message was cut short


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
    reminders: int = 0  # reminders whose evidence or message lost quotes of old calls
    outbox: int = 0  # outbox messages whose payload lost quotes of old calls
    features: int = 0  # stored feature values whose evidence lost quotes of old calls
    jobs: int = 0  # jobs of `churnwatch serve` whose result (cues, hint) was emptied
    uploads: int = 0  # uploaded recordings deleted from disk

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


def _count(session: Session, model, column, ids: list[Any]) -> int:
    return sum(
        session.scalar(select(func.count()).select_from(model).where(column.in_(chunk))) or 0
        for chunk in in_chunks(ids)
    )


def _cached_text_keys(session: Session, call_ids: list[int]) -> set[str]:
    """The hashes the embedding cache may hold for these calls' lines: each segment's text as
    stored and as a learned model reads it (trimmed, and a reply after the other speaker's turn
    as "turn || reply", see pipeline.types.model_input), and each statement of a turn of several
    (pipeline.types.clauses). Cached sentence embeddings and learned probabilities are keyed by
    those texts, so a purge that missed them would leave words behind."""
    keys: set[str] = set()
    for chunk in in_chunks(call_ids):
        previous = None
        for row in session.execute(
            select(Segment.call_id, Segment.speaker, Segment.text)
            .where(Segment.call_id.in_(chunk))
            .order_by(Segment.call_id, Segment.idx)
        ):
            keys.add(text_sha256(row.text))
            keys.add(text_sha256(model_input(row.text, None)))
            keys.update(text_sha256(c) for c in clauses(model_input(row.text, None)))
            if previous is not None and previous.call_id == row.call_id and previous.speaker != row.speaker:
                keys.add(text_sha256(model_input(row.text, previous.text)))
            previous = row
    return keys


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
    keys = sorted(_cached_text_keys(session, ids))
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
    old_ids = set(session.scalars(select(Call.id).where(old)))
    copies = _scrub_copies(session, old_ids, ids)
    jobs = [j for chunk in in_chunks(sorted(old_ids)) for j in session.scalars(
        select(Job).where(Job.call_id.in_(chunk), or_(Job.result.is_not(None), Job.source == "upload")))]
    jobs = [j for j in jobs if j.result is not None or (j.source == "upload" and Path(j.file_path).exists())]
    report = replace(
        report, reminders=len(copies[Reminder]), outbox=len(copies[Outbox]), features=len(copies[Feature]),
        jobs=sum(j.result is not None for j in jobs),
        uploads=sum(j.source == "upload" and Path(j.file_path).exists() for j in jobs),
    )
    if dry_run:
        return report
    for job in jobs:
        job.result = None
        if job.source == "upload":
            Path(job.file_path).unlink(missing_ok=True)
    for model, changes in copies.items():
        for row_id, values in changes.items():
            session.execute(
                update(model).where(model.id == row_id).values(**values),
                execution_options={"synchronize_session": False},
            )
    if not ids:
        session.flush()
        session.expire_all()
        return report
    for chunk in in_chunks(ids):  # cues first: they point at segments
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
    for chunk in in_chunks(hashes):
        session.execute(delete(TranscriptCache).where(TranscriptCache.audio_sha256.in_(chunk)))
    for chunk in in_chunks(keys):
        session.execute(delete(UtteranceEmbedding).where(UtteranceEmbedding.text_sha256.in_(chunk)))
    session.flush()
    session.expire_all()  # loaded Call objects must not keep the removed segments and cues
    return report


# --- quotes copied out of the transcript ------------------------------------------------------


def _scrub_text(text: str, needles: list[str]) -> str:
    """text with every needle replaced by QUOTE_REMOVED, and a needle's beginning at the very end
    (a message cut at its length limit) too."""
    for q in needles:
        if q[:_MIN_CUT] not in text:  # one fast test per needle; most texts hold none
            continue
        text = text.replace(q, QUOTE_REMOVED)
        for k in range(min(len(q) - 1, len(text)), _MIN_CUT - 1, -1):
            if text.endswith(q[:k]):
                text = text[:-k] + QUOTE_REMOVED
                break
    return text


def _scrub_value(value: Any, needles: list[str], old_ids: set[int]) -> Any:
    """A JSON value with the quotes of old calls removed (the same object when nothing changed)."""
    if isinstance(value, str):
        return _scrub_text(value, needles) if needles else value
    if isinstance(value, list):
        out = [_scrub_value(v, needles, old_ids) for v in value]
        return value if all(a is b for a, b in zip(out, value)) else out
    if isinstance(value, dict):
        out = {k: _scrub_value(v, needles, old_ids) for k, v in value.items()}
        if out.get("call_id") in old_ids and out.get("quote"):
            out["quote"] = ""  # evidence of an old call: its quote goes, the rest stays
        return value if all(out[k] is value[k] for k in value) else out
    return value


def _evidence_quotes(entries: Any, old_ids: set[int]) -> set[str]:
    if not isinstance(entries, list):
        return set()
    return {
        e["quote"]
        for e in entries
        if isinstance(e, dict) and e.get("call_id") in old_ids and isinstance(e.get("quote"), str)
    }


def _scrub_copies(session: Session, old_ids: set[int], ids: list[int]) -> dict[Any, dict[int, dict]]:
    """Per table (Reminder, Outbox, Feature): row id → the new values of the rows that held
    quotes of old calls. Nothing is written here."""
    reminders = session.execute(select(Reminder.id, Reminder.message, Reminder.evidence)).all()
    features = session.execute(
        select(Feature.id, Feature.evidence).where(Feature.evidence.is_not(None))
    ).all()
    quotes: set[str] = set()
    for chunk in in_chunks(ids):
        quotes.update(session.scalars(select(Cue.quote).where(Cue.call_id.in_(chunk))))
    for _, _, evidence in reminders:
        quotes |= _evidence_quotes(evidence, old_ids)
    for _, evidence in features:
        quotes |= _evidence_quotes(evidence, old_ids)
    needles = sorted((q for q in quotes if len(q.strip()) >= _MIN_QUOTE), key=len, reverse=True)
    out: dict[Any, dict[int, dict]] = {Reminder: {}, Outbox: {}, Feature: {}}
    if not needles and not old_ids:
        return out
    for rid, message, evidence in reminders:
        values = {}
        new_message = _scrub_text(message or "", needles)
        if new_message != (message or ""):
            values["message"] = new_message
        new_evidence = _scrub_value(evidence, needles, old_ids)
        if new_evidence is not evidence:
            values["evidence"] = new_evidence
        if values:
            out[Reminder][rid] = values
    for fid, evidence in features:
        new_evidence = _scrub_value(evidence, needles, old_ids)
        if new_evidence is not evidence:
            out[Feature][fid] = {"evidence": new_evidence}
    if needles:
        for oid, payload in session.execute(select(Outbox.id, Outbox.payload)).all():
            new_payload = _scrub_value(payload, needles, old_ids)
            if new_payload is not payload:
                out[Outbox][oid] = {"payload": new_payload}
    return out
