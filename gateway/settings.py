"""Process settings from the command line. Policy content lives in the policy files, not here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_POLICIES = Path("policies")


@dataclass(frozen=True, slots=True)
class Settings:
    policies: Path = DEFAULT_POLICIES
    host: str = "127.0.0.1"
    port: int = 8080
    demo: bool = False  # start stand-in upstreams in process and route to them
    log_level: str = "info"
    audit_log: str | None = None  # a file path, "-" for stdout, None for no audit trail
    audit_flush_seconds: float = 1.0  # longest a line waits to be written; 0 writes each line at once
    reload_seconds: float = 5.0  # how often to look for policy changes; 0 turns reloading off
    workers: int = 1  # processes serving one port
