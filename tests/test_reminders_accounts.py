"""Issue 18, accounts and input: `ingest --account` for an id the CRM data does not hold."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.store import Account, init_db, make_engine, session_scope
from pipeline.store.lookups import find_account


@pytest.fixture
def db(tmp_path):
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    engine = make_engine(url)
    init_db(engine)
    with session_scope(engine) as s:
        s.add_all([Account(id=i, name=n) for i, n in
                   [("ACC-1003", "Ashgrove Labs"), ("ACC-1004", "Bellhaven Dental"), ("ACC-2001", "Corvid Freight")]])
    yield url, engine
    engine.dispose()


@pytest.fixture
def jobs(monkeypatch):
    """Stand in for transcription: record what ingest would run."""
    from pipeline.flow import executors

    seen = []
    monkeypatch.setattr(executors, "run_jobs", lambda jobs, *a, **k: seen.extend(jobs) or [])
    return seen


def ingest(url, account, *extra, tmp_path: Path):
    from pipeline.cli import app

    (tmp_path / "call.wav").touch()  # ingest reports a missing file itself, before any job runs
    return CliRunner().invoke(app, ["ingest", str(tmp_path / "call.wav"), "--account", account,
                                    "--db", url, *extra])


def test_unknown_account_is_an_error_naming_the_closest_ids(db, jobs, tmp_path):
    url, engine = db
    res = ingest(url, "ACC-9999", tmp_path=tmp_path)
    assert res.exit_code == 1, res.output
    assert "No account 'ACC-9999'" in res.output and "ACC-1003" in res.output
    assert "--create-account" in res.output and "Traceback" not in res.output
    assert jobs == []  # refused before any recording is read
    with session_scope(engine) as s:
        assert s.get(Account, "ACC-9999") is None


def test_a_letter_o_for_a_zero_suggests_the_real_id_first(db, jobs, tmp_path):
    url, engine = db
    res = ingest(url, "ACC-1OO3", tmp_path=tmp_path)
    assert res.exit_code == 1 and "The closest existing: ACC-1003" in res.output
    with session_scope(engine) as s:
        assert find_account(s, "acc-1oo4").closest[0] == "ACC-1004"
        assert find_account(s, "ACC-1003").account is not None


def test_create_account_lets_a_new_id_through(db, jobs, tmp_path):
    url, _ = db
    res = ingest(url, "ACC-9999", "--create-account", tmp_path=tmp_path)
    assert res.exit_code == 0, res.output
    assert [opts.account_id for _, opts in jobs] == ["ACC-9999"]


def test_known_account_and_empty_store_pass_an_empty_id_does_not(db, jobs, tmp_path):
    url, _ = db
    assert ingest(url, "ACC-1003", tmp_path=tmp_path).exit_code == 0
    res = ingest(url, "  ", tmp_path=tmp_path)
    assert res.exit_code == 1 and "--account is empty" in res.output
    # no CRM data imported yet: nothing to check against, so the id is taken (with a note)
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    res = ingest(fresh, "ACC-1003", tmp_path=tmp_path)
    assert res.exit_code == 0 and "no CRM accounts are imported yet" in res.output
