"""The tables of the store: SQLAlchemy 2.0 typed ORM classes, one per table.

The schema itself is created and migrated by Alembic (`pipeline/store/migrations`); a change here
needs a migration there.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator



def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """A timezone-aware timestamp on every backend (SQLite drops the zone; we put UTC back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware datetime")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Rep(Base):
    __tablename__ = "reps"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Account(Base):
    __tablename__ = "accounts"
    id: Mapped[str] = mapped_column(String(100), primary_key=True)  # the CRM's account id
    name: Mapped[str | None] = mapped_column(String(300))
    segment: Mapped[str | None] = mapped_column(String(100))
    rep_id: Mapped[int | None] = mapped_column(ForeignKey("reps.id"))
    status: Mapped[str] = mapped_column(String(20), default="active")  # active | lost
    created_on: Mapped[date | None] = mapped_column(Date)
    lost_on: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    rep: Mapped[Rep | None] = relationship()


class Contact(Base):
    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("account_id", "email", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(300))
    email: Mapped[str | None] = mapped_column(String(320))
    role: Mapped[str | None] = mapped_column(String(200))
    added_on: Mapped[date | None] = mapped_column(Date)


class Call(Base):
    __tablename__ = "calls"
    id: Mapped[int] = mapped_column(primary_key=True)
    audio_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    source: Mapped[str | None] = mapped_column(Text)  # path or URL of the recording; None once purged
    account_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    rep_id: Mapped[int | None] = mapped_column(ForeignKey("reps.id"), index=True)
    call_date: Mapped[datetime | None]
    duration: Mapped[float | None] = mapped_column(Float)
    language: Mapped[str | None] = mapped_column(String(10))
    # detection's scores of the likeliest languages, best first (None where the language was given)
    language_scores: Mapped[dict[str, Any] | None]
    channel_layout: Mapped[str | None] = mapped_column(String(10))  # stereo | mono
    engine: Mapped[str | None] = mapped_column(String(40))
    model: Mapped[str | None] = mapped_column(String(100))
    # pending → done, or error (with error set); purged once retention removed the transcript
    status: Mapped[str] = mapped_column(String(20), default="pending")
    error: Mapped[str | None] = mapped_column(Text)
    metrics: Mapped[dict[str, Any] | None]  # coaching metrics of the call (coach.py)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    account: Mapped[Account | None] = relationship()
    rep: Mapped[Rep | None] = relationship()
    segments: Mapped[list[Segment]] = relationship(
        back_populates="call", cascade="all, delete-orphan", order_by="Segment.idx"
    )
    cues: Mapped[list[Cue]] = relationship(back_populates="call", cascade="all, delete-orphan")


class Segment(Base):
    __tablename__ = "segments"
    __table_args__ = (UniqueConstraint("call_id", "idx"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    idx: Mapped[int] = mapped_column(Integer)  # position in the transcript
    speaker: Mapped[str | None] = mapped_column(String(20))  # rep | customer | None
    channel: Mapped[int | None] = mapped_column(Integer)
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text)
    avg_logprob: Mapped[float | None] = mapped_column(Float)
    speaker_confidence: Mapped[float | None] = mapped_column(Float)
    words: Mapped[list[Any]] = mapped_column(default=list)  # [{"word","start","end","probability"}]
    call: Mapped[Call] = relationship(back_populates="segments")


class Rule(Base):
    """Every version of every rule that ever produced a cue, so a cue can be traced to its rule."""

    __tablename__ = "rules"
    __table_args__ = (UniqueConstraint("name", "version", "content_hash"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))  # keyword | embedding
    label: Mapped[str] = mapped_column(String(100))
    content_hash: Mapped[str] = mapped_column(String(64))
    definition: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Cue(Base):
    __tablename__ = "cues"
    __table_args__ = (UniqueConstraint("call_id", "segment_id", "rule_name", "rule_version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    segment_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"))
    rule_name: Mapped[str] = mapped_column(String(200))
    rule_version: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(100), index=True)
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    speaker: Mapped[str | None] = mapped_column(String(20))
    quote: Mapped[str] = mapped_column(Text)
    score: Mapped[float] = mapped_column(Float)
    why: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    call: Mapped[Call] = relationship(back_populates="cues")


class CueVerdict(Base):
    """A manager's verdict on a stored cue (right or wrong), or a line the rules missed.

    Learned cue models are refitted from the example bank plus these (`churnwatch rules fit`).
    The text is copied (already redacted) so a verdict outlives the purge of its call.
    """

    __tablename__ = "cue_verdicts"
    id: Mapped[int] = mapped_column(primary_key=True)
    cue_id: Mapped[int | None] = mapped_column(ForeignKey("cues.id", ondelete="SET NULL"), unique=True)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"), index=True)
    verdict: Mapped[str] = mapped_column(String(10))  # right | wrong | missed
    label: Mapped[str] = mapped_column(String(60), index=True)  # the cue type judged (or missed)
    text: Mapped[str] = mapped_column(Text)
    context: Mapped[str | None] = mapped_column(Text)  # the other speaker's turn before it
    lang: Mapped[str] = mapped_column(String(10), default="en")
    reviewer: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TranscriptCache(Base):
    """A transcript per audio hash, engine and model: re-ingesting never re-transcribes."""

    __tablename__ = "transcripts"
    __table_args__ = (UniqueConstraint("audio_sha256", "engine", "model", "options_key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    audio_sha256: Mapped[str] = mapped_column(String(64), index=True)
    engine: Mapped[str] = mapped_column(String(40))
    model: Mapped[str] = mapped_column(String(100))
    options_key: Mapped[str] = mapped_column(String(64), default="")  # e.g. rep channel
    transcript: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class UtteranceEmbedding(Base):
    """Sentence embeddings per text and model, so a rule edit re-scans without re-encoding."""

    __tablename__ = "utterance_embeddings"
    __table_args__ = (UniqueConstraint("text_sha256", "model"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    text_sha256: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(200))
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float32, little-endian


class CrmEvent(Base):
    """One row of a CRM export: an order, activity, support case or contact change."""

    __tablename__ = "crm_events"
    __table_args__ = (
        UniqueConstraint("source_key"),
        Index("ix_crm_events_account_kind_time", "account_id", "kind", "occurred_on"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))  # order | activity | support | contact
    occurred_on: Mapped[date] = mapped_column(Date)
    amount: Mapped[float | None] = mapped_column(Float)
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # a stable hash of (kind, natural key): re-importing the same row changes nothing
    source_key: Mapped[str] = mapped_column(String(64))
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)


class Feature(Base):
    __tablename__ = "features"
    __table_args__ = (UniqueConstraint("account_id", "name", "as_of"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    value: Mapped[float] = mapped_column(Float)
    as_of: Mapped[date] = mapped_column(Date)
    evidence: Mapped[list[Any]] = mapped_column(default=list)


class RiskScore(Base):
    __tablename__ = "risk_scores"
    __table_args__ = (UniqueConstraint("account_id", "as_of", "model_version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    as_of: Mapped[date] = mapped_column(Date)
    score: Mapped[float] = mapped_column(Float)  # 0-100
    threshold: Mapped[float] = mapped_column(Float)
    flagged: Mapped[bool] = mapped_column(default=False)
    model_version: Mapped[str] = mapped_column(String(100))
    contributions: Mapped[dict[str, Any]] = mapped_column(default=dict)  # factor → log-odds
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Reminder(Base):
    __tablename__ = "reminders"
    __table_args__ = (Index("ix_reminders_account_reason_status", "account_id", "reason", "status"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    rep_id: Mapped[int | None] = mapped_column(ForeignKey("reps.id"))
    reason: Mapped[str] = mapped_column(String(100))  # policy name, e.g. competitor_mention
    message: Mapped[str] = mapped_column(Text, default="")
    due: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(20), default="open")  # open | done | snoozed | dropped
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    evidence: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    deliveries: Mapped[list[Outbox]] = relationship(back_populates="reminder")


class Outbox(Base):
    """Messages waiting to be delivered; a failed delivery stays here to be retried."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(primary_key=True)
    reminder_id: Mapped[int | None] = mapped_column(ForeignKey("reminders.id", ondelete="SET NULL"))
    channel: Mapped[str] = mapped_column(String(20))  # webhook | email
    target: Mapped[str] = mapped_column(Text)  # URL or address
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    reminder: Mapped[Reminder | None] = relationship(back_populates="deliveries")


class User(Base):
    """Someone who may use the web application and its API.

    The password (optional: API clients only need a token) is kept as an argon2id hash; the
    API token is a long random secret, so its sha256 is enough and lets a request find its user.
    """

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(300))
    role: Mapped[str] = mapped_column(String(20))  # rep | manager | coach | admin
    rep_id: Mapped[int | None] = mapped_column(ForeignKey("reps.id", ondelete="SET NULL"))  # a rep's own book
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    token_created_at: Mapped[datetime | None]
    lang: Mapped[str] = mapped_column(String(10), default="en")  # language of the web pages: en | de
    # an admin's grant: this coach may see CRM money figures (managers, admins and reps always do)
    money_granted: Mapped[bool] = mapped_column(default=False, server_default=false())
    rep: Mapped[Rep | None] = relationship()


class Job(Base):
    """One recording waiting for, or done by, a worker: the queue lives in the database.

    queued → running (claimed by a worker, with a lease it renews) → done | duplicate | failed.
    A worker that dies leaves its lease to run out; the next claim takes the job again and counts
    the attempt. A job that cannot be processed ends `failed` with its reason, never in a loop.
    """

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_id", "status", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(20), default="queued")  # queued|running|done|duplicate|failed
    source: Mapped[str] = mapped_column(String(20), default="upload")  # upload | watch | api
    file_path: Mapped[str] = mapped_column(Text)  # where the worker reads the recording (a generated name)
    original_name: Mapped[str | None] = mapped_column(String(300))  # watch folder only, to move the file back
    account_id: Mapped[str | None] = mapped_column(String(100), index=True)
    rep: Mapped[str | None] = mapped_column(String(200))
    call_date: Mapped[date | None] = mapped_column(Date)
    external_id: Mapped[str | None] = mapped_column(String(200), unique=True)
    participants: Mapped[list[Any]] = mapped_column(default=list)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"))
    result: Mapped[dict[str, Any] | None]  # cues, hints and score of the stored call
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(200))  # who holds (or last held) the job
    lease_until: Mapped[datetime | None]
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Opportunity(Base):
    """A deal from the CRM (`crm import --kind opportunities`); its stage history is in OpportunityStage."""

    __tablename__ = "opportunities"
    id: Mapped[str] = mapped_column(String(100), primary_key=True)  # the CRM's opportunity id
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    rep_id: Mapped[int | None] = mapped_column(ForeignKey("reps.id"))
    kind: Mapped[str | None] = mapped_column(String(20))  # new | renewal | upsell
    amount: Mapped[float | None] = mapped_column(Float)
    product: Mapped[str | None] = mapped_column(String(200))  # what the deal sells (cross-sell)
    lost_reason: Mapped[str | None] = mapped_column(Text)
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)


class OpportunityStage(Base):
    """One stage change of an opportunity: the stage (as named in rules/funnel.yaml) and its day."""

    __tablename__ = "opportunity_stages"
    __table_args__ = (UniqueConstraint("opportunity_id", "stage", "entered_on"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    opportunity_id: Mapped[str] = mapped_column(ForeignKey("opportunities.id", ondelete="CASCADE"), index=True)
    stage: Mapped[str] = mapped_column(String(100))  # the funnel's name for it
    crm_stage: Mapped[str] = mapped_column(String(200))  # the name in the export
    entered_on: Mapped[date] = mapped_column(Date)


class Lead(Base):
    """A lead from the CRM (`crm import --kind leads`): the top of the funnel."""

    __tablename__ = "leads"
    id: Mapped[str] = mapped_column(String(100), primary_key=True)  # the CRM's lead id
    created_on: Mapped[date] = mapped_column(Date, index=True)
    rep_id: Mapped[int | None] = mapped_column(ForeignKey("reps.id"))
    source: Mapped[str | None] = mapped_column(String(200))
    # no foreign key: the leads file may be imported before the opportunities file
    converted_opportunity_id: Mapped[str | None] = mapped_column(String(100))
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)
