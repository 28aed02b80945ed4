"""Blocks enforced by nftables in network namespaces the test builds (needs root).

Topology: namespace ``srv`` (10.66.<n>.1, a TCP echo server on port 8080, sekimori's nft
table) and namespace ``cli`` (attacker 10.66.<n>.2, protected host 10.66.<n>.3) joined by a
veth pair. How it is driven: the attacker really connects; the alert for that connection is
published straight to the Redis alert stream (the EVE record ``sekimori run`` writes for a
``drop`` rule, with its 4-tuple and ``handshake_seen``), and a real AlertConsumer +
BlockManager take it from there, as the responder service does. The sensor side is not in
this test (its SPAN capture is covered by the capture and bus tests).

Also: reconciliation repairs hand-deleted and stray set entries within one pass; a restart
of the responders and of Redis (append-only file) loses no block; a vanished ledger makes
the reconciler adopt the firewall's entries instead of flushing them; the ipset responder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from test_bus_helpers import RedisServer

from responders.block_config import parse_blocks
from responders.blocking import BlockManager
from responders.bus import AlertConsumer, ConsumerConfig
from responders.plugin import BlockRequest
from sensor.output.redis_conn import RedisSettings

SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 8080)); s.listen(16); print("ready", flush=True)
while True:
    c, _ = s.accept(); c.sendall(b"hello\\n"); c.close()
"""
CLIENT = """
import socket, sys
try:
    c = socket.create_connection((sys.argv[2], 8080), timeout=float(sys.argv[3]),
                                 source_address=(sys.argv[1], 0))
    print("ok" if c.recv(16) == b"hello\\n" else "bad")
except OSError as exc:
    print("fail", exc)
"""


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=20, check=check)


class Lab:
    def __init__(self, n: int) -> None:
        tag = f"{os.getpid() % 10000}x{n}"
        self.srv, self.cli = f"sk6s{tag}", f"sk6c{tag}"
        self.net = f"10.66.{n}"
        self.server_ip = f"{self.net}.1"
        self.attacker, self.protected = f"{self.net}.2", f"{self.net}.3"
        self.server: subprocess.Popen[str] | None = None

    def up(self) -> None:
        sh("ip", "netns", "add", self.srv)
        sh("ip", "netns", "add", self.cli)
        sh(
            "ip",
            "link",
            "add",
            "v0",
            "netns",
            self.srv,
            "type",
            "veth",
            "peer",
            "v1",
            "netns",
            self.cli,
        )
        sh("ip", "-n", self.srv, "addr", "add", f"{self.server_ip}/24", "dev", "v0")
        for addr in (self.attacker, self.protected):
            sh("ip", "-n", self.cli, "addr", "add", f"{addr}/24", "dev", "v1")
        for ns, dev in ((self.srv, "v0"), (self.cli, "v1")):
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        self.server = subprocess.Popen(
            ["ip", "netns", "exec", self.srv, sys.executable, "-c", SERVER, self.server_ip],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.server.stdout is not None and self.server.stdout.readline().strip() == "ready"

    def down(self) -> None:
        if self.server is not None:
            self.server.kill()
            self.server.wait(timeout=10)
        for ns in (self.srv, self.cli):
            sh("ip", "netns", "del", ns, check=False)  # takes the nft table and ipsets with it

    def connect(self, source: str, timeout: float = 1.0) -> bool:
        out = sh(
            "ip",
            "netns",
            "exec",
            self.cli,
            sys.executable,
            "-c",
            CLIENT,
            source,
            self.server_ip,
            str(timeout),
        ).stdout
        return out.startswith("ok")


@pytest.fixture
def lab(require_root: None, request: pytest.FixtureRequest) -> Iterator[Lab]:
    if shutil.which("nft") is None:
        pytest.fail("nft is not installed (make install)")
    lab = Lab(10 + (abs(hash(request.node.name)) % 200))
    try:
        lab.up()
        yield lab
    finally:
        lab.down()


def drop_alert(
    lab: Lab, src: str, *, proto: str = "TCP", handshake: bool | None = True
) -> dict[str, Any]:
    return {
        "timestamp": "2026-01-01T00:00:00.000000+0000",
        "flow_id": 77,
        "event_type": "alert",
        "src_ip": src,
        "src_port": 41000,
        "dest_ip": lab.server_ip,
        "dest_port": 8080,
        "proto": proto,
        "alert": {
            "action": "allowed",
            "gid": 1,
            "signature_id": 2200001,
            "rev": 1,
            "signature": "TEST exploit attempt",
            "severity": 1,
        },
        "sekimori": {
            "rule_action": "drop",
            "mode": "prevent",
            "sensor_id": "span-1",
            "handshake_seen": handshake,
        },
    }


def make_manager(lab: Lab, url: str, **settings: Any) -> BlockManager:
    table = {
        "redis-url": url,
        "protected": [lab.protected],
        "nftables": {"netns": lab.srv},
        "reconcile-interval": "1s",
        **settings,
    }
    return BlockManager(parse_blocks(table))


def test_attacker_blocked_within_a_second_and_released_after_ttl(
    lab: Lab, redis_server: str
) -> None:
    manager = make_manager(lab, redis_server, ladder=["3s", "1h"])
    manager.start()
    consumer = AlertConsumer(
        ConsumerConfig(
            redis=RedisSettings(url=redis_server), block_ms=200, consumer="t1", start_id="$"
        )
    )
    consumer.ensure_groups()
    stop = threading.Event()
    outcomes: list[Any] = []

    def serve() -> None:  # the responder service's loop, reduced to the block path
        while not stop.is_set():
            consumer.run_once(lambda m: outcomes.append(manager.handle_alert(m.eve, True)))

    worker = threading.Thread(target=serve, daemon=True)
    worker.start()
    bus = redis.Redis.from_url(redis_server)
    nft = manager.responders["nftables"]
    try:
        assert lab.connect(lab.attacker)  # the attack itself gets through (out-of-band sensor)
        published = time.monotonic()
        bus.xadd("sekimori:alerts", {"eve": json.dumps(drop_alert(lab, lab.attacker))})
        request = BlockRequest(cidr=f"{lab.attacker}/32", expires_at=None, reason="", block_id="")
        while not nft.check(request):
            assert time.monotonic() - published < 1.0, (
                f"not blocked within a second: {outcomes} {consumer.stats.snapshot()} {worker.is_alive()}"
            )
            time.sleep(0.02)
        assert not lab.connect(lab.attacker, timeout=0.5)  # the next connection fails
        # A protected address sending the same traffic is never blocked.
        bus.xadd("sekimori:alerts", {"eve": json.dumps(drop_alert(lab, lab.protected))})
        # Forged-source attacks: UDP, and a TCP flow whose handshake was never seen (SYN only).
        bus.xadd(
            "sekimori:alerts", {"eve": json.dumps(drop_alert(lab, "10.66.250.9", proto="UDP"))}
        )
        bus.xadd(
            "sekimori:alerts", {"eve": json.dumps(drop_alert(lab, "10.66.250.10", handshake=False))}
        )
        deadline = time.monotonic() + 5
        while len(outcomes) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [o[0].status for o in outcomes] == ["done", "skipped", "skipped", "skipped"]
        assert lab.connect(lab.protected)
        for src in ("10.66.250.9", "10.66.250.10"):
            assert "spoofable" in manager.ledger.refusal(f"{src}/32")["reason"]  # type: ignore[index]
        assert "protected" in manager.ledger.refusal(f"{lab.protected}/32")["reason"]  # type: ignore[index]
        assert set(nft.list_blocks()) == {f"{lab.attacker}/32"}
        # The block expires after its TTL (3 s, the first ladder step) and traffic works again.
        time.sleep(3.2)
        manager.reconcile_once()
        assert manager.ledger.get(f"{lab.attacker}/32").state == "expired"  # type: ignore[union-attr]
        assert nft.list_blocks() == {}
        assert lab.connect(lab.attacker)
    finally:
        stop.set()
        worker.join(timeout=5)
        consumer.close()
        manager.stop()


def test_reconcile_repairs_drift_and_survives_restarts(lab: Lab, tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")  # append-only, fsync always
    server.start()
    try:
        manager = make_manager(lab, server.url)
        manager.start()
        for i in range(4, 8):
            manager.add(f"{lab.net}.{i}/32", 3600, "test", "tester")
        manager.add("2001:db8:66::/64", None, "v6 range", "tester")
        manager.reconcile_once()
        nft = manager.responders["nftables"]
        wanted = set(manager.ledger.active(time.time()))
        assert set(nft.list_blocks()) == wanted
        # Drift by hand: two entries deleted, one stray added.
        t = ["ip", "netns", "exec", lab.srv, "nft"]
        sh(*t, "delete", "element", "inet", "sekimori", "block4", f"{{ {lab.net}.4, {lab.net}.5 }}")
        sh(*t, "add", "element", "inet", "sekimori", "block4", "{ 10.99.0.99 timeout 1h }")
        report = manager.reconcile_once()["nftables"]
        assert (report.added, report.removed, report.present, report.desired) == (2, 1, 3, 5)
        assert report.enforcement == pytest.approx(0.6)
        assert set(nft.list_blocks()) == wanted
        assert manager.ledger.stats("nftables")["drift"] == 3
        # Restart the responders and Redis: nothing is lost.
        manager.stop()
        server.kill()
        server.start()
        again = make_manager(lab, server.url)
        again.start()
        assert set(again.ledger.active(time.time())) == wanted
        assert set(again.responders["nftables"].list_blocks()) == wanted
        # Redis comes back empty (no persistence): the firewall is not flushed but adopted.
        server.client().flushall()
        again.reconcile_once()
        assert set(again.responders["nftables"].list_blocks()) == wanted
        assert set(again.ledger.active(time.time())) == wanted
        again.stop()
    finally:
        server.stop()


def test_nftables_leaves_other_tables_alone(lab: Lab, redis_server: str) -> None:
    t = ["ip", "netns", "exec", lab.srv, "nft"]
    sh(*t, "add", "table", "inet", "other")
    sh(*t, "add", "set", "inet", "other", "block4", "{ type ipv4_addr; flags timeout; }")
    sh(*t, "add", "element", "inet", "other", "block4", "{ 10.99.1.1 }")
    before = sh(*t, "list", "table", "inet", "other").stdout
    manager = make_manager(
        lab, redis_server, nftables={"netns": lab.srv, "hook": "prerouting", "priority": -150}
    )
    manager.start()
    manager.add(f"{lab.net}.9/32", 60, "x", "tester")
    manager.reconcile_once()
    manager.flush("test", "tester")
    manager.reconcile_once()
    assert sh(*t, "list", "table", "inet", "other").stdout == before
    chain = sh(*t, "-j", "list", "chain", "inet", "sekimori", "block").stdout
    assert '"hook": "prerouting"' in chain and '"prio": -150' in chain
    manager.stop()


def test_ipset_responder(lab: Lab, redis_server: str) -> None:
    if shutil.which("ipset") is None:
        pytest.skip("ipset is not installed (apt-get install ipset)")
    manager = make_manager(lab, redis_server, targets=["ipset"], ipset={"netns": lab.srv})
    manager.start()
    manager.add(f"{lab.net}.20/32", 600, "x", "tester")
    manager.add("10.99.2.0/24", None, "range", "tester")
    manager.reconcile_once()
    ipset = manager.responders["ipset"]
    assert set(ipset.list_blocks()) == {f"{lab.net}.20/32", "10.99.2.0/24"}
    sh("ip", "netns", "exec", lab.srv, "ipset", "del", "sekimori4", f"{lab.net}.20")
    manager.remove("10.99.2.0/24", "done", "tester")
    report = manager.reconcile_once()["ipset"]
    assert (report.added, report.removed) == (1, 1)
    assert set(ipset.list_blocks()) == {f"{lab.net}.20/32"}
    manager.stop()
