"""The stages of the sales process: rules/funnel.yaml, read and checked once, names matched.

    funnel = load_funnel(Path("rules/funnel.yaml"))
    funnel.canonical("closed  WON")   # -> "Closed Won"
    funnel.position("Qualification")  # -> 1 (open stages 0..n-1, won stages n, lost stages None)

A stage name matches whatever its case and spacing ("ClosedWon", "closed won"); aliases give a
stage other names (a HubSpot pipeline's internal names). A file that does not validate raises a
RuleError naming the file, the line and what to write instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pipeline.rules_yaml import read_yaml
from pipeline.errors import RuleError

__all__ = ["DEFAULT_STAGES", "Funnel", "load_funnel", "stage_key"]

# Salesforce's standard opportunity stages (open ones in order), as in the default rules/funnel.yaml
DEFAULT_STAGES = ("Prospecting", "Qualification", "Needs Analysis", "Value Proposition", "Id. Decision Makers",
                  "Perception Analysis", "Proposal/Price Quote", "Negotiation/Review")
_TOP_KEYS = ("version", "stages", "won", "lost", "stalled_after_days", "aliases")


def stage_key(name: str) -> str:
    """What two stage names must share to be the same stage: case, spaces and underscores aside."""
    return re.sub(r"[\s_]+", "", str(name)).casefold()


@dataclass(frozen=True)
class Funnel:
    stages: tuple[str, ...]  # the open stages, in the order a deal moves through them
    won: tuple[str, ...] = ("Closed Won",)  # closing stages that win the deal
    lost: tuple[str, ...] = ("Closed Lost",)  # closing stages that lose it
    stalled_after_days: int = 30  # an open deal without a stage change for longer is stalled
    aliases: dict[str, str] = field(default_factory=dict)  # another name -> the stage it means
    source: str = "built-in"  # the file it was read from, for messages

    def __post_init__(self):
        if not self.stages:
            raise ValueError("a funnel needs at least one open stage")
        if not self.won or not self.lost:
            raise ValueError("a funnel needs at least one won and one lost stage")
        if self.stalled_after_days < 1:
            raise ValueError(f"stalled_after_days {self.stalled_after_days}: use 1 or more")
        keys: dict[str, str] = {}
        for name in self.names:
            if stage_key(name) in keys:
                raise ValueError(f"stage {name!r} is listed twice (also as {keys[stage_key(name)]!r})")
            keys[stage_key(name)] = name
        for alias, target in self.aliases.items():
            if target not in self.names:
                raise ValueError(f"alias {alias!r} is for {target!r}, which is not a stage")
            if stage_key(alias) in keys and keys[stage_key(alias)] != target:
                raise ValueError(f"alias {alias!r} already names the stage {keys[stage_key(alias)]!r}")
            keys[stage_key(alias)] = target
        object.__setattr__(self, "_keys", keys)

    @property
    def names(self) -> tuple[str, ...]:
        """Every stage, open ones first, then won, then lost."""
        return self.stages + self.won + self.lost

    def canonical(self, name: str | None) -> str | None:
        """The stage a CRM's stage name means, or None when the funnel does not know it."""
        return None if name is None else self._keys.get(stage_key(name))  # type: ignore[attr-defined]

    def position(self, stage: str) -> int | None:
        """Open stages 0..n-1 in order, won stages n (past every open stage), lost stages None."""
        if stage in self.won:
            return len(self.stages)
        if stage in self.lost:
            return None
        return self.stages.index(stage)

    def is_closed(self, stage: str) -> bool:
        return stage in self.won or stage in self.lost

    def unknown_message(self, name: str) -> str:
        """What to tell a user about a stage name this funnel does not know."""
        return (f"stage {name!r} is not in {self.source}; stages: {', '.join(self.names)}. "
                "Add it there (under stages:, or as an alias of one) and import again")


def _lines(node, path=(), out=None) -> dict[tuple, int]:
    out = {} if out is None else out
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            _lines(value, path + (getattr(key, "value", None),), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _lines(item, path + (i,), out)
    return out


def _names(data: dict, key: str, path: Path, lines: dict) -> tuple[str, ...]:
    value = data.get(key)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise RuleError(path, f"{key}: write a list of stage names, e.g. {key}: [{DEFAULT_STAGES[0]}].",
                        lines.get((key,), 1))
    for i, item in enumerate(value):
        if not isinstance(item, (str, int, float)) or not str(item).strip():
            raise RuleError(path, f"{key}[{i}]: a stage is a name (text), got {item!r}.",
                            lines.get((key, i), lines.get((key,))))
    return tuple(str(v).strip() for v in value)


def load_funnel(path: Path) -> Funnel:
    """Read and check rules/funnel.yaml; RuleError with file and line on anything wrong."""
    path = Path(path)
    data, node = read_yaml(path, " Create it from the default rules/funnel.yaml.")
    if not isinstance(data, dict) or node is None:
        raise RuleError(path, "expected a mapping with stages:, won:, lost: and stalled_after_days: at the top.", 1)
    lines = _lines(node)
    for key in data:
        if key not in _TOP_KEYS:
            raise RuleError(path, f"{key}: unknown field; the fields are {', '.join(_TOP_KEYS)}.", lines.get((key,)))
    stages, won, lost = (_names(data, k, path, lines) for k in ("stages", "won", "lost"))
    stalled = data.get("stalled_after_days", 30)
    if isinstance(stalled, bool) or not isinstance(stalled, int) or not 1 <= stalled <= 3650:
        raise RuleError(path, f"stalled_after_days: a whole number of days from 1 to 3650 (got {stalled!r}).",
                        lines.get(("stalled_after_days",)))
    aliases: dict[str, str] = {}
    raw = data.get("aliases") or {}
    if not isinstance(raw, dict):
        raise RuleError(path, "aliases: write `Stage name: [other name, ...]` per stage.", lines.get(("aliases",)))
    by_key = {stage_key(s): s for s in stages + won + lost}
    for target, others in raw.items():
        stage = by_key.get(stage_key(target))
        if stage is None:
            raise RuleError(path, f"aliases: {target!r} is not one of the stages ({', '.join(by_key.values())}).",
                            lines.get(("aliases", target)))
        for other in [others] if isinstance(others, str) else (others or []):
            aliases[str(other).strip()] = stage
    try:
        return Funnel(stages, won, lost, stalled, aliases, source=str(path))
    except ValueError as e:
        raise RuleError(path, f"{e}.", lines.get(("stages",))) from None
