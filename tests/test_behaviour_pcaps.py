"""The whole sensor on real attack captures (../shared, skipped when absent) and on benign
generated traffic: behavioural alerts (gid 9100) exactly where they belong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pcapgen import TcpSession, udp, write_pcap

from sensor.config import Config
from sensor.pipeline import RunRequest, run

REPO = Path(__file__).resolve().parent.parent
RULES = str(REPO / "tests" / "data" / "demo.rules")


def _behaviour_sids(pcap: Path, tmp_path: Path) -> list[int]:
    eve = tmp_path / f"{pcap.stem}.json"
    config = Config(behaviour_enabled=True)  # the detectors are opt-in (behaviour.enabled)
    run(config, RunRequest(pcap=str(pcap), iface=None, rule_files=(RULES,), eve=str(eve)))
    out = []
    for line in eve.read_text().splitlines():
        rec = json.loads(line)
        if rec.get("event_type") == "alert" and rec["alert"]["gid"] == 9100:
            out.append(rec["alert"]["signature_id"])
    return sorted(out)


@pytest.mark.shared
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("nmap_syn_os", [9100100, 9100121]),  # vertical SYN scan + half-open (-sS)
        ("nmap_xmas_null_fin", [9100101, 9100102, 9100103]),  # FIN, NULL, Xmas
        ("nmap_version_nse", [9100121]),  # 5 ports only, but half-open
        ("hydra_ssh", [9100200]),
        ("hydra_ftp", [9100201]),
    ],
)
def test_attack_captures_raise_behaviour_alerts(
    shared_dir: Path, tmp_path: Path, name: str, expected: list[int]
) -> None:
    pcap = shared_dir / "pcaps" / "attacks" / f"{name}.pcap"
    if not pcap.exists():
        pytest.skip(f"{pcap} is absent")
    assert _behaviour_sids(pcap, tmp_path) == expected


@pytest.mark.shared
@pytest.mark.parametrize(
    "name",
    ["dns_suspicious", "tls_suspicious", "http_traversal", "scanner_useragents", "sqlmap",
     "http_log4shell", "icmp_probes"],
)  # fmt: skip
def test_non_behavioural_captures_raise_none(shared_dir: Path, tmp_path: Path, name: str) -> None:
    pcap = shared_dir / "pcaps" / "attacks" / f"{name}.pcap"
    if not pcap.exists():
        pytest.skip(f"{pcap} is absent")
    assert _behaviour_sids(pcap, tmp_path) == []


def test_benign_http_and_dns_raise_none(tmp_path: Path) -> None:
    frames: list[bytes] = []
    for i in range(60):  # a busy client: 60 page loads on 30 servers, each answered
        s = TcpSession(client="192.168.1.10", server=f"203.0.113.{i % 30 + 1}",
                       cport=40000 + i, sport=443 if i % 2 else 80).handshake()  # fmt: skip
        s.send(True, b"GET / HTTP/1.1\r\nHost: example\r\n\r\n")
        s.send(False, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        frames += s.close().frames
    for i in range(40):  # DNS queries to two resolvers, all answered
        resolver = f"192.168.1.{53 + i % 2}"
        frames.append(udp("192.168.1.10", resolver, 50000 + i, 53, b"\x12\x34query"))
        frames.append(udp(resolver, "192.168.1.10", 53, 50000 + i, b"\x12\x34answer"))
    pcap = write_pcap(tmp_path / "benign.pcap", frames)
    assert _behaviour_sids(pcap, tmp_path) == []
