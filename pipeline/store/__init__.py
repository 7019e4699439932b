"""The store: typed tables, engines and sessions, shared lookups and the embedding cache.

SQLite by default, PostgreSQL for a team. Entry points open sessions and pass them in.
"""

from pipeline.store.audit import (
    AuditEvent,
    RuleFileVersion,
    audit,
    audit_events,
    recent_failed_logins,
    rule_file_version,
    rule_file_versions,
    save_rule_file_version,
)
from pipeline.store.calls import (
    add_call,
    add_transcript_cache,
    cached_transcript,
    call_id_for_audio,
    record_rule_version,
)
from pipeline.store.database import (
    MIGRATIONS_DIR,
    alembic_config,
    current_revision,
    ensure_db,
    init_db,
    make_engine,
    session_scope,
)
from pipeline.store.embedding_cache import DbEmbeddingCache
from pipeline.store.jobs import (
    AccountMatch,
    account_for_participants,
    add_user,
    claim_next_job,
    enqueue_job,
    finish_job,
    get_job,
    list_jobs,
    list_users,
    new_token,
    release_jobs,
    renew_lease,
    user_for_token,
)
from pipeline.store.lookups import get_or_create_account, get_or_create_rep, text_sha256
from pipeline.store.tables import (
    Account,
    Base,
    Call,
    Contact,
    CrmEvent,
    Cue,
    CueVerdict,
    Feature,
    Job,
    Outbox,
    Reminder,
    Rep,
    RiskScore,
    Rule,
    Segment,
    TranscriptCache,
    UTCDateTime,
    User,
    UtteranceEmbedding,
    utcnow,
)
from pipeline.store.verdicts import ReviewItem, VerdictRow, add_missed, all_verdicts, cues_for_review, mark_cue

__all__ = [
    "AuditEvent", "RuleFileVersion", "audit", "audit_events", "recent_failed_logins", "rule_file_version",
    "rule_file_versions", "save_rule_file_version",
    "ReviewItem", "VerdictRow", "add_missed", "all_verdicts", "cues_for_review", "mark_cue",
    "add_call", "add_transcript_cache", "cached_transcript", "call_id_for_audio", "record_rule_version",
    "MIGRATIONS_DIR", "Account", "Base", "Call", "Contact", "CrmEvent", "Cue", "CueVerdict", "DbEmbeddingCache", "Feature",
    "Outbox", "Reminder", "Rep", "RiskScore", "Rule", "Segment", "TranscriptCache", "UTCDateTime", "UtteranceEmbedding",
    "alembic_config", "current_revision", "ensure_db", "get_or_create_account", "get_or_create_rep",
    "init_db", "make_engine", "session_scope", "text_sha256", "utcnow",
    "AccountMatch", "Job", "User", "account_for_participants", "add_user", "claim_next_job", "enqueue_job",
    "finish_job", "get_job", "list_jobs", "list_users", "new_token", "release_jobs", "renew_lease", "user_for_token",
]
