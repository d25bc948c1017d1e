"""Where the shared state lives, read from the process environment (no I/O, no redis import).

==========================  =====================================================================
``REDIS_MODE``              ``standalone`` (the default), ``cluster`` or ``sentinel``
``REDIS_URL``               standalone: ``redis://[user:password@]host:port/db`` (or ``rediss://``,
                            ``unix://``). cluster: seed nodes, ``redis://[user:password@]h1:p1,h2:p2``
                            (any few nodes; the rest is discovered). sentinel: the sentinels,
                            ``redis://[user:password@]s1:26379,s2:26379/db``; user, password and db
                            are the primary's.
``REDIS_SENTINEL_MASTER``   sentinel: the name the sentinels know the primary by (``mymaster``)
``REDIS_WAIT_REPLICAS``     a budget reservation or settlement is acknowledged only after this many
                            replicas have it (Redis ``WAIT``); 0 (the default) does not wait
``REDIS_TIMEOUT_SECONDS``   each socket step (0.25); a whole call gets twice that
==========================  =====================================================================

Without ``REDIS_URL`` the state stays in the process (one replica).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar, get_args
from urllib.parse import unquote

RedisMode = Literal["standalone", "cluster", "sentinel"]
MODES: tuple[RedisMode, ...] = get_args(RedisMode)
N = TypeVar("N", int, float)
DEFAULT_MASTER = "mymaster"
DEFAULT_TIMEOUT_SECONDS = 0.05  # a RedisTarget built in code
ENV_TIMEOUT_SECONDS = 0.25  # from the process settings: a loaded box must not see Redis as down
# the process settings the Redis backend reads (none of them is a provider key)
ENV_NAMES = ("REDIS_URL", "REDIS_MODE", "REDIS_SENTINEL_MASTER", "REDIS_WAIT_REPLICAS", "REDIS_TIMEOUT_SECONDS")


class RedisSettingError(ValueError):
    """A Redis process setting is malformed; the message names the variable."""


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class RedisTarget:
    mode: RedisMode
    url: str
    master: str = DEFAULT_MASTER
    wait_replicas: int = 0
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS

    @property
    def tls(self) -> bool:
        return self.url.startswith("rediss://")

    def credentials(self) -> tuple[str | None, str | None]:
        """(username, password) from the URL, None where absent."""
        userinfo = self._split()[0]
        if userinfo is None:
            return None, None
        user, _, password = userinfo.partition(":")
        return unquote(user) or None, unquote(password) if password else None

    def addresses(self, default_port: int) -> list[Address]:
        """The hosts of a multi-host URL (cluster seed nodes, sentinels)."""
        out = []
        for item in self._split()[1].split(","):
            host, _, port = item.strip().rpartition(":") if ":" in item else (item.strip(), "", "")
            host = host.strip("[]")
            if not host:
                raise RedisSettingError(f"REDIS_URL: {item.strip()!r} is not host:port")
            try:
                out.append(Address(host, int(port) if port else default_port))
            except ValueError:
                raise RedisSettingError(f"REDIS_URL: the port of {item.strip()!r} is not a number") from None
        return out

    def db(self) -> int:
        path = self._split()[2].strip("/")
        try:
            return int(path) if path else 0
        except ValueError:
            raise RedisSettingError(f"REDIS_URL: the database {path!r} is not a number") from None

    def _split(self) -> tuple[str | None, str, str]:
        """userinfo, hosts, path of ``scheme://[userinfo@]hosts[/path]``."""
        rest = self.url.split("://", 1)[1]
        rest = rest.split("?", 1)[0]
        netloc, _, path = rest.partition("/")
        userinfo, _, hosts = netloc.rpartition("@")
        return userinfo or None, hosts, path


def target_from_env(env: Mapping[str, str]) -> RedisTarget | None:
    """The Redis the process settings name, or None for in-process state. Raises RedisSettingError."""
    url = (env.get("REDIS_URL") or "").strip()
    mode = (env.get("REDIS_MODE") or "standalone").strip().lower()
    if mode not in MODES:
        raise RedisSettingError(f"REDIS_MODE: {mode!r} is not one of {', '.join(MODES)}")
    if not url:
        if mode != "standalone":
            raise RedisSettingError(f"REDIS_MODE={mode} needs REDIS_URL (the seed nodes or the sentinels)")
        return None
    return checked(
        RedisTarget(
            mode,  # checked against MODES above
            url,
            master=(env.get("REDIS_SENTINEL_MASTER") or DEFAULT_MASTER).strip(),
            wait_replicas=_number(env, "REDIS_WAIT_REPLICAS", int, 0),
            timeout_seconds=_number(env, "REDIS_TIMEOUT_SECONDS", float, ENV_TIMEOUT_SECONDS),
        )
    )


def checked(target: RedisTarget) -> RedisTarget:
    schemes = ("redis", "rediss", "unix") if target.mode == "standalone" else ("redis", "rediss")
    scheme = target.url.split("://", 1)[0] if "://" in target.url else ""
    if scheme not in schemes:
        allowed = ", ".join(f"{s}://" for s in schemes)
        raise RedisSettingError(
            f"REDIS_URL: {scheme or target.url!r} is not a scheme REDIS_MODE={target.mode} takes ({allowed})"
        )
    if target.mode != "standalone":
        target.addresses(6379)
        if target.mode == "cluster" and target.db() != 0:
            raise RedisSettingError("REDIS_URL: a Redis Cluster has only database 0")
    if target.wait_replicas < 0 or target.timeout_seconds <= 0:
        raise RedisSettingError("REDIS_WAIT_REPLICAS must be 0 or more and REDIS_TIMEOUT_SECONDS more than 0")
    return target


def _number(env: Mapping[str, str], name: str, kind: type[N], default: N) -> N:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError:
        raise RedisSettingError(f"{name}: {raw!r} is not a {'whole ' if kind is int else ''}number") from None
