"""Rule files: schema, line numbers in errors, malformed files never crash or hang."""

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.errors import ChurnwatchError, RuleError
from pipeline.cues.rule_files import (
    CUE_LABELS,
    check_dir,
    load_pack,
    load_rule_file,
    read_labeled,
    score_predictions,
)

RULES_DIR = Path(__file__).resolve().parents[1] / "rules"

GOOD = """rules:
  - name: test.cancel
    type: keyword
    label: cancellation_intent
    version: 2
    description: cancel
    weight: 1.0
    lang: en
    phrases: [cancel]
"""


def write(tmp_path, text, name="r.yaml"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_default_pack_loads_and_covers_every_label():
    pack = load_pack(RULES_DIR)
    assert set(pack.labels) == set(CUE_LABELS)
    assert all(check is None for _, check in check_dir(RULES_DIR))
    names = [r.name for r in pack.rules]
    assert len(names) == len(set(names))


def test_valid_file(tmp_path):
    (rule,) = load_rule_file(write(tmp_path, GOOD))
    assert rule.version == 2 and rule.speaker == "customer" and rule.negation is True


def test_bad_choice_names_line_value_and_choices(tmp_path):
    text = GOOD.replace("lang: en", "lang: en\n    speaker: client")
    with pytest.raises(RuleError) as e:
        load_rule_file(write(tmp_path, text))
    msg = str(e.value)
    assert e.value.line == 9 and "'client'" in msg and "customer" in msg and "rep" in msg
    assert msg.startswith(str(tmp_path / "r.yaml") + ":9")


def test_bad_label_lists_valid_labels(tmp_path):
    with pytest.raises(RuleError) as e:
        load_rule_file(write(tmp_path, GOOD.replace("cancellation_intent", "churn")))
    assert e.value.line == 4 and "'churn'" in str(e.value) and "pricing_request" in str(e.value)


def test_unknown_field_lists_valid_fields(tmp_path):
    with pytest.raises(RuleError) as e:
        load_rule_file(write(tmp_path, GOOD + "    phrasez: [x]\n"))
    assert "phrasez" in str(e.value) and "phrases" in str(e.value) and e.value.line == 10


def test_embedding_rule_needs_five_examples(tmp_path):
    text = """rules:
  - name: e
    type: embedding
    label: org_change
    version: 1
    description: d
    weight: 1
    threshold: 0.5
    examples: [a, b, c]
"""
    with pytest.raises(RuleError) as e:
        load_rule_file(write(tmp_path, text))
    assert "examples" in str(e.value) and e.value.line == 9


def test_bad_matcher_pattern(tmp_path):
    text = GOOD + "    patterns:\n      - [{LEMMAA: cancel}]\n"
    with pytest.raises(RuleError) as e:
        load_rule_file(write(tmp_path, text))
    assert "pattern" in str(e.value) and e.value.line == 10


def test_duplicate_names_across_files(tmp_path):
    write(tmp_path, GOOD, "a.yaml")
    write(tmp_path, GOOD, "b.yaml")
    with pytest.raises(RuleError, match="already used"):
        load_pack(tmp_path)


def test_yaml_syntax_error_has_line(tmp_path):
    with pytest.raises(RuleError) as e:
        load_rule_file(write(tmp_path, GOOD + "    phrases: [unclosed\n  - x: : :\n"))
    assert e.value.line is not None


yaml_text = st.one_of(
    st.text(max_size=300),
    st.lists(st.sampled_from(GOOD.splitlines(keepends=True) + ["  - ", ": ", "[", "{", "&a *a\n",
                                                               "  version: -1\n", "\t", "!!python/object:os.system\n"]),
             max_size=30).map("".join),
)


@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=yaml_text)
def test_malformed_files_give_rule_error_not_crash(tmp_path, text):
    p = write(tmp_path, text)
    try:
        load_rule_file(p)
    except RuleError as e:
        assert str(e).startswith(str(p))


def test_read_labeled_names_file_and_line(tmp_path):
    p = write(tmp_path, '{"id": "a", "text": "x", "labels": []}\nnot json\n', "x.jsonl")
    with pytest.raises(ChurnwatchError, match=r"x\.jsonl:2"):
        read_labeled(p)
    p = write(tmp_path, '{"id": "a", "text": "x", "labels": ["bogus"]}\n', "y.jsonl")
    with pytest.raises(ChurnwatchError, match=r"y\.jsonl:1.*bogus"):
        read_labeled(p)


def test_score_predictions_counts():
    rows = [{"id": "1", "labels": ["org_change"]}, {"id": "2", "labels": []}, {"id": "3", "labels": []}]
    report = score_predictions(rows, [{"org_change"}, {"org_change"}, set()])
    assert report["per_label"]["org_change"]["precision"] == 0.5
    assert report["per_label"]["org_change"]["recall"] == 1.0
    assert report["false_alarm_rate"] == 0.5
    assert [p["id"] for p in report["predictions"]] == ["1", "2", "3"]
