"""What every page shares: the templates, the signed-in user, CSRF on forms, and rendering.

A page handler asks for `who = page_caller(request)` (a redirect to /login when nobody is
signed in), checks the role with `require(who, ...)`, reads only what `pipeline.web.auth` lets
this caller see, and returns `render(request, who, "template.html", ...)`. POST handlers call
`check_csrf(request, who, form)` first. A fragment for htmx is the same template block rendered
on its own (`render(..., fragment=True)` leaves out the layout).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import HTTPException, Request
from jinja2 import Environment, FileSystemLoader, select_autoescape

from pipeline.web import auth, sessions
from pipeline.web.i18n import LANGUAGES, Translator, best_match

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(("html",)),
                   trim_blocks=True, lstrip_blocks=True)


def _mmss(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    s = int(seconds)
    return f"{s // 60:02d}:{s % 60:02d}"


_env.filters["mmss"] = _mmss

# what each role finds in the navigation (path, label); the routes check the role again
NAV = {
    "rep": [("/inbox", "Inbox"), ("/accounts", "Accounts")],
    "manager": [("/inbox", "Inbox"), ("/accounts", "Accounts"), ("/risk", "Risk board"), ("/rules", "Rules"),
                ("/review", "Review cues"), ("/funnel", "Funnel"), ("/coach", "Coaching")],
    "coach": [("/coach", "Coaching"), ("/review", "Review cues")],
    "admin": [("/inbox", "Inbox"), ("/accounts", "Accounts"), ("/risk", "Risk board"), ("/rules", "Rules"),
              ("/review", "Review cues"), ("/funnel", "Funnel"), ("/coach", "Coaching"), ("/users", "Users")],
}
HOME = {"rep": "/inbox", "manager": "/risk", "coach": "/coach", "admin": "/risk"}


def _nav(who) -> list[tuple[str, str]]:
    """The role's pages; a coach granted the money figures also gets the account pages."""
    items = NAV.get(who.role, [])
    if who.role == "coach" and who.sees_money:
        items = [*items, ("/accounts", "Accounts")]
    return items


class LoginRequired(Exception):
    def __init__(self, next_path: str):
        self.next_path = next_path


def page_caller(request: Request) -> auth.Caller:
    who = auth.session_caller(request.app.state.engine, request)
    if who is None:
        raise LoginRequired(request.url.path)
    return who


def require(who: auth.Caller, *roles: str) -> None:
    if who.role not in roles:
        raise HTTPException(403, Translator(who.lang)("This page is not part of your role ({role}).", role=who.role))


def check_csrf(request: Request, who: auth.Caller, form) -> None:
    given = form.get("csrf") if form is not None else None
    if not sessions.csrf_ok(who.csrf, given or request.headers.get("x-csrf-token")):
        raise HTTPException(403, Translator(who.lang)("This form has expired; reload the page and try again."))


def login_redirect_url(next_path: str) -> str:
    return "/login?next=" + quote(next_path if next_path.startswith("/") else "/")


def render(request: Request, who: auth.Caller | None, template: str, *, status_code: int = 200,
           fragment: bool = False, lang: str | None = None, **context: Any):
    from fastapi.responses import HTMLResponse

    t = Translator(lang or (who.lang if who else best_match(request.headers.get("accept-language"))))
    nav = [(path, t(label)) for path, label in _nav(who)] if who else []
    types = cue_types(request)
    html = _env.get_template(template).render(
        _=t, t=t, who=who, csrf=who.csrf if who else None, nav=nav, path=request.url.path,
        languages=LANGUAGES, fragment=fragment, cue=lambda label: types.says(label, t.lang), **context)
    return HTMLResponse(html, status_code=status_code)


def cue_types(request: Request):
    """The declared cue types of the pack the app serves (rules/cue_types.yaml): their words per language."""
    from pipeline.cues.cue_types import load_cue_types

    return load_cue_types(request.app.state.settings.rules_dir)


def form_text(form, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def form_lines(form, name: str) -> list[str]:
    """A textarea with one entry per line, blank lines dropped."""
    return [line.strip() for line in form_text(form, name).splitlines() if line.strip()]
