"""`churnwatch rules check` validates everything a manager edits in rules/, the way ingest reads it:
cue types, cue rules, risk.yaml, reminders.yaml (and funnel.yaml), with the right line, unknown keys
with the closest valid one, warnings for languages a model does not cover, and what the loader
refuses (repeated names, blank phrases, patterns that hang, YAML alias bombs) refused here too."""

from __future__ import annotations

import json
import shutil
import tracemalloc
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.cues.rule_files import load_pack
from pipeline.errors import RuleError

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture
def rules(tmp_path) -> Path:
    """A copy of the default rule pack to break."""
    folder = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", folder)
    return folder


def edit(path: Path, old: str, new: str) -> str:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    text = text.replace(old, new, 1)
    path.write_text(text, encoding="utf-8")
    return text


def check(folder: Path, *extra: str):
    result = runner.invoke(app, ["rules", "check", str(folder), *extra])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def line_of(text: str, marker: str) -> int:
    (n,) = [i for i, line in enumerate(text.splitlines(), 1) if marker in line]
    return n


def test_the_default_pack_checks_clean_with_every_file_named():
    result = check(ROOT / "rules", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["valid"] and not report["warnings"]
    names = {Path(f["path"]).name for f in report["files"]}
    assert {"cue_types.yaml", "risk.yaml", "reminders.yaml", "pricing_request.yaml", "examples"} <= names


@pytest.mark.parametrize("file, old, new, marker", [
    ("reminders.yaml", "due_in_days: 2\n", "due_in_days: two\n", "due_in_days: two"),
    ("risk.yaml", "threshold: 50\n", "threshold: forty\n", "threshold: forty"),
    ("risk.yaml", "cap: 20\n", "cap: twenty\n", "cap: twenty"),
    ("risk.yaml", "cue_half_life_days: 30 ", "cue_half_life_days: thirty ", "cue_half_life_days: thirty"),
    ("cue_types.yaml", "{label: using less, points: 0.9, cap: 3}", "{label: using less, points: lots, cap: 3}",
     "points: lots"),
])
def test_check_reads_risk_and_reminders_and_names_file_and_line(rules, file, old, new, marker):
    text = edit(rules / file, old, new)
    result = check(rules)
    assert result.exit_code == 1
    assert f"{rules / file}:{line_of(text, marker)}: " in result.output, result.output
    assert repr(marker.split(":")[-1].strip()) in result.output  # the bad value is named


@pytest.mark.parametrize("file, old, new, marker, message", [
    ("risk.yaml", "threshold: 50\n", "threshhold: 50\n", "threshhold",
     "`threshhold`: unknown key, did you mean `threshold`?"),
    ("risk.yaml", "  intercept: -2.2\n", "  intercept: -2.2\n  intercpt: 1\n", "intercpt", "did you mean `intercept`?"),
    ("risk.yaml", "      cap: 20\n", "      capp: 20\n", "capp", "did you mean `cap`?"),
    ("risk.yaml", "feature: order_cadence", "feature: order_cadance", "order_cadance", "did you mean `order_cadence`?"),
    ("reminders.yaml", "    due_in_days: 2\n", "    due_in_dayz: 2\n", "due_in_dayz",
     "`due_in_dayz`: unknown key, did you mean `due_in_days`?"),
    ("reminders.yaml", "risk_threshold:", "risk_threshhold:", "risk_threshhold",
     "`risk_threshhold`: unknown key, did you mean `risk_threshold`?"),
    ("cues/cancellation_intent.yaml", "    threshold: 0.55\n", "    threshhold: 0.55\n", "threshhold",
     "`threshhold`: unknown key, did you mean `threshold`?"),
    ("cue_types.yaml", "    risk: {label: asked about prices", "    risks: {label: asked about prices", "risks:",
     "`risks`: unknown key, did you mean `risk`?"),
])
def test_an_unknown_key_is_named_with_the_closest_valid_one(rules, file, old, new, marker, message):
    text = edit(rules / file, old, new)
    result = check(rules)
    assert result.exit_code == 1
    assert message in result.output, result.output
    assert "Field required" not in result.output
    assert f"{rules / file}:{line_of(text, marker)}: " in result.output


@pytest.mark.parametrize("file, old, new, marker", [
    # an unclosed { or [: the line it was opened on, not the line where YAML noticed
    ("risk.yaml", "{cue: usage_decline}", "{cue: usage_decline", "{cue: usage_decline"),
    ("reminders.yaml", 'de: "Wettbewerber im Spiel"}', 'de: "Wettbewerber im Spiel"', "Wettbewerber im Spiel"),
    ("cues/org_change.yaml", "phrases: [", "phrases: [[", "phrases: [["),
    # a line indented one space short: that line, not the next one
    ("risk.yaml", "      normal: 30                  # a month", "     normal: 30                  # a month",
     "     normal: 30                  # a month"),
    ("risk.yaml", "  intercept: -2.2", "\tintercept: -2.2", "\tintercept"),
])
def test_yaml_syntax_errors_point_at_the_line_to_fix(rules, file, old, new, marker):
    text = edit(rules / file, old, new)
    result = check(rules)
    assert result.exit_code == 1
    assert f"{rules / file}:{line_of(text, marker)}: not valid YAML" in result.output, result.output


def test_a_key_written_twice_is_an_error_at_the_second(rules):
    text = edit(rules / "risk.yaml", "threshold: 50\n", "threshold: 50\nthreshold: 61\n")
    result = check(rules)
    assert result.exit_code == 1
    assert f"risk.yaml:{line_of(text, 'threshold: 61')}: 'threshold' appears twice" in result.output


def test_a_rule_for_a_language_its_model_does_not_cover_is_a_warning(rules):
    text = (rules / "cues" / "usage_decline.yaml").read_text()
    at = text.index("type: embedding")
    head, tail = text[:at], text[at:].replace("langs: [en]", "langs: [en, de]", 1)
    (rules / "cues" / "usage_decline.yaml").write_text(head + tail)
    result = check(rules)
    assert result.exit_code == 0, result.output
    warning = [line for line in result.output.splitlines() if line.startswith("!")]
    assert len(warning) == 1 and "usage_decline.en.similar" in warning[0]
    assert "all-MiniLM-L6-v2" in warning[0] and "English only" in warning[0] and "German" in warning[0]


BAD_PACKS = {
    "a name twice in one file": ("cues/org_change.yaml", "name: org_change.de.keywords", "name: org_change.en.keywords",
                                 "already used"),
    "a phrase of only spaces": ("cues/org_change.yaml", "phrases: [", 'phrases: ["   ", ', "only spaces"),
    "a pattern that hangs": ("cues/pricing_request.yaml", "    patterns:\n",
                             '    patterns:\n      - [{TEXT: {REGEX: "^(a+)+$"}}]\n', "run for minutes"),
    "an invalid regex": ("cues/pricing_request.yaml", "    patterns:\n",
                         '    patterns:\n      - [{LOWER: {REGEX: "(ab"}}]\n', "not a valid regular expression"),
}


@pytest.mark.parametrize("case", sorted(BAD_PACKS))
def test_check_refuses_what_the_loader_refuses(rules, case):
    file, old, new, says = BAD_PACKS[case]
    edit(rules / file, old, new)
    result = check(rules)
    assert result.exit_code == 1
    assert says in result.output and f"{rules / file}:" in result.output
    with pytest.raises(RuleError, match=says):
        load_pack(rules)


def test_a_name_in_a_yaml_and_a_yml_file_is_refused(rules):
    shutil.copy(rules / "cues" / "org_change.yaml", rules / "cues" / "org_change_copy.yml")
    result = check(rules)
    assert result.exit_code == 1
    assert "org_change_copy.yml: rule name 'org_change.en.keywords' is already used" in result.output
    with pytest.raises(RuleError, match="already used"):
        load_pack(rules)


BOMB = "\n".join(
    ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    + [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 10)]
    + ["rules: *l9", ""]
)


def test_a_yaml_alias_bomb_is_refused_at_once_without_growing_memory(tmp_path, rules):
    from pipeline.rules_yaml import MAX_NODES, read_yaml

    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    tracemalloc.start()
    try:
        with pytest.raises(RuleError) as e:
            read_yaml(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "aliases" in str(e.value) and f"{MAX_NODES:,}" in str(e.value)
    assert peak < 20_000_000  # 9**10 values if expanded; a few kilobytes of nodes as read
    (rules / "cues" / "bomb.yaml").write_text(BOMB)
    result = check(rules)
    assert result.exit_code == 1 and "bomb.yaml:1: the anchors and aliases" in result.output
    (rules / "cues" / "bomb.yaml").unlink()
    edit(rules / "reminders.yaml", "version: 1\n", "version: 1\n" + BOMB.replace("rules: *l9", "extra: *l9"))
    assert "the anchors and aliases" in check(rules).output


def test_a_few_aliases_are_fine_and_an_alias_into_itself_is_not(tmp_path):
    from pipeline.rules_yaml import read_yaml

    path = tmp_path / "a.yaml"
    path.write_text("common: &c [invoice, bill]\nrules:\n  - exclude: *c\n  - exclude: *c\n")
    data, _ = read_yaml(path)
    assert data["rules"][1]["exclude"] == ["invoice", "bill"]
    path.write_text("a: &a [1, *a]\n")
    with pytest.raises(RuleError, match="refers to the block it sits in"):
        read_yaml(path)


def test_references_between_the_files_are_checked(rules):
    # a rule's label must be a declared cue type
    text = edit(rules / "cues" / "org_change.yaml", "label: org_change", "label: org_chnage")
    out = check(rules).output
    assert f"org_change.yaml:{line_of(text, 'org_chnage')}: rule 'org_change.en.keywords', label: 'org_chnage' is " \
           "not a declared cue type" in out and "cue_types.yaml" in out
    edit(rules / "cues" / "org_change.yaml", "label: org_chnage", "label: org_change")
    # risk.yaml may place only declared cue types
    text = edit(rules / "risk.yaml", "{cue: usage_decline}", "{cue: usage_declines}")
    result = check(rules)
    assert result.exit_code == 1
    assert f"risk.yaml:{line_of(text, 'usage_declines')}: manual.factors[" in result.output
    edit(rules / "risk.yaml", "{cue: usage_declines}", "{cue: usage_decline}")
    # a factor written out for a cue type that has its own weight: a warning, the written one is used
    edit(rules / "risk.yaml", "    - {cue: org_change}\n",
         "    - {feature: cue_org_change, label: organisation change, points: 0.7, cap: 3}\n")
    result = check(rules)
    assert result.exit_code == 0, result.output
    assert "cue_org_change is weighted here and under risk: of the cue type 'org_change'" in result.output
    # a reminder policy for no cue type
    text = edit(rules / "reminders.yaml", "  competitor_mention:\n", "  competitor_mentioned:\n")
    result = check(rules)
    assert result.exit_code == 1 and "did you mean `competitor_mention`?" in result.output


def test_funnel_yaml_is_checked_when_the_pack_has_one(rules):
    pytest.importorskip("pipeline.funnel.stages")
    if not (rules / "funnel.yaml").is_file():
        pytest.skip("the pack has no funnel.yaml")
    text = edit(rules / "funnel.yaml", "stalled_after_days: 30", "stalled_after_days: soon")
    result = check(rules)
    assert result.exit_code == 1
    assert f"funnel.yaml:{line_of(text, 'stalled_after_days: soon')}: " in result.output
