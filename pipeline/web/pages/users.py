"""Users, for admins: who may sign in, with which role, and when they last did.

An admin adds a user (e-mail, role, the rep's name as in the CRM for a rep, a first password),
switches a user off or on (off: signed out at their next click, their API token refused), sets a
new password, and grants a coach the CRM money figures or takes them away again (as `churnwatch
users grant|revoke EMAIL money` does). Every change is audited (`user_added`, `user_changed`)
with who did it; a `user_changed` ends the user's page sessions.
The last login comes from the audit trail. A mistake in the form is shown at its field; the API
token of a new user is shown once, as `churnwatch users add` prints it.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse
from sqlalchemy import func, select

from pipeline import store
from pipeline.errors import ChurnwatchError
from pipeline.store.jobs import ROLES, hash_password
from pipeline.web import auth
from pipeline.web.i18n import Translator
from pipeline.web.pages.common import check_csrf, form_text, page_caller, render, require

router = APIRouter()
MIN_PASSWORD = 10  # as `churnwatch users add --password-stdin`


def _last_logins(session) -> dict[int, object]:
    query = (select(store.AuditEvent.user_id, func.max(store.AuditEvent.at))
             .where(store.AuditEvent.action == "login", store.AuditEvent.user_id.is_not(None))
             .group_by(store.AuditEvent.user_id))
    return dict(session.execute(query).all())


def _row(user, last_login) -> dict:
    return {"id": user.id, "email": user.email, "role": user.role, "rep": user.rep.name if user.rep else None,
            "active": user.active, "last_login": last_login, "has_password": bool(user.password_hash),
            "money_granted": user.money_granted}


def _rows(session) -> list[dict]:
    logins = _last_logins(session)
    return [_row(u, logins.get(u.id)) for u in store.list_users(session)]


def _page(request: Request, who: auth.Caller, *, status_code: int = 200, **context):
    with store.session_scope(request.app.state.engine) as session:
        users = _rows(session)
        reps = list(session.scalars(select(store.Rep.name).order_by(store.Rep.name)))
    context.setdefault("errors", {})
    context.setdefault("values", {})
    return render(request, who, "users.html", status_code=status_code, users=users, reps=reps, roles=ROLES,
                  min_password=MIN_PASSWORD, **context)


@router.get("/users")
def users_page(request: Request):
    who = page_caller(request)
    require(who, "admin")
    return _page(request, who)


def _field_of(message: str) -> str:
    """Which field of the form a store message is about."""
    text = message.lower()
    if "unknown role" in text:
        return "role"
    if "e-mail" in text or "exists already" in text:
        return "email"
    if "rep" in text:
        return "rep"
    return "form"


def check_new_user(form, t: Translator) -> tuple[dict[str, str], dict[str, str]]:
    """(values, errors by field) of the add-user form, before the store has its say."""
    values = {k: form_text(form, k) for k in ("email", "role", "rep")}
    password = form.get("password") if isinstance(form.get("password"), str) else ""
    errors = {}
    if not values["email"]:
        errors["email"] = t("Enter the e-mail address the person signs in with.")
    if values["role"] not in ROLES:
        errors["role"] = t("Choose a role.")
    elif values["role"] == "rep" and not values["rep"]:
        errors["rep"] = t("A rep needs their name as in the CRM, so they see the accounts of their book.")
    if len(password) < MIN_PASSWORD:
        errors["password"] = t("The password needs at least {n} characters.", n=MIN_PASSWORD)
    return values, errors


@router.post("/users")
async def add_user(request: Request):
    who, form, t = await _admin_form(request)
    values, errors = check_new_user(form, t)
    if errors:
        return _page(request, who, status_code=400, errors=errors, values=values)
    try:
        with store.session_scope(request.app.state.engine) as session:
            user, token = store.add_user(session, values["email"], values["role"], rep_name=values["rep"] or None,
                                         password=form.get("password"))
            store.audit(session, "user_added", user_id=who.id, actor=who.email, target=user.email, role=user.role,
                        rep=values["rep"] or None)
            email = user.email
    except ChurnwatchError as e:
        message = str(e)
        if "exists already" in message:
            message = t("A user {email} exists already.", email=values["email"].strip().lower())
        return _page(request, who, status_code=400, errors={_field_of(str(e)): message}, values=values)
    return _page(request, who, note=t("{email} was added and can sign in now.", email=email), new_token=token,
                 new_email=email)


def _target(session, user_id: int, t: Translator):
    user = session.get(store.User, user_id)
    if user is None:
        raise HTTPException(404, t("No user {id}.", id=user_id))
    return user


def _answer(request: Request, who: auth.Caller, user_id: int, note: str | None, errors: dict, status: int = 200):
    """The changed row for htmx; the whole page otherwise."""
    if request.headers.get("hx-request"):
        with store.session_scope(request.app.state.engine) as session:
            user = session.get(store.User, user_id)
            row = _row(user, _last_logins(session).get(user_id))
        return render(request, who, "users_row.html", fragment=True, u=row, note=note, row_errors=errors,
                      min_password=MIN_PASSWORD)
    if errors:
        return _page(request, who, status_code=status, all_row_errors={user_id: errors})
    return RedirectResponse("/users", status_code=303)


async def _admin_form(request: Request):
    """(caller, posted form, translator) of an admin's form post, its CSRF token checked."""
    who = page_caller(request)
    require(who, "admin")
    form = await request.form()
    check_csrf(request, who, form)
    return who, form, Translator(who.lang)


@router.post("/users/{user_id}/active")
async def switch_user(user_id: int, request: Request):
    who, form, t = await _admin_form(request)
    wanted = form_text(form, "active")
    if wanted not in ("on", "off"):
        raise HTTPException(400, t("Say whether to switch the user on or off."))
    if user_id == who.id and wanted == "off":
        return _answer(request, who, user_id, None,
                       {"active": t("You cannot switch yourself off; ask another admin.")}, 400)
    with store.session_scope(request.app.state.engine) as session:
        user = _target(session, user_id, t)
        if user.active != (wanted == "on"):
            user.active = wanted == "on"
            store.audit(session, "user_changed", user_id=who.id, actor=who.email, target=user.email,
                        change="switched on" if user.active else "switched off")
        note = (t("{email} can sign in again.", email=user.email) if user.active
                else t("{email} is switched off.", email=user.email))
    return _answer(request, who, user_id, note, {})


@router.post("/users/{user_id}/password")
async def reset_password(user_id: int, request: Request):
    who, form, t = await _admin_form(request)
    password = form.get("password") if isinstance(form.get("password"), str) else ""
    if len(password) < MIN_PASSWORD:
        with store.session_scope(request.app.state.engine) as session:
            _target(session, user_id, t)
        return _answer(request, who, user_id, None,
                       {"password": t("The password needs at least {n} characters.", n=MIN_PASSWORD)}, 400)
    with store.session_scope(request.app.state.engine) as session:
        user = _target(session, user_id, t)
        user.password_hash = hash_password(password)
        store.audit(session, "user_changed", user_id=who.id, actor=who.email, target=user.email,
                    change="password reset")
        note = t("New password set for {email}.", email=user.email)
    return _answer(request, who, user_id, note, {})


@router.post("/users/{user_id}/money")
async def grant_money(user_id: int, request: Request):
    """Grant a coach the money figures (`money=on`) or take them away (`money=off`)."""
    who, form, t = await _admin_form(request)
    wanted = form_text(form, "money")
    if wanted not in ("on", "off"):
        raise HTTPException(400, t("Say whether to grant or take away the money figures."))
    with store.session_scope(request.app.state.engine) as session:
        user = _target(session, user_id, t)
        coach = user.role == "coach"
        if coach and user.money_granted != (wanted == "on"):
            user.money_granted = wanted == "on"
            store.audit(session, "user_changed", user_id=who.id, actor=who.email, target=user.email,
                        change="money granted" if user.money_granted else "money revoked")
        note = (t("{email} sees money figures now.", email=user.email) if user.money_granted
                else t("{email} no longer sees money figures.", email=user.email))
    if not coach:
        return _answer(request, who, user_id, None, {"money": t(
            "Only a coach needs this grant: everyone else sees the money figures of the accounts they may see.")}, 400)
    return _answer(request, who, user_id, note, {})
