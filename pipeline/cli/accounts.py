"""`churnwatch accounts`: old customers to win back, and account-plan KPIs per account and rep."""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from typing import Annotated, Optional

import typer
from rich.table import Table

from pipeline.cli.shared import DbOption, JsonOption, app, console, fail, open_store, parse_date_option, print_json

accounts_app = typer.Typer(help="Old customers to win back (dormant) and account-plan KPIs "
    "(plan).", no_args_is_help=True)
app.add_typer(accounts_app, name="accounts")
AsOfOption = Annotated[Optional[str], typer.Option("--as-of", help="As of this date, YYYY-MM-DD (default: today).")]


def _pct(x) -> str:
    return "-" if x is None else f"{x * 100:.0f}%"


def _nurture_rules(policies):
    from pipeline.funnel import NurtureRules

    f = policies.follow_up
    return NurtureRules(max_unanswered=f.max_unanswered, retry_after_days=f.retry_after_days,
                        nurture_every_days=f.nurture_every_days, nurture_attempts=f.nurture_attempts,
                        skip_weekends=policies.skip_weekends,
                        unanswered=frozenset(o.lower() for o in f.unanswered_outcomes),
                        reached=frozenset(o.lower() for o in f.reached_outcomes))


@accounts_app.command("dormant")
def accounts_dormant(
    days: Annotated[int, typer.Option("--days", help="Lapsed: no order and no two-way contact for "
        "this many days.")] = 180,
    as_of: AsOfOption = None,
    remind: Annotated[bool, typer.Option("--remind", help="Also store each planned try as a "
        "reminder for the account's rep (the follow-up policy then moves it on or stops it).")] = False,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Former and lapsed customers, ranked by what they used to buy and how long ago, each with its
    next nurture try (never more than the follow-up policy allows)."""
    from pipeline import funnel as fn
    from pipeline import store
    from pipeline.reminders.policies import load_policies
    from pipeline.store import funnel_queries

    day = parse_date_option(as_of, "--as-of") or date.today()
    options = fn.DormantOptions(as_of=day, days=days)
    settings, engine = open_store(db)
    policies = load_policies(settings.rules_dir / "reminders.yaml")
    rules = _nurture_rules(policies)
    made = 0
    with store.session_scope(engine) as session:
        found = fn.dormant_accounts(funnel_queries.account_book(session, day).values(), options, rules)
        if remind:
            from pipeline.reminders.plan import upsert_reminder

            now = datetime.combine(day, time(policies.due_hour), tzinfo=timezone.utc)
            for d in found:
                if d.next_try is None:
                    continue
                evidence = [{"type": "reactivation", "status": d.status, "quiet_since": d.quiet_since.isoformat(),
                             "try": d.try_number, "allowed": d.allowed}]
                _, created = upsert_reminder(session, policies, account_id=d.account_id, rep_id=None, reason="silence",
                                             due_day=d.next_try, evidence=evidence, now=now)
                made += created
    if as_json:
        print_json({"as_of": day.isoformat(), "days": days, "accounts": [d.to_dict() for d in found],
                    "reminders_made": made if remind else None})
        return
    if not found:
        console.print(f"No former or lapsed customers as of {day} (lapsed: {days} days without an order or a two-way contact).")
        return
    table = Table("account", "rep", "status", "quiet since", "used to buy / yr", "attempts", "next try",
                  title=f"Old customers to win back, as of {day}")
    for d in found:
        table.add_row(f"{d.account_id} {d.name or ''}".strip(), d.rep or "-", d.status, f"{d.quiet_since} ({d.days_quiet} d)",
                      f"{d.used_to_buy:,.0f}", f"{d.attempts}/{d.allowed}", d.plan)
    console.print(table)
    if remind:
        console.print(f"{made} reminder(s) made; see them with: churnwatch reminders list", highlight=False)


@accounts_app.command("plan")
def accounts_plan(
    account: Annotated[Optional[str], typer.Argument(help="One account id (default: every current customer).")] = None,
    as_of: AsOfOption = None,
    within: Annotated[int, typer.Option("--within", help="An outbound call or e-mail counts as "
        "answered when the customer gets in touch within this many days.")] = 7,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Account-plan KPIs: response rate to outreach, days since two-way contact, stakeholders,
    single-threaded accounts, white space, cross-sell; per rep with churn and retention of the book."""
    from pipeline import funnel as fn
    from pipeline import store
    from pipeline.risk.churn_rate import churn_rates
    from pipeline.store import funnel_queries
    from pipeline.store.lookups import find_account

    day = parse_date_option(as_of, "--as-of") or date.today()
    options = fn.PlanOptions(as_of=day, respond_within_days=within)
    settings, engine = open_store(db)
    stages = fn.load_funnel(settings.rules_dir / "funnel.yaml")
    with store.session_scope(engine) as session:
        if account is not None:
            found = find_account(session, account)
            if found.account is None:
                hint = f" Did you mean {', '.join(found.closest)}?" if found.closest else ""
                fail(f"No account {account!r} in {settings.db_url}.{hint}")
        plans = fn.account_plans(funnel_queries.account_book(session, day).values(), options, stages.won, only=account)
        churn = [r for r in churn_rates(session, "quarter", "rep", until=day)]
    reps = fn.rep_summaries(plans)
    book = {}
    for row in churn:  # the latest full quarter and the one running, per rep
        book.setdefault(row.group, []).append(row)
    for rep, summary in reps.items():
        rows = book.get(rep, [])[-2:]
        summary["churn"] = [{"period": r.period, "partial": r.partial, "base": r.base, "lost": r.lost,
                             "churn_rate": r.churn_rate, "retention_rate": r.retention_rate} for r in rows]
    if as_json:
        print_json({"as_of": day.isoformat(), "accounts": [p.to_dict() for p in plans], "reps": reps})
        return
    if account is not None and plans:
        _print_one(plans[0])
    else:
        table = Table("account", "rep", "response [95%]", "trend", "days since\ntwo-way", "stake-\nholders", "single-\nthreaded",
                      "white space", "cross-sell", title=f"Account plans as of {day}")
        for p in plans:
            trend = ("falling" if p.response_falling else "") if p.response_recent is not None else "-"
            ci = f" [{_pct(p.response_rate_ci[0])}-{_pct(p.response_rate_ci[1])}]" if p.response_rate_ci else ""
            table.add_row(f"{p.account_id} {p.name or ''}".strip(), p.rep or "-", _pct(p.response_rate) + ci,
                          trend, "-" if p.days_since_two_way is None else str(p.days_since_two_way),
                          f"{len(p.stakeholders)} ({p.new_stakeholders} new)", "yes" if p.single_threaded else "",
                          ", ".join(p.white_space) or "-", ", ".join(p.cross_sell) or "-")
        console.print(table)
    table = Table("rep", "accounts", "response", "median days\nsince two-way", "single-threaded", "white space",
                  "cross-sell", "churn / retention (quarter)", title="Per rep")
    for rep, s in reps.items():
        churn_txt = "; ".join(f"{c['period']}{' so far' if c['partial'] else ''}: {_pct(c['churn_rate'])} / "
                              f"{_pct(c['retention_rate'])} of {c['base']}" for c in s["churn"]) or "-"
        table.add_row(rep, str(s["accounts"]), _pct(s["response_rate"]),
                      "-" if s["median_days_since_two_way"] is None else f"{s['median_days_since_two_way']:.0f}",
                      str(len(s["single_threaded"])), str(s["white_space_accounts"]), str(s["cross_sell_accounts"]), churn_txt)
    console.print(table)


def _print_one(p) -> None:
    console.print(f"[bold]{p.account_id}[/bold] {p.name or ''} ({p.segment or 'no segment'}, rep {p.rep or '-'})", highlight=False)
    ci = f" [{_pct(p.response_rate_ci[0])}-{_pct(p.response_rate_ci[1])}]" if p.response_rate_ci else ""
    console.print(f"  outreach answered: {p.answered} of {p.outreach} ({_pct(p.response_rate)}{ci}); last 90 days "
                  f"{_pct(p.response_recent)}, the 90 before {_pct(p.response_before)}"
                  + (" [red]falling[/red]" if p.response_falling else ""), highlight=False)
    console.print(f"  days since the last two-way contact: {'-' if p.days_since_two_way is None else p.days_since_two_way}",
                  highlight=False)
    if p.single_threaded:
        console.print("  [yellow]single-threaded[/yellow]: one contact is all the account has", highlight=False)
    table = Table("stakeholder", "role", "department", "seniority", "added")
    for s in p.stakeholders:
        table.add_row(s["name"], s["role"] or "-", s["department"], s["seniority"],
                      f"{s['added'] or '-'}{' (new)' if s['new'] else ''}")
    console.print(table)
    console.print(f"  white space (departments peers have): {', '.join(p.white_space) or 'none'}", highlight=False)
    console.print(f"  bought: {', '.join(p.bought) or 'nothing recorded'}; cross-sell: {', '.join(p.cross_sell) or 'none'}",
                  highlight=False)
