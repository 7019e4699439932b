"""The few lookups every stage shares: reps and accounts by name, the hash that keys texts."""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pipeline.store.tables import Account, Rep

def get_or_create_rep(session: Session, name: str | None) -> Rep | None:
    if not name:
        return None
    rep = session.scalar(select(Rep).where(Rep.name == name))
    if rep is None:
        rep = Rep(name=name)
        session.add(rep)
        session.flush()
    return rep


def get_or_create_account(session: Session, account_id: str, **fields) -> Account:
    account = session.get(Account, account_id)
    if account is None:
        account = Account(id=account_id, **fields)
        session.add(account)
        session.flush()
    return account


@dataclass
class AccountLookup:
    account: Account | None  # the account, if it exists
    known: int  # how many accounts the store holds (0: no CRM data imported yet)
    closest: list[str] = field(default_factory=list)  # the nearest existing ids, best first


def _typo_key(account_id: str) -> str:
    """An id as it would be typed by mistake: case, O for 0, I or l for 1, spaces and dashes."""
    return (account_id.strip().upper().replace("O", "0").replace("I", "1").replace("L", "1")
            .replace(" ", "").replace("_", "").replace("-", ""))


def find_account(session: Session, account_id: str, limit: int = 3) -> AccountLookup:
    """The account with this id, or the `limit` existing ids closest to it (a letter O for a
    zero, a digit too many or too few, another case)."""
    known = session.scalar(select(func.count()).select_from(Account)) or 0
    account = session.get(Account, account_id) if account_id else None
    if account is not None or not known:
        return AccountLookup(account, known)
    ids = list(session.scalars(select(Account.id)))
    key = _typo_key(account_id)
    same = [i for i in ids if _typo_key(i) == key]
    by_key = {}
    for i in ids:
        by_key.setdefault(_typo_key(i), []).append(i)
    near = [i for k in difflib.get_close_matches(key, list(by_key), n=limit, cutoff=0.0) for i in by_key[k]]
    closest = list(dict.fromkeys(same + near))[:limit]
    return AccountLookup(None, known, closest)


IN_CHUNK = 500  # keys per IN (...) clause, well under the bound-parameter limits of SQLite and PostgreSQL


def in_chunks(items: list, size: int = IN_CHUNK):
    """`items` in consecutive slices of at most `size`: one IN (...) query each."""
    for i in range(0, len(items), size):
        yield items[i:i + size]


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
