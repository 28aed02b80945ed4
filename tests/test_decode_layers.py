"""Decoder: every link type, VLAN stacks, IPv4 options, IPv6 extension headers, TCP
options, UDP/ICMP fields, and agreement between the fast path and the general path."""

from __future__ import annotations

import struct

import dpkt
import pytest

from sensor.decode import (
    DecodeConfig,
    Decoder,
    ipv4_options,
    tcp_mss,
    tcp_sack_permitted,
    tcp_timestamp,
    tcp_wscale,
)
from sensor.decode.decoder import Decoder as _Decoder
from sensor.packet import Packet

SRC4 = bytes([10, 0, 0, 1])
DST4 = bytes([10, 0, 0, 2])
SRC6 = bytes.fromhex("20010db8000000000000000000000001")
DST6 = bytes.fromhex("20010db8000000000000000000000002")
MAC_A = b"\x02\x00\x00\x00\x00\x0a"
MAC_B = b"\x02\x00\x00\x00\x00\x0b"


def tcp4(payload: bytes = b"hello", opts: bytes = b"", ip_opts: bytes = b"") -> bytes:
    tcp = dpkt.tcp.TCP(
        sport=1234,
        dport=80,
        seq=1000,
        ack=2000,
        flags=dpkt.tcp.TH_ACK | dpkt.tcp.TH_PUSH,
        win=512,
        opts=opts,
        data=payload,
    )
    tcp.off = 5 + len(opts) // 4  # dpkt does not derive it from the options
    ip = dpkt.ip.IP(src=SRC4, dst=DST4, p=6, ttl=33, id=77, opts=ip_opts, data=tcp)
    ip.hl = 5 + len(ip_opts) // 4  # dpkt does not derive it from the options
    return bytes(ip)


def udp6(payload: bytes = b"dns?") -> bytes:
    udp = dpkt.udp.UDP(sport=5353, dport=53, data=payload)
    udp.ulen = 8 + len(payload)
    ip6 = dpkt.ip6.IP6(src=SRC6, dst=DST6, nxt=17, hlim=9, data=udp, plen=udp.ulen)
    return bytes(ip6)


def eth(ip: bytes, ethertype: int = 0x0800) -> bytes:
    return MAC_B + MAC_A + struct.pack("!H", ethertype) + ip


def decode(linktype: int, data: bytes, decoder: Decoder | None = None) -> Packet:
    pkt = Packet(1, 100, 5, linktype, data)
    assert (decoder or Decoder()).decode(pkt) is None
    return pkt


def assert_tcp4(pkt: Packet) -> None:
    assert not pkt.bad and pkt.events is None
    assert (pkt.ipver, pkt.proto, pkt.sport, pkt.dport) == (4, 6, 1234, 80)
    assert pkt.src == 0x0A000001 and pkt.dst == 0x0A000002
    assert (pkt.seq, pkt.ack, pkt.win, pkt.ttl, pkt.ip_id) == (1000, 2000, 512, 33, 77)
    assert pkt.tcp_flags == dpkt.tcp.TH_ACK | dpkt.tcp.TH_PUSH
    assert pkt.payload == b"hello"


def sll(ip: bytes, proto: int = 0x0800) -> bytes:
    return struct.pack("!HHH8sH", 0, 1, 6, MAC_A + b"\0\0", proto) + ip


def sll2(ip: bytes, proto: int = 0x0800) -> bytes:
    return struct.pack("!HHIHBB8s", proto, 0, 3, 1, 0, 6, MAC_A + b"\0\0") + ip


@pytest.mark.parametrize(
    ("linktype", "frame"),
    [
        (1, eth(tcp4())),
        (113, sll(tcp4())),
        (276, sll2(tcp4())),
        (101, tcp4()),
        (12, tcp4()),
        (14, tcp4()),
        (228, tcp4()),
        (0, struct.pack("<I", 2) + tcp4()),
        (0, struct.pack(">I", 2) + tcp4()),
        (108, struct.pack(">I", 2) + tcp4()),
    ],
)
def test_every_link_type_reaches_tcp(linktype: int, frame: bytes) -> None:
    assert_tcp4(decode(linktype, frame))


@pytest.mark.parametrize(
    ("linktype", "frame"),
    [
        (1, eth(udp6(), 0x86DD)),
        (113, sll(udp6(), 0x86DD)),
        (276, sll2(udp6(), 0x86DD)),
        (101, udp6()),
        (229, udp6()),
        (0, struct.pack("<I", 30) + udp6()),
        (0, struct.pack("<I", 24) + udp6()),
        (108, struct.pack(">I", 28) + udp6()),
    ],
)
def test_every_link_type_reaches_udp6(linktype: int, frame: bytes) -> None:
    pkt = decode(linktype, frame)
    assert not pkt.bad
    assert (pkt.ipver, pkt.proto, pkt.sport, pkt.dport, pkt.ttl) == (6, 17, 5353, 53, 9)
    assert pkt.src == int.from_bytes(SRC6, "big")
    assert pkt.payload == b"dns?"


def test_macs_and_sll_source_address() -> None:
    pkt = decode(1, eth(tcp4()))
    assert (pkt.src_mac, pkt.dst_mac) == (MAC_A, MAC_B)
    assert decode(113, sll(tcp4())).src_mac == MAC_A
    assert decode(276, sll2(tcp4())).src_mac == MAC_A


def test_unknown_null_family_and_raw_version() -> None:
    pkt = decode(0, struct.pack("<I", 99) + tcp4())
    assert pkt.bad and pkt.events == ["ltnull.unsupported_type"]
    pkt = decode(101, b"\x75" + tcp4()[1:])
    assert pkt.bad and pkt.events == ["ipraw.invalid_ip_version"]


def test_unsupported_linktype_is_counted() -> None:
    d = Decoder()
    pkt = decode(147, tcp4(), d)
    assert pkt.bad and pkt.ipver == 0 and d.stats["unsupported_linktype"] == 1


def vlan_tags(*tags: tuple[int, int]) -> bytes:
    return b"".join(struct.pack("!HH", tpid, vid) for tpid, vid in tags)


def tagged(tags: list[tuple[int, int]], ip: bytes, ethertype: int = 0x0800) -> bytes:
    # Each tag is (its TPID, its VLAN id); the TPID goes in the preceding ethertype slot.
    out = MAC_B + MAC_A + struct.pack("!H", tags[0][0])
    for i, (_tpid, vid) in enumerate(tags):
        inner = tags[i + 1][0] if i + 1 < len(tags) else ethertype
        out += struct.pack("!HH", vid, inner)
    return out + ip


@pytest.mark.parametrize(
    "tags",
    [
        [(0x8100, 10)],
        [(0x88A8, 100), (0x8100, 20)],
        [(0x9100, 7), (0x8100, 8)],
        [(0x88A8, 1), (0x8100, 2), (0x8100, 3)],
    ],
)
def test_vlan_and_qinq(tags: list[tuple[int, int]]) -> None:
    d = Decoder()
    pkt = decode(1, tagged(tags, tcp4()), d)
    assert_tcp4(pkt)
    assert pkt.vlan == tuple(vid for _, vid in tags)
    assert d.stats["vlan"] == 1


def test_too_many_vlan_layers_and_configurable_limit() -> None:
    frame = tagged([(0x8100, 1), (0x8100, 2), (0x8100, 3), (0x8100, 4)], tcp4())
    pkt = decode(1, frame)
    assert pkt.bad and pkt.events == ["vlan.too_many_layers"]
    assert_tcp4(decode(1, frame, Decoder(DecodeConfig(max_vlan_layers=4))))


def test_vlan_header_too_small() -> None:
    pkt = decode(1, MAC_B + MAC_A + b"\x81\x00\x00")
    assert pkt.bad and pkt.events == ["vlan.header_too_small"]


def test_non_ip_ethertype_is_not_an_anomaly() -> None:
    pkt = decode(1, eth(b"\x00\x01\x08\x00" + b"\0" * 24, 0x0806))
    assert pkt.ipver == 0 and not pkt.bad and pkt.events is None


def test_ipv4_options_are_kept_and_listed() -> None:
    rr = bytes([7, 7, 4]) + b"\0\0\0\0"  # record route with room for one address
    opts = b"\x01" + rr + b"\x00" * 4  # NOP, RR, then EOL padding to 12 bytes
    pkt = decode(1, eth(tcp4(ip_opts=opts)))
    assert_tcp4(pkt)
    assert pkt.ip_hlen == 32 and pkt.ip_header()[20:] == opts
    assert ipv4_options(pkt) == [1, 7, 0]
    assert ipv4_options(decode(1, eth(tcp4()))) == []


def test_ipv4_bad_option_length_is_invalid() -> None:
    pkt = decode(1, eth(tcp4(ip_opts=bytes([7, 1, 0, 0]))))
    assert pkt.bad and pkt.events == ["ipv4.opt_invalid_len"]


def test_tcp_options_parsed_lazily() -> None:
    opts = (
        struct.pack("!BBH", 2, 4, 1460)
        + b"\x01"
        + struct.pack("!BBB", 3, 3, 7)
        + struct.pack("!BB", 4, 2)
        + struct.pack("!BBII", 8, 10, 111, 222)
        + b"\x00\x00\x00\x00"  # EOL padding to a multiple of 4
    )
    pkt = decode(1, eth(tcp4(opts=opts)))
    assert_tcp4(pkt)
    assert pkt.l4_hlen == 20 + len(opts)
    assert (tcp_mss(pkt), tcp_wscale(pkt), tcp_sack_permitted(pkt), tcp_timestamp(pkt)) == (
        1460,
        7,
        True,
        (111, 222),
    )
    plain = decode(1, eth(tcp4()))
    assert (tcp_mss(plain), tcp_wscale(plain), tcp_sack_permitted(plain), tcp_timestamp(plain)) == (
        None,
        None,
        False,
        None,
    )


def test_tcp_malformed_option_gives_none_not_exception() -> None:
    pkt = decode(1, eth(tcp4(opts=bytes([2, 40, 5, 0]))))
    assert not pkt.bad and tcp_mss(pkt) is None


def ipv6_with(nxt: int, exthdrs: bytes, l4: bytes) -> bytes:
    hdr = struct.pack("!IHBB", 6 << 28, len(exthdrs) + len(l4), nxt, 64) + SRC6 + DST6
    return hdr + exthdrs + l4


def udp_bytes(payload: bytes) -> bytes:
    return struct.pack("!HHHH", 1111, 53, 8 + len(payload), 0) + payload


def test_ipv6_extension_headers_walked() -> None:
    hop = bytes([60, 0]) + b"\x01\x04\0\0\0\0"  # -> dstopts, PadN
    dst = bytes([43, 0]) + b"\x01\x04\0\0\0\0"  # -> routing
    rt = bytes([51, 0, 2, 0]) + b"\0\0\0\0"  # -> AH, routing type 2
    ah = bytes([17, 1, 0, 0]) + b"\0" * 8  # -> UDP, AH len (1+2)*4 = 12
    pkt = decode(101, ipv6_with(0, hop + dst + rt + ah, udp_bytes(b"q")))
    assert not pkt.bad and pkt.events is None
    assert pkt.ip6_exthdrs == (0, 60, 43, 51)
    assert (pkt.proto, pkt.ip_hlen, pkt.dport, pkt.payload) == (17, 40 + 8 + 8 + 8 + 12, 53, b"q")


def test_ipv6_anomalies() -> None:
    rt0 = bytes([17, 0, 0, 0]) + b"\0\0\0\0"
    assert decode(101, ipv6_with(43, rt0, udp_bytes(b""))).events == ["ipv6.rh_type_0"]
    hop = bytes([0, 0]) + b"\x01\x04\0\0\0\0"
    hop2 = bytes([17, 0]) + b"\x01\x04\0\0\0\0"
    assert decode(101, ipv6_with(0, hop + hop2, udp_bytes(b""))).events == ["ipv6.exthdr_dupl_hh"]
    trunc = decode(101, ipv6_with(0, bytes([17, 5]) + b"\0" * 6, b""))
    assert trunc.bad and trunc.events == ["ipv6.trunc_exthdr"]
    none = decode(101, ipv6_with(59, b"", b"junk"))
    assert none.events == ["ipv6.data_after_none_header"] and none.proto == 59
    atomic = decode(101, ipv6_with(44, struct.pack("!BBHI", 17, 0, 0, 5), udp_bytes(b"a")))
    assert (
        atomic.events == ["ipv6.exthdr_useless_fh"] and not atomic.frag and atomic.payload == b"a"
    )


def test_esp_stops_the_walk() -> None:
    pkt = decode(101, ipv6_with(50, b"", b"\0\0\0\1" * 4))
    assert pkt.proto == 50 and pkt.l4_off == -1 and pkt.payload == b"\0\0\0\1" * 4 and not pkt.bad


def test_icmp_echo_id_seq() -> None:
    echo = dpkt.icmp.ICMP(type=8, data=dpkt.icmp.ICMP.Echo(id=4242, seq=7, data=b"ping"))
    pkt = decode(228, bytes(dpkt.ip.IP(src=SRC4, dst=DST4, p=1, data=echo)))
    assert (pkt.itype, pkt.icode, pkt.icmp_id, pkt.icmp_seq, pkt.payload) == (
        8,
        0,
        4242,
        7,
        b"ping",
    )
    unreach = dpkt.icmp.ICMP(type=3, code=1, data=dpkt.icmp.ICMP.Unreach(data=b"x" * 28))
    pkt = decode(228, bytes(dpkt.ip.IP(src=SRC4, dst=DST4, p=1, data=unreach)))
    assert (pkt.itype, pkt.icode, pkt.icmp_id, pkt.icmp_seq) == (3, 1, -1, -1)
    v6 = struct.pack("!BBHHH", 128, 0, 0, 99, 3) + b"data"
    pkt = decode(229, ipv6_with(58, b"", v6))
    assert (pkt.itype, pkt.icmp_id, pkt.icmp_seq, pkt.payload) == (128, 99, 3, b"data")


def test_udp_trailing_bytes_and_ethernet_padding_ignored() -> None:
    inner = udp_bytes(b"abc") + b"TRAILER"
    ip = dpkt.ip.IP(src=SRC4, dst=DST4, p=17)
    ip.data = inner
    ip.len = 20 + len(inner)
    pkt = decode(1, eth(bytes(ip)))
    assert pkt.payload == b"abc" and not pkt.bad
    padded = decode(1, eth(tcp4(payload=b"")) + b"\0" * 6)
    assert padded.payload == b"" and padded.ip_len == 40


def test_udp_length_anomalies() -> None:
    too_long = struct.pack("!HHHH", 1, 2, 50, 0) + b"ab"
    pkt = decode(228, bytes(dpkt.ip.IP(src=SRC4, dst=DST4, p=17, data=too_long)))
    assert not pkt.bad and pkt.l4_off == -1 and pkt.events == ["udp.pkt_too_small"]
    short = struct.pack("!HHHH", 1, 2, 4, 0)
    pkt = decode(228, bytes(dpkt.ip.IP(src=SRC4, dst=DST4, p=17, data=short)))
    assert not pkt.bad and pkt.l4_off == -1 and pkt.events == ["udp.hlen_invalid"]


def test_tcp_header_anomalies() -> None:
    raw = bytearray(tcp4(payload=b""))
    raw[20 + 12] = 0x40  # data offset 4 words = 16 bytes < 20
    pkt = decode(228, bytes(raw))
    assert not pkt.bad and pkt.l4_off == -1 and pkt.events == ["tcp.invalid_optlen"]
    raw[20 + 12] = 0xF0  # 60 bytes claimed, 20 present
    pkt = decode(228, bytes(raw))
    assert not pkt.bad and pkt.l4_off == -1 and pkt.events == ["tcp.hlen_too_small"]


def test_ipv4_header_anomalies() -> None:
    raw = bytearray(tcp4())
    raw[0] = 0x44
    assert decode(228, bytes(raw)).events == ["ipv4.hlen_too_small"]
    raw = bytearray(tcp4())
    struct.pack_into("!H", raw, 2, 10)
    assert decode(228, bytes(raw)).events == ["ipv4.iplen_smaller_than_hlen"]
    raw = bytearray(tcp4())
    struct.pack_into("!H", raw, 2, 400)
    pkt = decode(228, bytes(raw))
    assert pkt.events == ["ipv4.trunc_pkt"] and pkt.bad and pkt.ip_len == len(raw)
    raw = bytearray(tcp4())
    raw[0] = 0x65
    assert decode(228, bytes(raw)).events == ["ipv4.wrong_ip_version"]


def _fields(pkt: Packet) -> dict[str, object]:
    return {name: getattr(pkt, name) for name in Packet.__slots__}


@pytest.mark.parametrize(
    "frame",
    [
        eth(tcp4()),
        eth(tcp4(opts=struct.pack("!BBH", 2, 4, 1400))),
        tagged([(0x8100, 42)], tcp4()),
        eth(udp6(), 0x86DD),
        tagged([(0x8100, 5)], udp6(), 0x86DD),
        eth(bytes(dpkt.ip.IP(src=SRC4, dst=DST4, p=17, data=udp_bytes(b"x" * 40)))),
    ],
)
def test_fast_path_matches_general_path(frame: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = decode(1, frame)
    monkeypatch.setattr("sensor.decode.decoder.fast_decode", lambda pkt, stats: False)
    slow_decoder = _Decoder()
    slow = decode(1, frame, slow_decoder)
    assert _fields(fast) == _fields(slow)
    assert fast.sport != 0 and fast.payload
