"""Rule files: the schema, loading with line numbers, and the pack the detector runs.

A rule pack is a folder of YAML files (`rules/cues/*.yaml`), each holding `rules:`, a list of
keyword rules (spaCy PhraseMatcher / Matcher) and embedding rules (sentence-transformers,
nearest example). Every rule has a name, a cue label, a version, a description and a weight;
the version is stored with every cue it produces. See rules/README.md for how to write one.

An invalid file raises `RuleError(path, message, line)`: never a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.errors import RuleError
from pipeline.types import CUE_LABELS

Label = Literal[CUE_LABELS]  # one of pipeline.types.CUE_LABELS
Lang = Literal["en", "de", "ro", "ko"]


class _RuleBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")]
    label: Label
    version: Annotated[int, Field(ge=1)]  # bump when you change the rule; stored with each cue
    description: Annotated[str, Field(min_length=1)]
    weight: Annotated[float, Field(ge=0, le=10)] = 1.0  # how much a hit counts in the risk score
    speaker: Literal["customer", "rep", "any"] = "customer"  # whose speech the rule reads
    first_minutes: Annotated[float, Field(gt=0)] | None = None  # only the call's first N minutes
    last_minutes: Annotated[float, Field(gt=0)] | None = None  # only the call's last N minutes
    questions_only: bool = False  # only utterances that ask something


class KeywordRule(_RuleBase):
    type: Literal["keyword"]
    lang: Lang  # phrases are written in one language
    match_on: Literal["lemma", "lower", "orth"] = "lemma"  # word forms, any case, or exact text
    phrases: list[Annotated[str, Field(min_length=1)]] = []
    patterns: list[list[dict[str, Any]]] = []  # spaCy Matcher token patterns
    requires_any: list[Annotated[str, Field(min_length=1)]] = []  # one must also occur
    exclude: list[Annotated[str, Field(min_length=1)]] = []  # phrases that veto the rule
    exclude_patterns: list[list[dict[str, Any]]] = []  # token patterns that veto the rule
    negation: bool = True  # a negated match ("not cancelling") does not fire
    min_hits: Annotated[int, Field(ge=1)] = 1  # distinct matches needed in one utterance

    @model_validator(mode="after")
    def _something_to_match(self):
        if not self.phrases and not self.patterns:
            raise ValueError("a keyword rule needs `phrases` or `patterns` (or both)")
        return self


class EmbeddingRule(_RuleBase):
    type: Literal["embedding"]
    langs: list[Lang] = ["en"]  # the model is English-only unless you load a multilingual one
    model: str = "all-MiniLM-L6-v2"  # sentence-transformers model the threshold was tuned for
    examples: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=5)]
    counter_examples: list[Annotated[str, Field(min_length=1)]] = []
    threshold: Annotated[float, Field(gt=0, le=1)]  # cosine similarity to the nearest example
    margin: Annotated[float, Field(ge=0, le=1)] = 0.0  # nearest example must beat nearest counter by this


class LearnedRule(_RuleBase):
    """A cue model learned from the example bank (rules/examples/) and managers' verdicts.

    The fitted heads live in models/cues/ (`churnwatch rules fit` writes them); this entry says
    which cue type the rule reports, in which languages, and optionally overrides the threshold.
    """

    type: Literal["learned"]
    langs: list[Lang] = ["en", "de", "ro", "ko"]
    model: str = "multilingual-e5-small"  # the sentence encoder the heads were fitted on
    threshold: Annotated[float, Field(gt=0, lt=1)] | None = None  # probability; default: chosen at fit time


Rule = Annotated[Union[KeywordRule, EmbeddingRule, LearnedRule], Field(discriminator="type")]


class RuleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules: Annotated[list[Rule], Field(min_length=1)]


@dataclass
class RulePack:
    rules: list[KeywordRule | EmbeddingRule | LearnedRule]
    files: list[Path] = field(default_factory=list)
    folder: Path | None = None  # the rules folder (holding cues/ and examples/)
    # compiled matchers per (language, pipeline): filled by pipeline.cues.detect on first use
    compiled: dict = field(default_factory=dict, repr=False, compare=False)

    def by_name(self, name: str):
        return next(r for r in self.rules if r.name == name)

    @property
    def labels(self) -> list[str]:
        return sorted({r.label for r in self.rules})


# ---- loading with line numbers -------------------------------------------------------------


class _DuplicateKey(Exception):
    def __init__(self, key, line):
        super().__init__(key)
        self.key, self.line = key, line


def _lines(node, path=(), out=None) -> dict[tuple, int]:
    """Map each key path in a composed YAML node tree to its 1-based line."""
    out = {} if out is None else out
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key, value in node.value:
            k = getattr(key, "value", None)
            if k in seen:
                raise _DuplicateKey(k, key.start_mark.line + 1)
            seen.add(k)
            out[path + (k,)] = key.start_mark.line + 1
            _lines(value, path + (k,), out)
            out[path + (k,)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _lines(item, path + (i,), out)
    return out


def _line_for(loc: tuple, lines: dict[tuple, int]) -> int | None:
    """Best line for a pydantic error location (skipping union tags like 'keyword')."""
    path: tuple = ()
    best = lines.get(())
    for part in loc:
        if path + (part,) in lines:
            path = path + (part,)
            best = lines[path]
    return best


def _describe(err: dict, data: Any, model_fields: dict[str, list[str]]) -> str:
    loc = [p for p in err["loc"] if p not in ("keyword", "embedding", "learned")]
    where = ".".join(str(p) for p in loc) or "file"
    rule_name = None
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        try:
            rule_name = data["rules"][loc[1]].get("name")
        except (AttributeError, IndexError, KeyError, TypeError):
            pass
    prefix = f"rule {rule_name!r}, " if rule_name else ""
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        kind = "keyword"
        try:
            kind = data["rules"][loc[1]].get("type", "keyword")
        except (AttributeError, IndexError, KeyError, TypeError):
            pass
        valid = model_fields.get(kind, model_fields["file"] if len(loc) == 1 else [])
        msg = f"unknown field {loc[-1]!r}; valid fields: {', '.join(valid)}"
        return f"{prefix}{msg}."
    if err["type"] == "union_tag_invalid" or err["type"] == "union_tag_not_found":
        msg = "`type` must be 'keyword', 'embedding' or 'learned'"
    shown = err.get("input")
    got = "" if err["type"] in ("missing", "union_tag_not_found") else f" (got {shown!r})"
    if isinstance(shown, (dict, list)) and len(repr(shown)) > 80:
        got = ""
    return f"{prefix}{where}: {msg}{got}."


_FIELDS = {
    "keyword": [f for f in KeywordRule.model_fields],
    "embedding": [f for f in EmbeddingRule.model_fields],
    "learned": [f for f in LearnedRule.model_fields],
    "file": ["rules"],
}


def read_yaml(path: Path, unreadable_hint: str = "") -> tuple[Any, Any]:
    """A YAML file's data and its node tree (for line numbers); RuleError on unreadable YAML."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RuleError(path, f"cannot read the file ({e}).{unreadable_hint}") from None
    try:
        return yaml.safe_load(text), yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise RuleError(path, f"not valid YAML: {problem}. Check indentation and quotes.",
                        mark.line + 1 if mark else None) from None
    except RecursionError:
        raise RuleError(path, "not valid YAML: nested too deeply.") from None


def load_rule_file(path: Path) -> list[KeywordRule | EmbeddingRule | LearnedRule]:
    """Read and validate one YAML rule file; raises RuleError naming file, line and value."""
    path = Path(path)
    data, node = read_yaml(path)
    if not isinstance(data, dict) or node is None:
        raise RuleError(path, "expected a mapping with a `rules:` list at the top, e.g. "
                        "`rules:\\n  - name: ...`.", 1)
    try:
        lines = _lines(node)
    except _DuplicateKey as e:
        raise RuleError(path, f"{e.key!r} appears twice in the same block; keep one "
                        "(merge their lists).", e.line) from None
    try:
        parsed = RuleFile.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        raise RuleError(path, _describe(err, data, _FIELDS), _line_for(err["loc"], lines)) from None
    for i, rule in enumerate(parsed.rules):
        if isinstance(rule, KeywordRule):
            for fld in ("patterns", "exclude_patterns"):
                _check_patterns(path, rule, fld, lines.get(("rules", i, fld)))
    return list(parsed.rules)


def _check_patterns(path: Path, rule: KeywordRule, fld: str, line: int | None) -> None:
    from spacy.matcher import Matcher
    from spacy.vocab import Vocab

    matcher = Matcher(Vocab(), validate=True)
    for n, pattern in enumerate(getattr(rule, fld)):
        try:
            matcher.add(f"p{n}", [pattern])
        except Exception as e:  # spaCy raises ValueError/MatchPatternError with details
            detail = " ".join(str(e).split())[:300]
            raise RuleError(path, f"rule {rule.name!r}: {fld} item {n + 1} is not a valid spaCy "
                            f"Matcher pattern: {detail}", line) from None


def load_pack(rules_dir: Path) -> RulePack:
    """Load every *.yaml under rules_dir (or rules_dir/cues); raises RuleError on the first bad one."""
    rules_dir = Path(rules_dir)
    folder = rules_dir / "cues" if (rules_dir / "cues").is_dir() else rules_dir
    if not folder.is_dir():
        raise RuleError(rules_dir, "no such folder of rules. Pass the folder holding cues/*.yaml.")
    files = sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml"))
    if not files:
        raise RuleError(folder, "holds no *.yaml rule files.")
    rules, seen = [], {}
    for f in files:
        for rule in load_rule_file(f):
            if rule.name in seen:
                raise RuleError(f, f"rule name {rule.name!r} is already used in {seen[rule.name]}; "
                                "names must be unique across the pack.")
            seen[rule.name] = f
            rules.append(rule)
    return RulePack(rules=rules, files=files, folder=folder.parent if folder.name == "cues" else folder)


def check_dir(rules_dir: Path) -> list[tuple[Path, str | None]]:
    """Validate each file on its own: [(path, None if valid else the error message)]."""
    rules_dir = Path(rules_dir)
    folder = rules_dir / "cues" if (rules_dir / "cues").is_dir() else rules_dir
    results = []
    for f in sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml")):
        try:
            load_rule_file(f)
            results.append((f, None))
        except RuleError as e:
            results.append((f, str(e)))
    examples = folder.parent / "examples"
    if folder.name == "cues" and examples.is_dir():  # the bank learned rules are trained from
        from pipeline.cues.examples import load_bank

        try:
            load_bank(examples, set(CUE_LABELS))
            results.append((examples, None))
        except RuleError as e:
            results.append((examples, str(e)))
    return results


# ---- measuring a pack on labeled lines -----------------------------------------------------


def read_labeled(path: Path) -> list[dict]:
    """Read `{"id","text","speaker","lang","labels"}` lines; ChurnwatchError names file:line."""
    import json

    from pipeline.errors import ChurnwatchError

    rows = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ChurnwatchError(f"{path}: cannot read the file ({e}).") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ChurnwatchError(f"{path}:{n}: not a JSON object ({e.msg}).") from None
        if not isinstance(row, dict):
            raise ChurnwatchError(f"{path}:{n}: expected a JSON object, got {type(row).__name__}.")
        missing = [k for k in ("id", "text", "labels") if k not in row]
        if missing:
            raise ChurnwatchError(f"{path}:{n}: missing {', '.join(missing)}; each line needs "
                                  '{"id", "text", "speaker", "lang", "labels"}.')
        if not isinstance(row["text"], str) or not isinstance(row["labels"], list):
            raise ChurnwatchError(f"{path}:{n}: `text` must be a string and `labels` a list.")
        bad = [lab for lab in row["labels"] if lab not in CUE_LABELS]
        if bad:
            raise ChurnwatchError(f"{path}:{n}: unknown label {bad[0]!r}; valid labels: "
                                  f"{', '.join(CUE_LABELS)}.")
        row.setdefault("speaker", "customer")
        row.setdefault("lang", "en")
        rows.append(row)
    return rows


def score_predictions(rows: list[dict], predicted: list[set[str]]) -> dict:
    """Precision, recall, F1 per label, macro-F1 over the eight labels, false-alarm rate."""
    per_label, f1s = {}, []
    for label in CUE_LABELS:
        tp = sum(label in p and label in r["labels"] for r, p in zip(rows, predicted))
        fp = sum(label in p and label not in r["labels"] for r, p in zip(rows, predicted))
        fn = sum(label not in p and label in r["labels"] for r, p in zip(rows, predicted))
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per_label[label] = {"precision": round(prec, 3), "recall": round(rec, 3),
                            "f1": round(f1, 3), "support": tp + fn}
        f1s.append(f1)
    free = [p for r, p in zip(rows, predicted) if not r["labels"]]
    return {
        "per_label": per_label,
        "macro_f1": round(sum(f1s) / len(f1s), 3),
        "false_alarm_rate": round(sum(bool(p) for p in free) / max(1, len(free)), 3),
        "predictions": [{"id": r["id"], "labels": sorted(p)} for r, p in zip(rows, predicted)],
    }
