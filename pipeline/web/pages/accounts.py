"""Accounts: the caller's book, and one account's risk, why, and what is open.

The account page scores the account now (the same explainable model as `churnwatch risk
explain`): the base score of an ordinary account plus each factor's points, each factor with
its evidence (a call quote with a play button, the order or invoice, the CRM event). The score
history is drawn from the stored scores. Coaches never see order values; a rep sees only their
own accounts (anything else is a 404, as if it did not exist).
"""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, HTTPException, Request
from sqlalchemy import func, select

from pipeline import store
from pipeline.reminders import followup
from pipeline.web import auth, charts
from pipeline.web.i18n import Translator
from pipeline.web.pages.common import page_caller, render, require
from pipeline.web.pages.inbox import _now, _row, policies

router = APIRouter()


def risk_model(request: Request):
    app = request.app
    if getattr(app.state, "risk_model", None) is None:
        from pipeline.risk.score import load_risk_model

        app.state.risk_model = load_risk_model(app.state.settings.rules_dir, app.state.settings.models_dir)
    return app.state.risk_model


def latest_scores(session, who: auth.Caller) -> dict[str, store.RiskScore]:
    """The newest stored score of each account the caller may see."""
    newest = (select(store.RiskScore.account_id, func.max(store.RiskScore.as_of).label("as_of"))
              .group_by(store.RiskScore.account_id).subquery())
    query = (select(store.RiskScore).join(newest, (newest.c.account_id == store.RiskScore.account_id)
                                          & (newest.c.as_of == store.RiskScore.as_of)))
    if not who.sees_all:
        query = query.where(store.RiskScore.account_id.in_(auth.visible_accounts(who).with_only_columns(
            store.Account.id)))
    out: dict[str, store.RiskScore] = {}
    for row in session.scalars(query.order_by(store.RiskScore.id)):
        out[row.account_id] = row
    return out


def _require_account_reader(who: auth.Caller) -> None:
    """Reps, managers and admins read account pages; a coach only with the money grant (the pages
    are about the CRM book, and without the grant a coach has no business there)."""
    require(who, "rep", "manager", "admin", *(("coach",) if who.sees_money else ()))


@router.get("/accounts")
def accounts_page(request: Request):
    who = page_caller(request)
    _require_account_reader(who)
    with store.session_scope(request.app.state.engine) as session:
        scores = latest_scores(session, who)
        rows = [{"id": a.id, "name": a.name or a.id, "segment": a.segment, "status": a.status,
                 "rep": a.rep.name if a.rep else None,
                 "score": scores[a.id].score if a.id in scores else None,
                 "flagged": scores[a.id].flagged if a.id in scores else False}
                for a in session.scalars(auth.visible_accounts(who).order_by(store.Account.name))]
    rows.sort(key=lambda r: (r["score"] is None, -(r["score"] or 0), r["name"]))
    return render(request, who, "accounts.html", accounts=rows)


def _evidence_view(ev: dict, who: auth.Caller, t: Translator) -> dict:
    kind = ev.get("kind") or ("call" if ev.get("quote") is not None else "activity")
    amount = ev.get("amount") if who.sees_money else None
    return {"kind": kind, "date": ev.get("date"), "quote": ev.get("quote"), "call_id": ev.get("call_id"),
            "start": ev.get("start"), "amount": amount, "invoice_id": ev.get("invoice_id"),
            "paid": ev.get("paid"), "due": ev.get("due"), "subject": ev.get("subject"), "name": ev.get("name"),
            "role": ev.get("role"), "direction": ev.get("direction"), "outcome": ev.get("outcome"),
            "counted_under": ev.get("counted_under")}


@router.get("/accounts/{account_id}")
def account_page(account_id: str, request: Request):
    who = page_caller(request)
    _require_account_reader(who)
    t = Translator(who.lang)
    model = risk_model(request)
    pol, now = policies(request), _now()
    with store.session_scope(request.app.state.engine) as session:
        account = session.scalars(auth.visible_accounts(who).where(store.Account.id == account_id)).first()
        if account is None:
            raise HTTPException(404, t("No account {id} in your book.", id=account_id))
        history = list(session.scalars(select(store.RiskScore).where(store.RiskScore.account_id == account_id)
                                       .order_by(store.RiskScore.as_of, store.RiskScore.id)))
        by_day: dict[date, float] = {}
        for h in history:
            by_day[h.as_of] = h.score
        as_of = max(date.today(), max(by_day)) if by_day else date.today()
        from pipeline.risk.score import score_account

        result = score_account(session, account_id, as_of, model)
        base, shown = result.shown_points()
        factors = []
        for name in sorted((k for k in shown if shown[k] != 0), key=lambda k: (-abs(result.points[k]), k)):
            info = result.evidence.get(name, {}) or {}
            items = [e for e in info.get("evidence", []) if isinstance(e, dict)]
            factors.append({"name": name, "label": info.get("label") or name, "points": shown[name],
                            "value": info.get("value"), "note": info.get("note"),
                            "evidence": [_evidence_view(e, who, t) for e in items[:5]], "more": max(len(items) - 5, 0)})
        reminders = [_row(session, r, pol, now) for r in session.scalars(
            select(store.Reminder).where(store.Reminder.account_id == account_id,
                                         store.Reminder.status.in_(followup.OPEN))
            .order_by(store.Reminder.due))]
        calls = [{"id": c.id, "date": c.call_date, "cues": len(c.cues)} for c in session.scalars(
            select(store.Call).where(store.Call.account_id == account_id).order_by(store.Call.call_date.desc()))]
        view = {"id": account.id, "name": account.name or account.id, "segment": account.segment,
                "status": account.status, "rep": account.rep.name if account.rep else None}
    points = sorted(by_day.items())
    if not points or points[-1][0] != as_of:
        points.append((as_of, result.score))
    chart = charts.line_chart(points, title=t("Churn risk of {name} over time", name=view["name"]),
                              unit=t("risk (0–100)"), threshold=result.threshold,
                              threshold_label=t("alert line {value}", value=f"{result.threshold:g}"))
    return render(request, who, "account.html", account=view, score=result.score, flagged=result.flagged,
                  threshold=result.threshold, base=base, factors=factors, chart=chart, reminders=reminders,
                  calls=calls, as_of=as_of, model_version=result.model_version, note=None)
