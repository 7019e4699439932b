"""Shared fixtures: databases on every backend, the project's paths, and the shared data set.

Backends: SQLite always; PostgreSQL at CHURNWATCH_TEST_POSTGRES_URL (`.ci/run` sets it) or, when
that is not set, a local server on 127.0.0.1:5432 if one answers (so `make test` on a developer's
machine runs the PostgreSQL twins without exporting anything); otherwise those tests skip with
the reason. Each PostgreSQL test gets a database of its own, created and dropped here,
so runs never see each other's rows.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CHURNWATCH_SHARED", ROOT.parent / "shared"))
PG_ENV = "CHURNWATCH_TEST_POSTGRES_URL"
LOCAL_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
_found_pg: list[str | None] = []


def _postgres_base() -> tuple[str | None, str]:
    """The server URL to create test databases on, or None with the reason to skip."""
    if os.environ.get(PG_ENV):
        return os.environ[PG_ENV], ""
    if not _found_pg:  # look for a local server once per run
        try:
            import psycopg

            psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", connect_timeout=2).close()
            _found_pg.append(LOCAL_PG)
        except Exception:
            _found_pg.append(None)
    if _found_pg[0]:
        return _found_pg[0], ""
    return None, (f"PostgreSQL tests need a server: set {PG_ENV} (e.g. {LOCAL_PG}); "
                  "none answered on 127.0.0.1:5432")


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data where it exists (developer machines and CI); skip elsewhere."""
    data = SHARED / "data"
    if not data.is_dir():
        pytest.skip(f"shared evaluation data not found at {data} (only on developer machines and CI)")
    return data


def _postgres_database():
    """Create a throw-away PostgreSQL database; yield its URL; drop it."""
    base, reason = _postgres_base()
    if not base:
        pytest.skip(reason)
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"churnwatch_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as e:  # server down, no driver
        admin.dispose()
        pytest.skip(f"PostgreSQL at {base} is not reachable: {e}")
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture
def postgres_url():
    yield from _postgres_database()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    """A fresh, empty database URL on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'churnwatch.db'}"
    else:
        yield from _postgres_database()


@pytest.fixture
def engine(db_url):
    """A migrated database on each backend."""
    from pipeline.store import init_db, make_engine

    eng = make_engine(db_url)
    init_db(eng)
    yield eng
    eng.dispose()
