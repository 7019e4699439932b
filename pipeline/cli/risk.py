"""`churnwatch risk`: score, explain, fit, backtest, churn rates."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from pipeline.cli.shared import (
    DbOption,
    JsonOption,
    MapOption,
    PresetOption,
    app,
    console,
    err_console,
    fail,
    get_settings,
    open_store,
    parse_date_option,
    print_json,
)

risk_app = typer.Typer(help="Score accounts, explain scores, fit weights and backtest.", no_args_is_help=True)
app.add_typer(risk_app, name="risk")

AsOfOption = Annotated[Optional[str], typer.Option("--as-of", help="Score as of this date, YYYY-MM-DD (default: today).")]


def _risk_model(settings):
    from pipeline.risk.score import load_risk_model

    return load_risk_model(settings.rules_dir, settings.models_dir)


@risk_app.command("score")
def risk_score(
    as_of: AsOfOption = None,
    as_json: JsonOption = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV (account_id, score, flagged, top factor).")] = False,
    db: DbOption = None,
) -> None:
    """Score every open account, store the scores, and print them riskiest first."""
    from pipeline import store
    from pipeline.risk import score as risk

    settings, engine = open_store(db, create=True)
    model = _risk_model(settings)
    day = parse_date_option(as_of, "--as-of") or date.today()
    with store.session_scope(engine) as session:
        results = risk.score_accounts(session, day, model)
        for r in results:
            risk.save_score(session, r)

    def top(r):
        factors = {k: v for k, v in r.contributions.items() if k != "intercept"}
        return max(factors, key=factors.get) if factors else ""

    if as_json:
        print_json({"as_of": day.isoformat(), "model_version": model.version, "threshold": model.threshold,
                     "scores": [{"account_id": r.account_id, "score": round(r.score, 2), "flagged": r.flagged,
                                 "log_odds": round(r.log_odds, 4),
                                 "contributions": {k: round(v, 4) for k, v in r.contributions.items()}}
                                for r in results]})
        return
    if as_csv:
        import csv

        w = csv.writer(sys.stdout)
        w.writerow(["account_id", "score", "flagged", "top_factor"])
        for r in results:
            w.writerow([r.account_id, f"{r.score:.1f}", int(r.flagged), top(r)])
        return
    table = Table(title=f"Risk as of {day} (model {model.version}, threshold {model.threshold:g})")
    for col in ("#", "account", "score", "flag", "biggest factor"):
        table.add_column(col, justify="right" if col in ("#", "score") else "left")
    for i, r in enumerate(results, 1):
        table.add_row(str(i), r.account_id, f"{r.score:.1f}", "⚑" if r.flagged else "", top(r))
    console.print(table)


@risk_app.command("explain")
def risk_explain(
    account: Annotated[str, typer.Argument(help="The CRM account id.")],
    as_of: AsOfOption = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Show each factor's contribution to an account's score and the evidence behind it."""
    from pipeline import store
    from pipeline.risk import score as risk

    settings, engine = open_store(db, create=True)
    model = _risk_model(settings)
    day = parse_date_option(as_of, "--as-of") or date.today()
    with store.session_scope(engine) as session:
        if session.get(store.Account, account) is None:
            fail(f"No account {account!r} in {settings.db_url}. Import it: churnwatch crm import accounts.csv --kind accounts")
        r = risk.score_account(session, account, day, model)
    if as_json:
        print_json(r.to_dict())
        return
    console.print(f"[bold]{account}[/bold] as of {day}: score [bold]{r.score:.1f}[/bold]"
                  f"{' [red]flagged[/red]' if r.flagged else ''} (threshold {r.threshold:g}, model {r.model_version}, "
                  f"log-odds {r.log_odds:+.3f} = sum of the contributions)", highlight=False)
    table = Table()
    for col in ("factor", "value", "log-odds", "why"):
        table.add_column(col, justify="right" if col in ("value", "log-odds") else "left")
    table.add_row("baseline (intercept)", "", f"{r.contributions['intercept']:+.3f}", "")
    ranked = sorted((k for k in r.contributions if k != "intercept"), key=lambda k: -abs(r.contributions[k]))
    for name in ranked:
        info = r.evidence.get(name, {})
        value = info.get("value")
        why = [info.get("note", "")]
        for ev in info.get("evidence", [])[:3]:
            why.append(f'"{ev["quote"]}" ({ev["date"]}, {ev["rule"]})' if ev.get("quote")
                       else ", ".join(f"{k} {v}" for k, v in ev.items() if v is not None and k != "kind"))
        table.add_row(info.get("label") or name, "" if value is None else f"{value:g}",
                      f"{r.contributions[name]:+.3f}", "\n".join(w for w in why if w))
    console.print(table)


@risk_app.command("fit")
def risk_fit(
    cutoffs: Annotated[Optional[list[str]], typer.Option("--cutoff", help="Training cutoff YYYY-MM-DD (repeatable; default: rolling cutoffs ending one horizon before the last order).")] = None,
    horizon_days: Annotated[int, typer.Option("--horizon-days", help="No order within this many days after a cutoff counts as lost.")] = 91,
    orders: Annotated[Optional[Path], typer.Option("--orders", help="Learn from this orders CSV instead of the store (order features only).")] = None,
    column_map: MapOption = None,
    preset: PresetOption = None,
    activate: Annotated[bool, typer.Option("--activate", help="Also print the line that makes rules/risk.yaml use the new model.")] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Learn weights from past outcomes (logistic regression, balanced, regularised) and save them to models/risk/."""
    from pipeline import store
    from pipeline.risk import fit as riskfit
    from pipeline.risk.score import FEATURE_NAMES

    settings = get_settings(db)
    options = riskfit.RiskFitOptions(horizon_days=horizon_days)
    days = [parse_date_option(c, "--cutoff") for c in cutoffs or []]
    if orders is not None:
        from pipeline.crm import parse_map

        frame, _ = riskfit.load_orders(orders, parse_map(column_map), preset)
        days = days or riskfit.rolling_cutoffs(frame["date"].max().date(), frame["date"].min().date(), options)
        model = riskfit.fit_orders(frame, days, options, source=orders.name)
    else:
        settings, engine = open_store(db, create=True)
        options = riskfit.RiskFitOptions(horizon_days=horizon_days, features=FEATURE_NAMES)
        with store.session_scope(engine) as session:
            days = days or riskfit.default_cutoffs(session, options)
            frame = riskfit.store_training_frame(session, days, options)
        model = riskfit.fit_frame(frame, options, days, source="store")
    path = riskfit.save_model(model, settings.models_dir)
    if as_json:
        print_json({"path": str(path), "version": model.version, "threshold": model.threshold, **model.meta,
                     "weights": {f.feature: f.weight for f in model.factors}, "intercept": model.intercept})
        return
    console.print(f"Saved {path} (train ROC-AUC {model.meta['metrics']['train_roc_auc']}, "
                  f"{model.meta['training']['rows']} rows, cutoffs {', '.join(map(str, days))}).", highlight=False)
    for f in sorted(model.factors, key=lambda f: -abs(f.weight)):
        console.print(f"  {f.feature:<28} {f.weight:+.3f} per std. dev. of {f.transform}(value)", highlight=False)
    if activate:
        console.print(f"To use it, set in {settings.rules_dir / 'risk.yaml'}:  active: {path.name}", highlight=False)


@risk_app.command("backtest")
def risk_backtest(
    orders: Annotated[Path, typer.Option("--orders", help="Orders CSV: account_id, date, amount (optionally invoice_id).")],
    cutoffs: Annotated[list[str], typer.Option("--cutoff", help="Test cutoff YYYY-MM-DD (repeatable).")],
    horizon_days: Annotated[int, typer.Option("--horizon-days", help="No order within this many days after the cutoff counts as lost.")] = 91,
    column_map: MapOption = None,
    preset: PresetOption = None,
    as_json: JsonOption = False,
) -> None:
    """Train only on what was known before each cutoff, score the active accounts, compare with baselines."""
    from pipeline.crm import parse_map
    from pipeline.risk import fit as riskfit

    frame, bad = riskfit.load_orders(orders, parse_map(column_map), preset)
    result = riskfit.backtest(frame, [parse_date_option(c, "--cutoff") for c in cutoffs], horizon_days)
    if bad:
        err_console.print(f"{len(bad)} bad row(s) in {orders} skipped, first: {bad[0]}", highlight=False)
    for cutoff, reason in result.skipped.items():
        err_console.print(f"[yellow]skipped[/yellow] {reason}", highlight=False, soft_wrap=True)
    if as_json:
        print_json(result.to_dict())
        return
    cols = ("roc_auc", "pr_auc", "recall_top10", "precision_top10", "recall_top20", "precision_top20",
            "flag_share_for_85pct", "brier")
    table = Table(title=f"Backtest of {orders} ({horizon_days}-day horizon)")
    for c in ("cutoff", "scorer", "n", "lost") + cols:
        table.add_column(c, justify="left" if c in ("cutoff", "scorer") else "right")
    for cutoff, m in result.metrics.items():
        rows = [("churnwatch", m)] + [(name, b[cutoff]) for name, b in result.baselines.items() if cutoff in b]
        for name, mm in rows:
            if mm.get("status", "ok") != "ok":
                table.add_row(cutoff, name, "", "", "unavailable (see below)", *[""] * (len(cols) - 1))
                continue
            table.add_row(cutoff, name, str(mm["n"]), f"{mm['lost_share']:.3f}",
                          *[f"{mm[c]:.3f}" if c in mm else "" for c in cols])
    console.print(table)
    for name, st in result.baseline_status().items():
        if st["status"] != "ok":
            console.print(f"Baseline {name} unavailable: {st['reason']}", highlight=False, soft_wrap=True)
    for cutoff, lt in result.lead_times.items():
        if not lt["lost"]:
            continue
        line = (f"Lead time at {cutoff} (threshold {lt['threshold']:g}): {lt['flagged']} of {lt['lost']} lost "
                f"accounts were flagged by the cutoff")
        if lt["median_days"] is not None:
            q = lt["quantiles"]
            line += (f"; the first flag came a median {lt['median_days']:g} days before the last order "
                     f"(10%-90%: {q['p10']:g} to {q['p90']:g}; negative = after it)")
        console.print(line + ".", highlight=False, soft_wrap=True)
        console.print("  " + ", ".join(f"{h['bin']}: {h['count']}" for h in lt["histogram"]),
                      highlight=False, soft_wrap=True)


@risk_app.command("churn-rate")
def risk_churn_rate(
    period: Annotated[str, typer.Option("--period", help="month or quarter.")] = "quarter",
    by: Annotated[Optional[str], typer.Option("--by", help="Split by rep or segment.")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Churn and retention per period: the share of accounts open at the start that were lost (new ones excluded)."""
    from dataclasses import asdict

    from pipeline import store
    from pipeline.risk.churn_rate import churn_rates

    settings, engine = open_store(db, create=True)
    with store.session_scope(engine) as session:
        rows = churn_rates(session, period, by)
    if as_json:
        print_json([asdict(r) for r in rows])
        return
    table = Table(title=f"Churn per {period}" + (f" by {by}" if by else ""))
    for c in ("period",) + ((by,) if by else ()) + ("accounts at start", "lost", "churn", "retention"):
        table.add_column(c, justify="left" if c in ("period", by) else "right")
    for r in rows:
        table.add_row(r.period, *((r.group,) if by else ()), str(r.base), str(r.lost),
                      f"{r.churn_rate:.1%}", f"{r.retention_rate:.1%}")
    console.print(table)
