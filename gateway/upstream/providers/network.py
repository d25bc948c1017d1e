"""How a deployment is reached: the outbound proxy (if any) and the TLS context, per deployment.

Proxies follow the conventions curl, requests and httpx share: ``https_proxy`` / ``HTTPS_PROXY`` for
https upstreams, ``http_proxy`` / ``HTTP_PROXY`` for http ones, ``all_proxy`` / ``ALL_PROXY`` for both
when the specific one is unset (the lowercase name wins over the uppercase one), and ``no_proxy`` /
``NO_PROXY``, a comma-separated list of hosts that are reached directly: ``*`` (everything), a host
name (it and its subdomains; a leading dot or ``*.`` is the same), an IP address or CIDR block, each
optionally with ``:port``. ``HTTP_PROXY`` is ignored when ``REQUEST_METHOD`` is set (a CGI
environment, where a client's ``Proxy:`` header would become it: "httpoxy").

A deployment's ``proxy:`` overrides the environment: a URL, or ``none`` for a direct connection.
Only ``http://`` proxies are spoken to (plain HTTP to the proxy; https upstreams are tunnelled with
``CONNECT``, so TLS runs end to end with the upstream); credentials in the URL are sent as
``Proxy-Authorization: Basic``.

TLS contexts are built once per distinct ``tls:`` setting and shared: without ``ca_file`` the
system's trust store (``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` honoured), certifi's bundle where the
system has no CA at all.
"""

from __future__ import annotations

import base64
import functools
import ipaddress
import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from gateway.policy.network_schema import NO_PROXY, TlsSpec

log = logging.getLogger("gateway.network")


@dataclass(frozen=True, slots=True)
class Proxy:
    """An HTTP proxy: where to connect, and the ``Proxy-Authorization`` value when it needs one."""

    host: str
    port: int
    authorization: str | None = None

    def __str__(self) -> str:  # never the credentials
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def parse_proxy(url: str) -> Proxy:
    """An ``http://[user:password@]host[:port]`` URL (a bare ``host:port`` is read as http)."""
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise ValueError("bad port in the proxy URL") from None
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"only http:// proxies are supported, not {parts.scheme}://")
    authorization = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    return Proxy(parts.hostname, port or 80, authorization)


@dataclass(frozen=True, slots=True)
class ProxyEnv:
    """The proxies the environment names, read once (at start and at each policy load)."""

    http: Proxy | None = None
    https: Proxy | None = None
    no_proxy: tuple[str, ...] = ()

    @classmethod
    def read(cls, env: Mapping[str, str]) -> ProxyEnv:
        """Raises ``ValueError`` naming the variable when a proxy URL cannot be used."""
        everything = _proxy_var(env, "all_proxy")
        http = None if env.get("REQUEST_METHOD") else _proxy_var(env, "http_proxy")
        https = _proxy_var(env, "https_proxy")
        no_proxy = _get(env, "no_proxy")[1] or ""
        entries = tuple(e.strip().lower() for e in no_proxy.split(",") if e.strip())
        return cls(http or everything, https or everything, entries)

    def for_url(self, scheme: str, host: str, port: int) -> Proxy | None:
        proxy = self.https if scheme == "https" else self.http
        if proxy is None or bypassed(self.no_proxy, host, port):
            return None
        return proxy


def _get(env: Mapping[str, str], name: str) -> tuple[str, str | None]:
    for key in (name, name.upper()):
        value = env.get(key)
        if value:
            return key, value.strip()
    return name.upper(), None


def _proxy_var(env: Mapping[str, str], name: str) -> Proxy | None:
    key, value = _get(env, name)
    if not value:
        return None
    try:
        return parse_proxy(value)
    except ValueError as exc:
        raise ValueError(f"environment variable {key}: {exc}") from None


def bypassed(entries: tuple[str, ...], host: str, port: int) -> bool:
    """Whether ``NO_PROXY``'s ``entries`` say to reach ``host:port`` directly."""
    host = host.lower().rstrip(".")
    return any(_matches(entry, host, port) for entry in entries)


def _matches(entry: str, host: str, port: int) -> bool:
    if entry == "*":
        return True
    name, want_port = _split_port(entry)
    if want_port is not None and want_port != port:
        return False
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    if address is not None:
        try:
            return address in ipaddress.ip_network(name.strip("[]"), strict=False)
        except ValueError:
            return False
    name = name.removeprefix("*").lstrip(".")
    return bool(name) and (host == name or host.endswith("." + name))


def _split_port(entry: str) -> tuple[str, int | None]:
    """``host:port``, ``[v6]:port``, a bare IPv6 address (no port), a CIDR block."""
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        if port.isdigit():
            return host, int(port)
    return entry, None


def choose_proxy(setting: str | None, env: ProxyEnv, url: str) -> Proxy | None:
    """The proxy for one deployment: its own ``proxy:`` if written (``none``: direct), else the environment's."""
    if setting == NO_PROXY:
        return None
    if setting is not None:
        return parse_proxy(setting)
    parts = urlsplit(url)
    if not parts.hostname:
        return None
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    return env.for_url(parts.scheme, parts.hostname, port)


@functools.lru_cache(maxsize=64)
def tls_context(spec: TlsSpec | None) -> ssl.SSLContext:
    """One client context per distinct setting, shared by the deployments that write the same.

    Raises ``OSError`` or ``ssl.SSLError`` when a file cannot be read or does not hold what it should."""
    spec = spec or TlsSpec()
    context = ssl.create_default_context(cafile=spec.ca_file)
    if spec.ca_file is None and spec.verify and not context.cert_store_stats()["x509_ca"]:
        _load_certifi(context)
    if not spec.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if spec.cert_file:
        context.load_cert_chain(spec.cert_file, spec.key_file)
    context.set_alpn_protocols(["http/1.1"])
    return context


def _load_certifi(context: ssl.SSLContext) -> None:
    """The system has no CA certificates (a slim container): certifi's bundle, when installed."""
    try:
        import certifi
    except ImportError:
        log.warning("no CA certificates in the system store and certifi is not installed: https upstreams will fail")
        return
    context.load_verify_locations(certifi.where())


def tls_problem(spec: TlsSpec) -> str | None:
    """Why ``spec`` cannot be used (a file missing or not PEM of the right kind), for the policy loader."""
    try:
        tls_context(spec)
    except (OSError, ssl.SSLError, ValueError) as exc:
        named = [f for f in (spec.ca_file, spec.cert_file, spec.key_file) if f]
        return f"cannot load {', '.join(named)}: {exc}"
    return None


@dataclass(frozen=True, slots=True)
class Link:
    """How one deployment is reached: through ``proxy`` (None: directly), with ``tls`` (None: the default)."""

    proxy: Proxy | None = None
    tls: ssl.SSLContext | None = None


def link_for(setting: str | None, tls: TlsSpec | None, url: str, env: ProxyEnv) -> Link:
    """A deployment's link from its ``proxy:`` and ``tls:`` settings and the environment's proxies."""
    return Link(choose_proxy(setting, env, url), tls_context(tls) if tls is not None else None)
