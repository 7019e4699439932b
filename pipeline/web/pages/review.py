"""Review stored cues: a manager (or coach) marks each right or wrong, one click each.

The verdicts are what `churnwatch rules fit` retrains the learned cue model from, and what the
rules page's precision is measured on. The same store functions as `churnwatch rules review`.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse

from pipeline import store
from pipeline.errors import ChurnwatchError
from pipeline.web.i18n import Translator
from pipeline.web.pages.common import check_csrf, page_caller, render, require

router = APIRouter()
REVIEWERS = ("manager", "admin", "coach")


def _item(i) -> dict:
    return {"cue_id": i.cue_id, "call_id": i.call_id, "account_id": i.account_id, "date": i.call_date,
            "label": i.label, "rule": i.rule, "version": i.rule_version, "score": i.score, "start": i.start,
            "quote": i.quote, "why": i.why, "verdict": i.verdict}


@router.get("/review")
def review_page(request: Request, label: str | None = None, reviewed: int = 0):
    who = page_caller(request)
    require(who, *REVIEWERS)
    with store.session_scope(request.app.state.engine) as session:
        items = [_item(i) for i in store.cues_for_review(session, label=label or None, include_reviewed=bool(reviewed),
                                                         limit=100)]
        labels = sorted({lab for (lab,) in session.query(store.Cue.label).distinct()})
    return render(request, who, "review.html", items=items, labels=labels, label=label or "", reviewed=reviewed)


@router.post("/review/{cue_id}/{verdict}")
async def review_mark(cue_id: int, verdict: str, request: Request):
    who = page_caller(request)
    require(who, *REVIEWERS)
    check_csrf(request, who, await request.form())
    t = Translator(who.lang)
    if verdict not in ("right", "wrong"):
        raise HTTPException(404, t("No such verdict."))
    with store.session_scope(request.app.state.engine) as session:
        try:
            store.mark_cue(session, cue_id, verdict, reviewer=who.email)
        except ChurnwatchError as e:
            raise HTTPException(404, str(e)) from None
        store.audit(session, "cue_marked", user_id=who.id, actor=who.email, target=f"cue:{cue_id}", verdict=verdict)
        item = next((_item(i) for i in store.cues_for_review(session, include_reviewed=True, limit=100000)
                     if i.cue_id == cue_id), None)
    if request.headers.get("hx-request") and item is not None:
        return render(request, who, "review_row.html", fragment=True, i=item)
    return RedirectResponse("/review", status_code=303)
