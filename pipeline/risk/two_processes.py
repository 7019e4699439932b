"""Score a large book in two processes: the parent and one forked child each read and score half
of the accounts, and the child sends its results back through a pipe.

    results = score_in_two(session, ids, score_part)   # None: score in this process instead

Why: reading, explaining and scoring 100,000 accounts is pure Python, so it runs on one core
while the other waits (bench/risk_scale.py). A fork shares the loaded model and needs no
start-up; the child reads its own half of the accounts (a range of ids: the events index starts
with the account) through a connection of its own. Its results travel as marshal frames of plain
tuples (dicts, lists, strings and numbers: marshal is twice as fast as pickle on them), a few
thousand accounts a frame, so the child's packing overlaps the parent's unpacking.

When: a SQLite file, at least MIN_ACCOUNTS accounts, `os.fork`, two cores free to this process,
no other thread running (a fork copies one thread only), and nothing written in the session's
transaction that is not committed (the child's connection would not see it: SQLite counts the
rows a connection changed, and pipeline.store.database notes the count when a transaction
begins). In every other case the caller scores in one process, with the same results. A child
that fails, dies or goes silent costs its time, never a result: the parent scores the child's
half itself.
"""

from __future__ import annotations

import logging
import marshal
import os
import select
import signal
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import fields
from datetime import date

from sqlalchemy import create_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

MIN_ACCOUNTS = 20_000  # below this a fork and the transfer cost more than half the work saves
FRAME_ACCOUNTS = 5_000
MIN_PATIENCE_S = 60.0  # the longest wait for a frame is this or the time the parent's half took
_HEADER = struct.Struct("<Q")
log = logging.getLogger("churnwatch.risk")


def why_not(session: Session, n_accounts: int) -> str | None:
    """Why this book is scored in one process, or None when two processes may score it."""
    if n_accounts < MIN_ACCOUNTS:
        return f"{n_accounts} accounts, fewer than {MIN_ACCOUNTS}"
    if not hasattr(os, "fork"):
        return "no fork on this system"
    if len(os.sched_getaffinity(0)) < 2:
        return "one core"
    if threading.active_count() > 1:
        return "other threads are running"
    bind = session.get_bind()
    if bind.dialect.name != "sqlite" or bind.url.database in (None, "", ":memory:"):
        return "not a SQLite file"
    session.flush()
    conn = session.connection()
    raw = conn.connection.dbapi_connection
    if raw is None or raw.total_changes != conn.info.get("changes_at_begin"):
        return "the session has written rows that are not committed yet"
    return None


def score_in_two(session: Session, ids: list[str], score_part: Callable[[Session, list[str]], list],
                 result_type: type) -> list | None:
    """The results of `score_part(session, ids)`, the second half of `ids` scored in a forked
    child; None (nothing done) where `why_not` gives a reason. `result_type`: the dataclass of a
    result, rebuilt from its fields in the parent."""
    reason = why_not(session, len(ids))
    if reason is not None:
        log.debug("scoring %d accounts in one process: %s", len(ids), reason)
        return None
    url = session.get_bind().url
    half = len(ids) // 2
    mine, theirs = ids[:half], ids[half:]
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_fd)
        _child(url, theirs, score_part, result_type, write_fd)
    os.close(write_fd)
    finished = False
    try:
        started = time.monotonic()
        results = score_part(session, mine)
        # the child scores as many accounts: a frame that takes much longer than this half took
        # here means it is stuck, and its half is scored here instead
        theirs_results = _receive(read_fd, result_type, patience=max(MIN_PATIENCE_S, time.monotonic() - started))
        finished = theirs_results is not None
    finally:
        os.close(read_fd)
        _reap(pid, stop=not finished)
    if theirs_results is None or len(theirs_results) != len(theirs):
        log.warning("the second scoring process failed or went silent; its %d accounts are scored "
                    "in this one (the results are the same, only slower)", len(theirs))
        theirs_results = score_part(session, theirs)
    results += theirs_results
    return results


def _child(url, ids, score_part, result_type, write_fd) -> None:
    """Score `ids` through a connection of its own and write the results as frames; exit."""
    status = 1
    try:
        with os.fdopen(write_fd, "wb", buffering=1 << 20) as pipe:
            try:
                # no BEGIN IMMEDIATE here (pipeline.store.make_engine): the parent's transaction
                # holds SQLite's write lock, and plain reads do not wait for it
                engine = create_engine(url, poolclass=NullPool)
                with Session(engine) as session:
                    results = score_part(session, ids)
                names = [f.name for f in fields(result_type)]
                for k in range(0, len(results), FRAME_ACCOUNTS):
                    _send(pipe, [_pack(r, names) for r in results[k:k + FRAME_ACCOUNTS]])
                _send(pipe, ("done", len(results)))
                status = 0
            except BaseException as e:  # noqa: BLE001 - the parent scores this half itself
                _send(pipe, ("failed", f"{type(e).__name__}: {e}"))
    finally:
        os._exit(status)  # no atexit handlers, no finalizers of the parent's objects


def _pack(result, names) -> tuple:
    values = tuple(getattr(result, n) for n in names)
    # dates are the only values marshal cannot carry; a result has one, as_of
    return tuple(("date", v.toordinal()) if isinstance(v, date) else v for v in values)


def _unpack(values: tuple, result_type: type):
    return result_type(*(date.fromordinal(v[1]) if type(v) is tuple and len(v) == 2 and v[0] == "date" else v
                         for v in values))


def _send(pipe, obj) -> None:
    data = marshal.dumps(obj)
    pipe.write(_HEADER.pack(len(data)))
    pipe.write(data)


def _receive(fd: int, result_type: type, patience: float) -> list | None:
    """The child's results, or None where it failed, died, sent something else or was silent
    for `patience` seconds."""
    out = []
    while True:
        header = _read(fd, _HEADER.size, patience)
        if header is None:
            return None
        data = _read(fd, _HEADER.unpack(header)[0], patience)
        if data is None:
            return None
        try:
            frame = marshal.loads(data)
        except (EOFError, ValueError, TypeError):
            return None
        if isinstance(frame, tuple):  # ("done", n) or ("failed", why)
            return out if frame[0] == "done" and frame[1] == len(out) else None
        out += [_unpack(values, result_type) for values in frame]


def _read(fd: int, size: int, patience: float) -> bytes | None:
    """`size` bytes from the pipe; None at its end or after `patience` seconds without a byte."""
    parts = []
    while size:
        if not select.select([fd], [], [], patience)[0]:
            return None
        part = os.read(fd, min(size, 1 << 20))
        if not part:
            return None
        parts.append(part)
        size -= len(part)
    return b"".join(parts)


def _reap(pid: int, stop: bool) -> None:
    """Wait for the child to exit; `stop`: the parent failed, so stop the child first."""
    try:
        if stop:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ChildProcessError, ProcessLookupError):
        pass
