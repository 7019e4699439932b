"""Rule files: the schema, loading with line numbers, and the pack the detector runs.

A rule pack is a folder of YAML files (`rules/cues/*.yaml`), each holding `rules:`, a list of
keyword rules (spaCy PhraseMatcher / Matcher) and embedding rules (sentence-transformers,
nearest example). Every rule has a name, a cue label, a version, a description and a weight;
the version is stored with every cue it produces. See rules/README.md for how to write one.
A rule's label must be a cue type declared in the pack's cue_types.yaml (pipeline.cues.cue_types).

An invalid file raises `RuleError(path, message, line)`: never a traceback. `load_pack` refuses
what `churnwatch rules check` (pipeline.cues.pack_check) reports as an error: both read files
through `load_rule_file`, and names must be unique across the pack's .yaml and .yml files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.cues.cue_types import CueTypes, load_cue_types
from pipeline.errors import RuleError
from pipeline.rules_yaml import key_lines, line_for, plain_message, read_yaml, unknown_key
from pipeline.types import CUE_LABELS

__all__ = ["CUE_LABELS", "EmbeddingRule", "KeywordRule", "LearnedRule", "RuleFile", "RulePack", "check_dir",
           "load_pack", "load_rule_file", "read_labeled", "read_yaml", "rule_files", "score_predictions"]

Label = Annotated[str, Field(min_length=1)]  # a cue type declared in cue_types.yaml (checked after parsing)
Lang = Literal["en", "de", "ro", "ko"]


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("is only spaces, so it can never match anything; write the words or remove the item")
    return value


Text = Annotated[str, Field(min_length=1), AfterValidator(_not_blank)]  # a phrase or example sentence


class _RuleBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")]
    label: Label
    version: Annotated[int, Field(ge=1)]  # bump when you change the rule; stored with each cue
    description: Text
    weight: Annotated[float, Field(ge=0, le=10)] = 1.0  # how much a hit counts in the risk score
    speaker: Literal["customer", "rep", "any"] = "customer"  # whose speech the rule reads
    first_minutes: Annotated[float, Field(gt=0)] | None = None  # only the call's first N minutes
    last_minutes: Annotated[float, Field(gt=0)] | None = None  # only the call's last N minutes
    questions_only: bool = False  # only utterances that ask something


class KeywordRule(_RuleBase):
    type: Literal["keyword"]
    lang: Lang  # phrases are written in one language
    match_on: Literal["lemma", "lower", "orth"] = "lemma"  # word forms, any case, or exact text
    phrases: list[Text] = []
    patterns: list[list[dict[str, Any]]] = []  # spaCy Matcher token patterns
    requires_any: list[Text] = []  # one must also occur
    exclude: list[Text] = []  # phrases that veto the rule
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
    examples: Annotated[list[Text], Field(min_length=5)]
    counter_examples: list[Text] = []
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
    # the cue types the rules may report (the folder's cue_types.yaml, else the default pack's)
    cue_types: CueTypes = field(default_factory=load_cue_types, repr=False, compare=False)

    def by_name(self, name: str):
        return next(r for r in self.rules if r.name == name)

    @property
    def labels(self) -> list[str]:
        """The labels the rules report, sorted."""
        return sorted({r.label for r in self.rules})

    @property
    def cue_labels(self) -> tuple[str, ...]:
        """Every declared cue type, in cue_types.yaml's order: what `rules test` scores."""
        return self.cue_types.labels


# ---- loading with line numbers -------------------------------------------------------------


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
    msg = plain_message(err)
    if err["type"] == "extra_forbidden":
        kind = "keyword"
        try:
            kind = data["rules"][loc[1]].get("type", "keyword")
        except (AttributeError, IndexError, KeyError, TypeError):
            pass
        valid = model_fields.get(kind, model_fields["file"] if len(loc) == 1 else [])
        if len(loc) == 1:
            valid = model_fields["file"]
        return f"{prefix}{unknown_key(loc[-1], valid)}"
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


def _first_error(e: ValidationError) -> dict:
    """The error to show: an unknown key before the "missing field" it causes (`threshhold`)."""
    return sorted(e.errors(), key=lambda err: err["type"] != "extra_forbidden")[0]


def load_rule_file(path: Path, cue_types: CueTypes | None = None) -> list[KeywordRule | EmbeddingRule | LearnedRule]:
    """Read and validate one YAML rule file; raises RuleError naming file, line and value.

    `cue_types`: the labels its rules may report (default: those of the pack the file lies in).
    """
    path = Path(path)
    cue_types = cue_types if cue_types is not None else load_cue_types(path.parent)
    data, node = read_yaml(path)
    if not isinstance(data, dict) or node is None:
        raise RuleError(path, "expected a mapping with a `rules:` list at the top, e.g. "
                        "`rules:\\n  - name: ...`.", 1)
    lines = key_lines(node)
    try:
        parsed = RuleFile.model_validate(data)
    except ValidationError as e:
        err = _first_error(e)
        raise RuleError(path, _describe(err, data, _FIELDS), line_for(err["loc"], lines)) from None
    seen: dict[str, int | None] = {}
    for i, rule in enumerate(parsed.rules):
        if rule.label not in cue_types:
            raise RuleError(path, f"rule {rule.name!r}, label: {cue_types.unknown(rule.label)}",
                            lines.get(("rules", i, "label")))
        if rule.name in seen:
            raise RuleError(path, f"rule name {rule.name!r} is already used in this file"
                            f"{f' (line {seen[rule.name]})' if seen[rule.name] else ''}; names must be unique "
                            "across the pack.", lines.get(("rules", i, "name")))
        seen[rule.name] = lines.get(("rules", i, "name"))
        if isinstance(rule, KeywordRule):
            for fld in ("patterns", "exclude_patterns"):
                _check_patterns(path, rule, fld, lines.get(("rules", i, fld)))
    return list(parsed.rules)


def _check_patterns(path: Path, rule: KeywordRule, fld: str, line: int | None) -> None:
    from spacy.matcher import Matcher
    from spacy.vocab import Vocab

    from pipeline.cues.patterns import regex_problem

    matcher = Matcher(Vocab(), validate=True)
    for n, pattern in enumerate(getattr(rule, fld)):
        problem = regex_problem(pattern)
        if problem:
            raise RuleError(path, f"rule {rule.name!r}: {fld} item {n + 1}: {problem}", line)
        try:
            matcher.add(f"p{n}", [pattern])
        except Exception as e:  # spaCy raises ValueError/MatchPatternError with details
            detail = " ".join(str(e).split())[:300]
            raise RuleError(path, f"rule {rule.name!r}: {fld} item {n + 1} is not a valid spaCy "
                            f"Matcher pattern: {detail}", line) from None


def rule_files(rules_dir: Path) -> tuple[Path, list[Path]]:
    """The folder holding a pack's rule files (rules_dir/cues, else rules_dir) and its *.yaml and *.yml."""
    rules_dir = Path(rules_dir)
    folder = rules_dir / "cues" if (rules_dir / "cues").is_dir() else rules_dir
    return folder, sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml"))


def load_pack(rules_dir: Path) -> RulePack:
    """Load every *.yaml under rules_dir (or rules_dir/cues); raises RuleError on the first bad one."""
    rules_dir = Path(rules_dir)
    folder, files = rule_files(rules_dir)
    if not folder.is_dir():
        raise RuleError(rules_dir, "no such folder of rules. Pass the folder holding cues/*.yaml.")
    if not files:
        raise RuleError(folder, "holds no *.yaml rule files.")
    cue_types = load_cue_types(folder)
    rules, seen = [], {}
    for f in files:
        for rule in load_rule_file(f, cue_types):
            if rule.name in seen:
                raise RuleError(f, f"rule name {rule.name!r} is already used in {seen[rule.name]}; "
                                "names must be unique across the pack.")
            seen[rule.name] = f
            rules.append(rule)
    return RulePack(rules=rules, files=files, folder=folder.parent if folder.name == "cues" else folder,
                    cue_types=cue_types)


def check_dir(rules_dir: Path) -> list[tuple[Path, str | None]]:
    """The cue rules of a pack, checked: [(path, None if valid else the error message)] for
    cue_types.yaml, each rule file, names repeated across files, and the example bank.
    `churnwatch rules check` adds risk.yaml, reminders.yaml and warnings (pipeline.cues.pack_check)."""
    from pipeline.cues.pack_check import check_cues

    return [(f.path, f.message) for f in check_cues(rules_dir) if not f.warning]


# ---- measuring a pack on labeled lines -----------------------------------------------------


def read_labeled(path: Path, labels: tuple[str, ...] = CUE_LABELS) -> list[dict]:
    """Read `{"id","text","speaker","lang","labels"}` lines; ChurnwatchError names file:line.
    `labels`: the cue types a line may carry (the pack's declared ones)."""
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
        bad = [lab for lab in row["labels"] if lab not in labels]
        if bad:
            raise ChurnwatchError(f"{path}:{n}: unknown label {bad[0]!r}; valid labels: "
                                  f"{', '.join(labels)}.")
        row.setdefault("speaker", "customer")
        row.setdefault("lang", "en")
        rows.append(row)
    return rows


def score_predictions(rows: list[dict], predicted: list[set[str]], labels: tuple[str, ...] = CUE_LABELS) -> dict:
    """Precision, recall, F1 per label, macro-F1 over the cue types `labels` (default: the eight
    of the default pack), false-alarm rate."""
    per_label, f1s = {}, []
    for label in labels:
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
