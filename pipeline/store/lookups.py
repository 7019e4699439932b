"""The few lookups every stage shares: reps and accounts by name, the hash that keys texts."""

from __future__ import annotations

import hashlib

from sqlalchemy import select
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


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
