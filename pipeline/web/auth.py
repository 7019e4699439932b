"""Who is asking, and what they may see: bearer API tokens, roles and a rep's book.

Every /api route needs `Authorization: Bearer <token>` (`churnwatch users add` prints one) or the
session cookie of a signed-in page user (pipeline.web.sessions); the pages need the session.
Reps see and upload for the accounts of their own book (`Account.rep_id`), managers and admins
everything; coaches read every call and job (they coach all reps) but upload nothing. The checks
are applied in the queries (`visible_accounts`), so a rep asking for another rep's job gets the
same answer as for one that does not exist.

CRM money figures (order values, invoice amounts) follow the same book: managers and admins see
them for every account, reps for the accounts of their own book; coaches coach talk, not
accounts, and see them only when an admin granted it (`User.money_granted`, set with
`churnwatch users grant EMAIL money` or on the users page).
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import HTTPException, Request
from sqlalchemy import func, select

from pipeline import store
from pipeline.web import sessions

SEE_ALL = ("manager", "admin", "coach")
UPLOAD_ANY = ("manager", "admin")
MONEY_ALWAYS = ("manager", "admin", "rep")  # a rep only reaches the accounts of their book


@dataclass(frozen=True)
class Caller:
    id: int
    email: str
    role: str
    rep_id: int | None
    rep_name: str | None
    lang: str = "en"
    csrf: str | None = None  # set when the caller came with a session cookie
    money_granted: bool = False  # an admin's grant of money figures to a coach (User.money_granted)

    @property
    def sees_all(self) -> bool:
        return self.role in SEE_ALL

    @property
    def sees_money(self) -> bool:
        """Order values and revenue: always for managers, admins and reps (in the accounts they may
        see at all); for a coach, who coaches talk, not accounts, only when an admin granted it."""
        return self.role in MONEY_ALWAYS or (self.role == "coach" and self.money_granted)

    def may(self, *roles: str) -> bool:
        return self.role in roles


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(status_code=401, detail=message, headers={"WWW-Authenticate": "Bearer"})


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    if not header:
        raise _unauthorized("Sign in: send your API token as 'Authorization: Bearer <token>' "
                            "(an admin creates one with: churnwatch users add EMAIL --role ...).")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("The Authorization header must be 'Bearer <token>'.")
    return token.strip()


def _aware(moment):
    from datetime import timezone

    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _caller(user, csrf: str | None = None) -> Caller:
    return Caller(user.id, user.email, user.role, user.rep_id, user.rep.name if user.rep else None,
                  user.lang or "en", csrf, money_granted=user.money_granted)


def session_caller(engine, request: Request) -> Caller | None:
    """The signed-in page user of this request's session cookie, or None."""
    signer = getattr(request.app.state, "signer", None)
    sess = signer.load(request.cookies.get(sessions.COOKIE)) if signer is not None else None
    if sess is None:
        return None
    with store.session_scope(engine) as session:
        user = session.get(store.User, sess.user_id)
        if user is None or not user.active:
            return None
        changed = session.scalar(select(func.max(store.AuditEvent.at)).where(
            store.AuditEvent.action == "user_changed", store.AuditEvent.target == user.email))
        if changed is not None and sess.issued_at is not None and _aware(sess.issued_at) < _aware(changed).replace(microsecond=0):
            return None
        return _caller(user, sess.csrf)


def caller_for(engine, request: Request) -> Caller:
    """A bearer token first; else a session cookie (whose POSTs must carry the CSRF header)."""
    if not request.headers.get("authorization"):
        who = session_caller(engine, request)
        if who is not None:
            if request.method not in ("GET", "HEAD", "OPTIONS") and not sessions.csrf_ok(
                    who.csrf, request.headers.get("x-csrf-token")):
                raise HTTPException(403, "This request has no valid CSRF token; reload the page and try again.")
            return who
    token = bearer_token(request)
    with store.session_scope(engine) as session:
        user = store.user_for_token(session, token)
        if user is None:
            raise _unauthorized("This API token is not valid (mistyped, replaced by a newer one, or the user "
                                "was switched off). Ask an admin for a new one: churnwatch tokens create EMAIL")
        return _caller(user)


def may_see_account(session, caller: Caller, account_id: str | None) -> bool:
    if caller.sees_all:
        return True
    if caller.role != "rep" or caller.rep_id is None or not account_id:
        return False
    account = session.get(store.Account, account_id)
    return account is not None and account.rep_id == caller.rep_id


def visible_jobs(caller: Caller):
    """A select of the jobs this caller may see (deny by default)."""
    return _in_book(caller, store.Job)


def visible_accounts(caller: Caller):
    """A select of the accounts this caller may see (deny by default)."""
    query = select(store.Account)
    if caller.sees_all:
        return query
    if caller.role != "rep" or caller.rep_id is None:
        return query.where(store.Account.id.is_(None))
    return query.where(store.Account.rep_id == caller.rep_id)


def visible_calls(caller: Caller):
    """A select of the calls this caller may see (deny by default)."""
    return _in_book(caller, store.Call)


def _in_book(caller: Caller, table):
    """Rows of a table with an `account_id`: all for managers, a rep's own accounts, else none."""
    query = select(table)
    if caller.sees_all:
        return query
    if caller.role != "rep" or caller.rep_id is None:
        return query.where(table.id.is_(None))
    return query.join(store.Account, store.Account.id == table.account_id).where(
        store.Account.rep_id == caller.rep_id)
