"""`purge` also forgets what `churnwatch serve` kept of an old call: the job's result (cues and
hint quote the customer) and the uploaded recording churnwatch stored."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from pipeline import store
from pipeline.privacy.purge import purge

from pages_world import _cues, _transcript


def test_purge_empties_old_jobs_results_and_deletes_their_uploads(engine, book, tmp_path):
    now = datetime.now(timezone.utc)
    files = {}
    with store.session_scope(engine) as session:
        account = session.get(store.Account, "ACC-1003")
        for name, age in (("old", 400), ("new", 3)):
            upload = tmp_path / "uploads" / f"{name}.wav"
            upload.parent.mkdir(exist_ok=True)
            upload.write_bytes(b"RIFF")
            files[name] = upload
            call = store.add_call(session, audio_sha256=f"{name:0<64}", source=str(upload), account=account,
                                  rep=account.rep, call_date=now - timedelta(days=age), transcript=_transcript(),
                                  metrics=None, cues=_cues(_transcript()))
            session.add(store.Job(status="done", source="upload", file_path=str(upload), account_id="ACC-1003",
                                  call_id=call.id, result={"hints": [{"text": "They said: cancelling the contract"}]}))
    with store.session_scope(engine) as session:
        dry = purge(session, 365, now, dry_run=True)
    assert (dry.jobs, dry.uploads) == (1, 1) and files["old"].exists()
    with store.session_scope(engine) as session:
        report = purge(session, 365, now)
    assert (report.jobs, report.uploads) == (1, 1)
    assert not files["old"].exists() and files["new"].exists()
    with store.session_scope(engine) as session:
        results = {j.file_path.rsplit("/", 1)[-1]: j.result for j in session.scalars(select(store.Job))}
    assert results["old.wav"] is None and "cancelling" in results["new.wav"]["hints"][0]["text"]
    with store.session_scope(engine) as session:
        again = purge(session, 365, now)
    assert (again.jobs, again.uploads) == (0, 0)
