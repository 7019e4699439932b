"""Editing one rule from a form: the draft, its validation, its preview and the new file text.

Plain functions over the rule pack; the page module (rules.py) does the HTTP. A draft is the
rule as it is in its file with the form's fields put over it, validated by the same schema the
loader uses, so a field error is shown at that field. The new file text is the old one with only
that rule's entries changed (ruamel.yaml round-trip: comments, order and layout stay; an edited
list is written one entry per line), and the
rule's `version` goes up by one, so every cue says which version of the rule found it.

The preview runs the draft and the saved rule alone over two sets of lines: the customer lines
stored in the last N days (which would it now flag, which would it stop flagging) and the
labeled example bank in `rules/examples/` (precision and recall on the lines of its cue type).
Keyword rules need spaCy, embedding rules the sentence encoder; learned rules are previewed by
their threshold on the learned model's probabilities.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from pipeline.cues.rule_files import EmbeddingRule, KeywordRule, LearnedRule, Rule, RulePack, load_rule_file
from pipeline.errors import RuleError

LIST_FIELDS = {"keyword": ("phrases", "requires_any", "exclude"), "embedding": ("examples", "counter_examples"),
               "learned": ()}
SCALAR_FIELDS = {"keyword": ("description", "weight", "speaker", "min_hits", "negation"),
                 "embedding": ("description", "weight", "speaker", "threshold", "margin"),
                 "learned": ("description", "weight", "threshold")}
_ADAPTER = TypeAdapter(Rule)


@dataclass
class Draft:
    rule: KeywordRule | EmbeddingRule | LearnedRule | None  # None when the form does not validate
    data: dict[str, Any]  # what the form holds, for showing it again
    errors: dict[str, str] = field(default_factory=dict)  # field -> message


def form_values(rule) -> dict[str, Any]:
    """The fields of the rule's form, as the form shows them."""
    data = rule.model_dump()
    for name in LIST_FIELDS[rule.type]:
        data[name] = "\n".join(data.get(name) or [])
    return data


def _number(raw: str, name: str, errors: dict, whole: bool = False):
    try:
        return int(raw) if whole else float(raw.replace(",", "."))
    except ValueError:
        errors[name] = "Enter a whole number." if whole else "Enter a number, e.g. 0.8."
        return raw


def make_draft(rule, form: dict[str, str]) -> Draft:
    """The saved rule with the form's fields over it, validated by the rule schema."""
    data = rule.model_dump()
    shown = form_values(rule)
    errors: dict[str, str] = {}
    for name in SCALAR_FIELDS[rule.type]:
        if name == "negation":
            data[name] = form.get("negation") in ("on", "true", "1")
            shown[name] = data[name]
            continue
        if name not in form:
            continue
        raw = (form.get(name) or "").strip()
        shown[name] = raw
        if name in ("weight", "threshold", "margin", "min_hits"):
            if raw == "" and name == "threshold" and rule.type == "learned":
                data[name] = None
                continue
            data[name] = _number(raw, name, errors, whole=name == "min_hits")
        else:
            data[name] = raw
    for name in LIST_FIELDS[rule.type]:
        if name in form:
            raw = form.get(name) or ""
            shown[name] = raw
            data[name] = [line.strip() for line in raw.splitlines() if line.strip()]
    if errors:
        return Draft(None, shown, errors)
    try:
        draft = _ADAPTER.validate_python(data)
    except ValidationError as e:
        for err in e.errors():
            loc = [str(x) for x in err.get("loc", ()) if not isinstance(x, int)]
            loc = [x for x in loc if x not in ("keyword", "embedding", "learned")]
            name = loc[0] if loc else "_rule"
            message = err.get("msg", "not valid").removeprefix("Value error, ")
            errors.setdefault(name, message[0].upper() + message[1:] if message else message)
        return Draft(None, shown, errors)
    return Draft(draft, shown, errors)


# --- the file -------------------------------------------------------------------------------


def _yaml():
    from ruamel.yaml import YAML

    y = YAML()
    y.preserve_quotes = True
    y.width = 110
    y.indent(mapping=2, sequence=4, offset=2)
    return y


def _block(values: list[str]):
    """A list written one entry per line: a later edit's diff then shows just that entry."""
    from ruamel.yaml.comments import CommentedSeq

    seq = CommentedSeq(values)
    seq.fa.set_block_style()
    return seq


def new_file_text(path: Path, old_text: str, saved, draft) -> str:
    """The file with the draft's fields in place of the saved rule's, its version one up."""
    y = _yaml()
    doc = y.load(old_text)
    entry = next((r for r in doc.get("rules", []) if r.get("name") == saved.name), None)
    if entry is None:
        raise RuleError(path, f"rule {saved.name!r} is no longer in this file; reload the page.")
    before, after = saved.model_dump(), draft.model_dump()
    changed = False
    for name in SCALAR_FIELDS[saved.type] + LIST_FIELDS[saved.type]:
        if before.get(name) == after.get(name):
            continue
        changed = True
        value = after.get(name)
        if value is None or (isinstance(value, list) and not value):
            entry.pop(name, None)
        elif isinstance(value, list):
            entry[name] = _block(value)
        else:
            entry[name] = value
    if changed:
        entry["version"] = int(entry.get("version", saved.version)) + 1
    out = io.StringIO()
    y.dump(doc, out)
    return out.getvalue()


def check_text(path: Path, text: str) -> list:
    """Load the new text exactly as the loader will (a RuleError names the line)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / path.name
        probe.write_text(text, encoding="utf-8")
        try:
            return load_rule_file(probe)
        except RuleError as e:
            raise RuleError(path, str(e).split(": ", 1)[-1] if str(e).startswith(str(probe)) else str(e)) from None


# --- the preview ----------------------------------------------------------------------------


@dataclass
class Line:
    text: str
    lang: str
    speaker: str = "customer"
    call_id: int | None = None
    start: float | None = None
    label: str | None = None  # the labeled bank's cue type ("" for a cue-free line)


@dataclass
class Preview:
    now_flags: list[dict]  # lines the draft flags and the saved rule does not
    stops_flagging: list[dict]
    both: int
    lines: int
    bank_before: dict[str, float | int]
    bank_after: dict[str, float | int]
    note: str = ""


def _highlight(text: str, why: str) -> list[tuple[str, bool]]:
    """The text in pieces, (piece, matched?), from a keyword cue's "matched 'a', 'b'"."""
    words = re.findall(r"'([^']+)'", why or "")
    if not words:
        return [(text, False)]
    pattern = re.compile("|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)), re.IGNORECASE)
    out, pos = [], 0
    for m in pattern.finditer(text):
        if m.start() > pos:
            out.append((text[pos:m.start()], False))
        out.append((m.group(0), True))
        pos = m.end()
    if pos < len(text):
        out.append((text[pos:], False))
    return out or [(text, False)]


def run_rule(rule, lines: list[Line], models) -> list[str | None]:
    """For each line, the cue's `why` if the rule alone flags it, else None."""
    from pipeline.cues.detect import DetectOptions, Utterance, detect_utterances

    utts = [Utterance(text=ln.text, lang=ln.lang, speaker=ln.speaker, start=ln.start or 0.0, end=ln.start or 0.0,
                      index=i) for i, ln in enumerate(lines)]
    pack = RulePack(rules=[rule])
    learned = models.learned if isinstance(rule, LearnedRule) else None
    found = detect_utterances(utts, pack, models.nlp, embedder=models.embedder if isinstance(rule, EmbeddingRule)
                              else None, cache=models.cache, options=DetectOptions(), learned=learned)
    return [cues[0].why or "" if cues else None for cues in found]


def bank_score(rule, hits: list[str | None], lines: list[Line]) -> dict[str, float | int]:
    tp = sum(1 for h, ln in zip(hits, lines) if h is not None and ln.label == rule.label)
    fp = sum(1 for h, ln in zip(hits, lines) if h is not None and ln.label != rule.label)
    pos = sum(1 for ln in lines if ln.label == rule.label)
    return {"flagged": tp + fp, "right": tp, "wrong": fp, "positives": pos,
            "precision": tp / (tp + fp) if tp + fp else None, "recall": tp / pos if pos else None}


def preview(saved, draft, stored: list[Line], bank: list[Line], models) -> Preview:
    before = run_rule(saved, stored, models) if stored else []
    after = run_rule(draft, stored, models) if stored else []
    now_flags, stops, both = [], [], 0
    for ln, b, a in zip(stored, before, after):
        if a is not None and b is None:
            now_flags.append({"line": ln, "pieces": _highlight(ln.text, a)})
        elif b is not None and a is None:
            stops.append({"line": ln, "pieces": _highlight(ln.text, b)})
        elif a is not None:
            both += 1
    bank_before = bank_score(saved, run_rule(saved, bank, models), bank) if bank else {}
    bank_after = bank_score(draft, run_rule(draft, bank, models), bank) if bank else {}
    return Preview(now_flags, stops, both, len(stored), bank_before, bank_after)
