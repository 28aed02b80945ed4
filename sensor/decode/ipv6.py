"""IPv6 header and extension-header decoding.

Scope: validate the fixed header, walk hop-by-hop, routing, destination options,
fragment and AH headers (recording their numbers in ``ip6_exthdrs`` and Suricata's
duplicate/truncation events), stop at ESP or "no next header", and leave ``proto`` at the
upper-layer protocol with ``ip_hlen`` covering the fixed header plus extension headers.
A fragment stops the walk at its fragment header: what follows belongs to the datagram
and is only decoded after reassembly (as Suricata does).

Non-goals: validating the options inside hop-by-hop/destination headers (padding,
unknown option types), jumbograms, Mobile IPv6 and HIP headers, tunnels.
"""

from __future__ import annotations

import struct
from collections import Counter
from typing import Final

from sensor.decode.events import invalid, note
from sensor.packet import IPPROTO_ICMP, Packet

IPV6_HDR: Final = struct.Struct("!IHBBQQQQ")
_FRAG_HDR = struct.Struct("!BBHI")  # next header, reserved, offset|res|M, identification

NH_HOPOPTS: Final = 0
NH_ROUTING: Final = 43
NH_FRAGMENT: Final = 44
NH_ESP: Final = 50
NH_AH: Final = 51
NH_NONE: Final = 59
NH_DSTOPTS: Final = 60
EXT_HEADERS: Final = frozenset((NH_HOPOPTS, NH_ROUTING, NH_FRAGMENT, NH_AH, NH_DSTOPTS))
_DUPLICATE_EVENT: Final = {
    NH_HOPOPTS: "ipv6.exthdr_dupl_hh",
    NH_ROUTING: "ipv6.exthdr_dupl_rh",
    NH_FRAGMENT: "ipv6.exthdr_dupl_fh",
    NH_AH: "ipv6.exthdr_dupl_ah",
    NH_DSTOPTS: "ipv6.exthdr_dupl_dh",
}


def ext_header_len(nh: int, data: bytes, p: int) -> int:
    """Length in bytes of the extension header ``nh`` starting at ``p`` (needs 2 bytes)."""
    if nh == NH_FRAGMENT:
        return 8
    if nh == NH_AH:
        return (data[p + 1] + 2) << 2
    return (data[p + 1] + 1) << 3


def decode_ipv6(pkt: Packet, off: int, stats: Counter[str]) -> bool:
    """Fill the IPv6 fields of ``pkt`` from the header at ``off``; False when undecodable."""
    stats["ipv6"] += 1
    data = pkt.data
    avail = len(data) - off
    if avail < 40:
        invalid(pkt, stats, "ipv6.pkt_too_small")
        return False
    vtcfl, plen, nh, hlim, src_hi, src_lo, dst_hi, dst_lo = IPV6_HDR.unpack_from(data, off)
    if vtcfl >> 28 != 6:
        invalid(pkt, stats, "ipv6.wrong_ip_version")
        return False
    pkt.ipver = 6
    pkt.ip_off = off
    pkt.ip_hlen = 40
    pkt.ip_len = min(40 + plen, avail)
    pkt.src = (src_hi << 64) | src_lo
    pkt.dst = (dst_hi << 64) | dst_lo
    pkt.ttl = hlim
    pkt.tos = (vtcfl >> 20) & 0xFF
    pkt.proto = nh
    if avail < 40 + plen:
        invalid(pkt, stats, "ipv6.trunc_pkt")
        return False
    if nh in EXT_HEADERS or nh == NH_NONE:
        return _walk_ext_headers(pkt, data, off, off + 40 + plen, nh, stats)
    if nh == IPPROTO_ICMP:
        note(pkt, stats, "ipv6.icmpv4")
    return True


def _walk_ext_headers(
    pkt: Packet, data: bytes, off: int, end: int, nh: int, stats: Counter[str]
) -> bool:
    p = off + 40
    seen: list[int] = []
    while nh in EXT_HEADERS:
        if p + 2 > end:
            invalid(pkt, stats, "ipv6.trunc_exthdr")
            return False
        hlen = ext_header_len(nh, data, p)
        if p + hlen > end:
            invalid(pkt, stats, "ipv6.trunc_exthdr")
            return False
        # Destination options may legitimately appear twice (before and after routing).
        if nh in seen and (nh != NH_DSTOPTS or seen.count(nh) >= 2):
            note(pkt, stats, _DUPLICATE_EVENT[nh])
        seen.append(nh)
        if nh == NH_ROUTING and data[p + 2] == 0:
            note(pkt, stats, "ipv6.rh_type_0")
        elif nh == NH_AH and (data[p + 2] or data[p + 3]):
            note(pkt, stats, "ipv6.exthdr_ah_res_not_null")
        elif nh == NH_FRAGMENT and _fragment_header(pkt, data, p, end, stats):
            pkt.ip6_exthdrs = tuple(seen)  # Packet types this field from its None/() default
            return True
        nh = data[p]
        p += hlen
    pkt.ip6_exthdrs = tuple(seen)  # Packet types this field from its None/() default
    pkt.proto = nh
    pkt.ip_hlen = p - off
    if nh == NH_NONE and p < end:
        note(pkt, stats, "ipv6.data_after_none_header")
    if nh in (NH_NONE, NH_ESP):
        pkt.payload = data[p:end]
    elif nh == IPPROTO_ICMP:
        note(pkt, stats, "ipv6.icmpv4")
    return True


def _fragment_header(pkt: Packet, data: bytes, p: int, end: int, stats: Counter[str]) -> bool:
    """Handle the fragment header at ``p``; True when the packet is a real fragment."""
    next_header, reserved, off_flags, ident = _FRAG_HDR.unpack_from(data, p)
    if reserved or off_flags & 0x0006:
        note(pkt, stats, "ipv6.fh_non_zero_reserved_field")
    frag_off = off_flags & 0xFFF8
    more = bool(off_flags & 1)
    if frag_off == 0 and not more:
        # An "atomic fragment": not fragmented at all; keep decoding past it.
        note(pkt, stats, "ipv6.exthdr_useless_fh")
        return False
    pkt.frag = True
    pkt.frag_off = frag_off
    pkt.more_frags = more
    pkt.ip_id = ident
    pkt.proto = next_header
    pkt.ip_hlen = p + 8 - pkt.ip_off
    pkt.payload = data[p + 8 : end]
    return True
