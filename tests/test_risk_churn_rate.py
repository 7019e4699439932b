"""risk churn-rate: --since, the current period marked partial, gross and net revenue retention."""

import json
from datetime import date

import dbreset
import pytest

from pipeline.risk.churn_rate import churn_rates
from pipeline.store import Account, CrmEvent, session_scope


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    return dbreset.fresh_url(request, tmp_path)


def _orders(s, acc, rows):
    for k, (d, amount) in enumerate(rows):
        s.add(CrmEvent(account_id=acc, kind="order", occurred_on=d, amount=amount, source_key=f"{acc}-{k}"))


def _world(s):
    # A grows (100 -> 150), B shrinks (100 -> 40, and a credit note of -10), C is lost in Q2 (100 -> 0),
    # N is new in Q2 (left out of the base and of the revenue)
    s.add_all([Account(id="A", created_on=date(2025, 1, 5), segment="SMB"),
               Account(id="B", created_on=date(2025, 1, 5), segment="SMB"),
               Account(id="C", created_on=date(2025, 1, 5), segment="Ent", status="lost", lost_on=date(2025, 5, 20)),
               Account(id="N", created_on=date(2025, 4, 10), segment="SMB")])
    s.flush()
    _orders(s, "A", [(date(2025, 2, 1), 100.0), (date(2025, 5, 1), 150.0), (date(2025, 7, 2), 80.0)])
    _orders(s, "B", [(date(2025, 2, 1), 100.0), (date(2025, 5, 1), 50.0), (date(2025, 5, 9), -10.0),
                     (date(2025, 7, 3), 60.0)])
    _orders(s, "C", [(date(2025, 2, 1), 100.0)])
    _orders(s, "N", [(date(2025, 4, 20), 500.0), (date(2025, 7, 1), 500.0)])
    s.flush()


def test_revenue_retention_gross_and_net(engine):
    with session_scope(engine) as s:
        _world(s)
        rows = {r.period: r for r in churn_rates(s, "quarter", until=date(2025, 9, 30))}
    q2 = rows["2025-Q2"]
    assert (q2.base, q2.lost) == (3, 1) and not q2.partial and q2.end == date(2025, 6, 30)
    assert q2.revenue_before == 300 and q2.revenue == 190  # 150 + (50 - 10) + 0; N's 500 left out
    assert q2.net_revenue_retention == pytest.approx(190 / 300, abs=1e-4)
    assert q2.gross_revenue_retention == pytest.approx((100 + 40 + 0) / 300, abs=1e-4)  # A capped at 100
    assert rows["2025-Q3"].base == 3  # A, B and N (C was lost)


def test_current_period_is_partial_and_compared_like_for_like(engine):
    with session_scope(engine) as s:
        _world(s)
        rows = churn_rates(s, "quarter", until=date(2025, 7, 10))
    last = rows[-1]
    assert last.period == "2025-Q3" and last.partial and last.end == date(2025, 7, 10)
    assert all(not r.partial for r in rows[:-1])
    # Q3 to 10 July against 1-10 April: A 80 vs 0 (no revenue before: left out), B 60 vs 0, N 500 vs 0
    assert last.revenue_before == 0 and last.net_revenue_retention is None


def test_since_and_by_segment(engine):
    with session_scope(engine) as s:
        _world(s)
        rows = churn_rates(s, "quarter", "segment", until=date(2025, 9, 30), since=date(2025, 7, 15))
        assert {r.period for r in rows} == {"2025-Q3"}
        by = {r.group: r for r in churn_rates(s, "quarter", "segment", until=date(2025, 6, 30))}
        assert by["Ent"].net_revenue_retention == 0 and by["Ent"].churn_rate == 1
        from pipeline.errors import ChurnwatchError
        with pytest.raises(ChurnwatchError, match="--since"):
            churn_rates(s, "quarter", since=date(2026, 1, 1), until=date(2025, 1, 1))


def test_churn_rate_cli(tmp_path):
    from typer.testing import CliRunner

    from pipeline import store
    from pipeline.cli import app

    url = f"sqlite:///{tmp_path / 'c.db'}"
    engine = store.make_engine(url)
    store.init_db(engine)
    with session_scope(engine) as s:
        _world(s)
    runner = CliRunner()
    out = runner.invoke(app, ["risk", "churn-rate", "--since", "2025-04-01", "--until", "2025-08-15",
                              "--db", url, "--json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    assert [r["period"] for r in rows] == ["2025-Q2", "2025-Q3"] and rows[-1]["partial"] is True
    assert {"gross_revenue_retention", "net_revenue_retention", "revenue", "revenue_before"} <= set(rows[0])
    out = runner.invoke(app, ["risk", "churn-rate", "--until", "2025-08-15", "--db", url], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "partial" in out.output and "net rev. retention" in out.output
