"""Fast empty databases for test files with many database tests, on SQLite and PostgreSQL.

Each test still starts from an empty database migrated to head, but instead of creating and
migrating one per test (about 0.3 s on SQLite, 1-3 s on PostgreSQL, where CREATE and DROP
DATABASE wait on the disk) SQLite copies a file migrated once per session and PostgreSQL empties
one database migrated once per session (DELETE, and sequences restarted so ids start at 1 again).
A test file opts in by overriding conftest's `db_url`; conftest's `engine` then finds the database
already at head:

    @pytest.fixture(params=["sqlite", "postgres"])
    def db_url(request, tmp_path):
        return dbreset.fresh_url(request, tmp_path)
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

_SQLITE_TEMPLATE = pytest.StashKey[Path]()
_POSTGRES_URL = pytest.StashKey[str]()


def _sqlite_template(request) -> Path:
    config = request.config
    if _SQLITE_TEMPLATE not in config.stash:
        from pipeline.store import init_db, make_engine

        path = request.getfixturevalue("tmp_path_factory").mktemp("template") / "empty.db"
        engine = make_engine(f"sqlite:///{path}")
        init_db(engine)
        engine.dispose()  # checkpoints the WAL into the file that is copied
        config.stash[_SQLITE_TEMPLATE] = path
    return config.stash[_SQLITE_TEMPLATE]


def _postgres_shared(request) -> str:
    config = request.config
    if _POSTGRES_URL not in config.stash:
        _postgres_database = _root_conftest()._postgres_database

        from pipeline.store import init_db, make_engine

        databases = _postgres_database()
        url = next(databases)  # skips the test when no server is configured or reachable
        config.add_cleanup(lambda: next(databases, None))  # drops it at the end of the session
        engine = make_engine(url)
        init_db(engine)
        engine.dispose()
        config.stash[_POSTGRES_URL] = url
    return config.stash[_POSTGRES_URL]


def _empty_postgres(url: str) -> None:
    # DELETE and a sequence restart beat TRUNCATE on tables this small (TRUNCATE makes new files)
    from sqlalchemy import create_engine, text

    from pipeline.store import Base

    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL lock_timeout = '20s'"))  # a leaked transaction fails, not hangs
            sequences = conn.scalars(text("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'"))
            conn.exec_driver_sql("; ".join(
                [f'DELETE FROM "{t.name}"' for t in reversed(Base.metadata.sorted_tables)]
                + [f'ALTER SEQUENCE "{name}" RESTART' for name in sequences]))
    finally:
        engine.dispose()


def fresh_url(request, tmp_path: Path) -> str:
    """The URL of an empty database at head on the backend of request.param."""
    if request.param == "sqlite":
        path = tmp_path / "churnwatch.db"
        shutil.copy(_sqlite_template(request), path)
        return f"sqlite:///{path}"
    url = _postgres_shared(request)
    _empty_postgres(url)
    return url


def _root_conftest():
    """tests/conftest.py itself (tests/web/ has a conftest of its own, also imported as `conftest`)."""
    import importlib.util
    import sys

    name = "churnwatch_tests_conftest"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("conftest.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name]
