"""End to end: a real pcap written with dpkt, read back, decoded by ``sensor.decode``, tracked."""

from __future__ import annotations

import socket
from pathlib import Path

import dpkt

from sensor.config import FlowConfig, StreamConfig
from sensor.decode.decoder import Decoder
from sensor.flow import Flow, FlowTable
from sensor.packet import DLT_EN10MB, TH_ACK, TH_FIN, TH_PUSH, TH_SYN, Packet
from sensor.tcp import TCP_CLOSED

MAC_C, MAC_S = b"\x02\x00\x00\x00\x00\x01", b"\x02\x00\x00\x00\x00\x02"
V4_C, V4_S = socket.inet_aton("192.168.1.10"), socket.inet_aton("10.0.0.80")
V6_C = socket.inet_pton(socket.AF_INET6, "2001:db8::10")
V6_S = socket.inet_pton(socket.AF_INET6, "2001:db8::53")


def tcp_frame(to_server: bool, flags: int, seq: int, ack: int, data: bytes = b"") -> bytes:
    sp, dp = (43210, 80) if to_server else (80, 43210)
    tcp = dpkt.tcp.TCP(sport=sp, dport=dp, seq=seq, ack=ack, flags=flags, win=512, data=data)
    src, dst = (V4_C, V4_S) if to_server else (V4_S, V4_C)
    ip = dpkt.ip.IP(src=src, dst=dst, p=dpkt.ip.IP_PROTO_TCP, ttl=64, data=tcp)
    ip.len = 20 + len(bytes(tcp))
    smac, dmac = (MAC_C, MAC_S) if to_server else (MAC_S, MAC_C)
    return bytes(dpkt.ethernet.Ethernet(src=smac, dst=dmac, data=ip))


def udp6_frame(to_server: bool, data: bytes) -> bytes:
    sp, dp = (5353, 53) if to_server else (53, 5353)
    udp = dpkt.udp.UDP(sport=sp, dport=dp, data=data)
    udp.ulen = 8 + len(data)
    src, dst = (V6_C, V6_S) if to_server else (V6_S, V6_C)
    ip6 = dpkt.ip6.IP6(src=src, dst=dst, nxt=dpkt.ip.IP_PROTO_UDP, hlim=64, data=udp)
    ip6.plen = len(bytes(udp))
    return bytes(dpkt.ethernet.Ethernet(src=MAC_C, dst=MAC_S, type=0x86DD, data=ip6))


def icmp_echo_frame(reply: bool) -> bytes:
    echo = dpkt.icmp.ICMP.Echo(id=7, seq=1, data=b"ping")
    icmp = dpkt.icmp.ICMP(type=0 if reply else 8, code=0, data=echo)
    src, dst = (V4_S, V4_C) if reply else (V4_C, V4_S)
    ip = dpkt.ip.IP(src=src, dst=dst, p=dpkt.ip.IP_PROTO_ICMP, ttl=64, data=icmp)
    ip.len = 20 + len(bytes(icmp))
    return bytes(dpkt.ethernet.Ethernet(src=MAC_C, dst=MAC_S, data=ip))


def write_pcap(path: Path, frames: list[bytes]) -> None:
    with path.open("wb") as fh:
        w = dpkt.pcap.Writer(fh, linktype=DLT_EN10MB)
        for i, frame in enumerate(frames):
            w.writepkt(frame, ts=1_700_000_000 + i * 0.001)


class Seen:
    """What detection would read right after ``FlowTable.process`` returned for one packet."""

    def __init__(self, pkt: Packet, flow: Flow | None) -> None:
        self.pkt, self.flow = pkt, flow
        self.established = flow is not None and flow.is_established(pkt)
        d = None if flow is None else (flow.toserver if pkt.to_server else flow.toclient)
        self.new_data = b"" if d is None else d.new_data


def replay(path: Path, table: FlowTable) -> list[Seen]:
    decoder = Decoder()
    out = []
    with path.open("rb") as fh:
        for n, (ts, buf) in enumerate(dpkt.pcap.Reader(fh), start=1):
            sec = int(ts)
            pkt = Packet(n, sec, round((ts - sec) * 1e6), DLT_EN10MB, bytes(buf))
            decoder.decode(pkt)
            out.append(Seen(pkt, table.process(pkt)))
    return out


def test_tcp_session_from_a_pcap_reassembles_the_request(tmp_path: Path) -> None:
    pa = TH_PUSH | TH_ACK
    frames = [
        tcp_frame(True, TH_SYN, 100, 0),
        tcp_frame(False, TH_SYN | TH_ACK, 900, 101),
        tcp_frame(True, TH_ACK, 101, 901),
        tcp_frame(True, pa, 111, 901, b"admin HTTP/1.1\r\n\r\n"),  # arrives early
        tcp_frame(True, pa, 101, 901, b"GET /x/../"),  # 10 bytes: fills the hole
        tcp_frame(False, pa, 901, 129, b"HTTP/1.1 403\r\n\r\n"),
        tcp_frame(True, TH_FIN | TH_ACK, 129, 917),
        tcp_frame(False, TH_FIN | TH_ACK, 917, 130),
        tcp_frame(True, TH_ACK, 130, 918),
    ]
    pcap = tmp_path / "http.pcap"
    write_pcap(pcap, frames)
    table = FlowTable(FlowConfig(), StreamConfig())
    seen = replay(pcap, table)
    assert len({id(x.flow) for x in seen}) == 1 and len(table) == 1
    f = seen[0].flow
    assert f is not None and f.toserver is not None
    assert socket.inet_ntoa(f.src.to_bytes(4, "big")) == "192.168.1.10" and f.dport == 80
    assert [x.established for x in seen] == [False] * 3 + [True] * 6
    assert (
        b"".join(x.new_data for x in seen if x.pkt.to_server) == b"GET /x/../admin HTTP/1.1\r\n\r\n"
    )
    assert [x.new_data for x in seen[3:5]] == [b"", b"GET /x/../admin HTTP/1.1\r\n\r\n"]
    assert seen[5].new_data == b"HTTP/1.1 403\r\n\r\n"
    assert f.tcp_state == TCP_CLOSED and f.toserver.mac == MAC_C and f.toclient is not None
    assert f.toclient.ttl == 64 and f.toserver.last_ack == 918
    assert (f.pkts_toserver, f.pkts_toclient) == (6, 3)
    assert table.stats.reassembly_gaps == 0 and table.stats.retransmissions == 0


def test_ipv6_udp_and_icmp_echo_flows(tmp_path: Path) -> None:
    frames = [udp6_frame(True, b"q"), udp6_frame(False, b"a"), icmp_echo_frame(False),
              icmp_echo_frame(True)]  # fmt: skip
    pcap = tmp_path / "mixed.pcap"
    write_pcap(pcap, frames)
    table = FlowTable(FlowConfig(), StreamConfig())
    seen = replay(pcap, table)
    q, a, req, rep = seen
    assert q.flow is a.flow and q.flow is not None and q.flow.ipver == 6
    assert (q.established, a.established, a.pkt.to_server) == (False, True, False)
    assert req.flow is rep.flow and req.flow is not None and req.flow.proto == 1
    assert (req.established, rep.established) == (False, True)
    assert len(table) == 2
