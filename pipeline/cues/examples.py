"""The example bank that learned cue models are trained from: plain text files a manager edits.

`rules/examples/` holds, per language code (en, de, ro, ko, ...):

    <label>.<lang>.txt    one customer sentence per line that carries the cue <label>
    none.<lang>.txt       sentences that carry no cue (hard negatives: negated, resolved,
                          hypothetical, about someone else, other objects, ...)
    context.<lang>.txt    two-turn examples: `LABEL | rep question || customer reply`, where the
                          reply carries the cue only because of the question (LABEL may be none)

Lines starting with `#` are comments, blank lines are skipped. A sentence found in two label
files carries both labels; one found in a label file and in `none` is an error (say which).
Every example remembers its `file:line`, so a model's explanation can point at it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import RuleError

NONE = "none"
CONTEXT = "context"
_NAME = re.compile(r"^(?P<label>[a-z][a-z0-9_]*)\.(?P<lang>[a-z]{2})\.txt$")


@dataclass(frozen=True)
class Example:
    text: str  # what the customer said
    labels: tuple[str, ...]  # cue labels; () for a cue-free line
    lang: str
    source: str  # "file:line" of its first appearance
    context: str | None = None  # the rep's turn before it, for two-turn examples


@dataclass(frozen=True)
class Bank:
    examples: tuple[Example, ...]
    digest: str  # sha256 over the files' contents: a fitted model names the bank it learned from
    files: tuple[str, ...]

    def labels(self) -> list[str]:
        return sorted({lab for e in self.examples for lab in e.labels})

    def langs(self) -> list[str]:
        return sorted({e.lang for e in self.examples})


def load_bank(folder: Path, labels: set[str] | None = None) -> Bank:
    """Read every *.txt of the bank; RuleError with file:line on anything malformed.

    `labels`, when given, are the cue labels declared in the rule pack: a file for any other label
    is an error that lists the valid ones.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise RuleError(folder, "no such folder of examples. Create it with files like "
                        "cancellation_intent.en.txt (one example sentence per line).")
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise RuleError(folder, "holds no example files (<label>.<lang>.txt, none.<lang>.txt).")
    digest = hashlib.sha256()
    found: dict[tuple[str, str, str | None], list] = {}  # (lang, text, context) → [labels, source]
    for path in files:
        m = _NAME.match(path.name)
        if not m:
            raise RuleError(path, "the file name must be <label>.<lang>.txt, none.<lang>.txt or "
                            "context.<lang>.txt, e.g. pricing_request.de.txt.")
        label, lang = m["label"], m["lang"]
        if labels is not None and label not in (NONE, CONTEXT) and label not in labels:
            raise RuleError(path, f"{label!r} is not a cue type of the rule pack; declared types: "
                            f"{', '.join(sorted(labels))} (or none, context). Declare it in "
                            "rules/cue_types.yaml or rename the file.")
        try:
            content = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise RuleError(path, f"cannot read the file as UTF-8 text ({e}).") from None
        digest.update(path.name.encode() + b"\0" + content.encode() + b"\0")
        for n, raw in enumerate(content.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            where = f"{path.name}:{n}"
            if label == CONTEXT:
                lab, context, text = _context_line(path, n, line, labels)
                key_labels = () if lab == NONE else (lab,)
            else:
                if "|" in line:
                    raise RuleError(path, "`|` belongs in context.<lang>.txt only (LABEL | rep question || "
                                    "customer reply); here write one plain sentence per line.", n)
                context, text = None, line
                key_labels = () if label == NONE else (label,)
            key = (lang, text.lower(), context.lower() if context else None)
            if key in found:
                have, first = found[key][:2]
                if bool(have) != bool(key_labels) and not context:
                    raise RuleError(path, f"{text!r} is also in {first} with "
                                    f"{'no cue' if not have else ', '.join(have)}: a sentence is either a cue "
                                    "or not. Remove one of the two lines.", n)
                found[key][0] = tuple(sorted(set(have) | set(key_labels)))
            else:
                found[key] = [key_labels, where, text, context]
    examples = tuple(Example(text=v[2], labels=v[0], lang=k[0], source=v[1], context=v[3])
                     for k, v in found.items())
    return Bank(examples=examples, digest=digest.hexdigest(), files=tuple(p.name for p in files))


def _context_line(path: Path, n: int, line: str, labels: set[str] | None) -> tuple[str, str, str]:
    if line.count("||") != 1 or "|" not in line.split("||")[0]:
        raise RuleError(path, "a context line reads `LABEL | rep question || customer reply`, e.g. "
                        "`invoice_dispute | did the March invoice look right? || not really`.", n)
    head, reply = line.split("||")
    lab, _, question = head.partition("|")
    lab, question, reply = lab.strip(), question.strip(), reply.strip()
    if not question or not reply:
        raise RuleError(path, "both the rep's question and the customer's reply must be there.", n)
    if labels is not None and lab != NONE and lab not in labels:
        raise RuleError(path, f"unknown cue type {lab!r}; use one of {', '.join(sorted(labels))} or none.", n)
    if not re.fullmatch(r"[a-z][a-z0-9_]*", lab):
        raise RuleError(path, f"{lab!r} is not a cue label; use a label such as pricing_request, or none.", n)
    return lab, question, reply
