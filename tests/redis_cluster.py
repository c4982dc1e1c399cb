"""A Redis Cluster for the suite: three primaries, three replicas, all on free ports.

Built with ``redis-cli --cluster create`` over real ``redis-server`` processes so that the
fault tests can kill a primary and watch its replica take over.
"""

from __future__ import annotations

import contextlib
import random
import socket
import subprocess
import time
from collections.abc import Sequence

from tests.redis_proc import RedisProcess

NODE_TIMEOUT_MS = 1000


def free_cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free and valid too."""
    for _ in range(200):
        port = random.randint(20000, 45000)
        if _is_free(port) and _is_free(port + 10000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class RedisClusterGroup:
    """Six nodes; ``url`` lists every primary as a startup node."""

    def __init__(self, *, primaries: int = 3, extra_args: Sequence[str] = (),
                 cli_args: Sequence[str] = (), password: str | None = None,
                 scheme: str = "redis+cluster") -> None:
        """``extra_args`` go to every redis-server, ``cli_args`` to every redis-cli."""
        args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                "--cluster-replica-validity-factor", "0", "--repl-diskless-sync-delay", "0",
                *extra_args]
        self.nodes = [RedisProcess(args, port=free_cluster_port(), password=password,
                                   cli_args=cli_args) for _ in range(primaries * 2)]
        self.primaries = primaries
        self.cli_args = [*cli_args, *(["--no-auth-warning", "-a", password] if password else [])]
        self.scheme = scheme

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{n.port}" for n in self.nodes[:self.primaries])
        return f"{self.scheme}://{hosts}"

    def start(self) -> RedisClusterGroup:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
        subprocess.run(["redis-cli", *self.cli_args, "--cluster", "create", *addresses,
                        "--cluster-replicas", "1", "--cluster-yes"],
                       capture_output=True, timeout=60, check=True)
        self.wait_healthy()
        return self

    def wait_healthy(self, *, timeout_s: float = 30.0) -> None:
        """Every live node reports ``cluster_state:ok`` and sees every replica attached."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            live = [n for n in self.nodes if n.proc and n.proc.poll() is None]
            if all(b"cluster_state:ok" in n.cli("CLUSTER", "INFO", check=False) for n in live) \
                    and self._replicas_synced(live):
                return
            time.sleep(0.1)
        raise TimeoutError("cluster did not become healthy")

    def _replicas_synced(self, live: list[RedisProcess]) -> bool:
        for node in live:
            info = node.cli("INFO", "replication", check=False)
            if b"role:slave" in info and b"master_link_status:up" not in info:
                return False
        return True

    def primary_nodes(self) -> list[RedisProcess]:
        return [n for n in self.nodes if n.proc and n.proc.poll() is None
                and b"role:master" in n.cli("INFO", "replication", check=False)]

    def node_for_slot_of(self, key: str) -> RedisProcess:
        """The live primary that currently serves ``key``."""
        slot = int(self.nodes[0].cli("CLUSTER", "KEYSLOT", key).strip())
        for node in self.primary_nodes():
            for line in node.cli("CLUSTER", "NODES").decode().splitlines():
                fields = line.split()
                if "myself" not in fields[2]:
                    continue
                for part in fields[8:]:
                    low, _, high = part.partition("-")
                    if low.isdigit() and int(low) <= slot <= int(high or low):
                        return node
        raise LookupError(f"no primary serves slot {slot}")

    def key_count(self) -> int:
        return sum(int(n.cli("DBSIZE").strip() or 0) for n in self.primary_nodes())

    def stop(self) -> None:
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.stop()
