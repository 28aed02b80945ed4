"""``--workers N`` on a live interface: N processes in one AF_PACKET fanout group.

A veth pair inside a private network namespace; sekimori listens on one end with two
workers, the test writes generated TCP sessions (each carrying one attack) into the other
end with a raw packet socket. Without a working fanout every worker would see every
packet and each alert would appear twice; with it each alert appears exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pcapgen import TcpSession

RULE = 'alert tcp any any -> any any (msg:"evil"; flow:established,to_server; content:"EVIL-PATTERN"; sid:1;)\n'

RUNNER = """
import json, sys
from sensor.config import load_config
from sensor.pipeline import RunRequest
from sensor.workers import run_parallel
config, _ = load_config(None, sets=["detect.cache-dir=" + sys.argv[4], "capture.buffer-size=32mb", "capture.snaplen=2048"])
req = RunRequest(pcap=None, iface=sys.argv[1], rule_files=(sys.argv[2],), eve=sys.argv[3])
s = run_parallel(config, req, int(sys.argv[5]))
print(json.dumps({"packets": s.packets, "alerts": s.alerts, "drops": [s.kernel_drops, s.iface_drops]}))
"""


def _ns(ns: str, *args: str) -> None:
    subprocess.run(["ip", "netns", "exec", ns, *args], check=True, timeout=30)


@pytest.fixture
def veth_ns(require_root: None):
    ns = f"skw{os.getpid() % 100000}"
    subprocess.run(["ip", "netns", "add", ns], check=True, timeout=30)
    try:
        _ns(ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1")
        _ns(ns, "sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1")
        _ns(ns, "ip", "link", "add", "wa", "type", "veth", "peer", "name", "wb")
        _ns(ns, "ip", "link", "set", "wa", "up")
        _ns(ns, "ip", "link", "set", "wb", "up")
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def _packet_sockets(ns: str) -> int:
    out = subprocess.run(["ip", "netns", "exec", ns, "cat", "/proc/net/packet"],
                         capture_output=True, text=True, timeout=30).stdout  # fmt: skip
    return max(len(out.splitlines()) - 1, 0)


SENDER = """
import socket, sys, time
frames = [bytes.fromhex(h) for h in sys.stdin.read().split()]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("wa", 0))
for f in frames:
    s.send(f)
    time.sleep(0.002)  # a paced stream, not a burst: this tests fanout, not ring sizes
"""


def test_fanout_sees_each_packet_once(veth_ns: str, tmp_path: Path) -> None:
    rules = tmp_path / "r.rules"
    rules.write_text(RULE)
    eve = tmp_path / "eve.json"
    runner = subprocess.Popen(
        ["ip", "netns", "exec", veth_ns, sys.executable, "-c", RUNNER, "wb", str(rules), str(eve),
         str(tmp_path / "cache"), "2"],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while _packet_sockets(veth_ns) < 2:  # both workers have opened the interface
            assert runner.poll() is None, "the workers exited early"
            assert time.monotonic() < deadline, "the workers did not open the interface"
            time.sleep(0.1)
        time.sleep(0.5)  # each joins the fanout group right after opening
        frames: list[bytes] = []
        sessions = 40
        for i in range(sessions):
            s = TcpSession(client=f"10.0.0.{i + 1}", server="192.0.2.80", cport=30000 + i)
            s.handshake().send(True, b"GET /EVIL-PATTERN HTTP/1.1\r\n\r\n").ack(False).close()
            frames += s.frames
        subprocess.run(["ip", "netns", "exec", veth_ns, sys.executable, "-c", SENDER],
                       input=" ".join(f.hex() for f in frames), text=True, check=True, timeout=60)  # fmt: skip
        time.sleep(1.0)  # let the workers drain their rings
    finally:
        runner.send_signal(signal.SIGTERM)
        out, _ = runner.communicate(timeout=60)
    summary = json.loads(out.strip().splitlines()[-1])
    alerts = [json.loads(line) for line in eve.read_text().splitlines()]
    ports = sorted(a["src_port"] for a in alerts if a.get("event_type") == "alert")
    # every session exactly once (kernel drops would explain a missing one)
    assert ports == [30000 + i for i in range(sessions)], summary
    assert summary["alerts"] == sessions
    assert summary["packets"] >= len(frames)
    assert summary["packets"] < 2 * len(frames)  # not duplicated across workers
