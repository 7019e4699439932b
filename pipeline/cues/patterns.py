"""Regular expressions inside token patterns (`{TEXT: {REGEX: ...}}`): refuse the ones that can hang.

Python's `re` backtracks: a repeat inside a repeat, such as `^(a+)+$`, tries every way of
splitting a word between the two, so one 32-letter token takes more than a minute and a call
never finishes `detect`. `regex_problem(pattern)` finds, without running anything, a repeated
group (`+`, `*`, `{2,}` ...) holding an open-ended repeat, and says how to write it instead.
Bounded repeats inside repeats (`(ab{1,3}){1,5}`) and possessive or atomic ones (`(a++)+`,
`(?>a+)+`) are fine: they cannot backtrack without end.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

try:  # the parser behind `re`; Python 3.11 names it re._parser
    from re import _constants as _c
    from re import _parser as _sre
except ImportError:  # pragma: no cover - other Pythons: only the compile check runs
    _c = _sre = None

__all__ = ["regex_problem", "regexes"]


def regexes(pattern: Any) -> Iterator[str]:
    """Every REGEX value in a spaCy token pattern (a list of token dicts, nested at any depth)."""
    if isinstance(pattern, dict):
        for key, value in pattern.items():
            if str(key).upper() == "REGEX" and isinstance(value, str):
                yield value
            else:
                yield from regexes(value)
    elif isinstance(pattern, list):
        for item in pattern:
            yield from regexes(item)


def regex_problem(pattern: Any) -> str | None:
    """Why a token pattern's regular expression is refused, or None when all are safe."""
    for rx in regexes(pattern):
        try:
            re.compile(rx)
        except re.error as e:
            return f"the REGEX {rx!r} is not a valid regular expression ({e})."
        if _sre is None:
            continue
        try:
            nested = _nested_repeat(_sre.parse(rx), inside=False)
        except (re.error, RecursionError):
            nested = False
        if nested:
            return (f"the REGEX {rx!r} repeats a group that itself repeats without limit (like `(a+)+`); "
                    "on a long word it can run for minutes. Repeat once, e.g. `^a+$` instead of `^(a+)+$`, "
                    "or give the inner repeat a limit such as {1,5}.")
    return None


def _unbounded(hi: int) -> bool:
    return hi == _c.MAXREPEAT or hi > 100


def _nested_repeat(parsed, inside: bool) -> bool:
    """True when an open-ended repeat sits inside a repeat of more than one time."""
    for op, av in parsed:
        if op in (_c.MAX_REPEAT, _c.MIN_REPEAT):
            lo, hi, sub = av
            if inside and _unbounded(hi):
                return True
            if _nested_repeat(sub, inside or hi > 1):
                return True
        elif op == _c.SUBPATTERN:
            if _nested_repeat(av[-1], inside):
                return True
        elif op == _c.BRANCH:
            if any(_nested_repeat(branch, inside) for branch in av[1]):
                return True
        elif op in (_c.ASSERT, _c.ASSERT_NOT):
            if _nested_repeat(av[1], inside):
                return True
        elif op == _c.GROUPREF_EXISTS:
            if any(b is not None and _nested_repeat(b, inside) for b in av[1:]):
                return True
        # ATOMIC_GROUP and POSSESSIVE_REPEAT cannot backtrack into themselves: safe
    return False
