"""Degenerate order logs through the CLI: `risk backtest`, `risk fit`, `risk score` never end in a
traceback; they exit 0, or 1 with one line that says what to do. A baseline that fails is reported
as unavailable, and the rest of the backtest stands."""

import json
import random
from datetime import date, timedelta

import pytest
from typer.testing import CliRunner

from pipeline.cli import app

START = date(2023, 1, 1)
CUTOFFS = ["--cutoff", "2024-03-31", "--cutoff", "2024-06-30"]


def _write(path, rows):
    lines = ["account_id,date,amount,invoice_id"]
    lines += [f"{a},{d.isoformat()},{amount},INV{i}" for i, (a, d, amount) in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _regular(n=40, seed=5, amount=lambda rng: round(rng.uniform(50, 500), 2)):
    """Accounts ordering every 2-8 weeks until a random stop: lost and kept at every cutoff."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        day, stop = START + timedelta(days=rng.randint(0, 30)), START + timedelta(days=rng.randint(200, 700))
        while day <= stop:
            rows.append((f"C{i:02d}", day, amount(rng)))
            day += timedelta(days=rng.choice([14, 30, 45, 60]))
    return rows


def _logs():
    rng = random.Random(1)
    logs = {
        "one_order_per_customer": [(f"C{i}", START + timedelta(days=rng.randint(0, 600)), 100) for i in range(40)],
        "all_customers_lost": [(f"C{i}", START + timedelta(days=30 * k), 80) for i in range(30) for k in range(4)]
        + [("LATE", START + timedelta(days=560), 10)],
        "single_day": [(f"C{i}", START, 100) for i in range(30)],
        # plain digits: 1e15 and up, with cents
        "huge_amounts": _regular(amount=lambda rng: f"{rng.uniform(1, 9) * 1e15:.2f}"),
        "negative_only": [(f"C{i % 10}", START + timedelta(days=rng.randint(0, 600)), -100) for i in range(40)],
    }
    return logs


LOGS = _logs()


def _clean(out, what):
    """Exit 0, or 1 with a one-line message that says what to do; never a traceback."""
    text = out.output
    assert "Traceback" not in text, f"{what}: {text}"
    assert out.exit_code in (0, 1), f"{what}: exit {out.exit_code}: {text}"
    assert out.exception is None or isinstance(out.exception, SystemExit), f"{what}: {out.exception!r}"
    if out.exit_code == 1:
        lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), f"{what}: {out.stderr}"
        assert any(w in lines[0] for w in ("Use ", "Pick ", "Check ", "Import ", "pass ", "Pass ")), lines[0]


@pytest.fixture
def runner(tmp_path, monkeypatch):
    monkeypatch.setenv("CHURNWATCH_MODELS_DIR", str(tmp_path / "models"))  # fits land here, not in the repo
    return CliRunner()


@pytest.mark.parametrize("name", sorted(LOGS))
def test_degenerate_log_backtest_and_fit_from_csv(name, tmp_path, runner):
    csv = _write(tmp_path / f"{name}.csv", LOGS[name])
    out = runner.invoke(app, ["risk", "backtest", "--orders", str(csv), *CUTOFFS, "--json"])
    _clean(out, f"{name} backtest")
    if out.exit_code == 0:
        d = json.loads(out.stdout)
        assert {"metrics", "baselines", "scores", "baseline_status", "lead_times"} <= set(d)
        assert all(set(s) == {"account_id", "cutoff", "score"} for s in d["scores"])
        assert all(st["status"] in ("ok", "unavailable") for st in d["baseline_status"].values())
    out = runner.invoke(app, ["risk", "backtest", "--orders", str(csv), *CUTOFFS])
    _clean(out, f"{name} backtest table")
    out = runner.invoke(app, ["risk", "fit", "--orders", str(csv), "--db", f"sqlite:///{tmp_path / 'x.db'}"])
    _clean(out, f"{name} fit --orders")


@pytest.mark.parametrize("name", sorted(LOGS))
def test_degenerate_log_imported_then_fit_and_score(name, tmp_path, runner):
    csv = _write(tmp_path / f"{name}.csv", LOGS[name])
    db = f"sqlite:///{tmp_path / 'store.db'}"
    out = runner.invoke(app, ["crm", "import", str(csv), "--kind", "orders", "--db", db])
    assert out.exit_code == 0, out.output
    _clean(runner.invoke(app, ["risk", "fit", "--db", db]), f"{name} fit")
    out = runner.invoke(app, ["risk", "score", "--as-of", "2024-06-30", "--db", db, "--json"])
    _clean(out, f"{name} score")
    assert out.exit_code == 0


def test_expected_outcomes_of_degenerate_logs(tmp_path, runner):
    def backtest(name):
        csv = _write(tmp_path / f"{name}.csv", LOGS[name])
        return runner.invoke(app, ["risk", "backtest", "--orders", str(csv), *CUTOFFS, "--json"])

    assert "repeat orders" in backtest("one_order_per_customer").stderr
    assert "credit notes only" in backtest("negative_only").stderr
    assert "positive order" in backtest("single_day").stderr
    huge = backtest("huge_amounts")
    assert huge.exit_code == 0, huge.output
    d = json.loads(huge.stdout)
    assert d["metrics"] and all(0 <= s["score"] <= 100 for s in d["scores"])


def test_failing_baseline_is_unavailable_and_the_rest_stands(tmp_path, runner, monkeypatch):
    import pipeline.risk.bgnbd as bgnbd

    class ConvergenceError(Exception):
        pass

    def boom(*a, **k):
        raise ConvergenceError("The model did not converge. Try adding a larger penalizer.")

    monkeypatch.setattr(bgnbd, "fit_bgnbd", boom)
    csv = _write(tmp_path / "orders.csv", _regular(60))
    out = runner.invoke(app, ["risk", "backtest", "--orders", str(csv), *CUTOFFS, "--json"])
    assert out.exit_code == 0, out.output
    d = json.loads(out.stdout)
    assert set(d["metrics"]) == {"2024-03-31", "2024-06-30"}
    for name in ("bgnbd", "bgnbd_no_order"):
        st = d["baseline_status"][name]
        assert st["status"] == "unavailable" and "ConvergenceError" in st["reason"]
        assert d["baselines"][name]["2024-03-31"]["status"] == "unavailable"
    assert d["baseline_status"]["days_since_last_order"] == {"status": "ok"}
    assert "roc_auc" in d["baselines"]["days_since_last_order"]["2024-03-31"]
    assert d["scores"] and d["lead_times"]
    out = runner.invoke(app, ["risk", "backtest", "--orders", str(csv), *CUTOFFS])
    assert out.exit_code == 0 and "Traceback" not in out.output
    assert "Baseline bgnbd unavailable" in out.stdout and "ConvergenceError" in out.stdout


def test_a_cutoff_that_cannot_be_backtested_is_skipped(tmp_path, runner):
    csv = _write(tmp_path / "orders.csv", _regular(60))
    out = runner.invoke(app, ["risk", "backtest", "--orders", str(csv), "--cutoff", "2023-02-01",
                              "--cutoff", "2024-03-31", "--json"])
    assert out.exit_code == 0, out.output
    d = json.loads(out.stdout)
    assert list(d["metrics"]) == ["2024-03-31"]
    assert "Use a later cutoff" in d["skipped"]["2023-02-01"]
    assert "skipped" in out.stderr


def test_a_horizon_past_the_end_of_the_data_is_refused_naming_the_last_date(tmp_path, runner):
    """Issue 19: a cutoff whose horizon runs past the data counted every account without a later
    order as lost (3% at one cutoff, 98% at a later one) without a word; one after the data crashed."""
    rows = _regular(60)
    last = max(d for _, d, _ in rows)
    csv = _write(tmp_path / "orders.csv", rows)
    near_end = last - timedelta(days=30)  # 61 of its 91 days unseen
    after_end = last + timedelta(days=40)
    slightly = last - timedelta(days=88)  # 3 days past the end: within the slack, a warning
    out = runner.invoke(app, ["risk", "backtest", "--orders", str(csv), "--cutoff", "2024-03-31",
                              "--cutoff", near_end.isoformat(), "--cutoff", after_end.isoformat(),
                              "--cutoff", slightly.isoformat(), "--json"])
    assert out.exit_code == 0, out.output
    d = json.loads(out.stdout)
    assert d["data_until"] == last.isoformat()
    assert set(d["metrics"]) == {"2024-03-31", slightly.isoformat()}
    for cutoff in (near_end, after_end):
        reason = d["skipped"][cutoff.isoformat()]
        assert last.isoformat() in reason and "Pick a cutoff on or before" in reason
        assert (last - timedelta(days=91)).isoformat() in reason
    assert list(d["warnings"]) == [slightly.isoformat()] and last.isoformat() in d["warnings"][slightly.isoformat()]
    # only unseen horizons: one line, no traceback
    out = runner.invoke(app, ["risk", "backtest", "--orders", str(csv), "--cutoff", after_end.isoformat()])
    _clean(out, "after the end")
    assert out.exit_code == 1 and last.isoformat() in out.stderr


def test_fit_refuses_training_cutoffs_whose_horizon_is_unseen(tmp_path, runner):
    rows = _regular(60)
    last = max(d for _, d, _ in rows)
    csv = _write(tmp_path / "orders.csv", rows)
    out = runner.invoke(app, ["risk", "fit", "--orders", str(csv), "--cutoff", "2024-03-31",
                              "--cutoff", (last - timedelta(days=10)).isoformat()])
    _clean(out, "fit")
    assert out.exit_code == 1 and last.isoformat() in out.stderr
