"""The job queue of `churnwatch serve` and the users who may reach it: both live in the store.

Jobs: `enqueue_job` adds one (the same `external_id` twice gives back the first job),
`claim_next_job` hands the oldest claimable job to one worker atomically (PostgreSQL:
`SELECT ... FOR UPDATE SKIP LOCKED`; SQLite: every transaction opens with BEGIN IMMEDIATE, so
claims take turns), with a lease the worker renews (`renew_lease`) while it works. A job whose
lease ran out (its worker died) is claimable again and its attempt is counted; after
`MAX_ATTEMPTS` it ends `failed` with the reason. `finish_job` records the outcome only while the
worker still holds the job.

Users: `add_user`, `new_token` (shown once, stored as its sha256), `user_for_token`, passwords
hashed with argon2id (`hash_password`, `verify_password`; older scrypt hashes still verify). `account_for_participants`
finds the account of a call from its participants' e-mail addresses.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pipeline.errors import ChurnwatchError
from pipeline.store.tables import Contact, Job, Rep, User

__all__ = [
    "FINISHED", "JOB_STATUSES", "MAX_ATTEMPTS", "ROLES", "AccountMatch", "Job", "User",
    "account_for_participants", "add_user", "claim_next_job", "enqueue_job", "finish_job", "get_job",
    "hash_password", "job_for_external_id", "list_jobs", "list_users", "new_token", "release_jobs",
    "renew_lease", "user_for_token", "verify_password",
]

JOB_STATUSES = ("queued", "running", "done", "duplicate", "failed")
FINISHED = ("done", "duplicate", "failed")
MAX_ATTEMPTS = 3  # claims of one job (a worker died holding it) before it is failed for good
ROLES = ("rep", "manager", "coach", "admin")


def _now() -> datetime:
    return datetime.now(timezone.utc)


# --- jobs ---------------------------------------------------------------------------------------


def job_for_external_id(session: Session, external_id: str | None) -> Job | None:
    if not external_id:
        return None
    return session.scalar(select(Job).where(Job.external_id == external_id))


def enqueue_job(session: Session, *, file_path: str, account_id: str | None, rep: str | None = None,
                call_date: date | None = None, external_id: str | None = None,
                participants: list[str] | None = None, source: str = "upload",
                original_name: str | None = None, created_by: int | None = None) -> tuple[Job, bool]:
    """Queue a recording; returns (job, created). A known `external_id` returns its job, created=False."""
    existing = job_for_external_id(session, external_id)
    if existing is not None:
        return existing, False
    job = Job(status="queued", source=source, file_path=str(file_path), original_name=original_name,
              account_id=account_id, rep=rep or None, call_date=call_date, external_id=external_id or None,
              participants=list(participants or []), attempts=0, created_by=created_by)
    try:
        with session.begin_nested():
            session.add(job)
            session.flush()
    except IntegrityError:  # the same external_id queued a moment ago by another request
        existing = job_for_external_id(session, external_id)
        if existing is None:
            raise
        return existing, False
    return job, True


def get_job(session: Session, job_id: int) -> Job | None:
    return session.get(Job, job_id)


def list_jobs(session: Session, status: str | None = None, limit: int = 100) -> list[Job]:
    query = select(Job).order_by(Job.id.desc()).limit(limit)
    if status:
        query = query.where(Job.status == status)
    return list(session.scalars(query))


def claim_next_job(session: Session, worker: str, *, lease_seconds: float = 120, now: datetime | None = None,
                   max_attempts: int = MAX_ATTEMPTS) -> Job | None:
    """Claim the oldest queued job, or a running one whose lease ran out, for `worker`.

    The caller commits (that ends the lock). A job whose worker died `max_attempts` times is
    marked failed here, with the reason, and the next one is tried.
    """
    now = now or _now()
    while True:
        query = (select(Job)
                 .where(or_(Job.status == "queued",
                            (Job.status == "running") & (Job.lease_until < now)))
                 .order_by(Job.id).limit(1)
                 .with_for_update(skip_locked=True).execution_options(populate_existing=True))
        job = session.scalars(query).first()
        if job is None:
            return None
        if job.status == "running" and (job.attempts or 0) >= max_attempts:
            job.status, job.finished_at, job.lease_until = "failed", now, None
            job.error = (f"The worker processing this recording stopped {job.attempts} times before it finished "
                         f"(last: {job.worker}); it was not tried again. Check the worker's log, e.g. for running "
                         "out of memory, then upload the recording again.")
            session.flush()
            continue
        job.status = "running"
        job.attempts = (job.attempts or 0) + 1
        job.worker = worker
        job.lease_until = now + timedelta(seconds=lease_seconds)
        job.started_at = now
        job.error = None
        session.flush()
        return job


def renew_lease(session: Session, job_id: int, worker: str, *, lease_seconds: float = 120,
                now: datetime | None = None) -> bool:
    """Extend the lease of a job this worker holds; False when it no longer holds it."""
    now = now or _now()
    result = session.execute(update(Job).where(Job.id == job_id, Job.worker == worker, Job.status == "running")
                             .values(lease_until=now + timedelta(seconds=lease_seconds), updated_at=now))
    return bool(result.rowcount)


def finish_job(session: Session, job_id: int, worker: str, status: str, *, call_id: int | None = None,
               error: str | None = None, result: dict | None = None, now: datetime | None = None) -> bool:
    """Record a job's outcome; False (and nothing written) when the worker lost the job meanwhile."""
    if status not in FINISHED:
        raise ValueError(f"finish status {status!r} is not one of {FINISHED}")
    now = now or _now()
    job = session.scalars(select(Job).where(Job.id == job_id).with_for_update()
                          .execution_options(populate_existing=True)).first()
    if job is None or job.status != "running" or job.worker != worker:
        return False
    job.status, job.call_id, job.error, job.result = status, call_id, error, result
    job.finished_at, job.lease_until = now, None
    session.flush()
    return True


def release_jobs(session: Session, worker: str) -> int:
    """Put the running jobs of a worker that was stopped back in the queue (attempts are kept)."""
    result = session.execute(update(Job).where(Job.worker == worker, Job.status == "running")
                             .values(status="queued", lease_until=None, updated_at=_now()))
    return result.rowcount or 0


# --- users and tokens ---------------------------------------------------------------------------

_SCRYPT_KIND = "scrypt"  # hashes written before argon2id: still verified, replaced at the next login


def _argon2():
    from pwdlib import PasswordHash
    from pwdlib.hashers.argon2 import Argon2Hasher

    return PasswordHash((Argon2Hasher(),))


def hash_password(password: str) -> str:
    """An argon2id hash (pwdlib's defaults: salted, memory-hard)."""
    return _argon2().hash(password)


def verify_password(password: str, stored: str | None) -> bool:
    if not stored:
        return False
    if stored.startswith(_SCRYPT_KIND + "$"):
        return _verify_scrypt(password, stored)
    try:
        return _argon2().verify(password, stored)
    except Exception:  # a malformed or foreign hash never matches
        return False


def password_needs_rehash(stored: str | None) -> bool:
    return bool(stored) and stored.startswith(_SCRYPT_KIND + "$")


def _verify_scrypt(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token(session: Session, user: User) -> str:
    """A fresh API token for the user (the old one stops working); returned once, stored hashed."""
    token = "cw_" + secrets.token_urlsafe(32)
    user.token_hash = token_hash(token)
    user.token_created_at = _now()
    session.flush()
    return token


def user_for_token(session: Session, token: str | None) -> User | None:
    if not token:
        return None
    user = session.scalar(select(User).where(User.token_hash == token_hash(token)))
    return user if user is not None and user.active else None


def _clean_email(email: str) -> str:
    email = (email or "").strip().lower()
    if email.count("@") != 1 or not email.split("@")[0] or "." not in email.split("@")[1]:
        raise ChurnwatchError(f"{email!r} is not an e-mail address; use e.g. maya@yourcompany.com.")
    return email


def add_user(session: Session, email: str, role: str, rep_name: str | None = None,
             password: str | None = None) -> tuple[User, str]:
    """Add a user and give them an API token; returns (user, token). A rep needs `rep_name`."""
    email = _clean_email(email)
    if role not in ROLES:
        raise ChurnwatchError(f"Unknown role {role!r}. Choose one of: {', '.join(ROLES)}.")
    if session.scalar(select(User).where(func.lower(User.email) == email)) is not None:
        raise ChurnwatchError(f"A user {email} exists already. Give them a new token with: "
                              f"churnwatch tokens create {email}")
    rep = None
    if rep_name:
        rep = session.scalar(select(Rep).where(Rep.name == rep_name.strip()))
        if rep is None:
            names = list(session.scalars(select(Rep.name).order_by(Rep.name)))
            if names:
                import difflib

                close = difflib.get_close_matches(rep_name, names, n=3, cutoff=0.5)
                hint = f" The closest: {', '.join(close)}." if close else f" Known reps: {', '.join(names[:10])}."
                raise ChurnwatchError(f"No rep named {rep_name!r} in the CRM data.{hint}")
            rep = Rep(name=rep_name.strip(), email=email)  # no CRM data yet: the rep starts here
            session.add(rep)
            session.flush()
    elif role == "rep":
        raise ChurnwatchError("A user with the role rep needs --rep NAME: the rep's name as in the CRM, "
                              "so they see the accounts of their book.")
    user = User(email=email, role=role, rep_id=rep.id if rep else None,
                password_hash=hash_password(password) if password else None, active=True)
    session.add(user)
    session.flush()
    return user, new_token(session, user)


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.email)))


# --- the account of a call from its participants ------------------------------------------------

# Addresses at these domains belong to people, not companies: never an account by domain alone.
FREE_MAIL = frozenset({
    "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "msn.com", "yahoo.com",
    "icloud.com", "me.com", "aol.com", "proton.me", "protonmail.com", "gmx.de", "gmx.net", "web.de",
    "t-online.de", "mail.com", "yandex.com", "zoho.com",
})


@dataclass
class AccountMatch:
    account_id: str | None  # the one account found, or None
    how: str  # "contact" (an exact address), "domain", or "" when none or several matched
    candidates: list[str]  # several accounts matched: their ids (the caller asks for account_id)


def _split_emails(participants) -> list[str]:
    if isinstance(participants, str):
        participants = participants.split(",")
    return [p.strip().lower() for p in participants or [] if p and "@" in p]


def account_for_participants(session: Session, participants) -> AccountMatch:
    """The account of a call from its participants' e-mails: a CRM contact's own address first,
    then the e-mail domain of the accounts' contacts (our own people's and free-mail domains never
    count). Several accounts at one step are no match: the caller must name the account."""
    emails = _split_emails(participants)
    if not emails:
        return AccountMatch(None, "", [])
    found = sorted(set(session.scalars(select(Contact.account_id).where(func.lower(Contact.email).in_(emails)))))
    if len(found) == 1:
        return AccountMatch(found[0], "contact", [])
    if found:
        return AccountMatch(None, "", found)
    ours = {e.split("@")[1] for e in session.scalars(select(Rep.email).where(Rep.email.is_not(None))) if "@" in e}
    ours |= {e.split("@")[1] for e in session.scalars(select(User.email)) if "@" in e}
    domains = sorted({e.split("@")[1] for e in emails} - FREE_MAIL - ours)
    accounts: set[str] = set()
    for domain in domains:
        accounts |= set(session.scalars(select(Contact.account_id)
                                        .where(func.lower(Contact.email).endswith(f"@{domain}", autoescape=True))))
    if len(accounts) == 1:
        return AccountMatch(next(iter(accounts)), "domain", [])
    return AccountMatch(None, "", sorted(accounts))
