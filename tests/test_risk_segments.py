"""Weights per customer segment in rules/risk.yaml: overrides, the global fallback, file:line errors."""

import math
from datetime import date

import pytest

from pipeline.errors import RuleError
from pipeline.risk.features import FeatureValue
from pipeline.risk.score import load_risk_model, score_features

SEGMENTS = """
segments:
  Enterprise:
    threshold: 60
    intercept: -3.0
    factors:
      - {feature: late_payments_365, points: 1.2}
      - {feature: cue_cancellation_intent, points: 0}
  SMB:
    factors:
      - {feature: tenure_days, points: -0.1, per: 365, label: years as a customer}
"""


def rules_with(tmp_path, root, extra: str):
    rules = tmp_path / "rules"
    rules.mkdir()
    text = (root / "rules" / "risk.yaml").read_text().replace("segments: {}", "")
    (rules / "risk.yaml").write_text(text + extra)
    return rules


def feats(late=2.0, cancel=1.0, tenure=730.0):
    return {"late_payments_365": FeatureValue("late_payments_365", late),
            "cue_cancellation_intent": FeatureValue("cue_cancellation_intent", cancel),
            "tenure_days": FeatureValue("tenure_days", tenure)}


def test_segment_overrides_and_global_fallback(tmp_path, root):
    model = load_risk_model(rules_with(tmp_path, root, SEGMENTS), tmp_path)
    glob = load_risk_model(root / "rules", root / "models")
    assert set(model.segments) == {"Enterprise", "SMB"}
    ent = model.for_segment("Enterprise")
    assert ent.threshold == 60 and ent.intercept == -3.0
    w = {f.feature: f for f in ent.factors}
    assert w["late_payments_365"].weight == 1.2 and w["late_payments_365"].cap == 5  # other keys kept
    assert w["cue_cancellation_intent"].weight == 0
    assert len(ent.factors) == len(glob.factors)
    assert "tenure_days" in {f.feature for f in model.for_segment("SMB").factors}
    assert model.for_segment("smb").segment == "SMB"  # case-insensitive fallback
    assert model.for_segment("Public sector") is model and model.for_segment(None) is model
    d = date(2026, 3, 31)
    r_ent = score_features("A", d, feats(), model, "Enterprise")
    r_none = score_features("A", d, feats(), model, "Public sector")
    r_glob = score_features("A", d, feats(), glob)
    assert r_ent.segment == "Enterprise" and r_ent.threshold == 60
    assert r_ent.contributions["late_payments_365"] == pytest.approx(2.4)
    assert r_ent.contributions["cue_cancellation_intent"] == 0
    assert r_none.score == pytest.approx(r_glob.score) and r_none.segment is None
    smb = score_features("A", d, feats(), model, "SMB")
    assert smb.contributions["tenure_days"] == pytest.approx(-0.2)
    assert smb.base_score + math.fsum(smb.points.values()) == pytest.approx(smb.score)
    assert model.version != glob.version  # the segments are part of the weights' version


def test_segment_scoring_from_the_store(tmp_path, root):
    from pipeline import store
    from pipeline.risk.score import score_account, score_accounts
    from pipeline.store import Account, CrmEvent, session_scope

    model = load_risk_model(rules_with(tmp_path, root, SEGMENTS), tmp_path)
    engine = store.make_engine(f"sqlite:///{tmp_path / 's.db'}")
    store.init_db(engine)
    with session_scope(engine) as s:
        for acc, seg in (("E", "Enterprise"), ("N", None)):
            s.add(Account(id=acc, segment=seg))
            s.flush()
            for k, m in enumerate((1, 2, 3)):
                s.add(CrmEvent(account_id=acc, kind="order", occurred_on=date(2026, m, 5), amount=100.0,
                               source_key=f"{acc}{k}", attributes={"invoice_id": f"{acc}{k}",
                                                                   "due_date": f"2026-0{m}-10"}))
        s.flush()
        by = {r.account_id: r for r in score_accounts(s, date(2026, 3, 31), model)}
        assert by["E"].segment == "Enterprise" and by["N"].segment is None
        assert by["E"].contributions["late_payments_365"] == pytest.approx(3 * 1.2)
        assert by["N"].contributions["late_payments_365"] == pytest.approx(3 * 0.4)
        assert score_account(s, "E", date(2026, 3, 31), model).score == pytest.approx(by["E"].score)


def _line_of(text: str, needle: str) -> int:
    return [i for i, line in enumerate(text.splitlines(), 1) if needle in line and not line.lstrip().startswith("#")][-1]


@pytest.mark.parametrize("block,needle,message", [
    ("segments:\n  Enterprise:\n    factors:\n      - {feature: vibes, points: 1}\n", "vibes", "unknown feature 'vibes'"),
    ("segments:\n  Enterprise:\n    factors:\n      - {feature: orders_365, points: lots}\n", "lots",
     "points must be a number"),
    ("segments:\n  Enterprise:\n    factors:\n      - {feature: orders_365}\n", "orders_365",
     "not among the global factors"),
    ("segments:\n  Enterprise:\n    threshold: 140\n", "140", "0 to 100"),
    ("segments:\n  Enterprise:\n    weights: {}\n", "weights", "unknown key(s) weights"),
    ("segments:\n  Enterprise:\n    factors:\n      - {feature: late_payments_365, points: 1}\n"
     "      - {feature: late_payments_365, points: 2}\n", "points: 2", "listed twice"),
    ("segments:\n  Enterprise:\n    factors:\n      - {feature: late_payments_365, per: 0}\n", "per: 0",
     "per must be above 0"),
    ("segments: [Enterprise]\n", "segments: [", "a mapping from a customer segment"),
])
def test_segment_errors_name_file_and_line(tmp_path, root, block, needle, message):
    rules = rules_with(tmp_path, root, "\n" + block)
    text = (rules / "risk.yaml").read_text()
    with pytest.raises(RuleError) as e:
        load_risk_model(rules, tmp_path)
    assert message in str(e.value)
    assert e.value.line == _line_of(text, needle), str(e.value)
    assert str(e.value).startswith(f"{rules / 'risk.yaml'}:{e.value.line}: ")


def test_global_factor_errors_have_lines_too(tmp_path, root):
    rules = tmp_path / "rules"
    rules.mkdir()
    text = (root / "rules" / "risk.yaml").read_text().replace("label: credit notes in 6 months\n      points: 0.3",
                                                              "label: credit notes in 6 months\n      points: many")
    (rules / "risk.yaml").write_text(text)
    with pytest.raises(RuleError) as e:
        load_risk_model(rules, tmp_path)
    assert e.value.line == _line_of(text, "points: many")


def test_shipped_rules_have_no_segments_and_load(root):
    model = load_risk_model(root / "rules", root / "models")
    assert model.segments == {}
