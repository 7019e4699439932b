"""`churnwatch serve`, `churnwatch worker`, `churnwatch users ...` and `churnwatch tokens create`.

`serve` runs the web application (uvicorn) with N worker processes, each loading its models
once, and optionally a watch folder; Ctrl-C or SIGTERM stops the web server, lets each worker
finish the call it is on (up to --grace seconds), and puts the job of any worker that had to be
stopped back in the queue. `worker` runs one worker loop alone (for PostgreSQL teams running
workers on other machines).

The web application is loaded by uvicorn from its import string, so the command line does not
import the web package (the two sit side by side at the top of the layers).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from pipeline.cli.shared import DbOption, JsonOption, app, console, err_console, fail, open_store, print_json

APP_FACTORY = "pipeline.web:app_from_env"

users_app = typer.Typer(help="People who may use the web application and its API.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens of users.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")


class _Stop(Exception):
    """SIGTERM arrived."""


def _raise_stop(*_):
    raise _Stop()


def _check_port(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            fail(f"Cannot listen on {host}:{port} ({e.strerror}). Is another server running there? "
                 "Choose another port with --port.")


@app.command()
def serve(
    host: Annotated[str, typer.Option(
        "--host", help="Address to listen on (0.0.0.0 for every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")] = 8800,
    workers: Annotated[int, typer.Option(
        "--workers", min=0, max=64,
        help="Worker processes, each loading the models once (0: only queue; run `churnwatch worker` elsewhere).")] = 1,
    watch: Annotated[Optional[Path], typer.Option(
        "--watch", help="Folder to take recordings from (with an optional NAME.json of the call's fields); "
                        "they move to done/ or failed/.")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(
        "--data-dir", help="Where uploads are kept (default: $CHURNWATCH_DATA_DIR or ./churnwatch-data).")] = None,
    max_upload_mb: Annotated[Optional[int], typer.Option(
        "--max-upload-mb", min=1, help="Largest upload accepted, in MB (default 200).")] = None,
    grace: Annotated[float, typer.Option(
        "--grace", min=0, help="Seconds a stopping worker may take to finish its call.")] = 30.0,
    db: DbOption = None,
) -> None:
    """Start the web application and the background workers; Ctrl-C stops them all."""
    import multiprocessing

    import uvicorn

    from pipeline import store
    from pipeline.flow.worker import FolderWatcher, default_worker_name, worker_main

    settings, engine = open_store(db, create=True)
    if engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:"):
        fail("serve needs a database file or server: an in-memory SQLite database is not shared between "
             "the server and its workers. Use e.g. --db sqlite:///churnwatch.db")
    if watch is not None and watch.exists() and not watch.is_dir():
        fail(f"--watch {watch}: not a folder.")
    _check_port(host, port)
    os.environ["CHURNWATCH_DB"] = settings.db_url  # the app (and the workers) read their settings from here
    if data_dir is not None:
        os.environ["CHURNWATCH_DATA_DIR"] = str(data_dir.expanduser().absolute())
    if max_upload_mb is not None:
        os.environ["CHURNWATCH_MAX_UPLOAD_MB"] = str(max_upload_mb)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited engine or model threads
    stop = ctx.Event()
    procs = []
    for i in range(workers):
        name = f"{default_worker_name()}-w{i + 1}"
        proc = ctx.Process(target=worker_main, args=(settings.db_url, name, stop), name=name, daemon=False)
        proc.start()
        procs.append((name, proc))
    watch_stop = threading.Event()
    watcher = None
    if watch is not None:
        folder = FolderWatcher(engine, watch.expanduser().absolute())
        watcher = threading.Thread(target=folder.run, args=(watch_stop,), name="watch", daemon=True)
        watcher.start()
    err_console.print(f"churnwatch serving on http://{host}:{port} with {workers} worker(s)"
                      + (f", watching {watch}" if watch else "") + "; Ctrl-C stops.", highlight=False)
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    server = uvicorn.Server(uvicorn.Config(APP_FACTORY, factory=True, host=host, port=port, log_level="info"))
    try:
        server.run()
    except (KeyboardInterrupt, _Stop):
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        err_console.print("stopping: letting the workers finish their current call ...", highlight=False)
        stop.set()
        watch_stop.set()
        if watcher is not None:
            watcher.join(timeout=10)
        for name, proc in procs:
            proc.join(timeout=grace)
        for name, proc in procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()
            with store.session_scope(engine) as session:
                back = store.release_jobs(session, name)
            if back:
                err_console.print(f"{name} was stopped mid-call; its job is back in the queue.", highlight=False)
        engine.dispose()
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    err_console.print("stopped.", highlight=False)


@app.command("worker")
def worker_cmd(
    name: Annotated[Optional[str], typer.Option(
        "--name", help="This worker's name in the jobs table (default: host:pid).")] = None,
    until_empty: Annotated[bool, typer.Option(
        "--until-empty", help="Stop when the queue is empty instead of waiting for more.")] = False,
    db: DbOption = None,
) -> None:
    """Run one worker: take queued recordings from the database and turn them into calls and hints.

    Ctrl-C (or SIGTERM) stops after the current call; a second Ctrl-C stops at once and puts the
    call back in the queue.
    """
    from pipeline import store
    from pipeline.flow.worker import Worker, default_worker_name

    settings, engine = open_store(db, create=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    worker = Worker(engine, settings, name=name or default_worker_name())
    stop = threading.Event()

    def _first(*_):
        if stop.is_set():
            raise KeyboardInterrupt
        err_console.print("stopping after the current call (Ctrl-C again to stop now) ...", highlight=False)
        stop.set()

    signal.signal(signal.SIGINT, _first)
    signal.signal(signal.SIGTERM, _first)
    err_console.print(f"worker {worker.name}: loading models ...", highlight=False)
    try:
        done = worker.run(stop, until_empty=until_empty)
    except KeyboardInterrupt:
        with store.session_scope(engine) as session:
            store.release_jobs(session, worker.name)
        err_console.print("stopped; the call in progress is back in the queue.", highlight=False)
        raise typer.Exit(130)
    finally:
        engine.dispose()
    err_console.print(f"worker {worker.name}: {done} job(s) processed.", highlight=False)


def _read_password() -> str:
    password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 10:
        fail("The password must be at least 10 characters long.")
    return password


@users_app.command("add")
def users_add(
    email: Annotated[str, typer.Argument(help="The user's e-mail address (their login).")],
    role: Annotated[str, typer.Option("--role", help="rep (their own book), manager, coach or admin.")],
    rep: Annotated[Optional[str], typer.Option(
        "--rep", help="For a rep: their name as in the CRM, e.g. \"Maya Okafor\".")] = None,
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read a password from the first line of stdin.")] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add a user and print their API token (shown once; only its hash is kept)."""
    from pipeline import store

    password = _read_password() if password_stdin else None
    _, engine = open_store(db, create=True)
    with store.session_scope(engine) as session:
        user, token = store.add_user(session, email, role, rep_name=rep, password=password)
        info = {"id": user.id, "email": user.email, "role": user.role, "rep": user.rep.name if user.rep else None,
                "token": token}
    if as_json:
        print_json(info)
        return
    console.print(f"Added {info['email']} ({info['role']}" + (f", rep {info['rep']}" if info["rep"] else "") + ").",
                  highlight=False)
    console.print("API token (shown only now; keep it like a password):", highlight=False)
    sys.stdout.write(token + "\n")


@users_app.command("list")
def users_list(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Every user with their role, rep and whether they see money figures."""
    from pipeline import store

    _, engine = open_store(db)
    with store.session_scope(engine) as session:
        rows = [{"id": u.id, "email": u.email, "role": u.role, "rep": u.rep.name if u.rep else None,
                 "active": u.active, "has_token": bool(u.token_hash), "money_granted": u.money_granted,
                 "created_at": u.created_at.isoformat()}
                for u in store.list_users(session)]
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("No users yet. Add one with: churnwatch users add EMAIL --role admin")
        return
    table = Table("email", "role", "rep", "token", "active", "money")
    for r in rows:
        money = ("granted" if r["money_granted"] else "no") if r["role"] == "coach" else "yes"
        table.add_row(r["email"], r["role"], r["rep"] or "", "yes" if r["has_token"] else "no",
                      "yes" if r["active"] else "no", money)
    console.print(table)


class Grant(str, Enum):
    """What an admin grants a user beyond their role."""

    money = "money"  # CRM money figures (order values, invoice amounts) for a coach


GrantArgument = Annotated[Grant, typer.Argument(
    help="What: money (order values and invoice amounts, which coaches do not see without it).")]


def _cli_actor() -> str | None:
    """Who ran the command, for the audit trail: the operating system's user name, if it has one."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (some containers)
        return None


def set_grant(engine, email: str, what: Grant, granted: bool, actor: str | None) -> tuple[str, bool]:
    """Grant or revoke a coach's money figures; returns (their e-mail, whether anything changed).
    A change is audited as `user_changed`, which also ends the user's page sessions, as every
    other user change does."""
    from sqlalchemy import func, select

    from pipeline import store
    from pipeline.errors import ChurnwatchError

    with store.session_scope(engine) as session:
        user = session.scalar(select(store.User).where(func.lower(store.User.email) == email.strip().lower()))
        if user is None:
            raise ChurnwatchError(f"No user {email}. Add them with: churnwatch users add {email} --role coach")
        if user.role != "coach":
            raise ChurnwatchError(f"{user.email} is a {user.role} and sees the money figures of their accounts "
                                  "anyway; the grant is for coaches.")
        if user.money_granted == granted:
            return user.email, False
        user.money_granted = granted
        store.audit(session, "user_changed", actor=actor, target=user.email, client="command line",
                    change=f"{what.value} {'granted' if granted else 'revoked'}")
        return user.email, True


@users_app.command("grant")
def users_grant(
    email: Annotated[str, typer.Argument(help="The coach's e-mail address.")],
    what: GrantArgument,
    db: DbOption = None,
) -> None:
    """Let a coach see CRM money figures (order values, invoice amounts); signs them out once."""
    _, engine = open_store(db)
    email, changed = set_grant(engine, email, what, True, _cli_actor())
    console.print(f"{email} sees money figures now; signed out of the web pages, they sign in again." if changed
                  else f"{email} sees money figures already.", highlight=False)


@users_app.command("revoke")
def users_revoke(
    email: Annotated[str, typer.Argument(help="The coach's e-mail address.")],
    what: GrantArgument,
    db: DbOption = None,
) -> None:
    """Take a coach's money figures away again; signs them out once."""
    _, engine = open_store(db)
    email, changed = set_grant(engine, email, what, False, _cli_actor())
    console.print(f"{email} no longer sees money figures; signed out of the web pages, they sign in again." if changed
                  else f"{email} sees no money figures already.", highlight=False)


@tokens_app.command("create")
def tokens_create(
    email: Annotated[str, typer.Argument(help="The user's e-mail address.")],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Give a user a new API token (printed once); their old token stops working."""
    from sqlalchemy import func, select

    from pipeline import store

    _, engine = open_store(db)
    with store.session_scope(engine) as session:
        user = session.scalar(select(store.User).where(func.lower(store.User.email) == email.strip().lower()))
        if user is None:
            fail(f"No user {email}. Add them with: churnwatch users add {email} --role ...")
        token = store.new_token(session, user)
    if as_json:
        print_json({"email": email, "token": token})
        return
    console.print(f"New API token for {email} (shown only now; the old one no longer works):", highlight=False)
    sys.stdout.write(token + "\n")
