"""Helpers of the web and worker tests (the fixtures are in conftest.py): a small CRM book with
users and tokens, tiny audio bytes, upload calls, a fake ingest and the real toolkit loaded once."""

from __future__ import annotations

import functools
import io
import struct
import wave
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline import store
from pipeline.flow import ingest

ROOT = Path(__file__).resolve().parents[2]
TWO_VOICES = ROOT / "tests" / "data" / "two_voices.stereo.ogg"


def wav_bytes(seconds: float = 0.2, tone: int = 0) -> bytes:
    """A tiny valid mono WAV (a different `tone` gives different bytes, so a different audio hash)."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        frames = int(16000 * seconds)
        w.writeframes(b"".join(struct.pack("<h", (i * (tone + 1)) % 2000 - 1000) for i in range(frames)))
    return buf.getvalue()


@dataclass
class Book:
    maya: str  # tokens
    callum: str
    manager: str
    coach: str


def seed_crm(engine) -> Book:
    with store.session_scope(engine) as session:
        maya = store.Rep(name="Maya Okafor", email="maya.okafor@churnwatch-seller.example.com")
        callum = store.Rep(name="Callum Reid", email="callum.reid@churnwatch-seller.example.com")
        session.add_all([maya, callum])
        session.flush()
        session.add_all([
            store.Account(id="ACC-1003", name="Kestrel Dental Group", rep_id=maya.id),
            store.Account(id="ACC-1002", name="Harrowgate Group", rep_id=callum.id),
            store.Account(id="ACC-1009", name="Both Domains Ltd", rep_id=callum.id),
        ])
        session.flush()
        session.add_all([
            store.Contact(account_id="ACC-1002", name="Olga Adams", email="olga.adams@harrowgate-group.example.com"),
            store.Contact(account_id="ACC-1002", name="Martin Shaw", email="Martin.Shaw@harrowgate-group.example.com"),
            store.Contact(account_id="ACC-1003", name="Jo Kim", email="jo.kim@kestrel-dental.example.com"),
            store.Contact(account_id="ACC-1009", name="Pat Lee", email="pat@shared-domain.example.com"),
            store.Contact(account_id="ACC-1003", name="Sam Roe", email="sam@shared-domain.example.com"),
        ])
        _, t_maya = store.add_user(session, "maya.okafor@churnwatch-seller.example.com", "rep", rep_name="Maya Okafor")
        _, t_callum = store.add_user(session, "callum.reid@churnwatch-seller.example.com", "rep",
                                     rep_name="Callum Reid")
        _, t_manager = store.add_user(session, "boss@churnwatch-seller.example.com", "manager")
        _, t_coach = store.add_user(session, "coach@churnwatch-seller.example.com", "coach")
    return Book(t_maya, t_callum, t_manager, t_coach)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def upload(client, token: str, data: bytes | None = None, name: str = "call.wav", **fields):
    files = {"file": (name, data if data is not None else wav_bytes(), "audio/wav")}
    return client.post("/api/v1/calls", files=files, data={k: v for k, v in fields.items() if v is not None},
                       headers=auth(token))


class FakeIngest:
    """Stands in for ingest.ingest_file: a recording whose bytes contain b'BROKEN' fails, others pass."""

    def __init__(self):
        self.seen: list[Path] = []

    def __call__(self, engine, path, kit, options):
        self.seen.append(Path(path))
        data = Path(path).read_bytes()
        if b"BROKEN" in data:
            return ingest.IngestResult(file=str(path), status="error", account_id=options.account_id,
                                       error=f"{path}: ffmpeg cannot decode this file (not audio).")
        return ingest.IngestResult(file=str(path), status="ok", call_id=None, account_id=options.account_id,
                                   cues=[{"label": "cancellation_intent"}],
                                   hints=[{"text": f"Hint for {options.account_id}"}], score=42.0)


@functools.cache
def real_kit() -> ingest.Toolkit:
    """The real toolkit (Whisper tiny.en, spaCy, the embedder, the rules), loaded once per session."""
    from pipeline.settings import load_settings

    settings = load_settings(db_url="sqlite://")
    if not (settings.models_dir / "whisper" / settings.asr_model).exists():
        pytest.skip(f"Whisper {settings.asr_model} is not installed; "
                    f"run: churnwatch models install {settings.asr_model}")
    return ingest.load_toolkit(settings)
