"""The manager's risk board: the riskiest accounts, this week's biggest movers, the team by rep,
and a preview of what other weights or another alert line would flag.

The board reads the stored scores (`churnwatch risk score` and ingest write them) of the accounts
not lost: the newest score of each account, and for this week's movers that score minus the
newest one at least `MOVER_DAYS` days older. The weights form shows the active risk model's factors and threshold;
every change re-scores the open accounts now with the current and with the draft weights
(pipeline.risk.score, unchanged) and lists the accounts that would cross the alert line and the
ones that would drop below it. The preview changes nothing: the weights live in rules/risk.yaml.
Segments with weights of their own keep them; a segment's factor that inherits the global
weight follows the draft.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import date, timedelta
from statistics import fmean

from fastapi import APIRouter, Request
from sqlalchemy import select

from pipeline import store
from pipeline.errors import ChurnwatchError
from pipeline.web import auth
from pipeline.web.i18n import Translator
from pipeline.web.pages.accounts import latest_scores, risk_model
from pipeline.web.pages.common import check_csrf, page_caller, render, require

router = APIRouter()
ROLES = ("manager", "admin")
TOP = 20  # riskiest accounts listed
MOVERS = 10  # movers listed
MOVER_DAYS = 7  # a mover's change is against the newest score at least this many days older ...
MOVER_LOOKBACK = 28  # ... and at most this many days before that (older scores say nothing about this week)
PREVIEW_LIST = 50  # accounts listed per side in the preview
MAX_WEIGHT = 50.0  # |points| of one factor; more would swamp every other factor


def _factor_view(model) -> list[dict]:
    return [{"feature": f.feature, "label": f.label or f.feature, "weight": f.weight,
             "field": "w_" + f.feature} for f in model.factors]


def _number(text: str) -> float | None:
    text = (text or "").strip().replace("\u2212", "-")
    if "," in text and "." not in text:
        text = text.replace(",", ".")  # a German decimal comma
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read_draft(form, model, t: Translator) -> tuple[dict[str, float], float, dict[str, str], dict[str, str]]:
    """The draft weights and threshold of the form: (weights, threshold, errors by field, values
    as typed). A field left empty keeps the model's value."""
    weights, errors, typed = {}, {}, {}
    for f in model.factors:
        name = "w_" + f.feature
        raw = form.get(name)
        raw = raw if isinstance(raw, str) else ""
        typed[name] = raw
        if not raw.strip():
            weights[f.feature] = f.weight
            continue
        value = _number(raw)
        if value is None:
            errors[name] = t("Points are a number, e.g. 0.4 or -1; got “{value}”.", value=raw)
        elif abs(value) > MAX_WEIGHT:
            errors[name] = t("Points between -{max} and {max}, please.", max=f"{MAX_WEIGHT:g}")
        else:
            weights[f.feature] = value
    raw = form.get("threshold")
    raw = raw if isinstance(raw, str) else ""
    typed["threshold"] = raw
    threshold = model.threshold
    if raw.strip():
        value = _number(raw)
        if value is None or not 0 <= value <= 100:
            errors["threshold"] = t("The alert line is a score from 0 to 100; got “{value}”.", value=raw)
        else:
            threshold = value
    return weights, threshold, errors, typed


def draft_model(model, weights: dict[str, float], threshold: float):
    """The model with other global weights and threshold; segments keep what they set themselves
    (a segment factor or threshold equal to the global one is inherited, so it follows)."""
    base = {f.feature: f.weight for f in model.factors}

    def apply(m):
        factors = tuple(replace(f, weight=weights[f.feature])
                        if f.feature in weights and f.weight == base.get(f.feature) else f for f in m.factors)
        return replace(m, factors=factors, threshold=threshold if m.threshold == model.threshold else m.threshold)

    segments = {name: apply(seg) for name, seg in model.segments.items()}
    return replace(apply(model), segments=segments, version=f"{model.version}-draft")


def preview(session, who: auth.Caller, model, draft, as_of: date) -> dict:
    """Score the open accounts the caller may see with both models: who crosses, who drops."""
    from pipeline.risk.features import features_from_rows, load_account_rows
    from pipeline.risk.score import accounts_open_at, score_features

    visible = {a.id: a for a in session.scalars(auth.visible_accounts(who))}
    ids = [a for a in accounts_open_at(session, as_of) if a in visible]
    rows = load_account_rows(session, ids, as_of)
    crossing, dropping, flagged_now, flagged_draft = [], [], 0, 0
    for account_id in ids:
        account = visible[account_id]
        feats = features_from_rows(rows[account_id], as_of, model.features)
        now = score_features(account_id, as_of, feats, model, account.segment)
        then = score_features(account_id, as_of, feats, draft, account.segment)
        flagged_now += now.flagged
        flagged_draft += then.flagged
        if now.flagged == then.flagged:
            continue
        row = {"id": account_id, "name": account.name or account_id, "rep": account.rep.name if account.rep else None,
               "before": now.score, "after": then.score, "threshold": then.threshold}
        (crossing if then.flagged else dropping).append(row)
    crossing.sort(key=lambda r: (-r["after"], r["id"]))
    dropping.sort(key=lambda r: (r["after"], r["id"]))
    return {"crossing": crossing[:PREVIEW_LIST], "dropping": dropping[:PREVIEW_LIST], "n_crossing": len(crossing),
            "n_dropping": len(dropping), "accounts": len(ids), "flagged_now": flagged_now,
            "flagged_draft": flagged_draft, "as_of": as_of}


def _movers(session, who: auth.Caller, newest: dict[str, store.RiskScore]) -> list[dict]:
    """This week's movers: accounts scored in the board's last MOVER_DAYS days, their newest score
    minus the newest one at least MOVER_DAYS days older (and at most MOVER_LOOKBACK days before
    that), largest change first. Reads only the scores of that window, not the whole history."""
    if not newest:
        return []
    last = max(s.as_of for s in newest.values())
    recent = {a: s for a, s in newest.items() if s.as_of > last - timedelta(days=MOVER_DAYS)}
    if not recent:
        return []
    since = min(s.as_of for s in recent.values()) - timedelta(days=MOVER_DAYS + MOVER_LOOKBACK)
    query = (select(store.RiskScore.account_id, store.RiskScore.as_of, store.RiskScore.score)
             .where(store.RiskScore.as_of >= since, store.RiskScore.as_of <= last - timedelta(days=MOVER_DAYS))
             .order_by(store.RiskScore.account_id, store.RiskScore.as_of, store.RiskScore.id))
    earlier: dict[str, tuple[date, float]] = {}
    for account_id, as_of, score in session.execute(query):
        latest = recent.get(account_id)
        if latest is not None and latest.as_of - timedelta(days=MOVER_DAYS + MOVER_LOOKBACK) <= as_of \
                <= latest.as_of - timedelta(days=MOVER_DAYS):
            earlier[account_id] = (as_of, score)  # ascending: the last one kept is the newest
    out = []
    for account_id, (as_of, score) in earlier.items():
        latest = recent[account_id]
        out.append({"id": account_id, "score": latest.score, "as_of": latest.as_of, "before": score,
                    "before_as_of": as_of, "change": latest.score - score, "flagged": latest.flagged})
    out.sort(key=lambda r: (-abs(r["change"]), r["id"]))
    return out[:MOVERS]


def _board(session, who: auth.Caller, t: Translator) -> dict:
    """Lost accounts are left out: their last score no longer asks anyone to act."""
    accounts = {a.id: a for a in session.scalars(auth.visible_accounts(who).where(store.Account.status != "lost"))}
    newest = {k: v for k, v in latest_scores(session, who).items() if k in accounts}

    def named(row: dict) -> dict:
        account = accounts.get(row["id"])
        row["name"] = (account.name if account else None) or row["id"]
        row["rep"] = account.rep.name if account is not None and account.rep is not None else None
        return row

    riskiest = [named({"id": s.account_id, "score": s.score, "flagged": s.flagged, "threshold": s.threshold,
                       "as_of": s.as_of})
                for s in sorted(newest.values(), key=lambda s: (-s.score, s.account_id))[:TOP]]
    movers = [named(m) for m in _movers(session, who, newest)]
    by_rep: dict[str, dict] = {}
    no_rep = t("(no rep)")
    for account in accounts.values():
        name = account.rep.name if account.rep is not None else no_rep
        entry = by_rep.setdefault(name, {"rep": name, "accounts": 0, "flagged": 0, "scores": []})
        entry["accounts"] += 1
        score = newest.get(account.id)
        if score is not None:
            entry["flagged"] += bool(score.flagged)
            entry["scores"].append(score.score)
    reps = []
    for entry in by_rep.values():
        entry["scored"] = len(entry["scores"])
        entry["mean"] = fmean(entry.pop("scores")) if entry["scored"] else None
        reps.append(entry)
    reps.sort(key=lambda r: (-r["flagged"], -(r["mean"] or 0), r["rep"]))
    return {"riskiest": riskiest, "movers": movers, "reps": reps, "scored": len(newest),
            "flagged": sum(bool(s.flagged) for s in newest.values())}


def _model_or_error(request: Request):
    try:
        return risk_model(request), None
    except ChurnwatchError as e:  # a broken risk.yaml: the board still shows the stored scores
        return None, str(e)


def _page(request: Request, who: auth.Caller, *, form=None, status_code: int = 200):
    t = Translator(who.lang)
    model, model_error = _model_or_error(request)
    errors, typed, result = {}, {}, None
    with store.session_scope(request.app.state.engine) as session:
        board = _board(session, who, t)
        if model is not None and form is not None:
            weights, threshold, errors, typed = read_draft(form, model, t)
            if not errors:
                result = preview(session, who, model, draft_model(model, weights, threshold), date.today())
    return render(request, who, "risk.html", status_code=status_code, board=board, mover_days=MOVER_DAYS,
                  model=model, model_error=model_error, factors=_factor_view(model) if model else [],
                  errors=errors, typed=typed, preview=result)


@router.get("/risk")
def risk_board(request: Request):
    who = page_caller(request)
    require(who, *ROLES)
    return _page(request, who)


@router.post("/risk/preview")
async def risk_preview(request: Request):
    """The preview for htmx (a fragment, with each field's error placed out of band), or the
    whole board with the preview when the form was posted without JavaScript."""
    who = page_caller(request)
    require(who, *ROLES)
    form = await request.form()
    check_csrf(request, who, form)
    if not request.headers.get("hx-request"):
        return _page(request, who, form=form)
    t = Translator(who.lang)
    model, model_error = _model_or_error(request)
    if model is None:
        return render(request, who, "risk_preview.html", fragment=True, preview=None, errors={},
                      factors=[], model_error=model_error)
    weights, threshold, errors, _ = read_draft(form, model, t)
    result = None
    if not errors:
        with store.session_scope(request.app.state.engine) as session:
            result = preview(session, who, model, draft_model(model, weights, threshold), date.today())
    return render(request, who, "risk_preview.html", fragment=True, preview=result, errors=errors,
                  factors=_factor_view(model), model_error=None, oob=True)
