"""Shared pytest fixtures: root-only tests, a real redis-server, the ../shared corpus.

Tests that need something the machine may lack (root, redis-server, ../shared) skip with
a reason on a developer's machine; with SEKIMORI_REQUIRE_ALL=1 (CI) they fail instead, so
a green CI run means everything really ran.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

REPO = Path(__file__).resolve().parent.parent
REDIS_START_TIMEOUT_S = 10.0


def require_all() -> bool:
    return os.environ.get("SEKIMORI_REQUIRE_ALL") == "1"


def skip_or_fail(reason: str) -> NoReturn:
    """Skip (developer machine) or fail (SEKIMORI_REQUIRE_ALL=1) with ``reason``."""
    if require_all():
        pytest.fail(f"{reason} (SEKIMORI_REQUIRE_ALL=1 makes this mandatory)")
    pytest.skip(reason)


@pytest.fixture
def require_root() -> None:
    if os.geteuid() != 0:
        skip_or_fail("needs root (network namespaces, raw sockets, nftables)")


@pytest.fixture
def veth(require_root: None) -> Iterator[tuple[str, str]]:
    """A veth pair made for the test (IPv6 off, no addresses: nothing else talks on it),
    removed afterwards. Frames written into one end arrive at the other."""
    tag = secrets.token_hex(3)
    a, b = f"skva{tag}", f"skvb{tag}"
    subprocess.run(["ip", "link", "add", a, "type", "veth", "peer", "name", b], check=True,
                   capture_output=True, timeout=10)  # fmt: skip
    try:
        for name in (a, b):
            subprocess.run(["sysctl", "-qw", f"net.ipv6.conf.{name}.disable_ipv6=1"],
                           capture_output=True, timeout=10)  # fmt: skip
            subprocess.run(["ip", "link", "set", name, "up"], check=True, capture_output=True,
                           timeout=10)  # fmt: skip
        yield a, b
    finally:
        subprocess.run(["ip", "link", "del", a], capture_output=True, timeout=10)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[str]:
    """A private redis-server on a free loopback port; yields its URL, kills it after."""
    binary = shutil.which("redis-server")
    if binary is None:
        skip_or_fail("redis-server is not installed (make install)")
    port = _free_port()
    workdir = tmp_path / "redis"
    workdir.mkdir()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    argv += ["--dir", str(workdir)]
    with (workdir / "redis.log").open("wb") as log:
        proc = subprocess.Popen(argv, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + REDIS_START_TIMEOUT_S
        while not _answers_ping(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                output = (workdir / "redis.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"redis-server did not start on port {port}:\n{output}")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture
def shared_dir() -> Path:
    """The team's shared folder (conformance corpus, pcaps, rules) beside the repo."""
    path = REPO.parent / "shared"
    if not path.is_dir():
        pytest.skip(f"{path} is absent")
    return path
