"""Checksum keywords: ``ipv4-csum``, ``tcpv4-csum``, ``tcpv6-csum``, ``udpv4-csum``,
``udpv6-csum``, ``icmpv4-csum``, ``icmpv6-csum`` with the value ``valid`` or ``invalid``.

Scope: Suricata 7's ``detect-csum.c`` semantics, computed from the captured bytes:

* a keyword only matches packets of its own kind (``tcpv4-csum`` an IPv4 TCP packet with a
  decoded TCP header); any other packet, a fragment not yet reassembled and the pseudo
  packet that flushes a stream at flow end match neither ``valid`` nor ``invalid``;
* ``udpv4-csum`` never matches a UDP/IPv4 datagram whose checksum field is 0 (IPv4 UDP
  checksums are optional; over IPv6 a zero is simply invalid);
* TCP and UDP checksums cover the header and the payload the header lengths describe,
  ICMPv4 what the IPv4 total length covers, ICMPv6 what the IPv6 payload length covers
  after the extension headers; all L4 sums include the pseudo header.

Non-goals: Suricata's ``checksum-validation``/``checksum-checks: auto`` switch (which, with
checksum offloading, makes every checksum "valid"): on a capture file the checksum is
always computed.
"""

from __future__ import annotations

from collections.abc import Callable

from sensor.errors import RuleError
from sensor.packet import IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, Packet

Check = Callable[[Packet], bool]


def ones_sum_is_valid(data: bytes) -> bool:
    """True when the 16-bit ones'-complement sum of ``data`` (checksum field included) is 0xFFFF.

    2**16 is 1 modulo 0xFFFF, so the big-endian integer of the bytes is congruent to the
    sum of its 16-bit words: one C-level modulo instead of a Python loop per word.
    """
    if len(data) % 2:
        data += b"\x00"
    return bool(data) and int.from_bytes(data, "big") % 0xFFFF == 0


def _pseudo_header(p: Packet, proto: int, length: int) -> bytes:
    if p.ipver == 4:
        return p.src.to_bytes(4, "big") + p.dst.to_bytes(4, "big") + bytes((0, proto)) + \
            length.to_bytes(2, "big")  # fmt: skip
    return p.src.to_bytes(16, "big") + p.dst.to_bytes(16, "big") + length.to_bytes(4, "big") + \
        bytes((0, 0, 0, proto))  # fmt: skip


def _real(p: Packet) -> bool:
    # pcap_cnt 0 is the flow-end pseudo packet: it has no header of its own to check
    return p.pcap_cnt != 0 and p.ip_off >= 0 and not p.frag


def _ipv4(p: Packet) -> bool | None:
    if p.ipver != 4 or not _real(p):
        return None
    return ones_sum_is_valid(p.data[p.ip_off : p.ip_off + p.ip_hlen])


def _l4(p: Packet, ipver: int, proto: int) -> bool | None:
    if p.ipver != ipver or p.proto != proto or p.l4_off < 0 or not _real(p):
        return None
    if proto in (IPPROTO_TCP, IPPROTO_UDP):
        seg = p.data[p.l4_off : p.l4_off + p.l4_hlen + len(p.payload)]
        if proto == IPPROTO_UDP and ipver == 4 and seg[6:8] == b"\x00\x00":
            return None  # no checksum computed by the sender
    elif proto == IPPROTO_ICMP:
        return ones_sum_is_valid(p.data[p.l4_off : p.ip_off + p.ip_len])
    else:
        seg = p.data[p.l4_off : p.ip_off + p.ip_len]
    if not seg:
        return None
    return ones_sum_is_valid(_pseudo_header(p, proto, len(seg)) + seg)


_KINDS: dict[str, Callable[[Packet], bool | None]] = {
    "ipv4-csum": _ipv4,
    "tcpv4-csum": lambda p: _l4(p, 4, IPPROTO_TCP),
    "tcpv6-csum": lambda p: _l4(p, 6, IPPROTO_TCP),
    "udpv4-csum": lambda p: _l4(p, 4, IPPROTO_UDP),
    "udpv6-csum": lambda p: _l4(p, 6, IPPROTO_UDP),
    "icmpv4-csum": lambda p: _l4(p, 4, IPPROTO_ICMP),
    "icmpv6-csum": lambda p: _l4(p, 6, IPPROTO_ICMPV6),
}


def _parser(keyword: str) -> Callable[[str | None], Check]:
    verdict = _KINDS[keyword]

    def parse(value: str | None) -> Check:
        text = (value or "").strip().strip('"').strip().lower()
        if text not in ("valid", "invalid"):
            raise RuleError(f"{keyword}: value must be 'valid' or 'invalid', not '{value}'")
        want = text == "valid"
        return lambda p: verdict(p) is want

    return parse


CHECKSUM_KEYWORDS: dict[str, Callable[[str | None], Check]] = {k: _parser(k) for k in _KINDS}
