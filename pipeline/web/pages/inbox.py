"""The rep's inbox: what their last calls raised, and the reminders they still have to act on.

Newest first. Each reminder has three one-click answers: done (the customer was reached),
snooze (to the start of the working day after the later of today and its due day, in the
rep's time zone) and "not relevant" (dropped, kept for review). With htmx the clicked row is replaced in place; without JavaScript
the form posts and the page reloads. Only reminders of accounts the caller may see are listed or
changed: another rep's reminder id answers 404, like one that does not exist.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse
from sqlalchemy import select

from pipeline import store
from pipeline.errors import ChurnwatchError
from pipeline.reminders import followup
from pipeline.web import auth
from pipeline.web.i18n import Translator
from pipeline.web.pages.common import check_csrf, page_caller, render, require

router = APIRouter()
RECENT_CALL_DAYS = 14


def policies(request: Request):
    app = request.app
    if getattr(app.state, "policies", None) is None:
        from pipeline.reminders.policies import load_policies

        app.state.policies = load_policies(app.state.settings.rules_dir / "reminders.yaml")
    return app.state.policies


def _now() -> datetime:
    return datetime.now(timezone.utc)


def visible_reminders(who: auth.Caller):
    query = select(store.Reminder)
    if who.sees_all:
        return query
    if who.role != "rep" or who.rep_id is None:
        return query.where(store.Reminder.id.is_(None))
    return query.join(store.Account, store.Account.id == store.Reminder.account_id).where(
        store.Account.rep_id == who.rep_id)


def _row(session, reminder, pol, now) -> dict:
    view = followup.reminder_to_dict(reminder, pol, now)
    view["due_at"] = datetime.fromisoformat(view["due_local"])
    view["created_at"] = reminder.created_at
    calls = [e.get("call_id") for e in reminder.evidence or [] if isinstance(e, dict) and e.get("call_id")]
    view["call_id"] = calls[0] if calls else None
    view["quotes"] = [e.get("quote") for e in reminder.evidence or [] if isinstance(e, dict) and e.get("quote")][:2]
    return view


def _recent_calls(session, who: auth.Caller, now: datetime) -> list[dict]:
    since = now - timedelta(days=RECENT_CALL_DAYS)
    query = (auth.visible_calls(who).where(store.Call.created_at >= since, store.Call.status == "done")
             .order_by(store.Call.created_at.desc()).limit(20))
    if who.role != "rep":  # managers see their team's calls on the risk board; the inbox stays short
        query = query.limit(10)
    out = []
    for call in session.scalars(query):
        job = session.scalars(select(store.Job).where(store.Job.call_id == call.id, store.Job.status == "done")
                              .order_by(store.Job.id.desc()).limit(1)).first()
        hints = [h.get("text") for h in ((job.result or {}).get("hints", []) if job else []) if h.get("text")]
        out.append({"id": call.id, "account": (call.account.name if call.account else None) or call.account_id,
                    "account_id": call.account_id, "date": call.call_date, "labels": sorted({c.label for c in call.cues}),
                    "cues": len(call.cues), "hint": hints[0] if hints else None})
    return out


@router.get("/inbox")
def inbox(request: Request):
    who = page_caller(request)
    require(who, "rep", "manager", "admin")
    pol, now = policies(request), _now()
    with store.session_scope(request.app.state.engine) as session:
        rows = session.scalars(visible_reminders(who).where(store.Reminder.status.in_(followup.OPEN))
                               .order_by(store.Reminder.created_at.desc(), store.Reminder.id.desc()).limit(200))
        reminders = [_row(session, r, pol, now) for r in rows]
        calls = _recent_calls(session, who, now)
    return render(request, who, "inbox.html", reminders=reminders, calls=calls, now=now)


@router.post("/inbox/{reminder_id}/{action}")
async def reminder_action(reminder_id: int, action: str, request: Request):
    who = page_caller(request)
    require(who, "rep", "manager", "admin")
    check_csrf(request, who, await request.form())
    t = Translator(who.lang)
    if action not in ("done", "snooze", "dismiss"):
        raise HTTPException(404, t("No such action."))
    pol, now = policies(request), _now()
    with store.session_scope(request.app.state.engine) as session:
        reminder = session.scalars(visible_reminders(who).where(store.Reminder.id == reminder_id)).first()
        if reminder is None:
            raise HTTPException(404, t("No reminder {id} in your book.", id=reminder_id))
        try:
            if action == "done":
                followup.complete(session, reminder_id, "reached", now, pol)
                note = t("Marked done.")
            elif action == "snooze":
                followup.snooze_one_day(session, reminder_id, now, pol)
                note = t("Snoozed to the next working day.")
            else:
                followup.dismiss(session, reminder_id, now)
                note = t("Marked not relevant.")
        except ChurnwatchError as e:
            note = str(e)
        store.audit(session, f"reminder_{action}", user_id=who.id, actor=who.email, target=f"reminder:{reminder_id}")
        row = _row(session, reminder, pol, now)
    if request.headers.get("hx-request"):
        return render(request, who, "inbox_row.html", r=row, note=note, now=now)
    return RedirectResponse("/inbox", status_code=303)
