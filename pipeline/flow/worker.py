"""Workers of `churnwatch serve` and `churnwatch worker`: recordings queued in the database become calls.

A `Worker` loads its models once (`ingest.load_toolkit`), then loops: claim the next job
(`store.claim_next_job`: FOR UPDATE SKIP LOCKED on PostgreSQL, BEGIN IMMEDIATE on SQLite), run
`ingest.ingest_file` on it while a heartbeat renews the job's lease, and record the outcome (done
with the call id, cues and hints; duplicate with the stored call's id; failed with a one-line
reason). Nothing is retried silently: a recording that cannot be processed is `failed` at once,
and only a worker that died holding a job (its lease runs out) makes it claimable again, the
attempt counted, up to `store.jobs.MAX_ATTEMPTS`.

`FolderWatcher` takes recordings dropped into a folder (with an optional NAME.json sidecar of
the upload's fields), queues them and moves each to done/ or failed/ (with NAME.error.txt).

`check_submission` is the one validation of a submission's fields, shared with the web API.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import select

from pipeline import store
from pipeline.errors import ChurnwatchError
from pipeline.flow import ingest
from pipeline.store.jobs import FINISHED

log = logging.getLogger("churnwatch.worker")

AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".m4a", ".ogg")
LEASE_SECONDS = 60.0  # a job's lease; the heartbeat renews it every third of that


class SubmissionError(ChurnwatchError):
    """A submission that cannot be queued; `status` is the HTTP status the API answers with."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


@dataclass
class Submission:
    account_id: str
    rep: str | None = None
    call_date: date | None = None
    external_id: str | None = None
    participants: list[str] = field(default_factory=list)
    matched_by: str = "account_id"  # account_id | contact | domain
    language: str | None = None  # the call's language code; None: detected when transcribed


def parse_participants(value) -> list[str]:
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    out = []
    for item in items:
        item = str(item).strip()
        if not item:
            continue
        if item.count("@") != 1 or "." not in item.split("@")[1]:
            raise SubmissionError(f"participants: {item!r} is not an e-mail address; give comma-separated "
                                  "addresses, e.g. ana@customer.com,maya@yourcompany.com.")
        out.append(item.lower())
    return out


def check_submission(session, *, account_id: str | None, rep: str | None, call_date: str | date | None,
                     external_id: str | None, participants, language: str | None = None) -> Submission:
    """Validate the fields of an upload or a sidecar; find the account from the participants when
    no account_id is given. Raises SubmissionError with a message for the user."""
    account_id = (account_id or "").strip() or None
    rep = (rep or "").strip() or None
    external_id = (str(external_id).strip() if external_id is not None else "") or None
    if external_id and len(external_id) > 200:
        raise SubmissionError("external_id is longer than 200 characters.")
    day = None
    if isinstance(call_date, date):
        day = call_date
    elif call_date not in (None, ""):
        try:
            day = date.fromisoformat(str(call_date).strip())
        except ValueError:
            raise SubmissionError(f"call_date {call_date!r} is not a date; use YYYY-MM-DD, e.g. 2026-10-06.") from None
    people = parse_participants(participants)
    matched_by = "account_id"
    if account_id is None:
        if not people:
            raise SubmissionError("Say which account the call belongs to: give account_id, or participants "
                                  "(comma-separated e-mail addresses) to find it from the CRM contacts.")
        match = store.account_for_participants(session, people)
        if match.account_id is None:
            if match.candidates:
                raise SubmissionError("The participants' e-mail addresses match several accounts "
                                      f"({', '.join(match.candidates[:5])}); give account_id.")
            raise SubmissionError("No CRM contact or contact domain matches the participants "
                                  f"({', '.join(people)}); give account_id, or import the account's contacts "
                                  "(churnwatch crm import contacts.csv --kind contacts).")
        account_id, matched_by = match.account_id, match.how
    elif len(account_id) > 100:
        raise SubmissionError("account_id is longer than 100 characters.")
    try:
        from pipeline.speech.transcribe import check_language

        language = check_language(language)
    except ChurnwatchError as e:
        raise SubmissionError(str(e)) from None
    return Submission(account_id, rep, day, external_id, people, matched_by, language)


def requested_language(job) -> str | None:
    """The language an upload asked for: kept in the queued job's `result` until the job has one."""
    return ((job.result or {}).get("request") or {}).get("language")


def job_view(job) -> dict[str, Any]:
    """A job as the API and `--json` show it."""
    result = job.result or {}
    return {
        "job_id": job.id,
        "status": job.status,
        "call_id": job.call_id,
        "error": job.error,
        "account_id": job.account_id,
        "rep": job.rep,
        "call_date": job.call_date.isoformat() if job.call_date else None,
        "external_id": job.external_id,
        "attempts": job.attempts,
        "cues": result.get("cues", []),
        "hints": result.get("hints", []),
        "score": result.get("score"),
        "warnings": result.get("warnings", []),
        "created_at": job.created_at.isoformat() if job.created_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


# --- the worker -------------------------------------------------------------------------------


def default_worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """Claims jobs one at a time and ingests them with a toolkit loaded once."""

    def __init__(self, engine, settings, *, kit: ingest.Toolkit | None = None, name: str | None = None,
                 lease_seconds: float = LEASE_SECONDS, poll_seconds: float = 1.0):
        self.engine, self.settings = engine, settings
        self.kit = kit
        self.name = name or default_worker_name()
        self.lease_seconds, self.poll_seconds = lease_seconds, poll_seconds

    def load(self) -> ingest.Toolkit:
        if self.kit is None:
            log.info("worker %s: loading models", self.name)
            self.kit = ingest.load_toolkit(self.settings)
            log.info("worker %s: ready", self.name)
        return self.kit

    def claim(self):
        with store.session_scope(self.engine) as session:
            job = store.claim_next_job(session, self.name, lease_seconds=self.lease_seconds)
            if job is None:
                return None
            session.expunge(job)
            return job

    def run_once(self) -> int | None:
        """Process the next job, if any; returns its id (None when the queue was empty)."""
        kit = self.load()
        job = self.claim()
        if job is None:
            return None
        log.info("worker %s: job %s (attempt %s): %s", self.name, job.id, job.attempts, job.account_id)
        stop_beat = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(job.id, stop_beat), daemon=True)
        beat.start()
        try:
            status, call_id, error, result = self._process(job, kit)
        finally:
            stop_beat.set()
            beat.join()
        queued = 0
        with store.session_scope(self.engine) as session:
            kept = store.finish_job(session, job.id, self.name, status, call_id=call_id, error=error, result=result)
            if kept and status == "done" and call_id is not None:
                queued = self._queue_hint(session, kit, call_id, result or {})
        if queued:
            self.deliver(kit)
        if not kept:
            log.warning("worker %s: job %s was taken over by another worker (lease ran out); result dropped",
                        self.name, job.id)
        else:
            log.info("worker %s: job %s %s%s", self.name, job.id, status, f": {error}" if error else "")
        return job.id

    def _process(self, job, kit):
        options = ingest.IngestOptions(account_id=job.account_id, rep=job.rep, call_date=job.call_date,
                                       language=requested_language(job))
        try:
            res = ingest.ingest_file(self.engine, Path(job.file_path), kit, options)
        except Exception as e:  # a bug or the database went away: fail the job, say so, keep the worker
            log.exception("worker %s: job %s crashed", self.name, job.id)
            first = (str(e).strip().splitlines() or [""])[0][:300]
            return "failed", None, f"Processing stopped on an unexpected error ({type(e).__name__}: {first}).", None
        if res.status == "ok":
            result = {"cues": res.cues, "hints": res.hints, "score": res.score, "warnings": res.warnings}
            return "done", res.call_id, None, result
        if res.status == "duplicate":
            note = f"The same recording is already stored as call {res.call_id}."
            return "duplicate", res.call_id, None, {"note": note}
        message = (res.error or "the recording could not be processed").replace(str(job.file_path), "the recording")
        return "failed", None, message.strip().splitlines()[0] if message.strip() else message, None

    def _queue_hint(self, session, kit, call_id: int, result: dict) -> int:
        """Queue the post-call hint for the rep's channels, in the transaction that finishes the job."""
        from pipeline.reminders.outbox import enqueue_hint

        texts = [h.get("text") for h in result.get("hints", []) if isinstance(h, dict) and h.get("text")]
        call = session.get(store.Call, call_id)
        if not texts or call is None or getattr(kit, "policies", None) is None:
            return 0
        link = kit.policies.delivery.account_link(call.account_id) if call.account_id else None
        rows = enqueue_hint(session, call_id=call_id, account_id=call.account_id, rep=call.rep, text=texts[0],
                            policies=kit.policies, now=datetime.now(timezone.utc), link=link)
        return len(rows)

    def deliver(self, kit) -> None:
        """Send what is due in the outbox now (the hint just queued, the call's reminders), so the rep
        hears about the call within seconds; a failure stays queued for `reminders deliver`."""
        import httpx

        from pipeline.reminders.outbox import deliver_pending

        try:
            with store.session_scope(self.engine) as session, httpx.Client(timeout=10) as client:
                report = deliver_pending(session, datetime.now(timezone.utc), client, kit.policies.delivery.smtp,
                                         limit=50)
            if report.errors:
                log.warning("worker %s: %d message(s) not delivered yet: %s", self.name, len(report.errors),
                            "; ".join(sorted(set(report.errors.values())))[:300])
        except Exception:  # delivery must never fail the worker; the messages stay queued
            log.exception("worker %s: delivering the outbox failed", self.name)

    def _heartbeat(self, job_id: int, stop: threading.Event) -> None:
        while not stop.wait(self.lease_seconds / 3):
            try:
                with store.session_scope(self.engine) as session:
                    if not store.renew_lease(session, job_id, self.name, lease_seconds=self.lease_seconds):
                        return
            except Exception:  # a busy database: try again at the next beat, the lease has slack
                log.warning("worker %s: could not renew the lease of job %s", self.name, job_id, exc_info=True)

    def run(self, stop: threading.Event | None = None, *, until_empty: bool = False) -> int:
        """Loop until `stop` is set (or, with until_empty, the queue is empty); returns jobs processed."""
        stop = stop or threading.Event()
        self.load()
        done = 0
        while not stop.is_set():
            try:
                job_id = self.run_once()
            except Exception:  # the database is unreachable for a moment: wait and try again
                log.exception("worker %s: could not reach the job queue", self.name)
                job_id = None
                if until_empty:
                    raise
            if job_id is not None:
                done += 1
                continue
            if until_empty:
                break
            stop.wait(self.poll_seconds)
        return done


def worker_main(db_url: str, name: str | None = None, stop=None, settings_overrides: dict | None = None) -> None:
    """A worker process: its own engine, its models loaded once, stops when `stop` is set or on SIGTERM."""
    import signal

    from pipeline.settings import load_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = stop or threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the parent, which stops us in order
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    settings = load_settings(db_url=db_url, **(settings_overrides or {}))
    engine = store.make_engine(settings.db_url)
    try:
        Worker(engine, settings, name=name).run(stop)
    finally:
        engine.dispose()


# --- the watch folder -------------------------------------------------------------------------

SIDECAR_FIELDS = ("account_id", "rep", "call_date", "external_id", "participants")


class FolderWatcher:
    """Recordings dropped into `folder` are queued; finished ones go to done/ or failed/.

    A new file is first moved to .processing/ under a generated name (so a second scan, or a
    restart, never queues it twice), and back out under its own name when its job finishes.
    """

    def __init__(self, engine, folder: Path, *, settle_seconds: float = 1.0):
        self.engine = engine
        self.folder = Path(folder)
        self.settle_seconds = settle_seconds
        self.processing = self.folder / ".processing"
        self.done, self.failed = self.folder / "done", self.folder / "failed"
        for d in (self.processing, self.done, self.failed):
            d.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def sidecar_of(path: Path) -> Path | None:
        for candidate in (path.with_suffix(".json"), path.with_name(path.name + ".json")):
            if candidate.is_file():
                return candidate
        return None

    def scan(self, now: float | None = None) -> list[int]:
        """Queue the recordings that arrived (and have stopped growing); returns the new job ids."""
        now = time.time() if now is None else now
        queued = []
        for path in sorted(self.folder.iterdir()):
            if not path.is_file() or path.name.startswith(".") or path.suffix.lower() == ".json":
                continue
            if path.name.endswith(".error.txt"):
                continue
            try:
                if now - path.stat().st_mtime < self.settle_seconds:
                    continue  # still being copied in
            except FileNotFoundError:
                continue
            job_id = self._take(path)
            if job_id is not None:
                queued.append(job_id)
        return queued

    def _take(self, path: Path) -> int | None:
        sidecar = self.sidecar_of(path)
        if path.suffix.lower() not in AUDIO_SUFFIXES:
            self._reject(path, sidecar, f"{path.name} is not a recording this tool reads; use one of "
                                        f"{', '.join(AUDIO_SUFFIXES)}.")
            return None
        fields: dict[str, Any] = {}
        if sidecar is not None:
            try:
                data = json.loads(sidecar.read_text(encoding="utf-8"))
                if not isinstance(data, dict):
                    raise ValueError("the file holds no JSON object")
            except (ValueError, OSError) as e:
                self._reject(path, sidecar, f"{sidecar.name} is not a JSON object of the call's fields ({e}).")
                return None
            unknown = sorted(set(data) - set(SIDECAR_FIELDS))
            if unknown:
                self._reject(path, sidecar, f"{sidecar.name}: unknown field(s) {', '.join(unknown)}; "
                                            f"use {', '.join(SIDECAR_FIELDS)}.")
                return None
            fields = data
        staged = self.processing / f"{uuid.uuid4().hex}{path.suffix.lower()}"
        try:
            with store.session_scope(self.engine) as session:
                sub = check_submission(session, **{k: fields.get(k) for k in SIDECAR_FIELDS})
                shutil.move(str(path), staged)
                job, created = store.enqueue_job(session, file_path=str(staged), account_id=sub.account_id,
                                                 rep=sub.rep, call_date=sub.call_date, external_id=sub.external_id,
                                                 participants=sub.participants, source="watch",
                                                 original_name=path.name)
                if not created:
                    raise SubmissionError(f"external_id {sub.external_id!r} was queued before as job {job.id}.")
        except ChurnwatchError as e:
            if staged.exists():
                shutil.move(str(staged), path)
            self._reject(path, sidecar, str(e))
            return None
        except Exception:  # the database is busy or away: leave the file for the next scan
            if staged.exists():
                shutil.move(str(staged), path)
            raise
        if sidecar is not None:
            shutil.move(str(sidecar), self.processing / f"{staged.stem}.json")
        log.info("watch: %s queued as job %s", path.name, job.id)
        return job.id

    def _target(self, folder: Path, name: str) -> Path:
        target = folder / name
        n = 1
        while target.exists():
            stem, suffix = Path(name).stem, Path(name).suffix
            target = folder / f"{stem}.{n}{suffix}"
            n += 1
        return target

    def _reject(self, path: Path, sidecar: Path | None, reason: str) -> None:
        target = self._target(self.failed, path.name)
        shutil.move(str(path), target)
        if sidecar is not None and sidecar.exists():
            shutil.move(str(sidecar), self.failed / f"{target.stem}.json")
        (self.failed / f"{target.stem}.error.txt").write_text(reason.strip() + "\n", encoding="utf-8")
        log.info("watch: %s failed: %s", path.name, reason)

    def settle(self) -> int:
        """Move the recordings of finished jobs to done/ or failed/; returns how many were moved."""
        moved = 0
        with store.session_scope(self.engine) as session:
            jobs = list(session.scalars(select(store.Job).where(store.Job.source == "watch",
                                                                store.Job.status.in_(FINISHED),
                                                                store.Job.original_name.is_not(None))))
            for job in jobs:
                staged = Path(job.file_path)
                if staged.parent != self.processing:
                    continue  # another watcher's folder
                name = job.original_name
                ok = job.status in ("done", "duplicate")
                folder = self.done if ok else self.failed
                target = self._target(folder, name)
                if staged.exists():
                    shutil.move(str(staged), target)
                side = staged.with_suffix(".json")
                if side.exists():
                    shutil.move(str(side), folder / f"{target.stem}.json")
                if not ok:
                    (folder / f"{target.stem}.error.txt").write_text((job.error or "failed") + "\n", encoding="utf-8")
                elif job.status == "duplicate":
                    (folder / f"{target.stem}.duplicate.txt").write_text(
                        f"The same recording was already stored as call {job.call_id}.\n", encoding="utf-8")
                job.file_path, job.original_name = str(target), None
                moved += 1
        return moved

    def run(self, stop: threading.Event, poll_seconds: float = 2.0) -> None:
        while not stop.is_set():
            try:
                self.scan()
                self.settle()
            except Exception:
                log.exception("watch: could not scan %s", self.folder)
            stop.wait(poll_seconds)
