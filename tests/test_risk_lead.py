"""Lead time: for lost accounts, how many days before their last order the score first reached the threshold."""

import json
from datetime import date, timedelta

import pandas as pd
import pytest

from pipeline.risk.features import FeatureOptions
from pipeline.risk.fit import backtest, lead_times
from pipeline.risk.score import Factor, RiskModel

CUTOFF = date(2025, 6, 30)


def _orders(rows):
    df = pd.DataFrame(rows, columns=["account_id", "date", "amount"])
    df["date"] = pd.to_datetime(df["date"])
    return df


def _every(account, first, last, step, amount):
    d, out = first, []
    while d <= last:
        out.append((account, d, amount))
        d += timedelta(days=step)
    return out


def test_recency_model_flags_after_the_last_order():
    # score >= 50 exactly when days since the last order >= 60
    model = RiskModel("t", 0.0, (Factor("days_since_last_order", 1.0, "none", 60.0, 1.0),), 50.0)
    orders = _orders(_every("A", date(2024, 10, 1), date(2025, 3, 31), 14, 100.0)
                     + [("A", date(2025, 3, 31), 100.0), ("B", date(2025, 1, 1), 100.0),
                        ("B", date(2025, 6, 20), 100.0), ("D", date(2025, 6, 20), 100.0)])
    lt = lead_times(orders, model, CUTOFF, ["A", "B", "D"], FeatureOptions(), step_days=7, lookback_days=180)
    by = {a["account_id"]: a for a in lt["accounts"]}
    # A's last order is 91 days before the cutoff; the weekly dates back from it see 91, 84, 77, 70, 63, 56
    # days of silence: the first one at or past 60 is 63 days after the last order
    assert by["A"]["lead_days"] == -63 and by["A"]["first_flag"] == str(CUTOFF - timedelta(days=28))
    # B went quiet for 60 days from 2025-01-01 (first weekly date past that: 2025-03-03), then ordered
    # once more on 2025-06-20 and stopped: warned 109 days before its last order
    assert by["B"]["first_flag"] == "2025-03-03" and by["B"]["lead_days"] == 109
    assert by["D"]["lead_days"] is None and by["D"]["first_flag"] is None  # 10 days quiet: never flagged
    assert (lt["lost"], lt["flagged"], lt["missed"]) == (3, 2, 1)
    assert lt["median_days"] == pytest.approx(23)
    counts = {h["bin"]: h["count"] for h in lt["histogram"]}
    assert counts["31-90 days after"] == 1 and counts["90+ days before the last order"] == 1
    assert counts["not flagged by the cutoff"] == 1
    assert sum(counts.values()) == lt["lost"]


def test_declining_orders_are_flagged_before_the_last_one():
    # score >= 50 when the 90-day order value trend falls below -0.5
    model = RiskModel("t", -10.0, (Factor("order_value_trend", -20.0, "none", 0.0, 1.0),), 50.0)
    rows = (_every("C", date(2024, 7, 1), date(2024, 12, 31), 14, 1000.0)
            + _every("C", date(2025, 1, 14), date(2025, 4, 30), 14, 10.0))
    lt = lead_times(_orders(rows), model, CUTOFF, ["C"], FeatureOptions())
    (c,) = lt["accounts"]
    assert c["first_flag"] < c["last_order"] and c["lead_days"] > 0
    assert lt["quantiles"]["p50"] == c["lead_days"]


def test_lead_time_ignores_orders_after_the_cutoff():
    model = RiskModel("t", 0.0, (Factor("days_since_last_order", 1.0, "none", 60.0, 1.0),), 50.0)
    rows = _every("A", date(2024, 10, 1), date(2025, 3, 31), 14, 100.0)
    a = lead_times(_orders(rows), model, CUTOFF, ["A"], FeatureOptions())
    b = lead_times(_orders(rows + [("A", date(2025, 7, 5), 100.0)]), model, CUTOFF, ["A"], FeatureOptions())
    assert a == b


def test_backtest_reports_lead_times_per_cutoff():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_risk import synthetic_orders

    r = backtest(synthetic_orders(200), [date(2025, 3, 31)], 91)
    lt = r.lead_times["2025-03-31"]
    active = len(r.scores)  # one score per account active at the cutoff
    assert lt["lost"] == round(r.metrics["2025-03-31"]["lost_share"] * r.metrics["2025-03-31"]["n"])
    assert lt["flagged"] + lt["missed"] == lt["lost"] <= active
    assert sum(h["count"] for h in lt["histogram"]) == lt["lost"]
    assert lt["median_days"] is not None and lt["threshold"] == r.models["2025-03-31"]["threshold"]
    d = json.loads(json.dumps(r.to_dict()))
    assert d["lead_times"]["2025-03-31"]["median_days"] == lt["median_days"]


def test_cli_prints_lead_times(tmp_path):
    import sys
    from pathlib import Path

    from typer.testing import CliRunner

    from pipeline.cli import app

    sys.path.insert(0, str(Path(__file__).parent))
    from test_risk import synthetic_orders

    csv = tmp_path / "orders.csv"
    df = synthetic_orders(150)
    df.assign(date=df["date"].dt.date).to_csv(csv, index=False)
    out = CliRunner().invoke(app, ["risk", "backtest", "--orders", str(csv), "--cutoff", "2025-03-31"])
    assert out.exit_code == 0, out.output
    assert "Lead time at 2025-03-31" in out.stdout and "days before the last order" in out.stdout
    out = CliRunner().invoke(app, ["risk", "backtest", "--orders", str(csv), "--cutoff", "2025-03-31", "--json"])
    lt = json.loads(out.stdout)["lead_times"]["2025-03-31"]
    assert {"median_days", "quantiles", "histogram", "accounts", "lost", "flagged", "missed"} <= set(lt)
    assert lt["median_days"] == pytest.approx(lt["quantiles"]["p50"])
