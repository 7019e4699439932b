from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from pipeline import store
from pipeline.errors import ChurnwatchError


def test_migration_upgrades_empty_database_to_head(db_url):
    eng = store.make_engine(db_url)
    assert store.current_revision(eng) is None
    with pytest.raises(ChurnwatchError, match="churnwatch init"):
        store.ensure_db(eng)
    rev = store.init_db(eng)
    assert rev and store.current_revision(eng) == rev
    tables = set(inspect(eng).get_table_names())
    assert set(store.Base.metadata.tables) <= tables
    assert store.init_db(eng) == rev  # idempotent
    eng.dispose()


def test_migration_matches_models(engine):
    """The Alembic migration creates exactly the columns the ORM declares."""
    insp = inspect(engine)
    for name, table in store.Base.metadata.tables.items():
        assert {c["name"] for c in insp.get_columns(name)} == set(table.columns.keys()), name


def test_call_with_segments_and_cues_round_trips(engine):
    with store.session_scope(engine) as s:
        acct = store.get_or_create_account(s, "ACC-1", name="Acme")
        rep = store.get_or_create_rep(s, "Nina Forde")
        call = store.Call(audio_sha256="a" * 64, account_id=acct.id, rep_id=rep.id,
                          call_date=datetime(2026, 3, 1, 12, tzinfo=timezone.utc), status="done")
        call.segments.append(store.Segment(idx=0, speaker="customer", channel=1, start=1.0, end=3.5,
                                           text="We are looking at Northwind.",
                                           words=[{"word": "We", "start": 1.0, "end": 1.2, "probability": 0.9}]))
        s.add(call)
        s.flush()
        s.add(store.Cue(call_id=call.id, segment_id=call.segments[0].id, rule_name="competitor.names",
                        rule_version=3, label="competitor_mention", start=1.0, end=3.5,
                        speaker="customer", quote="We are looking at Northwind.", score=1.0))
    with store.session_scope(engine) as s:
        call = s.scalar(select(store.Call).where(store.Call.audio_sha256 == "a" * 64))
        assert call.call_date.tzinfo is not None and call.call_date.hour == 12
        assert call.created_at.tzinfo is not None
        assert call.segments[0].words[0]["word"] == "We"
        assert call.cues[0].rule_version == 3 and call.cues[0].label == "competitor_mention"
        assert call.rep.name == "Nina Forde" and call.account.name == "Acme"


def test_same_audio_cannot_be_stored_twice(engine):
    with store.session_scope(engine) as s:
        s.add(store.Call(audio_sha256="b" * 64, status="done"))
    with pytest.raises(IntegrityError):
        with store.session_scope(engine) as s:
            s.add(store.Call(audio_sha256="b" * 64, status="done"))
    with store.session_scope(engine) as s:  # the first call survived the failed second insert
        assert len(s.scalars(select(store.Call)).all()) == 1


def test_deleting_a_call_removes_its_segments_and_cues(engine):
    with store.session_scope(engine) as s:
        call = store.Call(audio_sha256="c" * 64, status="done")
        call.segments.append(store.Segment(idx=0, start=0, end=1, text="hi"))
        s.add(call)
        s.flush()
        s.add(store.Cue(call_id=call.id, rule_name="r", rule_version=1, label="l", start=0, end=1,
                        speaker="customer", quote="hi", score=1))
    with store.session_scope(engine) as s:
        s.delete(s.scalar(select(store.Call)))
    with store.session_scope(engine) as s:
        assert s.scalars(select(store.Segment)).all() == []
        assert s.scalars(select(store.Cue)).all() == []


def test_naive_timestamps_are_refused(engine):
    with pytest.raises(Exception, match="timezone-aware"):
        with store.session_scope(engine) as s:
            s.add(store.Call(audio_sha256="d" * 64, call_date=datetime(2026, 1, 1)))


def test_embedding_cache_round_trips_vectors(engine):
    import numpy as np

    with store.session_scope(engine) as s:
        cache = store.DbEmbeddingCache(s)
        cache.put_many({"hello": np.arange(4, dtype="float32"), "bye": np.ones(4)}, "m1")
        cache.put_many({"hello": np.zeros(4)}, "m1")  # already cached: kept, not duplicated
    with store.session_scope(engine) as s:
        got = store.DbEmbeddingCache(s).get_many(["hello", "bye", "other"], "m1")
        assert set(got) == {"hello", "bye"}
        assert got["hello"].tolist() == [0, 1, 2, 3]
        assert store.DbEmbeddingCache(s).get_many(["hello"], "m2") == {}


def test_unusable_database_url_is_a_clear_error():
    with pytest.raises(ChurnwatchError, match="Cannot use database URL"):
        store.make_engine("nosuchdb://x")


def test_features_and_scores_are_unique_per_account_and_date(engine):
    with store.session_scope(engine) as s:
        store.get_or_create_account(s, "A")
        s.add(store.Feature(account_id="A", name="days_since_order", value=3, as_of=date(2026, 1, 1)))
    with pytest.raises(IntegrityError):
        with store.session_scope(engine) as s:
            s.add(store.Feature(account_id="A", name="days_since_order", value=4, as_of=date(2026, 1, 1)))
    with store.session_scope(engine) as s:
        s.add(store.Feature(account_id="A", name="days_since_order", value=4,
                            as_of=date(2026, 1, 1) + timedelta(days=1)))
