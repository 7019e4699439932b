"""The store: typed tables, engines and sessions, shared lookups and the embedding cache.

SQLite by default, PostgreSQL for a team. Entry points open sessions and pass them in.
"""

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
    Outbox,
    Reminder,
    Rep,
    RiskScore,
    Rule,
    Segment,
    TranscriptCache,
    UTCDateTime,
    UtteranceEmbedding,
    utcnow,
)

__all__ = [
    "add_call", "add_transcript_cache", "cached_transcript", "call_id_for_audio", "record_rule_version",
    "MIGRATIONS_DIR", "Account", "Base", "Call", "Contact", "CrmEvent", "Cue", "CueVerdict", "DbEmbeddingCache", "Feature",
    "Outbox", "Reminder", "Rep", "RiskScore", "Rule", "Segment", "TranscriptCache", "UTCDateTime", "UtteranceEmbedding",
    "alembic_config", "current_revision", "ensure_db", "get_or_create_account", "get_or_create_rep",
    "init_db", "make_engine", "session_scope", "text_sha256", "utcnow",
]
