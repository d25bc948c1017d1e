"""Real network parts for the proxy and TLS tests: a forwarding proxy (proxy.py, a subprocess) and
certificates made by trustme, with an OpenAI-wire stand-in served over https by uvicorn.

proxy.py (PyPI ``proxy.py``) is a pure-Python forwarding proxy that speaks absolute-form HTTP and
``CONNECT``, checks basic auth and writes an access log line per request, so the tests can see what
went through it. It installs with pip like every other test tool (tinyproxy would need apt).
"""

from __future__ import annotations

import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import trustme

from gateway.standin.control import Control
from gateway.standin.openai_wire import create_openai_app
from gateway.standin.server import ThreadedServer


@dataclass
class ForwardProxy:
    url: str
    log: Path

    def lines(self) -> list[str]:
        """Its access log: one line per request or tunnel, e.g. ``CONNECT 127.0.0.1:4321``."""
        text = self.log.read_text() if self.log.exists() else ""
        return [line for line in text.splitlines() if "access_log" in line]

    def saw(self, what: str) -> bool:
        """Whether a request or tunnel naming ``what`` went through (log lines land a moment after)."""
        for _ in range(100):
            if any(what in line for line in self.lines()):
                return True
            time.sleep(0.02)
        return False


@contextmanager
def forward_proxy(tmp: Path, basic_auth: str | None = None) -> Iterator[ForwardProxy]:
    port_file, log = tmp / "proxy.port", tmp / "proxy.log"
    command = [
        sys.executable, "-m", "proxy", "--hostname", "127.0.0.1", "--port", "0", "--port-file", str(port_file),
        "--num-workers", "1", "--num-acceptors", "1", "--threaded", "--log-level", "INFO", "--log-file", str(log),
    ]  # fmt: skip
    if basic_auth:
        command += ["--basic-auth", basic_auth]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(500):
            if port_file.exists() and port_file.read_text().strip():
                break
            if process.poll() is not None:
                raise RuntimeError("proxy.py exited at start")
            time.sleep(0.02)
        else:
            raise RuntimeError("proxy.py did not start")
        time.sleep(0.2)  # the port file is written just before the socket listens
        yield ForwardProxy(f"http://127.0.0.1:{port_file.read_text().strip()}", log)
    finally:
        process.terminate()
        process.wait(10)


@dataclass
class Pki:
    """A test CA, the files that trust it, and a client certificate it signed."""

    ca: trustme.CA
    ca_file: Path
    server_cert: Path  # key and chain in one PEM file
    client_cert: Path

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context


def make_pki(tmp: Path) -> Pki:
    tmp.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    pki = Pki(ca, tmp / "ca.pem", tmp / "server.pem", tmp / "client.pem")
    ca.cert_pem.write_to_path(str(pki.ca_file))
    ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(str(pki.server_cert))
    ca.issue_cert("gateway.client").private_key_and_cert_chain_pem.write_to_path(str(pki.client_cert))
    return pki


@contextmanager
def https_standin(pki: Pki, *, require_client_cert: bool = False) -> Iterator[str]:
    """An OpenAI-wire stand-in on https://127.0.0.1:<port>, its certificate signed by ``pki``'s CA."""
    tls: dict[str, object] = {"ssl_certfile": str(pki.server_cert)}
    if require_client_cert:
        tls |= {"ssl_ca_certs": str(pki.ca_file), "ssl_cert_reqs": ssl.CERT_REQUIRED}
    with ThreadedServer(create_openai_app(Control(), name="tls"), tls=tls) as server:
        yield server.url
