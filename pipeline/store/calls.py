"""Writing and finding calls: the rows of one analysed call, the transcript cache, rule versions.

The flow stage hands plain data (`pipeline.types.Transcript`, `Cue`) to these functions; only they
build ORM rows for it. The caller owns the session and the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.store.tables import Account, Call, Cue, Rep, Rule, Segment, TranscriptCache
from pipeline.types import Cue as FoundCue
from pipeline.types import Transcript


def call_id_for_audio(session: Session, audio_sha256: str) -> int | None:
    """The stored call with this audio, if any (a second copy of a recording is a duplicate)."""
    return session.scalar(select(Call.id).where(Call.audio_sha256 == audio_sha256))


def cached_transcript(session: Session, audio_sha256: str, engine: str, model: str,
                      options_key: str) -> Transcript | None:
    row = session.scalar(
        select(TranscriptCache).where(
            TranscriptCache.audio_sha256 == audio_sha256,
            TranscriptCache.engine == engine,
            TranscriptCache.model == model,
            TranscriptCache.options_key == options_key,
        )
    )
    return Transcript.from_dict(row.transcript) if row else None


def add_transcript_cache(session: Session, audio_sha256: str, engine: str, model: str, options_key: str,
                         transcript: Transcript) -> None:
    session.add(TranscriptCache(audio_sha256=audio_sha256, engine=engine, model=model,
                                options_key=options_key, transcript=transcript.to_dict()))


def add_call(session: Session, *, audio_sha256: str, source: str, account: Account, rep: Rep | None,
             call_date: datetime, transcript: Transcript, metrics: dict[str, Any] | None,
             cues: Iterable[FoundCue]) -> Call:
    """Store one call with its segments and cues (flushed, so the call has its id)."""
    call = Call(
        audio_sha256=audio_sha256,
        source=source,
        account_id=account.id,
        rep_id=rep.id if rep else None,
        call_date=call_date,
        duration=transcript.duration,
        language=transcript.language,
        language_scores=transcript.language_scores,
        channel_layout=transcript.channel_layout,
        engine=transcript.engine,
        model=transcript.model,
        status="done",
        metrics=metrics,
    )
    for i, seg in enumerate(transcript.segments):
        call.segments.append(
            Segment(
                idx=i,
                speaker=seg.speaker,
                channel=seg.channel,
                start=seg.start,
                end=seg.end,
                text=seg.text,
                avg_logprob=seg.avg_logprob,
                speaker_confidence=seg.speaker_confidence,
                words=[w.__dict__ for w in seg.words],
            )
        )
    session.add(call)
    session.flush()
    for cue in cues:
        seg_row = call.segments[cue.segment_index] if cue.segment_index is not None else None
        session.add(
            Cue(
                call_id=call.id,
                segment_id=seg_row.id if seg_row else None,
                rule_name=cue.rule,
                rule_version=cue.rule_version,
                label=cue.label,
                start=cue.start,
                end=cue.end,
                speaker=cue.speaker,
                quote=cue.quote,
                score=cue.score,
                why=cue.why,
            )
        )
    session.flush()
    return call


def record_rule_version(session: Session, *, name: str, version: int, kind: str, label: str, content_hash: str,
                        definition: dict[str, Any]) -> None:
    """Keep the definition of a rule version that produced a stored cue (once per content)."""
    exists = session.scalar(
        select(Rule.id).where(Rule.name == name, Rule.version == version, Rule.content_hash == content_hash)
    )
    if exists is None:
        session.add(Rule(name=name, version=version, kind=kind, label=label, content_hash=content_hash,
                         definition=definition))
