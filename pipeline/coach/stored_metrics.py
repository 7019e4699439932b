"""Call metrics kept with the stored call (`Call.metrics`), computed for calls not measured yet."""

from __future__ import annotations

from sqlalchemy.orm import Session

from pipeline.coach.metrics import METRICS_VERSION, CallMetrics, CoachOptions, call_metrics
from pipeline.errors import ChurnwatchError
from pipeline.store import Call
from pipeline.types import Segment, Transcript, Word


def transcript_from_call(call) -> Transcript:
    """A Transcript rebuilt from a stored `store.Call` and its segment rows."""
    segments = [
        Segment(start=r.start, end=r.end, text=r.text, speaker=r.speaker, channel=r.channel,
                avg_logprob=r.avg_logprob, speaker_confidence=r.speaker_confidence,
                words=[Word(**w) for w in (r.words or [])])
        for r in call.segments
    ]
    duration = call.duration or max((s.end for s in segments), default=0.0)
    return Transcript(language=call.language or "en", duration=duration, engine=call.engine or "",
                      model=call.model or "", segments=segments, channel_layout=call.channel_layout or "mono")


def store_call_metrics(session: Session, call_id: int, metrics: CallMetrics) -> None:
    """Keep a call's metrics in `Call.metrics` (the caller commits)."""
    call = session.get(Call, call_id)
    if call is None:
        raise ChurnwatchError(f"No call with id {call_id} in the database; list calls with: churnwatch coach report")
    call.metrics = metrics.to_dict()
    session.flush()


def load_call_metrics(session: Session, call_id: int) -> CallMetrics | None:
    """The stored metrics of a call, or None when missing or of an older definition."""
    call = session.get(Call, call_id)
    data = call.metrics if call is not None else None
    if not data or data.get("version") != METRICS_VERSION:
        return None
    return CallMetrics.from_dict(data)


def ensure_call_metrics(session: Session, calls: list, nlp=None,
                        options: CoachOptions = CoachOptions()) -> dict[int, CallMetrics]:
    """Metrics per call id: stored ones as they are; missing or outdated ones computed from the
    stored segments and stored. Calls without segments (pending, purged) are left out."""
    out: dict[int, CallMetrics] = {}
    for call in calls:
        data = call.metrics
        if data and data.get("version") == METRICS_VERSION:
            out[call.id] = CallMetrics.from_dict(data)
            continue
        if not call.segments:
            continue
        metrics = call_metrics(transcript_from_call(call), nlp, options)
        store_call_metrics(session, call.id, metrics)
        out[call.id] = metrics
    return out
