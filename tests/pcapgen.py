"""Build small captures with dpkt for tests: TCP sessions, UDP, ICMP, on Ethernet.

Deterministic (fixed timestamps), so tests can assert exact alerts.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import dpkt
import orjson

CLIENT_MAC = b"\x02\x00\x00\x00\x00\x01"
SERVER_MAC = b"\x02\x00\x00\x00\x00\x02"


def _ip(addr: str) -> bytes:
    return socket.inet_aton(addr)


def eth_ip(src: str, dst: str, l4: dpkt.Packet, proto: int, *, ttl: int = 64,
           from_client: bool = True) -> bytes:  # fmt: skip
    ip = dpkt.ip.IP(src=_ip(src), dst=_ip(dst), p=proto, ttl=ttl, data=l4)
    ip.len = len(ip)
    eth = dpkt.ethernet.Ethernet(
        src=CLIENT_MAC if from_client else SERVER_MAC,
        dst=SERVER_MAC if from_client else CLIENT_MAC,
        type=dpkt.ethernet.ETH_TYPE_IP,
        data=ip,
    )
    return bytes(eth)


class TcpSession:
    """A TCP conversation between a client and a server, frame by frame."""

    def __init__(self, client: str = "192.168.1.10", server: str = "203.0.113.5",
                 cport: int = 40000, sport: int = 80, cisn: int = 1000, sisn: int = 5000) -> None:  # fmt: skip
        self.client, self.server, self.cport, self.sport = client, server, cport, sport
        self.cseq, self.sseq = cisn, sisn
        self.frames: list[bytes] = []

    def _tcp(
        self, from_client: bool, flags: int, data: bytes = b"", seq: int | None = None
    ) -> None:
        if from_client:
            s = self.cseq if seq is None else seq
            tcp = dpkt.tcp.TCP(sport=self.cport, dport=self.sport, seq=s, ack=self.sseq,
                               flags=flags, win=65535, data=data)  # fmt: skip
            src, dst = self.client, self.server
        else:
            s = self.sseq if seq is None else seq
            tcp = dpkt.tcp.TCP(sport=self.sport, dport=self.cport, seq=s, ack=self.cseq,
                               flags=flags, win=65535, data=data)  # fmt: skip
            src, dst = self.server, self.client
        if flags & dpkt.tcp.TH_SYN and not flags & dpkt.tcp.TH_ACK:
            tcp.ack = 0
        self.frames.append(eth_ip(src, dst, tcp, 6, from_client=from_client))

    def handshake(self) -> TcpSession:
        self._tcp(True, dpkt.tcp.TH_SYN)
        self.cseq += 1
        self._tcp(False, dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK)
        self.sseq += 1
        self._tcp(True, dpkt.tcp.TH_ACK)
        return self

    def send(self, from_client: bool, data: bytes, *, seq: int | None = None,
             advance: bool = True) -> TcpSession:  # fmt: skip
        self._tcp(from_client, dpkt.tcp.TH_ACK | dpkt.tcp.TH_PUSH, data, seq)
        if advance and seq is None:
            if from_client:
                self.cseq += len(data)
            else:
                self.sseq += len(data)
        return self

    def ack(self, from_client: bool) -> TcpSession:
        self._tcp(from_client, dpkt.tcp.TH_ACK)
        return self

    def close(self) -> TcpSession:
        self._tcp(True, dpkt.tcp.TH_FIN | dpkt.tcp.TH_ACK)
        self.cseq += 1
        self._tcp(False, dpkt.tcp.TH_FIN | dpkt.tcp.TH_ACK)
        self.sseq += 1
        self._tcp(True, dpkt.tcp.TH_ACK)
        return self


def udp(src: str, dst: str, sport: int, dport: int, data: bytes) -> bytes:
    u = dpkt.udp.UDP(sport=sport, dport=dport, data=data)
    u.ulen = len(u)
    return eth_ip(src, dst, u, 17)


def icmp_echo(src: str, dst: str, ident: int = 1, seq: int = 1, data: bytes = b"ping") -> bytes:
    echo = dpkt.icmp.ICMP.Echo(id=ident, seq=seq, data=data)
    return eth_ip(src, dst, dpkt.icmp.ICMP(type=8, code=0, data=echo), 1)


def write_pcap(path: Path, frames: Iterable[bytes], start: int = 1_700_000_000) -> Path:
    with open(path, "wb") as fh:
        w = dpkt.pcap.Writer(fh, linktype=dpkt.pcap.DLT_EN10MB)
        for i, frame in enumerate(frames):
            w.writepkt(frame, ts=start + i * 0.001)
    return path


def run_capture(tmp_path: Path, frames: Iterable[bytes], rules: str | Sequence[str],
                *sets: str) -> list[dict[str, Any]]:  # fmt: skip
    """Every EVE record of one `sekimori run` over ``frames`` with ``rules`` (text, or a list
    of rule lines), in process, with its own rule cache under ``tmp_path``."""
    from sensor.config import load_config
    from sensor.pipeline import RunRequest, run

    pcap = write_pcap(tmp_path / "in.pcap", frames)
    rule_file = tmp_path / "t.rules"
    rule_file.write_text(rules if isinstance(rules, str) else "\n".join(rules) + "\n")
    eve = tmp_path / "eve.json"
    eve.unlink(missing_ok=True)  # EVE files are appended to, as Suricata does
    config, _ = load_config(None, env={}, sets=["detect.cache-dir=" + str(tmp_path / "c"), *sets])
    run(config, RunRequest(pcap=str(pcap), iface=None, rule_files=(str(rule_file),), eve=str(eve)))
    return [orjson.loads(line) for line in eve.read_bytes().splitlines()]


def alerts_of(tmp_path: Path, frames: Iterable[bytes], rules: str | Sequence[str],
              *sets: str) -> list[dict[str, Any]]:  # fmt: skip
    """The alert records of :func:`run_capture`."""
    return [r for r in run_capture(tmp_path, frames, rules, *sets) if r["event_type"] == "alert"]
