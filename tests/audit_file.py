"""Reading an audit file the gateway may still be writing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def audit_entries(path: Path, writing: bool = False) -> list[dict[str, Any]]:
    """The file's lines, parsed; none when it does not exist yet.

    ``writing``: the gateway may be writing to it now. A batch of lines is one ``write()``, but a reader of a
    regular file can see part of a write while it runs (CI read a line cut at character 364), so a last line
    without its newline is left for the next read, as a log shipper tailing the file leaves it. Otherwise
    every line must be whole."""
    if not path.exists():
        return []
    text = path.read_text()
    if writing:
        text = text[: text.rfind("\n") + 1]
    else:
        assert text.endswith("\n") or not text, f"{path}: the last line has no newline: {text[-200:]!r}"
    return [json.loads(line) for line in text.splitlines()]
