"""The SQL store: SQLAlchemy 2.0 typed tables and the few queries the stages share.

SQLite by default, PostgreSQL for a team; any SQLAlchemy URL works. The schema is created and
migrated with Alembic (`pipeline/migrations`); `init_db` runs the migrations to head.
Sessions are opened by the entry points (CLI, executors) and passed in; nothing here opens one
behind the caller's back except `session_scope`, a convenience for those entry points.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timezone
from pathlib import Path
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
    create_engine,
    event,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker
from sqlalchemy.types import TypeDecorator

from pipeline.errors import ChurnwatchError


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


# --- engine, sessions, migrations -------------------------------------------------------------

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def make_engine(url: str) -> Engine:
    """An engine for a SQLAlchemy URL; SQLite gets foreign keys and a busy timeout."""
    try:
        engine = create_engine(url, future=True)
    except Exception as e:  # ArgumentError, missing driver
        raise ChurnwatchError(
            f"Cannot use database URL {url!r}: {e}. Use e.g. sqlite:///churnwatch.db or "
            "postgresql+psycopg://user@host/db (pip install 'churnwatch[postgres]')."
        ) from None
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _):
            # SQLAlchemy's documented recipe: let SQLAlchemy, not pysqlite, emit BEGIN, so that
            # savepoints work; BEGIN IMMEDIATE takes the write lock up front, so two processes
            # storing calls at once wait for each other (busy_timeout) instead of failing.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def alembic_config(engine: Engine):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection_engine"] = engine
    return cfg


def init_db(engine: Engine) -> str:
    """Create or migrate the database to the newest schema; returns the revision reached."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    try:
        command.upgrade(alembic_config(engine), "head")
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision() or ""
    except Exception as e:
        if isinstance(e, ChurnwatchError):
            raise
        raise ChurnwatchError(
            f"Could not create or migrate the database at {engine.url!r}: {e}"
        ) from None


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def ensure_db(engine: Engine) -> None:
    """Raise a clear error when the database has not been initialised."""
    if current_revision(engine) is None:
        raise ChurnwatchError(
            f"The database at {engine.url!r} is empty. Create it with: churnwatch init"
        )


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


# --- the few shared queries -------------------------------------------------------------------


def get_or_create_rep(session: Session, name: str | None) -> Rep | None:
    if not name:
        return None
    rep = session.scalar(select(Rep).where(Rep.name == name))
    if rep is None:
        rep = Rep(name=name)
        session.add(rep)
        session.flush()
    return rep


def get_or_create_account(session: Session, account_id: str, **fields) -> Account:
    account = session.get(Account, account_id)
    if account is None:
        account = Account(id=account_id, **fields)
        session.add(account)
        session.flush()
    return account


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class DbEmbeddingCache:
    """Sentence embeddings kept in the store (table utterance_embeddings), keyed by text and model."""

    def __init__(self, session: Session):
        self.session = session

    def get_many(self, texts: list[str], model: str) -> dict[str, Any]:
        import numpy as np

        keys = {text_sha256(t): t for t in texts}
        found: dict[str, Any] = {}
        key_list = list(keys)
        for i in range(0, len(key_list), 500):
            rows = self.session.execute(
                select(UtteranceEmbedding).where(
                    UtteranceEmbedding.model == model,
                    UtteranceEmbedding.text_sha256.in_(key_list[i : i + 500]),
                )
            ).scalars()
            for row in rows:
                found[keys[row.text_sha256]] = np.frombuffer(row.vector, dtype="<f4")
        return found

    def put_many(self, vectors: dict[str, Any], model: str) -> None:
        import numpy as np

        existing = self.get_many(list(vectors), model)
        for text, vec in vectors.items():
            if text in existing:
                continue
            arr = np.asarray(vec, dtype="<f4")
            self.session.add(
                UtteranceEmbedding(
                    text_sha256=text_sha256(text), model=model, dim=arr.shape[0], vector=arr.tobytes()
                )
            )
        self.session.flush()
