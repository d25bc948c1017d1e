"""Process settings from the command line. Policy content lives in the policy files, not here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_POLICIES = Path("policies")
# Process settings from the environment that ``serve --demo`` passes on too (where the shared state and
# the traces go); the demo never sees anything else, above all no provider key.
PROCESS_ENV = (
    "REDIS_URL", "REDIS_MODE", "REDIS_SENTINEL_MASTER", "REDIS_WAIT_REPLICAS", "REDIS_TIMEOUT_SECONDS",
    "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME",
)  # fmt: skip

# The example policies (policies/ in the repository), shipped in the package: gateway/example_policies
# is a symlink to ../policies that the wheel build follows, so git holds one copy.
EXAMPLE_POLICIES = Path(__file__).resolve().parent / "example_policies"


def default_policies() -> Path:
    """``./policies`` when there is one, else the example policies shipped in the package."""
    return DEFAULT_POLICIES if DEFAULT_POLICIES.is_dir() else EXAMPLE_POLICIES


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
    # SIGTERM: how long requests in flight get before streams are cut (deploy/README.md "Rolling updates");
    # Kubernetes: terminationGracePeriodSeconds (60) - the preStop sleep (5) - a margin to stop (5)
    drain_seconds: float = 50.0
    # The HTTP edge (gateway/http/protocol.py, docs/edge-limits.md); per worker process.
    max_header_bytes: int = 64 * 1024  # request target and header lines; over it: 431
    max_headers: int = 100  # header lines; over it: 431
    idle_timeout_seconds: float = 5.0  # a connection with no request begun for this long is closed
    header_timeout_seconds: float = 10.0  # from a request's first byte to the end of its headers; then 408
    body_timeout_seconds: float = 30.0  # longest pause inside a request body; then the connection is closed
    min_body_bytes_per_second: int = 1024  # slowest average request body after body_timeout_seconds; then closed
    max_connections: int = 4096  # open connections; a new one beyond this gets 503
