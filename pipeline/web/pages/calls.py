"""One call: the transcript by speaker with times, every cue highlighted, and the recording.

Clicking a cue (or a turn's time) moves the player there. The recording is served by
`/calls/{id}/audio` with HTTP Range support (the browser asks for the part it plays), only to
someone who may see the call, and only from the file the store recorded for it.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse

from pipeline import store
from pipeline.types import language_doubt
from pipeline.web import auth
from pipeline.web.i18n import Translator
from pipeline.web.pages.common import page_caller, render, require

router = APIRouter()
AUDIO_TYPES = {".wav": "audio/wav", ".mp3": "audio/mpeg", ".flac": "audio/flac", ".ogg": "audio/ogg",
               ".oga": "audio/ogg", ".opus": "audio/ogg", ".m4a": "audio/mp4", ".webm": "audio/webm"}


def visible_call(session, who: auth.Caller, call_id: int):
    call = session.scalars(auth.visible_calls(who).where(store.Call.id == call_id)).first()
    if call is None:
        raise HTTPException(404, Translator(who.lang)("No call {id} in your book.", id=call_id))
    return call


def recording_path(call) -> Path | None:
    """The stored recording of a call, if it is still on disk and is audio."""
    if not call.source:
        return None
    path = Path(call.source).expanduser()
    if not path.is_absolute():
        path = Path.cwd() / path
    if path.suffix.lower() not in AUDIO_TYPES or not path.is_file():
        return None
    return path


@router.get("/calls/{call_id}")
def call_page(call_id: int, request: Request):
    who = page_caller(request)
    require(who, "rep", "manager", "admin", "coach")
    with store.session_scope(request.app.state.engine) as session:
        call = visible_call(session, who, call_id)
        by_segment: dict[int | None, list] = {}
        for c in sorted(call.cues, key=lambda c: (c.start, c.label)):
            by_segment.setdefault(c.segment_id, []).append(
                {"id": c.id, "label": c.label, "rule": c.rule_name, "version": c.rule_version,
                 "confidence": c.score, "start": c.start, "quote": c.quote})
        turns = [{"id": s.id, "start": s.start, "end": s.end, "speaker": s.speaker or "unknown", "text": s.text,
                  "cues": by_segment.get(s.id, [])} for s in call.segments]
        loose = by_segment.get(None, [])
        view = {"id": call.id, "account_id": call.account_id,
                "account": (call.account.name if call.account else None) or call.account_id,
                "rep": call.rep.name if call.rep else None, "date": call.call_date, "duration": call.duration,
                "language": call.language, "runner_up": _runner_up(call), "layout": call.channel_layout,
                "status": call.status,
                "has_audio": recording_path(call) is not None, "cue_count": len(call.cues)}
    return render(request, who, "call.html", call=view, turns=turns, loose=loose)


def _runner_up(call) -> str | None:
    """The next likeliest language, where detection's guess of the call's was weak."""
    doubt = language_doubt(call.language_scores)
    return doubt[1][0] if doubt else None


@router.get("/calls/{call_id}/audio")
def call_audio(call_id: int, request: Request):
    who = page_caller(request)
    require(who, "rep", "manager", "admin", "coach")
    with store.session_scope(request.app.state.engine) as session:
        path = recording_path(visible_call(session, who, call_id))
    if path is None:
        raise HTTPException(404, Translator(who.lang)("The recording of this call is no longer stored."))
    return FileResponse(path, media_type=AUDIO_TYPES[path.suffix.lower()],
                        headers={"Cache-Control": "private, max-age=3600"})
