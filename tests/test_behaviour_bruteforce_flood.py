"""Brute-force, flood and flag-anomaly detectors on generated traffic, and their settings."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import dpkt
import pytest
from pcapgen import TcpSession, icmp_echo, udp
from test_behaviour_helpers import feed, sids, tcp

from sensor.behaviour import build_observers, load_behaviour_config
from sensor.behaviour.anomaly import AnomalyDetector
from sensor.behaviour.bruteforce import BruteForceDetector
from sensor.behaviour.flood import SPOOFABLE, FloodDetector
from sensor.behaviour.settings import AnomalyConfig, BruteForceConfig, FloodConfig
from sensor.errors import ConfigError

SYN, FIN, ACK, PSH, URG = (dpkt.tcp.TH_SYN, dpkt.tcp.TH_FIN, dpkt.tcp.TH_ACK, dpkt.tcp.TH_PUSH,
                           dpkt.tcp.TH_URG)  # fmt: skip
ATTACKER, SERVER = "198.51.100.9", "192.168.1.30"


def _sessions(n: int, port: int, banner: bytes, reply: bytes | None = None,
              gap: float = 2.0) -> list[tuple[float, bytes]]:  # fmt: skip
    frames: list[tuple[float, bytes]] = []
    for i in range(n):
        s = TcpSession(client=ATTACKER, server=SERVER, cport=42000 + i, sport=port).handshake()
        s.send(False, banner)
        if reply is not None:
            s.send(True, b"USER admin\r\nPASS guess\r\n").send(False, reply)
        s.close()
        frames += [(i * gap + k * 0.001, f) for k, f in enumerate(s.frames)]
    return frames


def test_ssh_sessions_below_and_at_threshold() -> None:
    banner = b"SSH-2.0-OpenSSH_9.2p1\r\n"
    assert sids(feed(BruteForceDetector(BruteForceConfig()), _sessions(9, 22, banner))) == []
    hits = feed(BruteForceDetector(BruteForceConfig()), _sessions(10, 22, banner))
    assert sids(hits) == [9100200]
    assert hits[0][1].target == "src_ip"  # raised on the server's banner: the client attacks


def test_ftp_failed_logins_below_and_at_threshold() -> None:
    cfg = dataclasses.replace(BruteForceConfig(), sessions=0)  # failures only
    one = _sessions(1, 21, b"220 vsFTPd\r\n")
    frames = [(t, f) for t, f in one]
    s = TcpSession(client=ATTACKER, server=SERVER, cport=43000, sport=21).handshake()
    for _ in range(10):
        s.send(True, b"PASS guess\r\n").send(False, b"530 Login incorrect.\r\n")
    tail = [(10 + k * 0.01, f) for k, f in enumerate(s.frames)]
    nine = tail[: 3 + 2 * 9]
    assert sids(feed(BruteForceDetector(cfg), frames + nine)) == []
    assert sids(feed(BruteForceDetector(cfg), frames + tail)) == [9100201]


def test_http_login_posts() -> None:
    def posts(n: int, path: bytes) -> list[tuple[float, bytes]]:
        frames: list[tuple[float, bytes]] = []
        for i in range(n):
            s = TcpSession(client=ATTACKER, server=SERVER, cport=44000 + i, sport=80).handshake()
            s.send(True, b"POST " + path + b" HTTP/1.1\r\nHost: x\r\n\r\nuser=a&pw=b")
            frames += [(i + k * 0.001, f) for k, f in enumerate(s.frames)]
        return frames

    assert sids(feed(BruteForceDetector(BruteForceConfig()), posts(9, b"/login"))) == []
    assert sids(feed(BruteForceDetector(BruteForceConfig()), posts(10, b"/login?next=/"))) == [
        9100208
    ]
    assert sids(feed(BruteForceDetector(BruteForceConfig()), posts(30, b"/search"))) == []


def test_syn_flood_rate_and_spoofable_caveat() -> None:
    cfg = dataclasses.replace(FloodConfig(), window=1, syn_rate=100)

    def flood(n: int) -> list[tuple[float, bytes]]:  # distinct forged sources, one second
        return [(i / 200, tcp(f"10.9.{i // 250}.{i % 250 + 1}", SERVER, 1024 + i, 80, SYN))
                for i in range(n)]  # fmt: skip

    assert sids(feed(FloodDetector(cfg), flood(99))) == []
    hits = feed(FloodDetector(cfg), flood(100))
    assert sids(hits) == [9100300]
    assert SPOOFABLE in hits[0][1].metadata
    assert hits[0][1].target == "dest_ip"


def test_udp_and_icmp_floods() -> None:
    cfg = dataclasses.replace(FloodConfig(), window=1, udp_rate=50, icmp_rate=50)
    udps = [(i / 100, udp(ATTACKER, SERVER, 5000, 53, b"x")) for i in range(50)]
    pings = [(i / 100, icmp_echo(ATTACKER, SERVER, seq=i)) for i in range(50)]
    assert sids(feed(FloodDetector(cfg), udps[:49])) == []
    assert sids(feed(FloodDetector(cfg), udps)) == [9100301]
    assert sids(feed(FloodDetector(cfg), pings[:49])) == []
    assert sids(feed(FloodDetector(cfg), pings)) == [9100302]


def test_flag_anomalies_counted_and_alerted_once_per_cooldown() -> None:
    frames = [(i * 0.01, tcp(ATTACKER, SERVER, 40000, 80, flags))
              for i, flags in enumerate([SYN | FIN, 0, FIN | PSH | URG, FIN, SYN, ACK, SYN | FIN])]  # fmt: skip
    quiet = AnomalyDetector(AnomalyConfig())
    assert feed(quiet, frames) == []
    assert quiet.counts == {"tcp.flags_syn_fin": 2, "tcp.flags_null": 1, "tcp.flags_xmas": 1,
                            "tcp.flags_fin_no_ack": 1}  # fmt: skip
    loud = AnomalyDetector(dataclasses.replace(AnomalyConfig(), alert=True))
    assert sids(feed(loud, frames)) == [9100003, 9100001, 9100002, 9100005]


def test_behaviour_table_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        "[stream]\nmidstream = true\n[behaviour.scan]\nvertical-ports = 5\n"
        "[behaviour.bruteforce.services]\nssh = [22, 2222]\n[behaviour.flood]\nenabled = false\n"
    )
    cfg = load_behaviour_config(str(path))
    assert cfg.scan.vertical_ports == 5
    assert ("ssh", (22, 2222)) in cfg.bruteforce.services
    assert len(build_observers(cfg)) == 3
    assert load_behaviour_config(None).scan.vertical_ports == 20


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[behaviour.scan]\nvertical-portz = 5\n", "behaviour.scan.vertical-portz"),
        ("[behaviour.scan]\nwindow = -1\n", "non-negative"),
        ("[behaviour.flood]\nenabled = 1\n", "true or false"),
        ('[behaviour.bruteforce.services]\nssh = ["22"]\n', "list of ports"),
        ("[behaviour]\nscan = 3\n", "expected a table"),
    ],
)
def test_bad_behaviour_settings_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_behaviour_config(str(path))
