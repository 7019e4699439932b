"""Reading the YAML files a sales manager edits in rules/, safely and with line numbers.

Every file of the rule pack (cues/*.yaml, cue_types.yaml, risk.yaml, reminders.yaml, funnel.yaml)
is read by `read_yaml(path)`: the data, and the node tree that maps each key to its line. It
refuses, with `RuleError(path, message, line)`:

- YAML syntax errors, at the line a person would fix: an unclosed `[`, `{` or quote points at the
  line it was opened on, a wrong indentation at the line that is indented wrongly;
- a key written twice in one block (YAML would keep the last one silently);
- anchors and aliases (`&name`, `*name`) that expand to more than `MAX_NODES` values, or refer to
  themselves: a file of ten lines can otherwise grow to billions of values ("billion laughs").
  The tree is measured before anything is built from it, so such a file costs no memory.

`key_lines(node)` maps key paths to lines, `line_for(loc, lines)` finds the best line for an
error location, and `unknown_key(key, valid)` words an unknown key with the closest valid one.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import RuleError

__all__ = ["MAX_NODES", "closest", "key_lines", "line_for", "plain_message", "read_yaml", "unknown_key"]

# The most values (mappings, lists and scalars, aliases counted as often as they are used) one
# file may expand to. The largest shipped file has about 2,000.
MAX_NODES = 200_000


def read_yaml(path: Path, unreadable_hint: str = "") -> tuple[Any, Any]:
    """A YAML file's data and its node tree (for line numbers); RuleError on anything unsafe."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RuleError(path, f"cannot read the file ({e}).{unreadable_hint}") from None
    return parse_yaml(text, path)


def parse_yaml(text: str, path: Path | str) -> tuple[Any, Any]:
    """`read_yaml` for text already read; `path` names the file in errors."""
    try:
        loader = yaml.SafeLoader(text)  # checks every character first
    except yaml.reader.ReaderError as e:
        raise _bad_character(e, text, path) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        _check_size(node, path)
        _check_duplicates(node, path)
        return loader.construct_document(node), node
    except yaml.MarkedYAMLError as e:
        raise RuleError(path, *_syntax_error(e, text)) from None
    except yaml.reader.ReaderError as e:
        raise _bad_character(e, text, path) from None
    except yaml.YAMLError as e:
        raise RuleError(path, f"not valid YAML: {str(e).splitlines()[0]}. Check indentation and quotes.") from None
    except RecursionError:
        raise RuleError(path, "not valid YAML: nested too deeply.") from None
    finally:
        loader.dispose()


def _bad_character(e: yaml.reader.ReaderError, text: str, path) -> RuleError:
    line = text[:e.position].count("\n") + 1 if isinstance(e.position, int) else None
    code = f" (#x{e.character:04x})" if isinstance(e.character, int) else ""
    return RuleError(path, f"not valid YAML: the file holds a control character{code} that YAML does not "
                     "allow; delete it.", line)


def _check_size(root, path) -> None:
    """Refuse a tree whose aliases expand past MAX_NODES values, or that contains itself."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()

    def size(node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_:
            raise RuleError(path, "an alias (*name) refers to the block it sits in, so the block would "
                            "contain itself without end. Write the values out instead.",
                            node.start_mark.line + 1)
        n = 1
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            open_.add(key)
            for item in node.value:
                for part in (item if isinstance(item, tuple) else (item,)):
                    n += size(part)
                    if n > MAX_NODES:
                        break
                if n > MAX_NODES:
                    break
            open_.discard(key)
        sizes[key] = n
        return n

    if size(root) > MAX_NODES:
        raise RuleError(path, f"the anchors and aliases (&name, *name) in this file expand to more than "
                        f"{MAX_NODES:,} values, far more than any rule file needs; it was not read. "
                        "Write the lists out, or use each alias only a few times.", root.start_mark.line + 1)


def _check_duplicates(node, path, seen_nodes: set[int] | None = None) -> None:
    seen_nodes = set() if seen_nodes is None else seen_nodes
    if id(node) in seen_nodes:
        return
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        keys: set = set()
        for key, value in node.value:
            k = getattr(key, "value", None)
            if isinstance(k, str) and k != "<<":
                if k in keys:
                    raise RuleError(path, f"{k!r} appears twice in the same block; keep one (merge their lists).",
                                    key.start_mark.line + 1)
                keys.add(k)
            _check_duplicates(value, path, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _check_duplicates(item, path, seen_nodes)


def _syntax_error(e: yaml.MarkedYAMLError, text: str) -> tuple[str, int | None]:
    """The message and the line a person would fix for a YAML syntax error."""
    problem = e.problem or str(e).splitlines()[0]
    line = e.problem_mark.line + 1 if e.problem_mark else None
    context = e.context or ""
    hint = "Check indentation and quotes."
    if e.context_mark is not None and ("flow" in context or "quoted scalar" in context):
        opened = e.context_mark.line + 1
        what = "quote" if "quoted" in context else ("`[`" if "sequence" in context else "`{`")
        if opened != line:
            hint = f"The {what} opened on this line is not closed."
        line = opened
    elif "\t" in problem:
        hint = "Indent with spaces, not tabs."
    elif "<block end>" in problem and line is not None:
        line = _misindented(text, e.context_mark.line + 1 if e.context_mark else 1, line)
        hint = "Check the indentation of this line: it matches no block above it."
    return f"not valid YAML: {problem}. {hint}", line


def _misindented(text: str, first: int, problem: int) -> int:
    """The last line up to `problem` that moves left to a column no line above it used."""
    used: set[int] = set()
    best, previous = problem, None
    for n, raw in enumerate(text.splitlines()[:problem], 1):
        stripped = raw.lstrip(" ")
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(raw) - len(stripped)
        if n >= first and previous is not None and indent < previous and indent not in used:
            best = n
        used.add(indent)
        if stripped.startswith("- "):
            used.add(indent + 2)
        previous = indent + 2 if stripped.startswith("- ") else indent
    return best


def key_lines(node, path: tuple = (), out: dict | None = None) -> dict[tuple, int]:
    """Map each key path of a node tree to its 1-based line (a key's own line, list items' lines)."""
    out = {} if out is None else out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            k = getattr(key, "value", None)
            out[path + (k,)] = key.start_mark.line + 1
            key_lines(value, path + (k,), out)
            out[path + (k,)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            key_lines(item, path + (i,), out)
    return out


def line_for(loc: Iterable, lines: dict[tuple, int]) -> int | None:
    """The line of the deepest part of `loc` that the file has (skipping parts it has not)."""
    path: tuple = ()
    best = lines.get(())
    for part in loc:
        if path + (part,) in lines:
            path = path + (part,)
            best = lines[path]
    return best


def closest(key: Any, valid: Iterable[Any]) -> str | None:
    """The valid name nearest to a misspelt one, if any is close."""
    names = [str(v) for v in valid]
    near = difflib.get_close_matches(str(key), names, n=1, cutoff=0.6)
    return near[0] if near else None


def unknown_key(key: Any, valid: Iterable[Any]) -> str:
    """"`threshhold`: unknown key, did you mean `threshold`?", else the list of valid keys."""
    valid = list(valid)
    near = closest(key, valid)
    if near:
        return f"`{key}`: unknown key, did you mean `{near}`?"
    return f"`{key}`: unknown key; valid keys: {', '.join(str(v) for v in valid)}."


# pydantic's wording for a value of the wrong kind, in the words of the comments in rules/
_KINDS = {"int_parsing": "must be a whole number", "int_type": "must be a whole number",
          "int_from_float": "must be a whole number", "float_parsing": "must be a number",
          "float_type": "must be a number", "bool_parsing": "must be true or false",
          "bool_type": "must be true or false", "string_type": "must be text (put it in quotes)",
          "dict_type": "must be a block of `key: value` lines", "list_type": "must be a list, e.g. [a, b]"}


def plain_message(err: dict) -> str:
    """A pydantic error's message for a manager: "must be a whole number" rather than
    "Input should be a valid integer, unable to parse string as an integer"."""
    return _KINDS.get(err.get("type", ""), err.get("msg", "").removeprefix("Value error, "))
