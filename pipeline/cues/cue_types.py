"""Cue types: what churnwatch listens for, declared in rules/cue_types.yaml, not in code.

A cue type has a label (`budget_freeze`), the words a rep reads for it after a call in each
language ("said their budget is frozen"), its weight in the hand-set risk score (`risk:`, the
keys of a risk.yaml factor without `feature`) and the reminder it raises (`reminder:`, a policy
under `cues:` in reminders.yaml; by default the one named like the label). Rule files, the
example bank, risk.yaml and reminders.yaml refer to cue types by label; `churnwatch rules check`
checks every such reference.

    types = load_cue_types(Path("rules"))
    types.labels                       # ("pricing_request", ..., in the file's order)
    types.says("competitor_mention")   # "mentioned a competitor"

A folder without cue_types.yaml gets the default pack's types (rules/cue_types.yaml of the
checkout), and without that the eight labels of `pipeline.types.CUE_LABELS`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipeline.errors import RuleError
from pipeline.rules_yaml import key_lines, line_for, plain_message, read_yaml, unknown_key
from pipeline.settings import PROJECT_ROOT
from pipeline.types import CUE_LABELS

__all__ = ["CUE_TYPES_FILE", "CueType", "CueTypes", "default_cue_types", "load_cue_types", "read_cue_types"]

CUE_TYPES_FILE = "cue_types.yaml"
# Names that mean something else where cue labels are used: the example bank's cue-free and
# two-turn files, and the reminder reasons that are not cues.
RESERVED = ("none", "context", "risk_threshold", "silence", "customer_request")


@dataclass(frozen=True)
class CueType:
    label: str  # e.g. "competitor_mention": what rules report and the store keeps
    text: dict[str, str] = field(hash=False)  # what the rep reads per language, e.g. {"en": "mentioned a competitor"}
    risk: dict[str, Any] | None = field(default=None, hash=False)  # factor keys (points, cap, label...) or None
    reminder: str | None = None  # the policy under reminders.yaml `cues:`; None: no reminder
    reminder_set: bool = False  # True when the file names the reminder (else it is the label, if present)
    description: str = ""
    line: int | None = None  # where it is declared

    def says(self, language: str | None = None) -> str:
        return self.text.get(language or "en") or self.text.get("en") or self.label.replace("_", " ")


@dataclass(frozen=True)
class CueTypes:
    types: tuple[CueType, ...]
    path: Path | None = None  # the file they come from; None for the built-in eight
    lines: dict = field(default_factory=dict, compare=False, hash=False, repr=False)  # key path -> line

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(t.label for t in self.types)

    def get(self, label: str) -> CueType | None:
        return next((t for t in self.types if t.label == label), None)

    def __contains__(self, label: object) -> bool:
        return any(t.label == label for t in self.types)

    def says(self, label: str, language: str | None = None) -> str:
        """The words for a cue of this label, e.g. "mentioned a competitor"; the label's words if undeclared."""
        t = self.get(label)
        return t.says(language) if t else label.replace("_", " ")

    def where(self, label: str) -> str:
        t = self.get(label)
        src = str(self.path) if self.path else "the built-in cue types"
        return f"{src}:{t.line}" if t and t.line else src

    def unknown(self, label: str) -> str:
        """The sentence for a label that is not declared: the valid ones and where to declare it."""
        where = self.path or f"rules/{CUE_TYPES_FILE}"
        return (f"{label!r} is not a declared cue type; declared types: {', '.join(self.labels)}. "
                f"Declare it in {where} or use one of these.")


class _TypeEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    label: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=60)]
    description: str = ""
    text: dict[str, Annotated[str, Field(min_length=1)]]
    risk: dict[str, Any] | None = None
    reminder: Annotated[str, Field(min_length=1)] | None = None

    @field_validator("label")
    @classmethod
    def _free(cls, value: str) -> str:
        if value in RESERVED:
            raise ValueError(f"{value!r} is reserved ({', '.join(RESERVED)} mean something else); choose another")
        return value

    @field_validator("text")
    @classmethod
    def _english(cls, value: dict[str, str]) -> dict[str, str]:
        if not (value.get("en") or "").strip():
            raise ValueError("needs an English text (key `en`); other languages (de, ...) are optional")
        blank = [lang for lang, t in value.items() if not t.strip()]
        if blank:
            raise ValueError(f"{blank[0]}: the text is only spaces")
        return value


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = 1
    types: Annotated[list[_TypeEntry], Field(min_length=1)]


_KEYS = {"file": list(_File.model_fields), "type": list(_TypeEntry.model_fields)}


def read_cue_types(path: Path) -> CueTypes:
    """Read and check one cue_types.yaml; RuleError with file and line on anything wrong."""
    path = Path(path)
    data, node = read_yaml(path, f" Create it from the default rules/{CUE_TYPES_FILE}.")
    if not isinstance(data, dict) or node is None:
        raise RuleError(path, "expected `types:` at the top, a list of cue types each with label and text.", 1)
    lines = key_lines(node)
    try:
        parsed = _File.model_validate(data)
    except ValidationError as e:
        errors = sorted(e.errors(), key=lambda err: err["type"] != "extra_forbidden")
        err = errors[0]
        loc = tuple(err["loc"])
        where = ".".join(str(p) for p in loc) or "file"
        if err["type"] == "extra_forbidden":
            msg = unknown_key(loc[-1], _KEYS["type" if len(loc) > 1 else "file"])
            raise RuleError(path, f"{_at(loc[:-1])}{msg}", line_for(loc, lines)) from None
        msg = plain_message(err)
        got = "" if err["type"] == "missing" else f" (got {err.get('input')!r})"
        raise RuleError(path, f"{where}: {msg}{got if len(got) < 100 else ''}.", line_for(loc, lines)) from None
    seen: dict[str, int] = {}
    types = []
    for i, entry in enumerate(parsed.types):
        line = lines.get(("types", i))
        if entry.label in seen:
            raise RuleError(path, f"cue type {entry.label!r} is declared twice (also on line {seen[entry.label]}); "
                            "keep one.", lines.get(("types", i, "label"), line))
        seen[entry.label] = line or 0
        named = "reminder" in entry.model_fields_set
        types.append(CueType(label=entry.label, text=dict(entry.text), risk=entry.risk,
                             reminder=entry.reminder if named else entry.label, reminder_set=named,
                             description=entry.description, line=line))
    return CueTypes(tuple(types), path, lines)


def _at(loc: tuple) -> str:
    return (".".join(str(p) for p in loc) + ": ") if loc else ""


def load_cue_types(rules_dir: Path | None = None) -> CueTypes:
    """The cue types of a rule pack: rules_dir/cue_types.yaml (also for rules_dir = the cues/
    folder), else the default pack's."""
    if rules_dir is not None:
        rules_dir = Path(rules_dir)
        for candidate in (rules_dir / CUE_TYPES_FILE, rules_dir.parent / CUE_TYPES_FILE):
            if candidate.is_file() and (candidate.parent == rules_dir or rules_dir.name == "cues"):
                return _cached(candidate)
    return default_cue_types()


def default_cue_types() -> CueTypes:
    """The default pack's cue types (rules/cue_types.yaml of the checkout), else the eight built-in labels."""
    path = PROJECT_ROOT / "rules" / CUE_TYPES_FILE
    if path.is_file():
        return _cached(path)
    return CueTypes(tuple(CueType(label=label, text={"en": label.replace("_", " ")}) for label in CUE_LABELS))


def _cached(path: Path) -> CueTypes:
    stat = path.stat()
    return _read_once(str(path.resolve()), stat.st_mtime_ns, stat.st_size, str(path))


@functools.lru_cache(maxsize=16)
def _read_once(resolved: str, mtime_ns: int, size: int, shown: str) -> CueTypes:
    # keyed by the file's modification time and size: an edited file is read again
    return read_cue_types(Path(shown))
