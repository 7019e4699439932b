"""Calibration: Brier and reliability bins in risk backtest, and the reliability chart PNG (--plot)."""

import json

import numpy as np
import pytest

from pipeline.risk.calibration import reliability_bins, write_reliability_png

PNG = b"\x89PNG\r\n\x1a\n"


def test_reliability_bins_and_brier():
    y = np.array([0, 0, 1, 1, 1, 0, 1, 0])
    p = np.array([0.05, 0.1, 0.9, 0.95, 0.6, 0.4, 0.65, 0.35])
    cal = reliability_bins(y, p)
    assert cal["brier"] == pytest.approx(float(np.mean((p - y) ** 2)), abs=1e-4)
    assert sum(b["count"] for b in cal["bins"]) == len(y)
    top = cal["bins"][-1]
    assert top["from"] == 0.9 and top["share_lost"] == 1.0 and top["count"] == 2


def test_plot_writes_pngs(tmp_path):
    cal = {"2025-06-30": {"churnwatch": reliability_bins([0, 1, 1, 0], [0.2, 0.8, 0.7, 0.1]),
                          "bgnbd_no_order": reliability_bins([0, 1, 1, 0], [0.5, 0.5, 0.6, 0.4])}}
    paths = write_reliability_png(cal, tmp_path / "charts")
    assert [p.name for p in paths] == ["reliability-2025-06-30.png"]
    assert paths[0].read_bytes()[:8] == PNG


def test_backtest_cli_plot_and_json(tmp_path):
    from typer.testing import CliRunner

    from pipeline.cli import app
    from test_risk import synthetic_orders

    df = synthetic_orders(300)
    orders = tmp_path / "orders.csv"
    df.assign(date=df["date"].dt.date).to_csv(orders, index=False)
    runner = CliRunner()
    out = runner.invoke(app, ["risk", "backtest", "--orders", str(orders), "--cutoff", "2025-06-30",
                              "--horizon-days", "91", "--plot", str(tmp_path / "plots"), "--json"])
    assert out.exit_code == 0, out.output
    png = tmp_path / "plots" / "reliability-2025-06-30.png"
    assert png.exists() and png.read_bytes()[:8] == PNG
    d = json.loads(out.stdout if hasattr(out, "stdout") else out.output)
    assert {"metrics", "baselines", "scores"} <= set(d)
    assert set(d["scores"][0]) == {"account_id", "cutoff", "score"}
    cal = d["calibration"]["2025-06-30"]
    assert "churnwatch" in cal and cal["churnwatch"]["brier"] == d["metrics"]["2025-06-30"]["brier"]
