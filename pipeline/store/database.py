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

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from pipeline.errors import ChurnwatchError, StorageError


MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def make_engine(url: str) -> Engine:
    """An engine for a SQLAlchemy URL; SQLite gets foreign keys and a busy timeout."""
    try:
        # hide_parameters: an error never prints the values of a statement (a call's transcript)
        engine = create_engine(url, future=True, hide_parameters=True)
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
            # the rows this connection has changed so far: more by the end of the transaction means
            # it wrote something not yet committed (pipeline.risk.two_processes reads this)
            conn.info["changes_at_begin"] = conn.connection.dbapi_connection.total_changes

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
        failure = storage_failure(e, engine)
        if failure is not None:
            raise failure from None
        reason = str(e.orig) if isinstance(e, DBAPIError) else str(e)
        raise ChurnwatchError(
            f"Could not create or migrate the database at {describe_db(engine)}: {reason.strip().splitlines()[0]}"
        ) from None


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def sqlite_file(engine: Engine) -> Path | None:
    """The file of a SQLite database, also of a `file:` URI one (None for PostgreSQL and in-memory)."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:"):  # sqlite:///file:path?mode=ro&uri=true
        if engine.url.query.get("mode") == "memory":
            return None
        database = database[len("file:"):]
    return Path(database)


def describe_db(engine: Engine) -> str:
    """The database as a user names it: the file of a SQLite store, else its URL without password."""
    path = sqlite_file(engine)
    return str(path) if path is not None else engine.url.render_as_string(hide_password=True)


def ensure_db(engine: Engine) -> None:
    """Raise a clear error when the database has not been initialised (a missing SQLite file is
    not created: commands that only read never leave an empty database behind)."""
    path = sqlite_file(engine)
    if path is not None and not path.exists():
        raise ChurnwatchError(
            f"No database at {path}. Create it with: churnwatch init --db {engine.url}, or pass the --db of yours."
        )
    if current_revision(engine) is None:
        raise ChurnwatchError(
            f"The database at {engine.url!r} is empty. Create it with: churnwatch init"
        )


# What a database says when it cannot write, and what the user can do about it. SQLite says it in
# words; PostgreSQL also gives a SQLSTATE (disk_full, read_only_sql_transaction, ...).
_FULL = ("the disk holding it is full", "Free disk space (or move the database) and run the command again.")
_READ_ONLY = ("it is read-only", "Make it writable, or pass the --db of a database you can write to, "
              "and run the command again.")
_NO_PERMISSION = ("this user may not write to it", _READ_ONLY[1])
_IO_ERROR = ("the disk reported an I/O error", "Check the disk, then run the command again.")
_STORAGE_MESSAGES = (
    ("database or disk is full", _FULL),
    ("no space left on device", _FULL),
    ("could not extend file", _FULL),
    ("attempt to write a readonly database", _READ_ONLY),
    ("read-only transaction", _READ_ONLY),
    ("readonly database", _READ_ONLY),
    ("disk i/o error", _IO_ERROR),
    ("permission denied", _NO_PERMISSION),
    ("unable to open database file", ("the file cannot be opened (a missing folder, or no permission)",
                                      "Check the path, or pass the --db of a database you can write to.")),
)
_STORAGE_SQLSTATES = {"53100": _FULL, "53000": _FULL, "25006": _READ_ONLY, "42501": _NO_PERMISSION,
                      "58030": _IO_ERROR}


def storage_failure(error: BaseException, engine: Engine) -> StorageError | None:
    """A StorageError when a database error means the store cannot be written at all (disk full,
    read-only, no permission, I/O error), else None: a bad row, a constraint, a lock."""
    if isinstance(error, StorageError):
        return error
    if not isinstance(error, DBAPIError):
        return None
    orig = error.orig
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    found = _STORAGE_SQLSTATES.get(state or "")
    message = str(orig).lower()
    if found is None:
        found = next((v for k, v in _STORAGE_MESSAGES if k in message), None)
    if found is None:
        return None
    return StorageError(describe_db(engine), *found)


def check_writable(engine: Engine) -> None:
    """Raise StorageError now if the store refuses writes (a read-only file or database, no
    permission), so a long command finds out before it loads models or reads a file. Writes
    nothing: the one row it touches is set to itself and the transaction rolled back."""
    try:
        with engine.connect() as conn:
            with conn.begin() as trans:
                conn.execute(text("UPDATE alembic_version SET version_num = version_num"))
                trans.rollback()
    except DBAPIError as e:
        failure = storage_failure(e, engine)
        if failure is not None:
            raise failure from None
        raise


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error. A database that cannot be
    written (disk full, read-only) raises StorageError, whose message names the cause."""
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory() as session:
        try:
            yield session
            session.commit()
        except BaseException as e:
            try:
                session.rollback()
            except DBAPIError:  # a rollback after a failed write may fail the same way
                pass
            failure = storage_failure(e, engine)
            if failure is not None and failure is not e:
                raise failure from None
            raise
