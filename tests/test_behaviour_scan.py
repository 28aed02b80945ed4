"""Scan detector on generated traffic: thresholds just below and at the limit per kind."""

from __future__ import annotations

import dataclasses

import dpkt
from pcapgen import TcpSession, udp
from test_behaviour_helpers import feed, sids, tcp

from sensor.behaviour.scan import ScanDetector
from sensor.behaviour.settings import ScanConfig

SYN, FIN, RST, ACK = dpkt.tcp.TH_SYN, dpkt.tcp.TH_FIN, dpkt.tcp.TH_RST, dpkt.tcp.TH_ACK
PSH, URG = dpkt.tcp.TH_PUSH, dpkt.tcp.TH_URG
SCANNER, VICTIM = "198.51.100.7", "192.168.1.20"


def _probes(n: int, flags: int) -> list[tuple[float, bytes]]:
    return [(i * 0.01, tcp(SCANNER, VICTIM, 40000 + i, 1000 + i, flags)) for i in range(n)]


def test_vertical_syn_scan_below_and_at_threshold() -> None:
    assert sids(feed(ScanDetector(ScanConfig()), _probes(19, SYN))) == []
    hits = feed(ScanDetector(ScanConfig()), _probes(20, SYN))
    assert sids(hits) == [9100100]
    assert hits[0][0] == 20  # raised on the probe that reached the threshold
    assert hits[0][1].metadata[0] == "sekimori_detector behaviour"


def test_vertical_scan_kinds_null_fin_xmas() -> None:
    for flags, sid in ((0, 9100102), (FIN, 9100101), (FIN | PSH | URG, 9100103)):
        assert sids(feed(ScanDetector(ScanConfig()), _probes(20, flags))) == [sid]
        assert sids(feed(ScanDetector(ScanConfig()), _probes(19, flags))) == []


def test_completed_sessions_are_not_probes() -> None:
    frames: list[tuple[float, bytes]] = []
    for i in range(30):  # e.g. an FTP client's passive data connections
        s = TcpSession(client=SCANNER, server=VICTIM, cport=41000 + i, sport=2000 + i)
        frames += [(i * 0.1 + k * 0.001, f) for k, f in enumerate(s.handshake().frames)]
    assert sids(feed(ScanDetector(ScanConfig()), frames)) == []


def test_horizontal_sweep_below_and_at_threshold() -> None:
    def sweep(n: int) -> list[tuple[float, bytes]]:
        return [(i * 0.01, tcp(SCANNER, f"10.0.{i // 200}.{i % 200 + 1}", 40000 + i, 445, SYN))
                for i in range(n)]  # fmt: skip

    assert sids(feed(ScanDetector(ScanConfig()), sweep(19))) == []
    assert sids(feed(ScanDetector(ScanConfig()), sweep(20))) == [9100110]


def test_udp_scan_counts_only_unanswered_ports() -> None:
    silent = [(i * 0.01, udp(SCANNER, VICTIM, 50000, 100 + i, b"x")) for i in range(20)]
    assert sids(feed(ScanDetector(ScanConfig()), silent)) == [9100105]
    answered: list[tuple[float, bytes]] = []
    for i in range(20):  # a resolver answering every query is no scan
        answered.append((i * 0.01, udp(SCANNER, VICTIM, 50000 + i, 100 + i, b"q")))
        answered.append((i * 0.01 + 0.001, udp(VICTIM, SCANNER, 100 + i, 50000 + i, b"a")))
    assert sids(feed(ScanDetector(ScanConfig()), answered)) == []


def test_half_open_syn_scan() -> None:
    def half_open(n: int) -> list[tuple[float, bytes]]:
        frames = []
        for i in range(n):
            t = i * 0.01
            frames += [(t, tcp(SCANNER, VICTIM, 40000 + i, 20 + i, SYN)),
                       (t + 0.001, tcp(VICTIM, SCANNER, 20 + i, 40000 + i, SYN | ACK, ack=1001)),
                       (t + 0.002, tcp(SCANNER, VICTIM, 40000 + i, 20 + i, RST, seq=1001))]  # fmt: skip
        return frames

    assert sids(feed(ScanDetector(ScanConfig()), half_open(4))) == []
    assert sids(feed(ScanDetector(ScanConfig()), half_open(5))) == [9100121]


def test_slow_scan_over_long_window() -> None:
    cfg = dataclasses.replace(ScanConfig(), window=10, slow_targets=30, slow_window=3600)

    def slow(n: int) -> list[tuple[float, bytes]]:
        # one probe every 11 s: never two in one short window, so only the sketch sees it
        return [(i * 11.0, tcp(SCANNER, VICTIM, 40000 + i, 3000 + i, SYN)) for i in range(n)]

    assert sids(feed(ScanDetector(cfg), slow(20))) == []
    assert sids(feed(ScanDetector(cfg), slow(60))) == [9100120]


def test_memory_bound_with_a_million_sources() -> None:
    from sensor.packet import Packet

    cfg = dataclasses.replace(ScanConfig(), max_entries=2000, max_sources=1000, window=1)
    det = ScanDetector(cfg)
    p = Packet(1, START_TS, 0, 1, b"")
    p.ipver, p.proto, p.l4_off, p.tcp_flags, p.dst, p.dport = 4, 6, 34, SYN, 0xC0A80114, 22
    for i in range(1_000_000):
        p.src = 0x0A000000 + i
        p.ts_sec = START_TS + i // 50_000  # windows keep closing: sketches get fed too
        det.observe(p)
    stats = det.stats()
    assert stats["scan.probes"] == 1_000_000
    assert stats["scan.vertical_entries"] <= 2000
    assert stats["scan.horizontal_entries"] <= 2000
    assert stats["scan.slow_sources"] <= 1000
    assert stats["scan.evicted"] >= 1_000_000 - 2000


START_TS = 1_700_000_000
