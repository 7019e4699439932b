"""Each rule's own record on labeled lines: hits, right ones, false alarms, precision.

`score_predictions` (rule_files) scores the pack per label; this says what each rule adds, so a
manager sees whether a new rule earns its place before it goes live.
"""

from __future__ import annotations

from pipeline.types import Cue


def score_rules(rows: list[dict], found: list[list[Cue]], rule_names: list[str]) -> list[dict]:
    """Per rule: lines it fired on, how many carry its label, false alarms (on cue-free lines or
    another label), precision, and the lines of its label that only this rule found."""
    by_rule = {name: {"hits": 0, "right": 0, "false_alarms": 0, "only_this_rule": 0} for name in rule_names}
    for row, cues in zip(rows, found):
        gold = set(row["labels"])
        for c in cues:
            stats = by_rule.setdefault(c.rule, {"hits": 0, "right": 0, "false_alarms": 0, "only_this_rule": 0})
            stats["hits"] += 1
            if c.label in gold:
                stats["right"] += 1
                if not any(o.label == c.label and o.rule != c.rule for o in cues):
                    stats["only_this_rule"] += 1
            else:
                stats["false_alarms"] += 1
    out = []
    for name, s in by_rule.items():
        out.append({"rule": name, **s, "precision": round(s["right"] / s["hits"], 3) if s["hits"] else None})
    return out
