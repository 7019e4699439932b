"""The web pages: server-rendered HTML (Jinja2) with htmx for the live parts.

`install(app)` mounts the static files (the pages' CSS and script, and htmx vendored from npm
at a pinned version: nothing is fetched from outside the server), the routers of each page
group and the handlers that turn "not signed in" into the login page and errors into a page in
the user's language. The routes check who asks with the same rules as the API (pipeline.web.auth).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from pipeline.web import auth, sessions
from pipeline.web.i18n import Translator
from pipeline.web.pages import accounts, calls, funnel, inbox, login, review, rules
from pipeline.web.pages import coach, risk_board, users
from pipeline.web.pages.common import LoginRequired, login_redirect_url, render

STATIC = Path(__file__).resolve().parent.parent / "static"
ROUTERS = [login.router, inbox.router, calls.router, accounts.router, rules.router, review.router,
           risk_board.router, coach.router, users.router, funnel.router]


def is_page(request: Request) -> bool:
    return not request.url.path.startswith(("/api/", "/healthz", "/openapi.json", "/static/"))


def error_page(request: Request, status: int, detail: str):
    """An HTTP error as a page for people (or as an htmx fragment), in the caller's language."""
    who = auth.session_caller(request.app.state.engine, request)
    t = Translator(who.lang if who else "en")
    titles = {401: t("Please sign in"), 403: t("Not allowed"), 404: t("Not found"), 429: t("Too many attempts")}
    response = render(request, who, "error.html", status_code=status, title=titles.get(status, t("Something went wrong")),
                      message=detail)
    return response


def install(app: FastAPI, data_dir: Path) -> None:
    app.state.signer = sessions.Signer(sessions.secret_key(data_dir))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for router in ROUTERS:
        app.include_router(router, include_in_schema=False)

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired):
        if request.headers.get("hx-request"):  # an htmx fragment: send the whole page to the login form
            from fastapi.responses import Response

            return Response(status_code=401, headers={"HX-Redirect": login_redirect_url(exc.next_path)})
        return RedirectResponse(login_redirect_url(exc.next_path), status_code=303)
