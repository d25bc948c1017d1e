"""Aliases: client model names and glob patterns mapped to routes or catalog models.

Agent clients send names of their own (Claude Code asks for ``claude-sonnet-4-5-20250929``, Codex for
``gpt-5-codex``); the policy's ``aliases`` section maps them, e.g. ``aliases: {"claude-*": auto}``.
A name resolves in this order: a route or catalog model of that exact id is itself (an alias never
shadows one), then an exact alias, then the first pattern that matches, in file order.
Patterns are shell globs (``*``, ``?``, ``[seq]``, ``[!seq]``), matched case-sensitively.

Pure: no I/O. The patterns are compiled once per policy revision.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from gateway.policy.hints import did_you_mean

GLOB_CHARS = frozenset("*?[")


def is_pattern(name: str) -> bool:
    return any(c in GLOB_CHARS for c in name)


@dataclass(frozen=True, slots=True)
class Resolved:
    """What a client's model name resolved to: ``target`` (a route or catalog model) through ``alias``
    (the exact name or the pattern that matched, as written in the policy)."""

    target: str
    alias: str


@dataclass(frozen=True, slots=True)
class Aliases:
    exact: Mapping[str, str] = field(default_factory=dict)
    patterns: tuple[tuple[str, re.Pattern[str], str], ...] = ()  # (pattern as written, compiled, target)
    ids: frozenset[str] = frozenset()  # the routes and catalog models, which are never resolved

    @classmethod
    def of(cls, aliases: Mapping[str, str], ids: Iterable[str]) -> Aliases:
        """From the policy's ``aliases`` section, keeping its order (file order, then key order)."""
        exact = {name: target for name, target in aliases.items() if not is_pattern(name)}
        patterns = tuple(
            (name, re.compile(fnmatch.translate(name)), target) for name, target in aliases.items() if is_pattern(name)
        )
        return cls(exact, patterns, frozenset(ids))

    def resolve(self, name: str) -> Resolved | None:
        """The alias ``name`` resolves through, or None when it is a route or model itself or nothing matches."""
        if name in self.ids:
            return None
        target = self.exact.get(name)
        if target is not None:
            return Resolved(target, name)
        for pattern, compiled, target in self.patterns:
            if compiled.match(name):
                return Resolved(target, pattern)
        return None

    def __bool__(self) -> bool:
        return bool(self.exact or self.patterns)


def alias_problems(
    aliases: Mapping[str, str], routes: Mapping[str, object], models: Mapping[str, object]
) -> Iterator[tuple[str, str]]:
    """(alias, "aliases.<alias>: message") for each alias whose target is unknown or that shadows an id."""
    for name, target in aliases.items():
        if name in routes or name in models:
            what = "route" if name in routes else "model"
            yield name, f"aliases.{name}: shadows the {what} of that name (an exact id always wins); remove it"
        if target not in routes and target not in models:
            yield (
                name,
                f"aliases.{name}: unknown route or model {target!r}{did_you_mean(target, [*routes, *models])} "
                f"(known routes: {', '.join(routes) or 'none'})",
            )
