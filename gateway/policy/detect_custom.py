"""Ops' own detectors (``detectors: {employee_id: "EMP-[0-9]{6}"}``): checked and compiled once, at load.

Python's ``re`` backtracks, so a careless pattern (``(a+)+b``) can take exponential time on a crafted
prompt. A custom pattern is therefore held to a shape whose work per starting position is bounded by the
pattern alone, never by the prompt, which keeps every scan linear in the text:

- every repeat has an upper bound (``{1,64}``, not ``+`` or ``*``), and a match is at most
  :data:`MAX_MATCH_CHARS` characters long;
- a repeat of more than one may not contain another repeat or an alternation (no ``(a{1,5}){1,5}``,
  no ``(a|ab){2,9}``);
- no backreferences;
- the paths the matcher may try from one position (the product of each repeat's range, the sum of
  each alternation's branches) are at most :data:`MAX_PATHS`.
"""

from __future__ import annotations

import re
import re._parser as sre  # type: ignore[import-not-found]  # the stdlib's parser of patterns: the shape check reads its tree
from typing import Any

MAX_MATCH_CHARS = 128
MAX_PATHS = 128
MAX_PATTERN_CHARS = 512
_SIMPLE = frozenset({"LITERAL", "NOT_LITERAL", "IN", "ANY", "AT", "CATEGORY"})
_REPEATS = frozenset({"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"})


class UnsafePattern(ValueError):
    pass


def compile_custom(pattern: str) -> re.Pattern[str]:
    """The compiled pattern, or ``UnsafePattern`` / ``ValueError`` naming what is wrong with it."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise UnsafePattern(f"a detector pattern may be at most {MAX_PATTERN_CHARS} characters")
    try:
        tree = sre.parse(pattern)
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    _paths(list(tree))
    if tree.getwidth()[1] > MAX_MATCH_CHARS:
        raise UnsafePattern(f"a detector pattern may match at most {MAX_MATCH_CHARS} characters")
    if tree.getwidth()[0] == 0:
        raise UnsafePattern("a detector pattern must not match the empty string")
    return compiled


def _paths(items: list[tuple[Any, Any]]) -> int:
    total = 1
    for op, arg in items:
        total *= _item_paths(str(op), arg)
        if total > MAX_PATHS:
            raise UnsafePattern(
                f"the pattern has too many ways to match from one position (more than {MAX_PATHS}); narrow its repeats"
            )
    return total


def _item_paths(op: str, arg: Any) -> int:
    if op in _SIMPLE:
        return 1
    if op in ("SUBPATTERN", "ATOMIC_GROUP"):
        return _paths(list(arg[-1]))
    if op in ("ASSERT", "ASSERT_NOT"):
        return _paths(list(arg[1]))
    if op == "BRANCH":
        return sum(_paths(list(alt)) for alt in arg[1])
    if op in _REPEATS:
        low, high, body = arg
        if high == sre.MAXREPEAT:
            raise UnsafePattern("every repeat needs an upper bound: write {1,64} instead of + or *")
        inner = _paths(list(body))
        if high > 1 and (inner > 1 or _has_repeat(list(body))):
            raise UnsafePattern("a repeated group may not itself contain a repeat or an alternation")
        return int(high - low + 1) * inner
    if op in ("GROUPREF", "GROUPREF_EXISTS"):
        raise UnsafePattern("backreferences are not allowed in a detector pattern")
    raise UnsafePattern(f"the pattern uses a construct detectors do not allow ({op.lower()})")


def _has_repeat(items: list[tuple[Any, Any]]) -> bool:
    for op, arg in items:
        name = str(op)
        if name in _REPEATS:
            return True
        if name in ("SUBPATTERN", "ATOMIC_GROUP") and _has_repeat(list(arg[-1])):
            return True
        if name in ("ASSERT", "ASSERT_NOT") and _has_repeat(list(arg[1])):
            return True
    return False
