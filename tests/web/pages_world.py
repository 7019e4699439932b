"""A small world for the page tests: the CRM book of web_helpers with passwords, one stored call
per rep (segments from the truth of tests/data/two_voices, its audio copied so the player can
play it), cues on the customer's lines, open reminders and a score history.

The call is stored through the store's own `add_call`, as ingest stores it; the pages are what
is tested here, not Whisper (tests/test_ingest.py covers that).
"""

from __future__ import annotations

import functools
import json
import shutil
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import select

from pipeline import store
from pipeline.store.jobs import hash_password
from pipeline.types import Cue, Segment, Transcript

from web_helpers import ROOT, seed_crm

PASSWORD = "correct horse battery staple"
TRUTH = json.loads((ROOT / "tests" / "data" / "two_voices.truth.json").read_text())
AUDIO = ROOT / "tests" / "data" / "two_voices.stereo.ogg"


@functools.cache
def password_hash() -> str:
    """One argon2id hash of PASSWORD for every test user (hashing is slow on purpose)."""
    return hash_password(PASSWORD)


@dataclass
class World:
    maya_call: int
    callum_call: int
    maya_reminders: list[int]
    callum_reminder: int
    cue_start: float  # the start of the last cue on Maya's call
    emails: dict[str, str]


EMAILS = {"maya": "maya.okafor@churnwatch-seller.example.com", "callum": "callum.reid@churnwatch-seller.example.com",
          "manager": "boss@churnwatch-seller.example.com", "coach": "coach@churnwatch-seller.example.com",
          "admin": "admin@churnwatch-seller.example.com"}


def _transcript() -> Transcript:
    segs = [Segment(start=t["start"], end=t["end"], text=t["text"], speaker=t["speaker"],
                    channel=0 if t["channel"] == "left" else 1, speaker_confidence=1.0) for t in TRUTH["turns"]]
    return Transcript(language="en", duration=TRUTH["duration_s"], engine="faster-whisper", model="tiny.en",
                      segments=segs, channel_layout="stereo")


def _cues(transcript: Transcript) -> list[Cue]:
    out = []
    for i, s in enumerate(transcript.segments):
        if s.speaker != "customer":
            continue
        text = s.text.lower()
        label = ("cancellation_intent" if "cancel" in text else "invoice_dispute" if "invoice" in text
                 else "competitor_mention")
        out.append(Cue(label=label, rule=f"{label}.en.keywords", rule_version=1, start=s.start, end=s.end,
                       speaker="customer", quote=s.text, score=1.0, segment_index=i, why="matched"))
    return out


def seed_pages(engine, tmp_path: Path) -> World:
    seed_crm(engine)
    audio_dir = tmp_path / "recordings"
    audio_dir.mkdir(parents=True, exist_ok=True)
    now = datetime.now(timezone.utc)
    with store.session_scope(engine) as session:
        admin, _ = store.add_user(session, EMAILS["admin"], "admin")
        for user in session.scalars(select(store.User)):
            user.password_hash = password_hash()
        ids = {}
        reminders: dict[str, list[int]] = {}
        for who, account_id in (("maya", "ACC-1003"), ("callum", "ACC-1002")):
            account = session.get(store.Account, account_id)
            rep = account.rep
            audio = audio_dir / f"{who}-call.ogg"
            shutil.copyfile(AUDIO, audio)
            transcript = _transcript()
            call = store.add_call(session, audio_sha256=f"{who:0<64}"[:64], source=str(audio), account=account,
                                  rep=rep, call_date=now - timedelta(days=1), transcript=transcript, metrics=None,
                                  cues=_cues(transcript))
            ids[who] = call.id
            reminders[who] = []
            for k, (reason, text) in enumerate((("cancellation_intent", "Call them about the renewal."),
                                                ("pricing_request", "Send the pricing they asked for."))):
                r = store.Reminder(account_id=account_id, rep_id=rep.id, reason=reason, message=f"{text} ({who})",
                                   due=now + timedelta(days=k), status="open",
                                   evidence=[{"call_id": call.id, "quote": transcript.segments[1].text}],
                                   created_at=now - timedelta(minutes=10 - k))
                session.add(r)
                session.flush()
                reminders[who].append(r.id)
            for days, score in ((30, 22.0), (14, 35.0), (1, 61.0)):
                session.add(store.RiskScore(account_id=account_id, as_of=date.today() - timedelta(days=days),
                                            score=score, threshold=50.0, flagged=score >= 50,
                                            model_version="test", contributions={}))
        cue_start = max(c.start for c in _cues(_transcript()))
    return World(ids["maya"], ids["callum"], reminders["maya"], reminders["callum"][0], cue_start, EMAILS)


def login(client, email: str, password: str = PASSWORD, next_path: str = ""):
    """Sign in through the form, as a browser does (GET for the form's token, then POST)."""
    page = client.get("/login")
    token = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    return client.post("/login", data={"email": email, "password": password, "csrf": token, "next": next_path},
                       follow_redirects=False)


def csrf_of(html: str) -> str:
    return html.split('"X-CSRF-Token": "', 1)[1].split('"', 1)[0]
