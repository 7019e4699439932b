"""Signed-in people on the web pages: the session cookie, CSRF tokens and the login limit.

The cookie holds only the user's id, a CSRF token and when it was issued, signed with the
server's secret (itsdangerous), HttpOnly and SameSite=Lax; nothing about the user is trusted from
it beyond the id, which is looked up on every request (a switched-off user is out at once, and a
session signed before the user was last changed by an admin, e.g. switched off and on again or
given a new password, has ended).
Every form carries the CSRF token as a hidden field and every htmx request sends it as the
`X-CSRF-Token` header; a POST without the right one is refused.

The secret comes from CHURNWATCH_SECRET_KEY, else from `<data_dir>/secret_key` (created once,
readable by the owner only), so sessions survive a restart and are shared by the processes of
one installation.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

COOKIE = "cw_session"
LOGIN_COOKIE = "cw_login"  # the CSRF token of the login form, before anyone is signed in
MAX_AGE_S = 12 * 3600
LOGIN_LIMIT = 5  # failed logins per address or client ...
LOGIN_WINDOW_MIN = 15  # ... in this many minutes, then the form waits


@dataclass(frozen=True)
class Session:
    user_id: int
    csrf: str
    issued_at: datetime | None = None  # when the cookie was signed (sessions older than a user change end)


def secret_key(data_dir: Path) -> str:
    env = os.environ.get("CHURNWATCH_SECRET_KEY")
    if env:
        return env
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key)
    return key


class Signer:
    def __init__(self, secret: str):
        self._s = URLSafeTimedSerializer(secret, salt="churnwatch-session")

    def dump(self, session: Session) -> str:
        return self._s.dumps({"u": session.user_id, "c": session.csrf})

    def load(self, cookie: str | None) -> Session | None:
        if not cookie:
            return None
        try:
            data, issued = self._s.loads(cookie, max_age=MAX_AGE_S, return_timestamp=True)
        except (BadSignature, SignatureExpired):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("u"), int) or not isinstance(data.get("c"), str):
            return None
        return Session(data["u"], data["c"], issued)


def new_session(user_id: int) -> Session:
    return Session(user_id, secrets.token_urlsafe(24))


def csrf_ok(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and secrets.compare_digest(expected, given)
