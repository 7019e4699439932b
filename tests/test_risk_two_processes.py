"""A large book is scored by this process and a forked one (pipeline.risk.two_processes): the
results are those of one process, a child that fails or dies costs no result, and rows the
session has not committed keep the scoring in one process (the child could not see them)."""

import json
import os
import signal
import time
from datetime import date

import pytest
import pipeline.risk.two_processes as two
from pipeline.risk.score import accounts_open_at, load_risk_model, score_accounts
from pipeline.store import CrmEvent, init_db, make_engine, session_scope
from test_risk_bulk import AS_OF, _hand_made, _load_samples


@pytest.fixture(scope="module")
def manual(root):
    return load_risk_model(root / "rules", root / "models")


@pytest.fixture
def world(root, tmp_path):
    """A SQLite file with the sample world's accounts, orders, contacts and calls with cues, plus
    the hand-made accounts that reach every feature's branches; the day to score."""
    engine = make_engine(f"sqlite:///{tmp_path / 'book.db'}")
    init_db(engine)
    with session_scope(engine) as s:
        today = _load_samples(s, root / "samples") if (root / "samples" / "calls.csv").exists() else AS_OF
        _hand_made(s)
    yield engine, today
    engine.dispose()


@pytest.fixture
def forks(monkeypatch):
    """Two processes for any book (in frames of 3 accounts), whatever threads earlier tests left
    waiting in this process (the guard itself is tested below); counts the forks."""
    monkeypatch.setattr(two, "MIN_ACCOUNTS", 1)
    monkeypatch.setattr(two, "FRAME_ACCOUNTS", 3)
    monkeypatch.setattr(two.threading, "active_count", lambda: 1)
    made = []
    real_fork = os.fork

    def fork():
        pid = real_fork()
        made.append(pid)
        return pid

    monkeypatch.setattr(two.os, "fork", fork)
    return made


def _one_process(engine, day, model, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(two, "MIN_ACCOUNTS", 10**9)
        with session_scope(engine) as s:
            return [r.to_dict() for r in score_accounts(s, day, model)]


def test_two_processes_give_the_results_of_one(world, manual, forks, monkeypatch, caplog):
    engine, day = world
    expected = _one_process(engine, day, manual, monkeypatch)
    with session_scope(engine) as s:
        assert two.why_not(s, len(accounts_open_at(s, day))) is None
        got = [r.to_dict() for r in score_accounts(s, day, manual)]
    assert len(forks) == 1 and "failed" not in caplog.text
    assert len(got) >= 5 and got == expected  # every score, point, contribution and evidence item
    assert any(r["merged"] for r in got) and any(r["evidence"]["late_payments_365"]["evidence"] for r in got)


@pytest.mark.parametrize("failure", ["raises", "dies", "hangs"])
def test_a_child_that_fails_costs_no_result(world, manual, forks, monkeypatch, caplog, failure):
    engine, day = world
    expected = _one_process(engine, day, manual, monkeypatch)
    if failure == "raises":  # e.g. its database cannot be opened: it says so and exits
        def no_engine(*args, **kwargs):
            raise OSError("disk gone")
        monkeypatch.setattr(two, "create_engine", no_engine)
    elif failure == "dies":  # killed while it sends its results: the parent hears nothing more
        def killed(*args):
            os.kill(os.getpid(), signal.SIGKILL)
        monkeypatch.setattr(two, "_pack", killed)
    else:  # stuck before its first frame: the parent waits its patience, then stops it
        monkeypatch.setattr(two, "MIN_PATIENCE_S", 0.5)
        monkeypatch.setattr(two, "_pack", lambda *args: time.sleep(3600))
    with session_scope(engine) as s:
        got = [r.to_dict() for r in score_accounts(s, day, manual)]
    assert len(forks) == 1 and got == expected
    assert "the second scoring process failed or went silent" in caplog.text  # an operator can see why


def test_rows_not_committed_keep_scoring_in_one_process(world, manual, forks, monkeypatch):
    engine, day = world
    with session_scope(engine) as s:
        acc = accounts_open_at(s, day)[-1]  # in the child's half
        s.add(CrmEvent(account_id=acc, kind="order", occurred_on=day, amount=123.0, source_key="new-order",
                       attributes={"invoice_id": "INV-NEW"}))
        assert "not committed" in two.why_not(s, 10)
        got = {r.account_id: r for r in score_accounts(s, day, manual)}
        assert not forks
        assert "INV-NEW" in json.dumps(got[acc].evidence)  # the new order was seen
        s.rollback()


def test_small_books_memory_databases_and_threads_stay_in_one_process(world, monkeypatch):
    import threading

    engine, _ = world
    with session_scope(engine) as s:
        assert "fewer than" in two.why_not(s, two.MIN_ACCOUNTS - 1)
        with monkeypatch.context() as m:  # as if no earlier test had left a thread waiting
            m.setattr(two.threading, "active_count", lambda: 1)
            assert two.why_not(s, two.MIN_ACCOUNTS) is None
        stop = threading.Event()
        other = threading.Thread(target=stop.wait)
        other.start()
        try:
            assert two.why_not(s, two.MIN_ACCOUNTS) == "other threads are running"
        finally:
            stop.set()
            other.join()
    memory = make_engine("sqlite://")
    init_db(memory)
    with session_scope(memory) as s, monkeypatch.context() as m:
        m.setattr(two.threading, "active_count", lambda: 1)
        assert two.why_not(s, two.MIN_ACCOUNTS) == "not a SQLite file"
    memory.dispose()


def test_dates_travel_in_a_frame():
    from pipeline.risk.score import RiskResult

    r = RiskResult("A", date(2026, 3, 31), 40.0, -0.4, {"intercept": -0.4}, False, 50.0, "m1",
                   evidence={"orders_365": {"value": 2.0, "note": "2 orders", "evidence": [{"date": "2026-01-02"}]}})
    names = [f for f in RiskResult.__dataclass_fields__]
    assert two._unpack(two.marshal.loads(two.marshal.dumps(two._pack(r, names))), RiskResult) == r
