"""The job queue on every backend: leases, a worker killed mid-job, two workers, the watch folder."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import select

from pipeline import store
from pipeline.flow import ingest
from pipeline.flow.worker import FolderWatcher, Worker

from web_helpers import FakeIngest, wav_bytes


def _queue(engine, tmp_path: Path, n: int, account: str = "ACC-1003") -> list[int]:
    ids = []
    with store.session_scope(engine) as session:
        for i in range(n):
            path = tmp_path / f"rec_{i}.wav"
            path.write_bytes(wav_bytes(tone=i))
            job, _ = store.enqueue_job(session, file_path=str(path), account_id=account)
            ids.append(job.id)
    return ids


def _job(engine, job_id: int) -> store.Job:
    with store.session_scope(engine) as session:
        return session.get(store.Job, job_id)


def test_a_claimed_job_is_taken_by_one_worker_until_its_lease_runs_out(engine, book, tmp_path, fake_ingest):
    [job_id] = _queue(engine, tmp_path, 1)
    with store.session_scope(engine) as session:
        job = store.claim_next_job(session, "dead-worker", lease_seconds=60)
        assert job.id == job_id and job.status == "running" and job.attempts == 1
    # the worker "dies" here: it never finishes. While its lease runs, nobody else takes the job.
    with store.session_scope(engine) as session:
        assert store.claim_next_job(session, "other") is None
    later = datetime.now(timezone.utc) + timedelta(seconds=61)
    with store.session_scope(engine) as session:
        again = store.claim_next_job(session, "other", now=later)
        assert again.id == job_id and again.attempts == 2 and again.worker == "other"
    with store.session_scope(engine) as session:  # the dead worker coming back cannot overwrite the result
        assert not store.finish_job(session, job_id, "dead-worker", "done")
        assert store.finish_job(session, job_id, "other", "done")
    assert _job(engine, job_id).status == "done"


def test_a_job_whose_workers_keep_dying_fails_with_its_reason_and_the_queue_goes_on(engine, book, tmp_path):
    stuck, nxt = _queue(engine, tmp_path, 2)
    t = datetime.now(timezone.utc)
    for attempt in range(store.jobs.MAX_ATTEMPTS):
        with store.session_scope(engine) as session:
            job = store.claim_next_job(session, f"w{attempt}", lease_seconds=10, now=t)
            assert job.id == stuck
        t += timedelta(seconds=11)
    with store.session_scope(engine) as session:
        job = store.claim_next_job(session, "w-last", lease_seconds=10, now=t)
        assert job.id == nxt
    failed = _job(engine, stuck)
    assert failed.status == "failed" and f"stopped {store.jobs.MAX_ATTEMPTS} times" in failed.error


def _hang_forever(engine_, path, kit, options):
    time.sleep(3600)


def _doomed_worker(db_url: str) -> None:
    """A worker process that claims a job and hangs in it (until the test kills it with SIGKILL)."""
    ingest.ingest_file = _hang_forever
    engine = store.make_engine(db_url)
    Worker(engine, None, kit=object(), name="doomed", lease_seconds=1.5, poll_seconds=0.05).run()


def test_a_worker_killed_mid_job_leaves_the_job_to_the_next_worker(engine, db_url, book, tmp_path, fake_ingest):
    job_id, other_id = _queue(engine, tmp_path, 2)
    proc = multiprocessing.get_context("fork").Process(target=_doomed_worker, args=(db_url,))
    proc.start()
    try:
        deadline = time.monotonic() + 30
        while _job(engine, job_id).status != "running":
            assert time.monotonic() < deadline, "the doomed worker never claimed the job"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
    finally:
        if proc.is_alive():
            proc.kill()
    assert _job(engine, job_id).worker == "doomed"
    time.sleep(1.6)  # its lease runs out
    done = Worker(engine, None, kit=object(), name="survivor", poll_seconds=0.01).run(until_empty=True)
    assert done == 2
    job = _job(engine, job_id)
    assert (job.status, job.worker, job.attempts) == ("done", "survivor", 2)
    assert _job(engine, other_id).status == "done"
    assert sorted(p.name for p in fake_ingest.seen) == ["rec_0.wav", "rec_1.wav"]  # each processed once


def test_two_workers_at_once_process_each_job_once(engine, book, tmp_path, monkeypatch):
    ids = _queue(engine, tmp_path, 12)
    fake = FakeIngest()
    lock = threading.Lock()

    def slow(*args):
        time.sleep(0.02)
        with lock:
            return fake(*args)

    monkeypatch.setattr(ingest, "ingest_file", slow)
    workers = [Worker(engine, None, kit=object(), name=f"w{i}", poll_seconds=0.01) for i in range(2)]
    counts = [0, 0]

    def run(i):
        counts[i] = workers[i].run(until_empty=True)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(counts) == 12
    assert sorted(p.name for p in fake.seen) == sorted(f"rec_{i}.wav" for i in range(12))
    with store.session_scope(engine) as session:
        jobs = list(session.scalars(select(store.Job).where(store.Job.id.in_(ids))))
        assert {j.status for j in jobs} == {"done"} and {j.attempts for j in jobs} == {1}


def test_the_watch_folder_queues_recordings_and_moves_them_to_done_or_failed(engine, book, tmp_path, fake_ingest):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "kestrel.wav").write_bytes(wav_bytes())
    (inbox / "kestrel.json").write_text(json.dumps({"account_id": "ACC-1003", "rep": "Maya Okafor",
                                                    "call_date": "2026-10-06", "external_id": "meet-7"}))
    (inbox / "harrowgate.flac.wav").write_bytes(wav_bytes(tone=4))  # no sidecar: found by participants? none
    (inbox / "by_email.wav").write_bytes(wav_bytes(tone=6))
    (inbox / "by_email.json").write_text(json.dumps({"participants": ["olga.adams@harrowgate-group.example.com"]}))
    (inbox / "garbled.wav").write_bytes(wav_bytes()[:44] + b"BROKEN" * 20)
    (inbox / "garbled.json").write_text(json.dumps({"account_id": "ACC-1003"}))
    (inbox / "notes.txt").write_text("not a call")
    (inbox / "bad_date.mp3").write_bytes(b"ID3....")
    (inbox / "bad_date.json").write_text(json.dumps({"account_id": "ACC-1003", "call_date": "yesterday"}))

    watcher = FolderWatcher(engine, inbox)
    queued = watcher.scan(now=time.time() + 10)
    assert len(queued) == 3
    assert watcher.scan(now=time.time() + 10) == []  # never queued twice
    failed = inbox / "failed"
    assert "YYYY-MM-DD" in (failed / "bad_date.error.txt").read_text()
    assert (failed / "bad_date.mp3").exists() and (failed / "bad_date.json").exists()
    assert "give account_id" in (failed / "harrowgate.flac.error.txt").read_text()
    assert "not a recording" in (failed / "notes.error.txt").read_text()

    Worker(engine, None, kit=object(), name="w", poll_seconds=0.01).run(until_empty=True)
    assert watcher.settle() == 3
    done = inbox / "done"
    assert sorted(p.name for p in done.iterdir()) == ["by_email.json", "by_email.wav", "kestrel.json", "kestrel.wav"]
    assert (failed / "garbled.wav").exists()
    assert "cannot decode" in (failed / "garbled.error.txt").read_text()
    assert list((inbox / ".processing").iterdir()) == []
    with store.session_scope(engine) as session:
        jobs = {j.external_id or j.account_id: j for j in session.scalars(select(store.Job))}
        assert jobs["meet-7"].rep == "Maya Okafor" and jobs["meet-7"].call_date.isoformat() == "2026-10-06"
        assert jobs["ACC-1002"].status == "done" and jobs["ACC-1002"].source == "watch"
    assert watcher.settle() == 0


def test_a_file_still_being_copied_is_left_alone(engine, book, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "arriving.wav").write_bytes(wav_bytes())
    (inbox / "arriving.json").write_text(json.dumps({"account_id": "ACC-1003"}))
    watcher = FolderWatcher(engine, inbox, settle_seconds=5)
    assert watcher.scan() == []
    assert (inbox / "arriving.wav").exists()
    assert len(watcher.scan(now=time.time() + 6)) == 1
