"""A real redis-server for the bus tests, which can be killed and restarted on the same port.

Scope: start ``redis-server`` on a free loopback port with an append-only file fsynced on
every write (so killing it with SIGKILL loses nothing it acknowledged, as in production
with ``appendfsync always``), stop it, restart it; plus small EVE alert builders.

This is a plain module, not a conftest: the outage tests need kill/restart, which the shared
``redis_server`` fixture does not offer. Non-goals: clusters (see test_bus_cluster.py).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

REDIS_SERVER = shutil.which("redis-server")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One redis-server process on 127.0.0.1:port with its data in ``directory``."""

    def __init__(self, directory: Path, port: int | None = None, extra: tuple[str, ...] = ()):
        if REDIS_SERVER is None:
            raise RuntimeError("redis-server is not installed")
        self.directory = directory
        self.port = port or free_port()
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert REDIS_SERVER is not None
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [
            REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.directory), "--appendonly", "yes", "--appendfsync", "always",
            "--save", "", "--daemonize", "no", "--logfile", str(self.directory / "redis.log"),
            *self.extra,
        ]  # fmt: skip
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited; see {self.directory / 'redis.log'}")
            try:
                if self.client().ping():
                    return
            except (redis.AuthenticationError, redis.ResponseError):
                return  # it answered: it only wants a password
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not answer within 10 s")

    def kill(self) -> None:
        """SIGKILL: the abrupt outage (no shutdown save, clients see resets)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def client(self, **kw: Any) -> Any:
        """A plain client (typed Any: redis-py's reply unions would bury the tests in casts)."""
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5,
                           socket_connect_timeout=2, **kw)  # fmt: skip


@pytest.fixture
def redis_proc(tmp_path: Path) -> Iterator[RedisServer]:
    """A started RedisServer, stopped after the test (also when the test killed it)."""
    if REDIS_SERVER is None:
        if os.environ.get("SEKIMORI_REQUIRE_ALL") == "1":
            pytest.fail("redis-server is not installed")
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def make_alert(n: int, *, sid: int = 2000001, src: str = "10.0.0.1", dst: str = "10.0.0.2",
               severity: int = 2, signature: str | None = None) -> dict[str, Any]:  # fmt: skip
    """An EVE alert as the sensor emits it, with the ``sekimori`` response context."""
    return {
        "timestamp": f"2026-12-04T20:00:{n % 60:02d}.{n % 1000000:06d}+0000",
        "flow_id": 1_000_000 + n,
        "in_iface": "eth0",
        "event_type": "alert",
        "vlan": [100],
        "src_ip": src,
        "src_port": 40000 + n % 20000,
        "dest_ip": dst,
        "dest_port": 80,
        "proto": "TCP",
        "pkt_src": "wire/pcap",
        "alert": {
            "action": "allowed",
            "gid": 1,
            "signature_id": sid,
            "rev": 1,
            "signature": signature or f"TEST alert {sid}",
            "category": "Misc activity",
            "severity": severity,
        },
        "sekimori": {
            "alert_no": n,
            "five_tuple": {
                "proto": 6,
                "src": src,
                "sport": 40000 + n % 20000,
                "dst": dst,
                "dport": 80,
            },
            "vlan": [100],
            "iface": "eth0",
            "handshake_seen": True,
            "sensor_id": "test-sensor",
            "rule_action": "alert",
            "mode": "detect",
            "tcp": {
                "toserver": {
                    "next_seq": 1000 + n,
                    "last_ack": 5000,
                    "window": 64240,
                    "mac": "02:00:00:00:00:01",
                    "ttl": 64,
                },
                "toclient": {
                    "next_seq": 5000,
                    "last_ack": 1000 + n,
                    "window": 65160,
                    "mac": "02:00:00:00:00:02",
                    "ttl": 63,
                },
            },
        },
    }
