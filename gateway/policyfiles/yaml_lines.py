"""YAML with line numbers: every path in a document mapped to the line its key (or item) starts on,
so a problem can be reported as ``file:line: path: message``."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml

_LAST_PART = re.compile(r"(\.[^.\[]*|\[\d+\])$")


def dotted(loc: Iterable[Any]) -> str:
    """``('tenants', 'acme', 'keys', 0)`` -> ``tenants.acme.keys[0]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


@dataclass(frozen=True)
class LineMap:
    """Dotted path -> 1-based line; ``duplicates`` lists keys written twice in one mapping."""

    lines: dict[str, int] = field(default_factory=dict)
    duplicates: list[tuple[str, int]] = field(default_factory=list)

    def line_of(self, path: str) -> int | None:
        """The line of ``path``, else of its nearest written parent."""
        while path:
            if path in self.lines:
                return self.lines[path]
            shorter = _LAST_PART.sub("", path)
            if shorter == path:
                return None
            path = shorter
        return None


def load_with_lines(text: str) -> tuple[Any, LineMap]:
    """Parse ``text`` once (raises ``yaml.YAMLError``): the data, and where each of its paths is written."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = None if node is None else loader.construct_document(node)
    finally:
        loader.dispose()
    lines = LineMap()
    if node is not None:
        _walk(node, (), lines)
    return data, lines


def _walk(node: yaml.Node, loc: tuple[Any, ...], out: LineMap) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else str(key)
            path = (*loc, name)
            rendered = dotted(path)
            if name in seen:
                out.duplicates.append((rendered, key.start_mark.line + 1))
            seen.add(name)
            out.lines.setdefault(rendered, key.start_mark.line + 1)
            _walk(value, path, out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            path = (*loc, index)
            out.lines.setdefault(dotted(path), item.start_mark.line + 1)
            _walk(item, path, out)
