"""ICMPv4 and ICMPv6 header decoding.

Scope: type and code, the identifier/sequence pair for the message types that have one
(ICMPv4 echo, timestamp, information and address-mask request/reply; ICMPv6 echo),
``icmpv4.unknown_type`` for types past the assigned range, and the payload after the
8-byte header.

Non-goals: decoding the IP header embedded in error messages (Suricata's
``icmpv4.ipv4_trunc_pkt`` family), neighbour discovery options, MLD checks.
"""

from __future__ import annotations

import struct
from collections import Counter
from typing import Final

from sensor.decode.events import l4_invalid, note
from sensor.packet import Packet

ICMP_HDR: Final = struct.Struct("!BBHHH")  # type, code, checksum, id, seq
ICMPV4_ID_SEQ_TYPES: Final = frozenset((0, 8, 13, 14, 15, 16, 17, 18))
ICMPV6_ID_SEQ_TYPES: Final = frozenset((128, 129))
_ICMPV4_MAX_KNOWN_TYPE: Final = 40


def _decode_icmp(
    pkt: Packet,
    start: int,
    end: int,
    stats: Counter[str],
    family: str,
    id_seq_types: frozenset[int],
) -> None:
    stats[family] += 1
    if end - start < 8:
        l4_invalid(pkt, stats, f"{family}.pkt_too_small")
        return
    itype, icode, _csum, ident, seq = ICMP_HDR.unpack_from(pkt.data, start)
    pkt.l4_off = start
    pkt.l4_hlen = 8
    pkt.itype = itype
    pkt.icode = icode
    if itype in id_seq_types:
        pkt.icmp_id = ident
        pkt.icmp_seq = seq
    pkt.payload = pkt.data[start + 8 : end]


def _icmpv4_hlen(pkt: Packet, start: int, end: int) -> int:
    """Header length as Suricata counts it for ``icmpv4.hdr``: types with fixed fields
    beyond the first 8 bytes (timestamps, router advertisement entries) include them."""
    t = pkt.itype
    if t in (13, 14):  # timestamp request/reply: three 32-bit timestamps
        hlen = 20
    elif t == 9 and end - start >= 8:  # router advertisement: naddr * entry size words
        naddr, size = pkt.data[start + 4], pkt.data[start + 5]
        hlen = 8 + naddr * size * 4
    else:
        return 8
    return hlen if start + hlen <= end else 8


def decode_icmpv4(pkt: Packet, start: int, end: int, stats: Counter[str]) -> None:
    """Decode the ICMPv4 message in ``pkt.data[start:end]``."""
    _decode_icmp(pkt, start, end, stats, "icmpv4", ICMPV4_ID_SEQ_TYPES)
    if pkt.l4_off >= 0:
        hlen = _icmpv4_hlen(pkt, start, end)
        if hlen != 8:
            pkt.l4_hlen = hlen
            pkt.payload = pkt.data[start + hlen : end]
    if pkt.itype > _ICMPV4_MAX_KNOWN_TYPE:
        note(pkt, stats, "icmpv4.unknown_type")


def decode_icmpv6(pkt: Packet, start: int, end: int, stats: Counter[str]) -> None:
    """Decode the ICMPv6 message in ``pkt.data[start:end]``."""
    _decode_icmp(pkt, start, end, stats, "icmpv6", ICMPV6_ID_SEQ_TYPES)
