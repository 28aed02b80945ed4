"""IPv4 header decoding and the ``ipopts`` option walk.

Scope: validate the fixed header the way Suricata does (in its order, with its event
names), fill addresses/TTL/TOS/id/fragment fields and ``ip_hlen``/``ip_len``, and check
the options for malformed lengths. Options stay in ``pkt.data``; :func:`ipv4_options`
lists their type numbers on demand for the ``ipopts`` rule keyword. Ethernet padding
after the datagram is excluded because every later stage uses ``ip_off + ip_len``.

Non-goals: checksum validation (an IDS sees what the host saw, and offloading makes
checksums on captured outbound traffic meaningless), tunnels (IP-in-IP, GRE).
"""

from __future__ import annotations

import struct
from collections import Counter
from typing import Final

from sensor.decode.events import invalid, note
from sensor.packet import IPPROTO_ICMPV6, Packet

IPV4_HDR: Final = struct.Struct("!BBHHHBBHII")

IPOPT_EOL: Final = 0
IPOPT_NOP: Final = 1
# Option types Suricata knows (RR, TS, SEC, LSRR, ESEC, CIPSO, SID, SSRR, RTRALT).
_KNOWN_OPTS: Final = frozenset((7, 68, 130, 131, 133, 134, 136, 137, 148))


def decode_ipv4(pkt: Packet, off: int, stats: Counter[str]) -> bool:
    """Fill the IPv4 fields of ``pkt`` from the header at ``off``; False when undecodable."""
    stats["ipv4"] += 1
    data = pkt.data
    avail = len(data) - off
    if avail < 20:
        invalid(pkt, stats, "ipv4.pkt_too_small")
        return False
    vihl, tos, total_len, ip_id, frag_field, ttl, proto, _csum, src, dst = IPV4_HDR.unpack_from(
        data, off
    )
    if vihl >> 4 != 4:
        invalid(pkt, stats, "ipv4.wrong_ip_version")
        return False
    hlen = (vihl & 0x0F) << 2
    if hlen < 20 or avail < hlen:
        invalid(pkt, stats, "ipv4.hlen_too_small")
        return False
    pkt.ipver = 4
    pkt.ip_off = off
    pkt.ip_hlen = hlen
    pkt.ip_len = min(total_len, avail)
    pkt.src = src
    pkt.dst = dst
    pkt.proto = proto
    pkt.ttl = ttl
    pkt.ip_id = ip_id
    pkt.tos = tos
    if total_len < hlen:
        invalid(pkt, stats, "ipv4.iplen_smaller_than_hlen")
        return False
    if avail < total_len:
        invalid(pkt, stats, "ipv4.trunc_pkt")
        return False
    if hlen > 20 and not _check_options(pkt, data, off + 20, off + hlen, stats):
        return False
    frag_bits = frag_field & 0x3FFF
    if frag_bits:
        pkt.frag = True
        pkt.frag_off = (frag_field & 0x1FFF) << 3
        pkt.more_frags = bool(frag_field & 0x2000)
        pkt.payload = data[off + hlen : off + total_len]
    if proto == IPPROTO_ICMPV6:
        note(pkt, stats, "ipv4.icmpv6")
    return True


def _check_options(pkt: Packet, data: bytes, p: int, end: int, stats: Counter[str]) -> bool:
    seen: set[int] = set()
    while p < end:
        kind = data[p]
        if kind == IPOPT_EOL:
            return True
        if kind == IPOPT_NOP:
            p += 1
            continue
        if p + 1 >= end:
            invalid(pkt, stats, "ipv4.opt_malformed")
            return False
        length = data[p + 1]
        if length < 2 or p + length > end:
            invalid(pkt, stats, "ipv4.opt_invalid_len")
            return False
        if kind in seen:
            note(pkt, stats, "ipv4.opt_duplicate")
        elif kind not in _KNOWN_OPTS:
            note(pkt, stats, "ipv4.opt_unknown")
        seen.add(kind)
        p += length
    return True


def ipv4_options(pkt: Packet) -> list[int]:
    """Option type numbers of an IPv4 packet in header order (EOL and NOP included).

    Parsed from ``pkt.data`` on demand: only rules with ``ipopts`` need it."""
    if pkt.ipver != 4 or pkt.ip_hlen <= 20:
        return []
    data = pkt.data
    p = pkt.ip_off + 20
    end = pkt.ip_off + pkt.ip_hlen
    kinds: list[int] = []
    while p < end:
        kind = data[p]
        kinds.append(kind)
        if kind == IPOPT_EOL:
            break
        if kind == IPOPT_NOP:
            p += 1
            continue
        if p + 1 >= end or data[p + 1] < 2:
            break
        p += data[p + 1]
    return kinds
