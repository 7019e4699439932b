"""As-of features: definitions, evidence, no look-ahead, and the vectorised path agreeing."""

import random
from datetime import UTC, date, datetime, timedelta

import dbreset
import pytest

from pipeline.risk.features import (
    ORDER_FEATURES,
    FeatureOptions,
    compute_features,
    order_features,
    order_features_frame,
    store_features,
)
from pipeline.store import (
    Call,
    Contact,
    CrmEvent,
    Cue,
    Feature,
    get_or_create_account,
    session_scope,
)

AS_OF = date(2026, 3, 31)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    """An empty database at head per test, on each backend, reused fast (tests/dbreset.py)."""
    return dbreset.fresh_url(request, tmp_path)


def order(s, acc, day, amount, key, **attrs):
    s.add(CrmEvent(account_id=acc, kind="order", occurred_on=day, amount=amount, source_key=key,
                   attributes={"invoice_id": key, **{k: v.isoformat() for k, v in attrs.items()}}))


def call_with_cue(s, acc, day, label, quote, sha):
    call = Call(audio_sha256=sha, account_id=acc, call_date=datetime(day.year, day.month, day.day, 10, tzinfo=UTC))
    s.add(call)
    s.flush()
    s.add(Cue(call_id=call.id, rule_name=f"{label}_kw", rule_version=1, label=label, start=0, end=1,
              quote=quote, score=1.0))


def activity(s, acc, day, outcome, key, direction="outbound"):
    s.add(CrmEvent(account_id=acc, kind="activity", occurred_on=day, source_key=key,
                   attributes={"type": "call", "direction": direction, "outcome": outcome}))


def build(s):
    get_or_create_account(s, "A")
    order(s, "A", date(2025, 10, 1), 100, "o1", due_date=date(2025, 10, 31), paid_date=date(2025, 10, 20))
    order(s, "A", date(2025, 11, 1), 100, "o2", due_date=date(2025, 12, 1), paid_date=date(2025, 12, 15))
    order(s, "A", date(2025, 12, 1), 300, "o3", due_date=date(2026, 1, 1), paid_date=date(2026, 4, 10))
    order(s, "A", date(2026, 1, 20), -50, "cn1")
    activity(s, "A", date(2026, 2, 1), "answered", "a1")
    activity(s, "A", date(2026, 3, 1), "unanswered", "a2")
    activity(s, "A", date(2026, 3, 10), "no_reply", "a3")
    s.add(Contact(account_id="A", name="New CFO", role="CFO", added_on=date(2026, 3, 1)))
    call_with_cue(s, "A", date(2026, 2, 20), "competitor_mention", "we are trialling Rival", "c" * 64)
    s.flush()


def test_feature_values_and_evidence(engine):
    with session_scope(engine) as s:
        build(s)
        f = compute_features(s, "A", AS_OF, FeatureOptions(cue_half_life_days=30))
    assert f["days_since_last_order"].value == (AS_OF - date(2025, 12, 1)).days
    assert f["days_since_last_order"].evidence[0]["date"] == "2025-12-01"
    assert f["order_cadence"].value == pytest.approx(120 / 30.5)  # gaps 31 and 30 days
    assert f["credit_notes_180"].value == 1
    # o2 was paid late; o3 is paid after as_of, so at as_of it is unpaid past due
    late = f["late_payments_365"]
    assert late.value == 2 and {e["invoice_id"] for e in late.evidence} == {"o2", "o3"}
    assert f["unanswered_streak"].value == 2
    assert f["days_since_last_contact"].value == (AS_OF - date(2026, 2, 20)).days  # the call counts
    assert f["stakeholder_changes_90"].value == 1
    cue = f["cue_competitor_mention"]
    assert cue.value == pytest.approx(0.5 ** (39 / 30))
    assert cue.evidence[0]["quote"] == "we are trialling Rival"
    assert f["cue_cancellation_intent"].value == 0


def test_nothing_after_as_of_changes_anything(engine):
    with session_scope(engine) as s:
        build(s)
        before = {k: (v.value, v.evidence) for k, v in compute_features(s, "A", AS_OF).items()}
        after_day = AS_OF + timedelta(days=1)
        order(s, "A", after_day, 999, "future", due_date=after_day, paid_date=after_day)
        order(s, "A", after_day, -99, "future-cn")
        activity(s, "A", after_day, "answered", "future-a")
        s.add(Contact(account_id="A", name="Later VP", role="VP Sales", added_on=after_day))
        call_with_cue(s, "A", after_day, "cancellation_intent", "we will cancel", "d" * 64)
        s.add(CrmEvent(account_id="A", kind="support", occurred_on=after_day, source_key="sup",
                       attributes={"subject": "invoice dispute"}))
        s.flush()
        now = {k: (v.value, v.evidence) for k, v in compute_features(s, "A", AS_OF).items()}
        later = compute_features(s, "A", after_day)
    assert now == before
    assert later["cue_cancellation_intent"].value > 0  # the planted data is visible once it happened


def test_store_features_replaces_rows(engine):
    with session_scope(engine) as s:
        build(s)
        f = compute_features(s, "A", AS_OF)
        n = store_features(s, "A", AS_OF, f)
        store_features(s, "A", AS_OF, f)
        rows = s.query(Feature).filter_by(account_id="A").all()
        assert len(rows) == n == sum(v.value is not None for v in f.values())


def test_vectorised_order_features_match_the_plain_ones():
    import pandas as pd

    rng = random.Random(7)
    rows = []
    for acc in range(40):
        for _ in range(rng.randint(1, 12)):
            day = date(2025, 1, 1) + timedelta(days=rng.randint(0, 500))
            rows.append((f"A{acc}", day, rng.choice([-30.0, 10.0, 55.5, 200.0, 120.0])))
    df = pd.DataFrame(rows, columns=["account_id", "date", "amount"])
    df["date"] = pd.to_datetime(df["date"])
    o = FeatureOptions()
    for as_of in (date(2025, 6, 30), date(2026, 1, 15)):
        frame = order_features_frame(df, as_of, o)
        for acc, group in df.groupby("account_id"):
            plain = order_features([(d.date(), a, {}) for d, a in zip(group["date"], group["amount"])], as_of, o)
            if acc not in frame.index:
                assert all(d.date() > as_of for d in group["date"])
                continue
            for name in ORDER_FEATURES:
                want = plain[name].value
                got = frame.loc[acc, name]
                if want is None:
                    assert pd.isna(got), (acc, name)
                else:
                    assert got == pytest.approx(want), (acc, name, as_of)
