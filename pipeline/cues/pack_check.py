"""`churnwatch rules check` for the cue side of a pack: cue types, rule files, examples, warnings.

`check_cues(rules_dir, models_dir)` reads each file the way `load_pack` and ingest do (so what
they refuse is an error here too) and adds what only a whole pack shows:

errors    a cue_types.yaml that does not validate; a rule file that does not (a label that is
          no declared cue type, a phrase of only spaces, a REGEX that can hang, ...); a rule
          name used twice in the pack (.yaml and .yml files alike); a malformed example bank;
          a learned rule whose cue type the fitted model in models/cues/ was not trained on
warnings  a rule for a language its model does not understand (an English-only embedding model
          with `langs: [de]`); a learned rule for a language the example bank has no sentence
          in; a cue type no rule reports (it is never found)

risk.yaml and reminders.yaml are checked by their own loaders (the CLI runs them too).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pipeline.cues.cue_types import CUE_TYPES_FILE, CueTypes, default_cue_types, read_cue_types
from pipeline.cues.rule_files import EmbeddingRule, LearnedRule, load_rule_file, rule_files
from pipeline.errors import ChurnwatchError, RuleError

__all__ = ["Finding", "check_cues"]

LANGUAGE_NAMES = {"en": "English", "de": "German", "ro": "Romanian", "ko": "Korean"}
_ANY = {"multilingual", "any"}


@dataclass(frozen=True)
class Finding:
    path: Path
    message: str | None = None  # None: the file is valid; else the whole message (with file:line)
    warning: bool = False  # a warning does not fail the check


def check_cues(rules_dir: Path, models_dir: Path | None = None) -> list[Finding]:
    """Findings for cue_types.yaml, each rule file, the example bank and the pack as a whole."""
    rules_dir = Path(rules_dir)
    folder, files = rule_files(rules_dir)
    pack_dir = folder.parent if folder.name == "cues" else folder
    out: list[Finding] = []
    if not folder.is_dir():
        return [Finding(rules_dir, str(RuleError(rules_dir, "no such folder of rules. Pass the folder holding "
                                                            "cues/*.yaml.")))]
    if not files:
        out.append(Finding(folder, str(RuleError(folder, "holds no *.yaml rule files."))))
    types = default_cue_types()
    if (pack_dir / CUE_TYPES_FILE).is_file():
        try:
            types = read_cue_types(pack_dir / CUE_TYPES_FILE)
            out.append(Finding(pack_dir / CUE_TYPES_FILE))
        except RuleError as e:
            out.append(Finding(pack_dir / CUE_TYPES_FILE, str(e)))
    rules, names = [], {}
    for f in files:
        try:
            loaded = load_rule_file(f, types)
        except RuleError as e:
            out.append(Finding(f, str(e)))
            continue
        twice = next((r for r in loaded if r.name in names), None)
        if twice is not None:
            out.append(Finding(f, str(RuleError(f, f"rule name {twice.name!r} is already used in "
                                                   f"{names[twice.name]}; names must be unique across the pack."))))
        else:
            out.append(Finding(f))
        for r in loaded:
            names.setdefault(r.name, f)
            rules.append((f, r))
    bank = None
    examples = folder.parent / "examples"
    if folder.name == "cues" and examples.is_dir():  # the bank learned rules are trained from
        from pipeline.cues.examples import load_bank

        try:
            bank = load_bank(examples, set(types.labels))
            out.append(Finding(examples))
        except RuleError as e:
            out.append(Finding(examples, str(e)))
    if models_dir is not None:
        out += _learned_model(rules, Path(models_dir) / "cues")
        out += _languages(rules, Path(models_dir), bank)
    if types.path is not None and types.path.parent == pack_dir:  # the pack's own declarations
        out += _unreported(types, rules)
    return out


def _line(path: Path, name: str) -> int | None:
    """The line a rule's `name:` is on (for warnings, which have no parse error to point at)."""
    try:
        for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if text.strip().lstrip("- ").startswith("name:") and text.split(":", 1)[1].strip().strip("'\"") == name:
                return n
    except OSError:
        pass
    return None


def _warn(path: Path, name: str, message: str) -> Finding:
    return Finding(path, str(RuleError(path, f"rule {name!r}: {message}", _line(path, name))), warning=True)


def _languages(rules, models_dir: Path, bank) -> list[Finding]:
    from pipeline.weights.manifest import load_manifest

    try:
        manifest = load_manifest(models_dir)
    except ChurnwatchError:
        manifest = {}
    out = []
    for path, rule in rules:
        if isinstance(rule, EmbeddingRule):
            known = set((manifest.get(rule.model) or {}).get("languages") or ())
            if not known or known & _ANY:
                continue
            others = [lang for lang in rule.langs if lang not in known]
            if others:
                says = ", ".join(LANGUAGE_NAMES.get(k, k) for k in sorted(known))
                out.append(_warn(path, rule.name, f"langs has {', '.join(others)}, but its model {rule.model} "
                                 f"understands {says} only, so it would compare "
                                 f"{', '.join(LANGUAGE_NAMES.get(x, x) for x in others)} lines with "
                                 f"{says} examples. Remove {', '.join(others)} from langs, or use a "
                                 "multilingual model."))
        elif isinstance(rule, LearnedRule) and bank is not None:
            have = {e.lang for e in bank.examples if rule.label in e.labels}
            missing = [lang for lang in rule.langs if lang not in have]
            if missing:
                out.append(_warn(path, rule.name, f"langs has {', '.join(missing)}, but rules/examples/ has no "
                                 f"{rule.label} sentence in {', '.join(missing)}; add "
                                 f"{rule.label}.{missing[0]}.txt, then: churnwatch rules fit"))
    return out


def _learned_model(rules, folder: Path) -> list[Finding]:
    """Learned rules the fitted model cannot serve: ingest and `rules test` refuse them."""
    learned = [(p, r) for p, r in rules if isinstance(r, LearnedRule)]
    if not learned:
        return []
    manifest = folder / "manifest.json"
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        known, encoder = set(data.get("labels") or {}), data.get("encoder")
    except (OSError, ValueError):
        return [Finding(manifest, str(RuleError(manifest, "the pack has learned rules (type: learned) but no "
                                                "readable fitted model here. Fit it with: churnwatch rules fit")))]
    out = []
    for path, rule in learned:
        if rule.label not in known:
            out.append(Finding(path, str(RuleError(
                path, f"rule {rule.name!r} reports {rule.label!r}, which the fitted model in {folder} was not "
                      f"trained on. Add sentences to rules/examples/{rule.label}.<lang>.txt and run: "
                      "churnwatch rules fit (or remove the learned rule until then).", _line(path, rule.name)))))
        elif encoder and rule.model != encoder:
            out.append(Finding(path, str(RuleError(
                path, f"rule {rule.name!r} needs a learned model on {rule.model!r}, but the fitted one uses "
                      f"{encoder!r}. Refit: churnwatch rules fit", _line(path, rule.name)))))
    return out


def _unreported(types: CueTypes, rules) -> list[Finding]:
    reported = {r.label for _, r in rules}
    out = []
    for t in types.types:
        if t.label not in reported:
            out.append(Finding(types.path, str(RuleError(
                types.path, f"cue type {t.label!r}: no rule in cues/ reports it, so it is never found. "
                            "Write a rule with this label.", t.line)), warning=True))
    return out
