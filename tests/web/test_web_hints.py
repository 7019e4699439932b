"""A worker sends the post-call hint to the rep's webhook as soon as the call is stored, once."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sqlalchemy import select

from pipeline import store
from pipeline.flow import ingest
from pipeline.flow.worker import Worker
from pipeline.reminders.outbox import META
from pipeline.reminders.policies import load_policies

from pages_world import _cues, _transcript
from web_helpers import wav_bytes

ROOT = Path(__file__).resolve().parents[2]


class Hook:
    def __init__(self):
        self.bodies: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                outer.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Kit:
    policies: object


def test_the_hint_reaches_the_reps_webhook_once_when_the_job_is_done(engine, book, tmp_path, monkeypatch):
    hook = Hook()
    try:
        policies = load_policies(ROOT / "rules" / "reminders.yaml",
                                 env={"CHURNWATCH_WEBHOOK_URL": hook.url, "CHURNWATCH_BASE_URL": "http://cw.example"})

        def stored_ingest(eng, path, kit, options):
            with store.session_scope(eng) as session:
                account = session.get(store.Account, options.account_id)
                transcript = _transcript()
                call = store.add_call(session, audio_sha256=store.text_sha256(Path(path).read_bytes().hex()),
                                      source=str(path), account=account, rep=account.rep,
                                      call_date=datetime.now(timezone.utc),
                                      transcript=transcript, metrics=None, cues=_cues(transcript))
                call_id = call.id
            return ingest.IngestResult(file=str(path), status="ok", call_id=call_id, account_id=options.account_id,
                                       cues=[{"label": "cancellation_intent"}],
                                       hints=[{"text": "Kestrel is thinking about cancelling: call them tomorrow."}],
                                       score=64.0)

        monkeypatch.setattr(ingest, "ingest_file", stored_ingest)
        audio = tmp_path / "call.wav"
        audio.write_bytes(wav_bytes(tone=3))
        with store.session_scope(engine) as session:
            job, _ = store.enqueue_job(session, file_path=str(audio), account_id="ACC-1003", rep="Maya Okafor",
                                       call_date=None, external_id="dialer-42", participants=[], source="api")
        worker = Worker(engine, None, kit=Kit(policies), name="w", poll_seconds=0.01)
        assert worker.run(until_empty=True) == 1
        assert len(hook.bodies) == 1
        text = hook.bodies[0]["text"]
        assert "After your call with Kestrel Dental Group" in text and "call them tomorrow" in text
        assert "http://cw.example/accounts/ACC-1003" in text
        with store.session_scope(engine) as session:
            rows = list(session.scalars(select(store.Outbox)))
            assert [(r.status, r.payload[META]["kind"], r.payload[META]["call_id"]) for r in rows] == [
                ("sent", "hint", rows[0].payload[META]["call_id"])]
        assert worker.run(until_empty=True) == 0  # nothing left: the hint is not sent again
        assert len(hook.bodies) == 1
    finally:
        hook.close()
