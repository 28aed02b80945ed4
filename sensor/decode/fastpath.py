"""The hot path: Ethernet (+ one 802.1Q tag) → option-less IPv4 or plain IPv6 → TCP/UDP.

Scope: one function that decodes the overwhelmingly common frame shape with a handful of
``unpack_from`` calls and plain attribute stores, allocating nothing but the payload
slice, the two MAC slices and (when tagged) the VLAN tuple. It reads and checks
everything first and writes the packet only once the frame is known to be well-formed,
so when it declines (returns False) the packet is untouched and the general,
per-protocol decoder starts from scratch.

Non-goals: anomalies. Anything unusual (options, extension headers, fragments, bad
lengths, ICMP, other link types) is the general path's business.
"""

from __future__ import annotations

import struct
from collections import Counter
from typing import Final

from sensor.packet import DLT_EN10MB, IPPROTO_TCP, IPPROTO_UDP, Packet

_MACS: Final = struct.Struct("!6s6s")
_IPV4: Final = struct.Struct("!BBHHHBBHII")
_IPV6: Final = struct.Struct("!IHBBQQQQ")
_VLAN: Final = struct.Struct("!HH")
_TCP: Final = struct.Struct("!HHIIBBHHH")
_UDP: Final = struct.Struct("!HHHH")

_ETHERTYPE_IPV4: Final = 0x0800
_ETHERTYPE_IPV6: Final = 0x86DD
_ETHERTYPE_8021Q: Final = 0x8100


def fast_decode(pkt: Packet, stats: Counter[str]) -> bool:
    """Decode ``pkt`` completely if it has the common shape; False leaves it untouched."""
    if pkt.linktype != DLT_EN10MB:
        return False
    data = pkt.data
    n = len(data)
    if n < 54:  # the smallest Ethernet+IPv4+TCP frame; shorter ones take the slow path
        return False
    ethertype = (data[12] << 8) | data[13]
    vlan: tuple[int, ...] = ()
    ip_off = 14
    if ethertype == _ETHERTYPE_8021Q:
        tci, ethertype = _VLAN.unpack_from(data, 14)
        vlan = (tci & 0x0FFF,)
        ip_off = 18
    if ethertype == _ETHERTYPE_IPV4:
        vihl, tos, ip_len, ip_id, frag_field, ttl, proto, _csum, src, dst = _IPV4.unpack_from(
            data, ip_off
        )
        if vihl != 0x45 or frag_field & 0x3FFF or ip_len < 20 or ip_off + ip_len > n:
            return False
        ipver = 4
        hlen = 20
    elif ethertype == _ETHERTYPE_IPV6:
        if n < ip_off + 40:
            return False
        vtcfl, plen, proto, ttl, s_hi, s_lo, d_hi, d_lo = _IPV6.unpack_from(data, ip_off)
        if vtcfl >> 28 != 6 or ip_off + 40 + plen > n:
            return False
        ipver = 6
        hlen = 40
        ip_len = 40 + plen
        src = (s_hi << 64) | s_lo
        dst = (d_hi << 64) | d_lo
        tos = (vtcfl >> 20) & 0xFF
        ip_id = 0
    else:
        return False
    l4 = ip_off + hlen
    end = ip_off + ip_len
    if proto == IPPROTO_TCP:
        if end - l4 < 20:
            return False
        sport, dport, seq, ack, off_byte, flags, win, _c, urg = _TCP.unpack_from(data, l4)
        l4_hlen = (off_byte >> 4) << 2
        if l4_hlen < 20 or l4 + l4_hlen > end:
            return False
        pkt.seq = seq
        pkt.ack = ack
        pkt.tcp_flags = flags
        pkt.win = win
        pkt.urg_ptr = urg
        pkt.payload = data[l4 + l4_hlen : end]
        stats["tcp"] += 1
    elif proto == IPPROTO_UDP:
        if end - l4 < 8:
            return False
        sport, dport, udp_len, _c = _UDP.unpack_from(data, l4)
        if udp_len < 8 or l4 + udp_len > end:
            return False
        l4_hlen = 8
        pkt.payload = data[l4 + 8 : l4 + udp_len]
        stats["udp"] += 1
    else:
        return False
    pkt.dst_mac, pkt.src_mac = _MACS.unpack_from(data, 0)
    if vlan:
        pkt.vlan = vlan  # Packet types this field from its None/() default
        stats["vlan"] += 1
    pkt.ipver = ipver
    pkt.ip_off = ip_off
    pkt.ip_hlen = hlen
    pkt.ip_len = ip_len
    pkt.src = src
    pkt.dst = dst
    pkt.proto = proto
    pkt.ttl = ttl
    pkt.ip_id = ip_id
    pkt.tos = tos
    pkt.l4_off = l4
    pkt.l4_hlen = l4_hlen
    pkt.sport = sport
    pkt.dport = dport
    stats["ethernet"] += 1
    stats["ipv4" if ipver == 4 else "ipv6"] += 1
    return True
