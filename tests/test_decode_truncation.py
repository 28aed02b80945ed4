"""The decoder never raises: every prefix of valid frames, and random bytes on every link type."""

from __future__ import annotations

import struct

import dpkt
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.decode import Decoder, ipv4_options, tcp_mss, tcp_timestamp, tcp_wscale
from sensor.packet import Packet

LINKTYPES = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276]
MAC = b"\x02\x00\x00\x00\x00\x01"
SRC6 = bytes.fromhex("20010db8000000000000000000000001")


def eth_vlan_tcp4() -> bytes:
    tcp = dpkt.tcp.TCP(sport=1, dport=2, opts=struct.pack("!BBH", 2, 4, 1460), data=b"payload!")
    tcp.off = 6
    ip = dpkt.ip.IP(
        src=b"\x01\x02\x03\x04", dst=b"\x05\x06\x07\x08", p=6, opts=b"\x01\x01\x01\x00", data=tcp
    )
    ip.hl = 6
    return MAC + MAC + b"\x81\x00\x00\x05\x08\x00" + bytes(ip)


def eth_udp6_ext() -> bytes:
    udp = struct.pack("!HHHH", 1, 2, 12, 0) + b"abcd"
    hop = bytes([17, 0]) + b"\x01\x04\0\0\0\0"
    ip6 = struct.pack("!IHBB", 6 << 28, len(hop) + len(udp), 0, 1) + SRC6 + SRC6 + hop + udp
    return MAC + MAC + b"\x86\xdd" + ip6


def eth_icmp4() -> bytes:
    echo = dpkt.icmp.ICMP(type=8, data=dpkt.icmp.ICMP.Echo(id=1, seq=2, data=b"x" * 10))
    return (
        MAC
        + MAC
        + b"\x08\x00"
        + bytes(dpkt.ip.IP(src=b"\1\1\1\1", dst=b"\2\2\2\2", p=1, data=echo))
    )


# Event expected when a frame is cut inside each layer (by where the cut falls).
def expected_event(frame_name: str, cut: int) -> set[str]:
    if frame_name == "tcp4":
        return {
            "ethernet.pkt_too_small",
            "vlan.header_too_small",
            "ipv4.pkt_too_small",
            "ipv4.hlen_too_small",
            "ipv4.trunc_pkt",
        }
    if frame_name == "udp6":
        return {"ethernet.pkt_too_small", "ipv6.pkt_too_small", "ipv6.trunc_pkt"}
    return {"ethernet.pkt_too_small", "ipv4.pkt_too_small", "ipv4.trunc_pkt"}


def test_every_truncation_gives_an_event_not_an_exception() -> None:
    frames = {"tcp4": eth_vlan_tcp4(), "udp6": eth_udp6_ext(), "icmp4": eth_icmp4()}
    for name, frame in frames.items():
        d = Decoder()
        whole = Packet(1, 0, 0, 1, frame)
        d.decode(whole)
        assert not whole.bad and whole.events is None and whole.payload
        for cut in range(len(frame)):
            pkt = Packet(1, 0, 0, 1, frame[:cut])
            assert d.decode(pkt) is None
            # Cutting a frame shortens the data but not the IP length field, so every
            # prefix is an anomaly at some layer (a cut before the IP header included).
            assert pkt.bad, (name, cut)
            assert pkt.events and set(pkt.events) <= expected_event(name, cut), (
                name,
                cut,
                pkt.events,
            )
        assert d.stats["invalid"] == len(frame)


def test_truncated_l4_inside_valid_ip_lengths() -> None:
    # The IP header claims only what is present, so the anomaly is at the transport layer.
    cases = [
        (6, 19, "tcp.pkt_too_small"),
        (17, 7, "udp.hlen_too_small"),
        (1, 7, "icmpv4.pkt_too_small"),
    ]
    for proto, size, event in cases:
        ip = dpkt.ip.IP(src=b"\1\1\1\1", dst=b"\2\2\2\2", p=proto, data=b"\0" * size)
        pkt = Packet(1, 0, 0, 228, bytes(ip))
        Decoder().decode(pkt)
        assert not pkt.bad and pkt.l4_off == -1 and pkt.events == [event]


@settings(max_examples=3000, deadline=None)
@given(linktype=st.sampled_from(LINKTYPES), data=st.binary(max_size=200))
def test_random_bytes_never_raise(linktype: int, data: bytes) -> None:
    d = Decoder()
    pkt = Packet(1, 0, 0, linktype, data)
    d.decode(pkt)
    tcp_mss(pkt), tcp_wscale(pkt), tcp_timestamp(pkt), ipv4_options(pkt)
    assert pkt.bad == bool(d.stats["invalid"])


PREFIXES = {
    1: MAC + MAC + b"\x08\x00\x45",
    113: b"\0" * 14 + b"\x86\xdd\x60",
    101: b"\x45",
    0: b"\x02\0\0\0\x60",
}


@settings(max_examples=2000, deadline=None)
@given(linktype=st.sampled_from(sorted(PREFIXES)), tail=st.binary(max_size=120))
def test_random_bytes_behind_plausible_headers_never_raise(linktype: int, tail: bytes) -> None:
    # A plausible link/IP start makes hypothesis explore the deeper decoders too.
    d = Decoder()
    for cnt in range(2):  # twice, so fragments meet the defragmenter with state
        d.decode(Packet(cnt, 0, 0, linktype, PREFIXES[linktype] + tail))
