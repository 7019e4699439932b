"""Risk score: contributions add up, model files, fit, backtest without leakage, churn rates, CLI."""

import json
import math
import random
from datetime import UTC, date, datetime, timedelta

import dbreset
import pytest

from pipeline.risk.churn_rate import churn_rates
from pipeline.errors import RuleError
from pipeline.risk.score import load_risk_model, save_score, score_account, score_accounts
from pipeline.risk.fit import (
    RiskFitOptions,
    backtest,
    fit_orders,
    rolling_cutoffs,
    save_model,
    score_frame,
)
from pipeline.store import (
    Account,
    Call,
    CrmEvent,
    Cue,
    RiskScore,
    get_or_create_account,
    session_scope,
)

AS_OF = date(2026, 3, 31)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    """An empty database at head per test, on each backend, reused fast (tests/dbreset.py)."""
    return dbreset.fresh_url(request, tmp_path)


@pytest.fixture(scope="module")
def manual(root):
    return load_risk_model(root / "rules", root / "models")


def synthetic_orders(n=300, seed=1):
    """Accounts ordering every `gap` days (with noise) until they stop on a random day."""
    import pandas as pd

    rng = random.Random(seed)
    start, end = date(2024, 1, 1), date(2025, 12, 31)
    rows = []
    for i in range(n):
        gap = rng.choice([14, 30, 45, 60])
        stop = start + timedelta(days=rng.randint(120, 900))
        day = start + timedelta(days=rng.randint(0, 60))
        while day <= min(stop, end):
            rows.append((f"C{i:03d}", day, round(rng.uniform(50, 500), 2)))
            day += timedelta(days=max(1, int(rng.gauss(gap, gap / 4))))
    df = pd.DataFrame(rows, columns=["account_id", "date", "amount"])
    df["date"] = pd.to_datetime(df["date"])
    return df


def seed_account(s, acc="A", cue=True):
    get_or_create_account(s, acc)
    for k, d in enumerate([date(2025, 9, 1), date(2025, 10, 1), date(2025, 11, 1)]):
        s.add(CrmEvent(account_id=acc, kind="order", occurred_on=d, amount=100.0, source_key=f"{acc}{k}",
                       attributes={"invoice_id": f"{acc}{k}"}))
    if cue:
        call = Call(audio_sha256=acc * 64, account_id=acc, call_date=datetime(2026, 3, 20, tzinfo=UTC))
        s.add(call)
        s.flush()
        s.add(Cue(call_id=call.id, rule_name="cancel_kw", rule_version=2, label="cancellation_intent",
                  start=0, end=1, quote="we won't renew", score=1.0))
    s.flush()


def test_contributions_sum_to_log_odds(engine, manual):
    with session_scope(engine) as s:
        seed_account(s)
        r = score_account(s, "A", AS_OF, manual)
    assert math.fsum(r.contributions.values()) == pytest.approx(r.log_odds, abs=1e-12)
    assert r.score == pytest.approx(100 / (1 + math.exp(-r.log_odds)))
    assert r.contributions["cue_cancellation_intent"] > 0
    ev = r.evidence["cue_cancellation_intent"]["evidence"]
    assert ev[0]["quote"] == "we won't renew" and ev[0]["rule"] == "cancel_kw@2"
    assert r.evidence["days_since_last_order"]["evidence"][0]["date"] == "2025-11-01"


def test_cue_raises_score_and_future_data_changes_nothing(engine, manual):
    with session_scope(engine) as s:
        seed_account(s, "A", cue=True)
        seed_account(s, "B", cue=False)
        a, b = score_account(s, "A", AS_OF, manual), score_account(s, "B", AS_OF, manual)
        assert a.score > b.score
        s.add(CrmEvent(account_id="B", kind="order", occurred_on=AS_OF + timedelta(days=1), amount=5e5,
                       source_key="future", attributes={}))
        s.flush()
        assert score_account(s, "B", AS_OF, manual).score == b.score


def test_score_accounts_ranks_stores_and_skips_lost(engine, manual):
    with session_scope(engine) as s:
        seed_account(s, "A", cue=True)
        seed_account(s, "B", cue=False)
        s.add(Account(id="L", status="lost", lost_on=date(2026, 1, 1)))
        results = score_accounts(s, AS_OF, manual)
        assert [r.account_id for r in results] == ["A", "B"]
        for r in results:
            save_score(s, r)
            save_score(s, r)
        rows = s.query(RiskScore).all()
        assert len(rows) == 2 and rows[0].model_version == manual.version


def test_bad_risk_file_names_the_feature(tmp_path, root):
    (tmp_path / "risk.yaml").write_text("active: manual\nmanual:\n  factors:\n    - {feature: vibes, points: 1}\n")
    with pytest.raises(RuleError, match="vibes"):
        load_risk_model(tmp_path, tmp_path)
    (tmp_path / "risk.yaml").write_text("active: fit-nothere.json\n")
    with pytest.raises(RuleError, match="fit-nothere.json"):
        load_risk_model(tmp_path, tmp_path)


def test_fit_save_and_activate(tmp_path, root):
    df = synthetic_orders(200)
    cutoffs = [date(2024, 9, 30), date(2024, 12, 31), date(2025, 3, 31)]
    model = fit_orders(df, cutoffs, RiskFitOptions())
    assert model.meta["training"]["cutoffs"] == [str(c) for c in cutoffs]
    w = {f.feature: f.weight for f in model.factors}
    assert w["order_cadence"] > 0  # overdue against the usual interval -> riskier
    assert model.meta["metrics"]["train_roc_auc"] > 0.8
    path = save_model(model, tmp_path / "models")
    assert path.name == f"{model.version}.json" and json.loads(path.read_text())["factors"]
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "risk.yaml").write_text(f"active: {path.name}\n")
    loaded = load_risk_model(rules, tmp_path / "models")
    assert loaded.version == model.version
    from pipeline.risk.features import FeatureOptions, order_features_frame

    X = order_features_frame(df, date(2025, 6, 30), FeatureOptions())
    assert score_frame(loaded, X) == pytest.approx(score_frame(model, X))


def test_rolling_cutoffs_labels_are_observable():
    opts = RiskFitOptions(horizon_days=91, train_cutoffs=4, train_step_days=30)
    cut = rolling_cutoffs(date(2025, 6, 30), date(2024, 1, 1), opts)
    assert cut and all(c + timedelta(days=91) <= date(2025, 6, 30) for c in cut)


def test_backtest_beats_chance_and_ignores_the_future(tmp_path):
    df = synthetic_orders(300)
    cutoffs = [date(2025, 3, 31), date(2025, 6, 30)]
    r = backtest(df, cutoffs, 91)
    for key in ("2025-03-31", "2025-06-30"):
        m = r.metrics[key]
        assert m["roc_auc"] > 0.7
        # the floor is what flagging exactly the lost first would take: ceil(0.85 * lost) accounts
        lost = round(m["lost_share"] * m["n"])
        assert m["flag_share_for_85pct_floor"] == round(math.ceil(0.85 * lost) / m["n"], 4)
        assert m["flag_share_for_85pct_floor"] <= m["flag_share_for_85pct"]
        assert all(date.fromisoformat(c) + timedelta(days=91) <= date.fromisoformat(key) for c in m["train_cutoffs"])
        for b in ("days_since_last_order", "bgnbd"):
            assert {"roc_auc", "pr_auc", "brier", "flag_share_for_85pct"} <= set(r.baselines[b][key])
    # scores at a cutoff do not depend on orders after it
    import pandas as pd

    trimmed = df[df["date"] <= pd.Timestamp(date(2025, 3, 31) + timedelta(days=91))]
    r2 = backtest(trimmed, [date(2025, 3, 31)], 91)
    first = {(s["account_id"]): s["score"] for s in r.scores if s["cutoff"] == "2025-03-31"}
    assert {s["account_id"]: s["score"] for s in r2.scores} == first


def test_churn_rate_excludes_new_accounts(engine):
    with session_scope(engine) as s:
        s.add_all([Account(id="old1", created_on=date(2025, 1, 5), segment="SMB"),
                   Account(id="old2", created_on=date(2025, 2, 1), segment="SMB", status="lost", lost_on=date(2025, 5, 2)),
                   Account(id="ent", created_on=date(2025, 1, 1), segment="Ent"),
                   Account(id="new", created_on=date(2025, 4, 10), segment="SMB", status="lost", lost_on=date(2025, 6, 1))])
        s.flush()
        rows = {r.period: r for r in churn_rates(s, "quarter", until=date(2025, 9, 30))}
        q2 = rows["2025-Q2"]
        assert (q2.base, q2.lost) == (3, 1) and q2.churn_rate == pytest.approx(1 / 3, abs=1e-3)
        assert rows["2025-Q3"].base == 2  # old2 and new are gone; new joined in Q2
        by = {(r.period, r.group): r for r in churn_rates(s, "quarter", "segment", until=date(2025, 6, 30))}
        assert by[("2025-Q2", "SMB")].churn_rate == pytest.approx(0.5)
        assert by[("2025-Q2", "Ent")].churn_rate == 0


def test_cli_import_score_explain(tmp_path, db_url):
    from typer.testing import CliRunner

    from pipeline.cli import app

    db = db_url
    orders = tmp_path / "orders.csv"
    orders.write_text("account_id,date,amount\nA1,2026-01-05,100\nA1,2026-02-05,100\nA2,2025-06-01,50\n")
    runner = CliRunner()
    out = runner.invoke(app, ["crm", "import", str(orders), "--kind", "orders", "--db", db, "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["imported"] == 3
    import gc

    frozen = gc.get_freeze_count()
    out = runner.invoke(app, ["risk", "score", "--as-of", "2026-03-31", "--db", db, "--json"])
    assert out.exit_code == 0, out.output
    assert gc.get_freeze_count() == frozen  # the command freezes the heap while it prints, then thaws it
    scores = json.loads(out.stdout)["scores"]
    assert [s["account_id"] for s in scores] == ["A2", "A1"]  # A2 went quiet long ago
    out = runner.invoke(app, ["risk", "explain", "A2", "--as-of", "2026-03-31", "--db", db, "--json"])
    assert out.exit_code == 0, out.output
    d = json.loads(out.stdout)
    assert sum(d["contributions"].values()) == pytest.approx(d["log_odds"])
    out = runner.invoke(app, ["risk", "explain", "NOPE", "--db", db])
    assert out.exit_code == 1


def test_floor_gives_no_credit_below_it():
    from pipeline.risk.score import _factor

    f = _factor({"feature": "days_since_last_order", "transform": "log2p", "normal": 30, "points": 0.6,
                 "floor": 30}, "factors[0]", "risk.yaml")
    assert f.x(1) == f.x(30) == 0.0  # ordered yesterday: no credit
    assert f.x(61) == pytest.approx(1.0)  # one doubling past normal: +1 unit, still counted
    no_floor = _factor({"feature": "days_since_last_order", "transform": "log2p", "normal": 30,
                        "points": 0.6}, "factors[0]", "risk.yaml")
    assert no_floor.x(1) < 0
