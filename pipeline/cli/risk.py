"""`churnwatch risk`: score, explain, fit, backtest, churn rates."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
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


def _money(v) -> str:
    try:
        return f"{float(v):,.2f}"
    except (TypeError, ValueError):
        return str(v)


def describe_evidence(ev: dict, labels: dict[str, str] | None = None) -> str:
    """One piece of evidence in plain words: the order, the call quote, the CRM event."""
    kind = ev.get("kind")
    if ev.get("quote") is not None:
        text = f'"{ev["quote"]}" (call on {ev.get("date")})'
    elif kind == "invoice":
        paid = f"paid {ev['paid']}" if ev.get("paid") else "unpaid"
        text = f"invoice {ev.get('invoice_id') or '(no number)'} of {_money(ev.get('amount'))}, due {ev.get('due')}, {paid}"
    elif kind == "order":
        what = "credit note" if (ev.get("amount") or 0) < 0 else "order"
        text = f"{what} {ev.get('date')}" + (f", {_money(ev['amount'])}" if ev.get("amount") is not None else "")
        text += f" ({ev['invoice_id']})" if ev.get("invoice_id") else ""
    elif kind == "support":
        text = f"support case {ev.get('case_id') or ''} opened {ev.get('date')}".replace("  ", " ")
        text += f": {ev['subject']}" if ev.get("subject") else ""
    elif kind == "contact":
        text = f"new contact {ev.get('name')}" + (f" ({ev['role']})" if ev.get("role") else "") + f", added {ev.get('date')}"
    else:
        bits = [str(ev.get("date"))] + [str(ev[k]) for k in ("direction", "outcome") if ev.get(k)]
        text = f"{kind or 'activity'} " + " ".join(bits)
    if ev.get("counted_under"):
        name = (labels or {}).get(ev["counted_under"]) or ev["counted_under"]
        text += f" [the same event, counted once under '{name}']"
    return text


_KEY_WORDS = {"invoice": "invoice", "case": "support case", "contact": "new contact"}


def _top_points(r, n: int = 3) -> str:
    _, shown = r.shown_points()
    labels = {k: (v or {}).get("label") or k for k, v in r.evidence.items()}
    return "; ".join(f"{labels.get(k, k)} {shown[k]:+.1f}" for k in r.top_factors(n))


@risk_app.command("score")
def risk_score(
    as_of: AsOfOption = None,
    as_json: JsonOption = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV (account_id, score, flagged, top factor).")] = False,
    db: DbOption = None,
) -> None:
    """Score every open account, store the scores, and print them riskiest first, with the factors
    that add the most points."""
    from pipeline import store
    from pipeline.risk import score as risk

    settings, engine = open_store(db, create=True, write=True)  # the scores are stored
    model = _risk_model(settings)
    day = parse_date_option(as_of, "--as-of") or date.today()
    with store.session_scope(engine) as session:
        results = risk.score_accounts(session, day, model)
        risk.save_scores(session, results)
    # The results are millions of small objects, none in a cycle, made while the cyclic collector
    # waited (pipeline.risk.score): its next passes would walk them all (8 s on the first
    # allocations after 100,000 accounts, bench/risk_scale.py). In the permanent generation they
    # are skipped while the scores are printed; reference counting still frees them.
    import gc

    gc.freeze()
    try:
        _print_scores(results, day, model, as_json, as_csv)
    finally:
        gc.unfreeze()  # a caller that goes on (the tests run commands in one process) is left as it was


def _print_scores(results, day: date, model, as_json: bool, as_csv: bool) -> None:
    def top(r):
        t = r.top_factors(1)
        return t[0] if t else ""

    if as_json:
        out = []
        for r in results:
            base, shown = r.shown_points(2)
            out.append({"account_id": r.account_id, "score": round(r.score, 2), "flagged": r.flagged,
                        "threshold": r.threshold, "segment": r.segment, "base_score": base,
                        "points": {k: v for k, v in sorted(shown.items(), key=lambda kv: -abs(kv[1])) if v},
                        "log_odds": round(r.log_odds, 4),
                        "contributions": {k: round(v, 4) for k, v in r.contributions.items()}})
        print_json({"as_of": day.isoformat(), "model_version": model.version, "threshold": model.threshold,
                    "points": "score points: base_score + sum(points) = score (see risk explain)",
                    "scores": out})
        return
    if as_csv:
        import csv

        w = csv.writer(sys.stdout)
        w.writerow(["account_id", "score", "flagged", "top_factor", "top_factor_points"])
        for r in results:
            t = top(r)
            w.writerow([r.account_id, f"{r.score:.1f}", int(r.flagged), t,
                        f"{r.shown_points()[1][t]:+.1f}" if t else ""])
        return
    table = Table(title=f"Risk as of {day} (model {model.version}, threshold {model.threshold:g})")
    for col in ("#", "account", "score", "flag", "biggest factors (score points)"):
        table.add_column(col, justify="right" if col in ("#", "score") else "left")
    for i, r in enumerate(results, 1):
        table.add_row(str(i), r.account_id, f"{r.score:.1f}", "⚑" if r.flagged else "", _top_points(r))
    console.print(table)
    console.print("Points are each factor's share of the score: an ordinary account's base score plus every "
                  "factor's points is the score. Details: churnwatch risk explain ACCOUNT", highlight=False)


@risk_app.command("explain")
def risk_explain(
    account: Annotated[str, typer.Argument(help="The CRM account id.")],
    as_of: AsOfOption = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Show each factor's share of an account's score in points, with the evidence behind it."""
    from pipeline import store
    from pipeline.risk import score as risk

    settings, engine = open_store(db, create=True)
    model = _risk_model(settings)
    day = parse_date_option(as_of, "--as-of") or date.today()
    with store.session_scope(engine) as session:
        if session.get(store.Account, account) is None:
            fail(f"No account {account!r} in {settings.db_url}. Import it: churnwatch crm import accounts.csv --kind accounts")
        r = risk.score_account(session, account, day, model)
    base, shown = r.shown_points()
    if as_json:
        d = r.to_dict()
        d["shown"] = {"score": round(r.score, 1), "base_score": base, "points": shown}
        print_json(d)
        return
    labels = {k: (v or {}).get("label") or k for k, v in r.evidence.items()}
    seg = f", weights for segment {r.segment}" if r.segment else ""
    console.print(f"[bold]{account}[/bold] as of {day}: churn risk [bold]{round(r.score, 1):.1f}[/bold] out of 100"
                  f"{' [red]flagged[/red]' if r.flagged else ''} (alert line {r.threshold:g}{seg}; "
                  f"model {r.model_version})", highlight=False)
    console.print(f"An ordinary account scores {base:.1f}. Each factor below adds or takes away points; "
                  f"together they make the score.", highlight=False)
    table = Table()
    for col in ("factor", "value", "points", "evidence"):
        table.add_column(col, justify="right" if col in ("value", "points") else "left")
    table.add_row("ordinary account (base)", "", f"{base:.1f}", "")
    ranked = sorted((k for k in shown if shown[k] != 0), key=lambda k: (-abs(r.points[k]), k))
    for name in ranked:
        info = r.evidence.get(name, {})
        value = info.get("value")
        why = [info.get("note", "")]
        if info.get("value_before_merge") is not None:
            why.append(f"(counted {info['value_before_merge']:g} before merging events counted under other factors)")
        items = info.get("evidence", [])
        counted = [ev for ev in items if not ev.get("counted_under") and ev.get("units", 1) != 0]
        for ev in (counted or items)[:3]:
            why.append(describe_evidence(ev, labels))
            seen = {describe_evidence({k: v for k, v in ev.items() if k != "counted_under"})}
            for same in sorted(ev.get("same_event", []), key=lambda e: e.get("quote") is None):
                text = describe_evidence({k: v for k, v in same.items() if k != "counted_under"})
                if text not in seen:
                    seen.add(text)
                    why.append(f"  the same event, under '{labels.get(same['feature'], same['feature'])}': {text}")
        if len(counted) > 3:
            why.append(f"... and {len(counted) - 3} more")
        table.add_row(labels.get(name, name), "" if value is None else f"{value:.3g}", f"{shown[name]:+.1f}",
                      "\n".join(w for w in why if w))
    table.add_row("[bold]score[/bold]", "", f"[bold]{round(r.score, 1):.1f}[/bold]", "")
    console.print(table)
    quiet = len(r.points) - len(ranked)
    if quiet:
        console.print(f"{quiet} other factor(s) are at their normal value and add no points.", highlight=False)
    for m in r.merged:
        others = sorted({labels.get(d, d) for d in m["dropped"] if d != m["kept"]})
        what = ", ".join(_KEY_WORDS[k.split(":", 1)[0]] + " " + (k.split(":", 1)[1].title() if k.startswith("contact:")
                                                                  else k.split(":", 1)[1]) for k in m["keys"]
                         if k.split(":", 1)[0] in _KEY_WORDS) or (f'the sentence "{m["quotes"][0]}"' if m.get("quotes")
                                                                else "one sentence of a call")
        line = f"Counted once: {what} is one event, counted under '{labels.get(m['kept'], m['kept'])}'"
        console.print(line + (f", not again under {', '.join(repr(o) for o in others)}." if others else "."),
                      highlight=False, soft_wrap=True)


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
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Write a reliability chart per cutoff (PNG) to this folder.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Train only on what was known before each cutoff, score the active accounts, compare with baselines;
    Brier scores and (with --plot) reliability charts show how well the probabilities are calibrated."""
    from pipeline.crm import parse_map
    from pipeline.risk import fit as riskfit

    frame, bad = riskfit.load_orders(orders, parse_map(column_map), preset)
    result = riskfit.backtest(frame, [parse_date_option(c, "--cutoff") for c in cutoffs], horizon_days)
    if bad:
        err_console.print(f"{len(bad)} bad row(s) in {orders} skipped, first: {bad[0]}", highlight=False)
    for cutoff, reason in result.skipped.items():
        err_console.print(f"[yellow]skipped[/yellow] {escape(reason)}", highlight=False, soft_wrap=True)
    for cutoff, reason in result.warnings.items():
        err_console.print(f"[yellow]warning[/yellow] {escape(reason)}", highlight=False, soft_wrap=True)
    charts = []
    if plot is not None:
        from pipeline.risk.calibration import write_reliability_png

        try:
            charts = write_reliability_png(result.calibration, plot)
        except OSError as e:
            fail(f"Cannot write the reliability charts to {plot}: {e.strerror or e}. Pick a folder you can write to.")
        err_console.print(f"Reliability charts: {', '.join(str(c) for c in charts)}", highlight=False, soft_wrap=True)
    if as_json:
        print_json(result.to_dict())
        return
    cols = ("roc_auc", "pr_auc", "recall_top10", "precision_top10", "recall_top20", "precision_top20",
            "flag_share_for_85pct", "flag_share_for_85pct_floor", "brier")
    table = Table(title=f"Backtest of {orders} ({horizon_days}-day horizon; the data ends on {result.data_until})")
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
    since: Annotated[Optional[str], typer.Option("--since", help="First period to show: the one holding this date, YYYY-MM-DD.")] = None,
    until: Annotated[Optional[str], typer.Option("--until", help="Count up to this date, YYYY-MM-DD (default: today); the period it falls in is marked partial.")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Churn and retention per period: the share of accounts open at the start that were lost (new ones
    excluded), and the revenue those accounts kept (gross and net revenue retention, from orders)."""
    from dataclasses import asdict

    from pipeline import store
    from pipeline.risk.churn_rate import churn_rates

    settings, engine = open_store(db, create=True)
    with store.session_scope(engine) as session:
        rows = churn_rates(session, period, by, until=parse_date_option(until, "--until"),
                           since=parse_date_option(since, "--since"))
    if as_json:
        print_json([{**asdict(r), "start": r.start.isoformat(), "end": r.end.isoformat() if r.end else None}
                    for r in rows])
        return
    table = Table(title=f"Churn per {period}" + (f" by {by}" if by else ""))
    cols = ("accounts at start", "lost", "churn", "retention", "revenue before", "revenue", "gross rev. retention",
            "net rev. retention")
    for c in ("period",) + ((by,) if by else ()) + cols:
        table.add_column(c, justify="left" if c in ("period", by) else "right")

    def pct(v):
        return "" if v is None else f"{v:.1%}"

    for r in rows:
        name = f"{r.period} (partial, to {r.end})" if r.partial else r.period
        table.add_row(name, *((r.group,) if by else ()), str(r.base), str(r.lost), f"{r.churn_rate:.1%}",
                      f"{r.retention_rate:.1%}", f"{r.revenue_before:,.0f}", f"{r.revenue:,.0f}",
                      pct(r.gross_revenue_retention), pct(r.net_revenue_retention))
    console.print(table)
    if any(r.partial for r in rows):
        console.print("A partial period counts losses so far, and compares its revenue so far with the same number "
                      "of days at the start of the period before.", highlight=False, soft_wrap=True)
    console.print("Revenue retention: the revenue of the accounts open at the start, against their revenue in the "
                  "period before. Net counts growth; gross caps each account at what it bought before.",
                  highlight=False, soft_wrap=True)
