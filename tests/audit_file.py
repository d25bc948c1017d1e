"""Reading an audit file the gateway may still be writing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def audit_entries(path: Path) -> list[dict[str, Any]]:
    """The file's complete lines, parsed; none when it does not exist yet.

    A batch of lines is one ``write()``, but a reader of a regular file can see part of a write while it
    runs (CI read a line cut at character 364). A line without its newline is still being written: it is
    left for the next read, as a log shipper tailing the file leaves it."""
    if not path.exists():
        return []
    text = path.read_text()
    return [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines()]
