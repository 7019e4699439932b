"""What the web pages remember beyond calls and cues: the audit trail and the rule files' history.

`AuditEvent` rows record every state change that matters (logins and failed logins, rule edits
and rollbacks, user changes, token use, reminder clicks) with who, when and what. Failed logins
are also what rate-limits the login form: the count of recent failures for an address or a
client decides, so several server processes share one limit.

`RuleFileVersion` rows hold every saved version of a file in `rules/` with its author and
message, so the rules page can show a history with diffs and roll back with one click. The file
on disk stays the truth the detector reads; the first edit of a file records what was there
before as version 1.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, func, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from pipeline.store.tables import Base, utcnow


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_action_at", "action", "at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor: Mapped[str | None] = mapped_column(String(320))  # the e-mail as typed (a failed login has no user)
    action: Mapped[str] = mapped_column(String(60))  # login, login_failed, logout, rule_saved, ...
    target: Mapped[str | None] = mapped_column(String(300))  # what it was done to
    client: Mapped[str | None] = mapped_column(String(100))  # the client's address
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class RuleFileVersion(Base):
    __tablename__ = "rule_file_versions"
    __table_args__ = (UniqueConstraint("path", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(String(300))  # relative to the rules folder, e.g. cues/pricing_request.yaml
    version: Mapped[int] = mapped_column(Integer)
    content: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    author: Mapped[str | None] = mapped_column(String(320))
    message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


def audit(session: Session, action: str, *, user_id: int | None = None, actor: str | None = None,
          target: str | None = None, client: str | None = None, **details: Any) -> AuditEvent:
    event = AuditEvent(action=action, user_id=user_id, actor=actor, target=target, client=client,
                       details=details)
    session.add(event)
    session.flush()
    return event


def recent_failed_logins(session: Session, *, email: str, client: str | None, minutes: int,
                         now: datetime | None = None) -> int:
    """Failed logins for this address, or from this client, in the last `minutes`."""
    since = (now or utcnow()) - timedelta(minutes=minutes)
    who = AuditEvent.actor == email if client is None else or_(AuditEvent.actor == email,
                                                                 AuditEvent.client == client)
    return session.scalar(select(func.count(AuditEvent.id)).where(
        AuditEvent.action == "login_failed", AuditEvent.at >= since, who)) or 0


def audit_events(session: Session, limit: int = 100, action: str | None = None) -> list[AuditEvent]:
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if action:
        query = query.where(AuditEvent.action == action)
    return list(session.scalars(query))


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def rule_file_versions(session: Session, path: str) -> list[RuleFileVersion]:
    """Every saved version of one rules file, newest first."""
    return list(session.scalars(select(RuleFileVersion).where(RuleFileVersion.path == path)
                                .order_by(RuleFileVersion.version.desc())))


def rule_file_version(session: Session, path: str, version: int) -> RuleFileVersion | None:
    return session.scalars(select(RuleFileVersion).where(RuleFileVersion.path == path,
                                                         RuleFileVersion.version == version)).first()


def save_rule_file_version(session: Session, path: str, before: str, after: str, *, author: str | None,
                           message: str) -> RuleFileVersion:
    """Record `after` as the next version of `path`; the first save also records `before` as
    version 1 (what the file held when the history started)."""
    versions = rule_file_versions(session, path)
    if not versions:
        session.add(RuleFileVersion(path=path, version=1, content=before, sha256=_sha(before), author=None,
                                    message="The file as it was before the first edit from the web pages."))
        latest = 1
    else:
        latest = versions[0].version
    row = RuleFileVersion(path=path, version=latest + 1, content=after, sha256=_sha(after), author=author,
                          message=message)
    session.add(row)
    session.flush()
    return row
