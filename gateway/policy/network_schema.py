"""The network part of a deployment: its outbound proxy, its TLS settings and its health check.

Pure schema (no I/O): whether the TLS files load is checked by the policy loader.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

NO_PROXY = "none"  # ``proxy: none``: connect directly, whatever the environment says


def _proxy(value: str) -> str:
    """``none`` or ``http://[user:password@]host[:port]``: the proxy the deployment is reached through."""
    if value == NO_PROXY:
        return value
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError(f"bad port in proxy URL {_shown(value)!r}") from None
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(
            f"{_shown(value)!r} is not a proxy URL: write http://[user:password@]host[:port] (https upstreams are "
            f"tunnelled through it with CONNECT), or {NO_PROXY!r} to connect directly"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"a proxy URL has no path or query: {_shown(value)!r}")
    return value


def _shown(url: str) -> str:
    """A proxy URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


def _path(value: str) -> str:
    if not value.startswith("/") or any(c in value for c in " \r\n#"):
        raise ValueError(f"{value!r} is not a path on the server: write e.g. /health or /v1/models")
    return value


ProxySetting = Annotated[str, AfterValidator(_proxy)]
HealthPath = Annotated[str, AfterValidator(_path)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsSpec(_Strict):
    """How an https deployment is trusted and how the gateway proves itself to it (mTLS).

    Without ``ca_file`` the system's trust store is used (certifi's bundle where the system has none);
    ``verify: false`` turns certificate checks off and must be written out (a warning at every load)."""

    ca_file: str | None = None  # PEM bundle of the CAs that may sign the deployment's certificate
    cert_file: str | None = None  # PEM client certificate (chain) for servers that require one
    key_file: str | None = None  # its private key (unencrypted PEM); may be the same file as cert_file
    verify: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> TlsSpec:
        if self.key_file and not self.cert_file:
            raise ValueError("key_file needs cert_file")
        if not self.verify and self.ca_file:
            raise ValueError("ca_file has no use with verify: false")
        return self


class HealthSpec(_Strict):
    """An active check: ``GET <path>`` on the deployment's server every ``interval_seconds``.

    ``path`` is on the server's root (``/health`` for llama.cpp, vLLM, SGLang and TGI; ``/v1/models``
    anywhere), not under ``base_url``. A probe that fails or answers other than 2xx opens the breaker
    at once; the next good probe closes it."""

    path: HealthPath = "/health"
    interval_seconds: float = Field(10.0, ge=0.5, le=3600)
    timeout_seconds: float = Field(2.0, gt=0, le=60)

    @model_validator(mode="after")
    def _fits(self) -> HealthSpec:
        if self.timeout_seconds > self.interval_seconds:
            raise ValueError("timeout_seconds must not exceed interval_seconds")
        return self
