"""Signing in and out, the start page of each role, and the page language.

Login is rate-limited by failed attempts per address and per client (sessions.LOGIN_LIMIT in
LOGIN_WINDOW_MIN minutes, counted in the audit table so every server process shares the limit);
every login, failed login and logout is audited. `next` only ever leads to a path of this site.
"""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from pipeline import store
from pipeline.store.jobs import hash_password, password_needs_rehash, verify_password
from pipeline.web import auth, sessions
from pipeline.web.i18n import LANGUAGES, Translator, best_match
from pipeline.web.pages.common import HOME, check_csrf, form_text, page_caller, render

router = APIRouter()


def _safe_next(value: str | None) -> str | None:
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return None


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


def _cookie_flags(request: Request) -> dict:
    return {"httponly": True, "samesite": "lax", "secure": request.url.scheme == "https", "path": "/"}


@router.get("/login")
def login_form(request: Request, next: str | None = None):
    who = auth.session_caller(request.app.state.engine, request)
    if who is not None:
        return RedirectResponse(_safe_next(next) or HOME.get(who.role, "/inbox"), status_code=303)
    token = secrets.token_urlsafe(24)
    response = render(request, None, "login.html", login_csrf=token, next_path=_safe_next(next) or "",
                      email=None, error=None)
    response.set_cookie(sessions.LOGIN_COOKIE, token, max_age=3600, **_cookie_flags(request))
    return response


@router.post("/login")
async def login(request: Request):
    form = await request.form()
    t = Translator(best_match(request.headers.get("accept-language")))
    email, password = form_text(form, "email").lower(), form.get("password") or ""
    next_path = _safe_next(form_text(form, "next"))
    token = request.cookies.get(sessions.LOGIN_COOKIE)

    def again(message: str, status: int):
        fresh = secrets.token_urlsafe(24)
        response = render(request, None, "login.html", status_code=status, login_csrf=fresh,
                          next_path=next_path or "", email=email, error=message)
        response.set_cookie(sessions.LOGIN_COOKIE, fresh, max_age=3600, **_cookie_flags(request))
        return response

    if not sessions.csrf_ok(token, form_text(form, "csrf")):
        return again(t("The sign-in form had expired; please try again."), 403)
    engine = request.app.state.engine
    with store.session_scope(engine) as session:
        failures = store.recent_failed_logins(session, email=email, client=_client(request),
                                              minutes=sessions.LOGIN_WINDOW_MIN)
        if failures >= sessions.LOGIN_LIMIT:
            store.audit(session, "login_refused", actor=email, client=_client(request))
            return again(t("Too many failed sign-ins. Wait {minutes} minutes and try again, or ask an admin to "
                           "reset your password.", minutes=sessions.LOGIN_WINDOW_MIN), 429)
        user = session.query(store.User).filter(store.User.email == email).first()
        if user is None or not user.active or not verify_password(password, user.password_hash):
            store.audit(session, "login_failed", actor=email, client=_client(request))
            return again(t("E-mail or password is not right."), 401)
        if password_needs_rehash(user.password_hash):
            user.password_hash = hash_password(password)
        store.audit(session, "login", user_id=user.id, actor=email, client=_client(request))
        sess = sessions.new_session(user.id)
        home = HOME.get(user.role, "/inbox")
    response = RedirectResponse(next_path or home, status_code=303)
    response.set_cookie(sessions.COOKIE, request.app.state.signer.dump(sess), max_age=sessions.MAX_AGE_S,
                        **_cookie_flags(request))
    response.delete_cookie(sessions.LOGIN_COOKIE, path="/")
    return response


@router.post("/logout")
async def logout(request: Request):
    who = page_caller(request)
    check_csrf(request, who, await request.form())
    with store.session_scope(request.app.state.engine) as session:
        store.audit(session, "logout", user_id=who.id, actor=who.email, client=_client(request))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(sessions.COOKIE, path="/")
    return response


@router.post("/settings/language")
async def set_language(request: Request):
    who = page_caller(request)
    form = await request.form()
    check_csrf(request, who, form)
    lang = form_text(form, "lang")
    if lang in LANGUAGES:
        with store.session_scope(request.app.state.engine) as session:
            session.get(store.User, who.id).lang = lang
    return RedirectResponse(_safe_next(form_text(form, "next")) or HOME.get(who.role, "/inbox"), status_code=303)


@router.get("/")
def home(request: Request):
    who = page_caller(request)
    return RedirectResponse(HOME.get(who.role, "/inbox"), status_code=303)
