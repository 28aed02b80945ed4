"""IPv4/IPv6 reassembly: order, overlaps under the BSD policy, timeouts and limits."""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest

from sensor.decode import DecodeConfig, Decoder
from sensor.packet import Packet

Make = Callable[[bytes, int, bool], bytes]

SRC6 = bytes.fromhex("20010db8000000000000000000000001")
DST6 = bytes.fromhex("20010db8000000000000000000000002")


def udp(payload: bytes) -> bytes:
    return struct.pack("!HHHH", 4000, 53, 8 + len(payload), 0) + payload


def frag4(body: bytes, off: int, more: bool, ident: int = 9) -> bytes:
    flags = (0x2000 if more else 0) | (off // 8)
    hdr = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(body),
        ident,
        flags,
        64,
        17,
        0,
        bytes([10, 0, 0, 1]),
        bytes([10, 0, 0, 2]),
    )
    return hdr + body


def frag6(body: bytes, off: int, more: bool, ident: int = 9) -> bytes:
    fh = struct.pack("!BBHI", 17, 0, off | int(more), ident)
    return struct.pack("!IHBB", 6 << 28, 8 + len(body), 44, 64) + SRC6 + DST6 + fh + body


def feed(
    d: Decoder, frames: list[bytes], linktype: int = 101, ts: list[int] | None = None
) -> list[Packet]:
    out = []
    for i, frame in enumerate(frames):
        pkt = Packet(i + 1, ts[i] if ts else 1000, 0, linktype, frame)
        whole = d.decode(pkt)
        assert pkt.frag and pkt.l4_off == -1 and pkt.sport == 0
        if whole is not None:
            out.append(whole)
    return out


DATAGRAM = udp(b"A" * 16 + b"B" * 16 + b"C" * 16)  # 56 bytes


def pieces(make: Make, order: list[int]) -> list[bytes]:
    chunks = [(0, DATAGRAM[0:24], True), (24, DATAGRAM[24:48], True), (48, DATAGRAM[48:], False)]
    return [make(chunks[i][1], chunks[i][0], chunks[i][2]) for i in order]


@pytest.mark.parametrize("make", [frag4, frag6])
@pytest.mark.parametrize("order", [[0, 1, 2], [2, 1, 0], [1, 2, 0]])
def test_reassembly_in_any_order(make: Make, order: list[int]) -> None:
    d = Decoder()
    rebuilt = feed(d, pieces(make, order))
    assert len(rebuilt) == 1
    whole = rebuilt[0]
    assert whole.defragged and not whole.frag and not whole.bad and whole.ip_off == 0
    assert (whole.sport, whole.dport, whole.payload) == (4000, 53, DATAGRAM[8:])
    assert whole.pcap_cnt == 3 and whole.linktype == 101
    assert d.stats["frag"] == 3 and d.stats["defrag_reassembled"] == 1 and d.defrag.tracked == 0
    if make is frag4:
        assert whole.ip_len == 20 + len(DATAGRAM)
        flags = struct.unpack_from("!H", whole.data, 6)[0]
        assert flags & 0x3FFF == 0
    else:
        assert whole.ip6_exthdrs == () and whole.ip_hlen == 40
        assert struct.unpack_from("!H", whole.data, 4)[0] == len(DATAGRAM)


def test_fragment_fields_and_ethernet_context_kept() -> None:
    d = Decoder()
    eth = b"\x02" * 6 + b"\x04" * 6 + b"\x81\x00\x00\x07\x08\x00"
    frames = [eth + f for f in pieces(frag4, [0, 1, 2])]
    first = Packet(1, 5, 6, 1, frames[0])
    assert d.decode(first) is None
    assert (first.frag_off, first.more_frags, first.payload) == (0, True, DATAGRAM[:24])
    assert d.decode(Packet(2, 5, 6, 1, frames[1])) is None
    whole = d.decode(Packet(3, 5, 7, 1, frames[2]))
    assert whole is not None and whole.vlan == (7,) and whole.src_mac == b"\x04" * 6
    assert (whole.ts_sec, whole.ts_usec) == (5, 7) and whole.payload == DATAGRAM[8:]


@pytest.mark.parametrize(
    ("make", "event"), [(frag4, "ipv4.frag_overlap"), (frag6, "ipv6.frag_overlap")]
)
def test_overlap_bsd_policy(make: Make, event: str) -> None:
    # Original: bytes 0-23 and 24-47 and 48-55. Then overlapping rewrites:
    # - same offset 24 (tie): the earlier fragment ("B...") keeps its bytes;
    # - offset 16: loses 16-23 to the fragment at 0 (lower offset) but wins 24-31 over
    #   the fragment at 24 (its own offset is lower).
    d = Decoder()
    first = make(DATAGRAM[0:24], 0, True)
    mid = make(DATAGRAM[24:48], 24, True)
    same_off = make(b"X" * 24, 24, True)
    lower_off = make(b"Y" * 16, 16, True)
    last = make(DATAGRAM[48:], 48, False)
    pkts = [Packet(i, 1, 0, 101, f) for i, f in enumerate([first, mid, same_off, lower_off, last])]
    results = [d.decode(p) for p in pkts]
    assert pkts[2].events == [event] and pkts[3].events == [event]
    whole = results[-1]
    assert whole is not None
    expected = bytearray(DATAGRAM)
    expected[24:32] = b"Y" * 8
    assert whole.payload == bytes(expected[8:])
    assert d.stats[event] == 2


def test_incomplete_datagram_times_out() -> None:
    d = Decoder(DecodeConfig(defrag_timeout=60))
    f = pieces(frag4, [0, 1, 2])
    assert feed(d, [f[0], f[1]], ts=[0, 10]) == []
    assert feed(d, [f[2]], ts=[61]) == []  # the old half expired; this starts a new one
    assert d.stats["defrag_timeout"] == 1 and d.defrag.tracked == 1


def test_max_datagrams_evicts_oldest() -> None:
    d = Decoder(DecodeConfig(defrag_max_datagrams=2))
    firsts = [frag4(DATAGRAM[:24], 0, True, ident=i) for i in range(3)]
    feed(d, firsts)
    assert d.stats["defrag_evicted"] == 1 and d.defrag.tracked == 2
    rest = [frag4(DATAGRAM[24:48], 24, True, ident=0), frag4(DATAGRAM[48:], 48, False, ident=0)]
    assert feed(d, rest) == []  # ident 0 was evicted, so it cannot complete
    assert (
        len(feed(d, [frag4(DATAGRAM[24:48], 24, True, 2), frag4(DATAGRAM[48:], 48, False, 2)])) == 1
    )


def test_max_fragments_per_datagram() -> None:
    d = Decoder(DecodeConfig(defrag_max_fragments=2))
    f = pieces(frag4, [0, 1, 2])
    pkts = [Packet(i, 1, 0, 101, x) for i, x in enumerate(f)]
    assert [d.decode(p) for p in pkts] == [None, None, None]
    assert pkts[2].events == ["ipv4.frag_ignored"] and d.stats["defrag_max_frags"] == 1


@pytest.mark.parametrize(
    ("make", "event"), [(frag4, "ipv4.frag_pkt_too_large"), (frag6, "ipv6.frag_pkt_too_large")]
)
def test_datagram_larger_than_limit(make: Make, event: str) -> None:
    d = Decoder()
    pkt = Packet(1, 1, 0, 101, make(b"Z" * 64, 65528, False))
    assert d.decode(pkt) is None
    assert pkt.events == [event] and d.defrag.tracked == 0


def test_defrag_disabled_only_decodes_ip() -> None:
    d = Decoder(DecodeConfig(defrag=False))
    assert feed(d, pieces(frag4, [0, 1, 2])) == [] and d.stats["frag"] == 3


def test_fragment_bytes_never_outgrow_the_memcap() -> None:
    """A flood of never-completed fragments is bounded by bytes, not only by datagrams."""
    import dpkt as _dpkt

    from sensor.decode import DecodeConfig, Decoder
    from sensor.packet import Packet

    decoder = Decoder(DecodeConfig(defrag_memcap=64 * 1024))
    for ident in range(200):
        ip = _dpkt.ip.IP(src=b"\x0a\x00\x00\x01", dst=b"\x0a\x00\x00\x02", p=17, id=ident,
                         data=b"x" * 1400)  # fmt: skip
        ip.mf = 1  # first fragment of a datagram that never completes
        ip.len = len(ip)
        decoder.decode(Packet(ident + 1, 0, 0, 228, bytes(ip)))
        assert decoder.defrag._bytes <= 64 * 1024
    assert decoder.stats["defrag_memcap_evicted"] > 0
