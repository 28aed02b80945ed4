"""Live capture on a veth pair between two network namespaces this test creates.

The capturing side runs inside its namespace (``ip netns exec`` + python), so no
traffic touches the host's own interfaces. Root only; mandatory under
SEKIMORI_REQUIRE_ALL=1 (see conftest.require_root)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

CAPTURER = r"""
import json, signal, sys
from sensor.capture import LiveCapture
from sensor.decode import Decoder
from sensor.packet import Packet
cap = LiveCapture("vb", bpf="udp and dst port 9999", timeout_ms=50)
signal.signal(signal.SIGALRM, lambda *_: cap.stop())  # stop() from a signal handler
signal.alarm(15)
print("ready", flush=True)
got = []
dec = Decoder()
for ts_sec, ts_usec, linktype, data, wirelen in cap:
    pkt = Packet(len(got) + 1, ts_sec, ts_usec, linktype, data)
    dec.decode(pkt)
    got.append([pkt.sport, pkt.dport, pkt.payload.decode(), ts_sec, ts_usec, wirelen == len(data)])
    if len(got) == 5:
        break
received, dropped, ifdropped = cap.stats()
cap.close()
print(json.dumps({"got": got, "received": received}), flush=True)
"""

SENDER = r"""
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.199.0.1", 4444))
for i in range(5):
    s.sendto(f"probe-{i}".encode(), ("10.199.0.2", 9999))
"""


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture
def veth_namespaces(require_root: None) -> Iterator[tuple[str, str]]:
    tag = uuid.uuid4().hex[:6]
    ns_a, ns_b = f"skm-cap-a-{tag}", f"skm-cap-b-{tag}"
    created: list[str] = []
    try:
        for ns in (ns_a, ns_b):
            ip("netns", "add", ns)
            created.append(ns)
        ip("-n", ns_a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", ns_b)
        ip("-n", ns_a, "addr", "add", "10.199.0.1/24", "dev", "va")
        ip("-n", ns_b, "addr", "add", "10.199.0.2/24", "dev", "vb")
        for ns, dev in ((ns_a, "va"), (ns_b, "vb")):
            ip("-n", ns, "link", "set", dev, "up")
            ip("-n", ns, "link", "set", "lo", "up")
        yield ns_a, ns_b
    finally:
        for ns in created:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


def test_live_capture_receives_udp_from_another_namespace(veth_namespaces: tuple[str, str]) -> None:
    ns_a, ns_b = veth_namespaces
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    capturer = subprocess.Popen(
        ["ip", "netns", "exec", ns_b, sys.executable, "-c", CAPTURER],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    try:
        assert capturer.stdout is not None
        assert capturer.stdout.readline().strip() == "ready"
        # Interfaces and ARP may take a moment to settle; resend until captured.
        for _ in range(20):
            subprocess.run(
                ["ip", "netns", "exec", ns_a, sys.executable, "-c", SENDER],
                check=True,
                timeout=10,
                env=env,
            )
            if capturer.poll() is not None:
                break
            time.sleep(0.2)
        out, err = capturer.communicate(timeout=30)
    finally:
        if capturer.poll() is None:
            capturer.kill()
            capturer.wait()
    assert capturer.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    got = result["got"]
    assert len(got) == 5
    assert {tuple(g[:2]) for g in got} == {(4444, 9999)}
    assert {g[2] for g in got} <= {f"probe-{i}" for i in range(5)}
    assert all(g[3] > 1_600_000_000 and 0 <= g[4] < 1_000_000 and g[5] for g in got)
    assert result["received"] >= 5


def test_capture_errors_are_one_line(require_root: None) -> None:
    from sensor.capture import LiveCapture
    from sensor.errors import CaptureError

    with pytest.raises(CaptureError, match="no such interface: skmnope0"):
        LiveCapture("skmnope0")
    with pytest.raises(CaptureError, match="bad BPF filter 'udp prt 5'"):
        LiveCapture("lo", bpf="udp prt 5")


def _python_in_namespace(ns: str, code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with this repository's Python inside namespace ``ns``."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )


def test_stop_ends_an_idle_capture(veth_namespaces: tuple[str, str]) -> None:
    _ns_a, ns_b = veth_namespaces
    code = (
        "import threading\nfrom sensor.capture import LiveCapture\n"
        "cap = LiveCapture('vb', bpf='udp port 1', timeout_ms=20)\n"
        "threading.Timer(0.3, cap.stop).start()\n"
        "print(len(list(cap)))\n"
    )
    done = _python_in_namespace(ns_b, code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0"


def test_stats_and_close_after_close_are_safe(veth_namespaces: tuple[str, str]) -> None:
    # pypcap segfaults when a closed handle is used; LiveCapture must shield callers.
    _ns_a, ns_b = veth_namespaces
    code = (
        "from sensor.capture import LiveCapture\n"
        "cap = LiveCapture('vb', timeout_ms=10)\n"
        "cap.close(); cap.close()\n"
        "print(cap.stats(), cap.next_batch(), list(cap))\n"
    )
    done = _python_in_namespace(ns_b, code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("[] []")
