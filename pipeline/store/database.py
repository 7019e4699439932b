"""Engines, sessions and migrations: how the entry points open the store.

SQLite by default, PostgreSQL for a team; any SQLAlchemy URL works. The schema is created and
migrated with Alembic (`pipeline/store/migrations`); `init_db` runs the migrations to head.
Sessions are opened by the entry points (CLI, executors, web) and passed in; nothing here opens one
behind the caller's back except `session_scope`, a convenience for those entry points.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from pipeline.errors import ChurnwatchError


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
