"""Link-layer decoding: Ethernet (+802.1Q/QinQ), Linux SLL/SLL2, BSD NULL/LOOP, raw IP.

Scope: find where the IP header starts and which IP version it is, filling the MAC
addresses and the VLAN id tuple on the way. Returns ``(ipver, offset)``; ``ipver`` 0
means "not IP" (ARP, LLDP, an unknown link type, or a frame too short, in which case the
packet also carries an event and ``bad``).

Non-goals: MPLS, PPP/PPPoE, 802.1ah, tunnels (GRE, VXLAN); these frames are left as
non-IP. The Ethernet FCS is never present in what libpcap hands over, so it is not
stripped.
"""

from __future__ import annotations

import struct
from collections import Counter
from typing import Final

from sensor.decode.events import invalid
from sensor.packet import (
    DLT_EN10MB,
    DLT_IPV4,
    DLT_IPV6,
    DLT_LINUX_SLL,
    DLT_LINUX_SLL2,
    DLT_LOOP,
    DLT_NULL,
    DLT_RAW,
    DLT_RAW_ALT,
    DLT_RAW_ALT2,
    Packet,
)

ETH_P_IP: Final = 0x0800
ETH_P_IPV6: Final = 0x86DD
VLAN_TPIDS: Final = frozenset((0x8100, 0x88A8, 0x9100))

_U16 = struct.Struct("!H")
_VLAN = struct.Struct("!HH")  # TCI, inner ethertype
_U32_LE = struct.Struct("<I")
_U32_BE = struct.Struct("!I")
_SLL_LEN: Final = 16  # pkttype, hatype, halen, addr[8], protocol
_SLL2_LEN: Final = 20  # protocol, reserved, ifindex, hatype, pkttype, halen, addr[8]
_AF_INET: Final = 2
_AF_INET6: Final = frozenset((24, 28, 30))  # NetBSD/OpenBSD, FreeBSD, macOS
_RAW_LINKTYPES: Final = frozenset((DLT_RAW, DLT_RAW_ALT, DLT_RAW_ALT2))

NOT_IP: Final = (0, -1)


def _by_ethertype(
    pkt: Packet, data: bytes, ethertype: int, off: int, stats: Counter[str], max_vlan: int
) -> tuple[int, int]:
    """Walk any VLAN tags starting at ``off`` and map the final ethertype to an IP version."""
    if ethertype in VLAN_TPIDS:
        stats["vlan"] += 1
        ids: list[int] = []
        while ethertype in VLAN_TPIDS:
            if len(ids) >= max_vlan:
                invalid(pkt, stats, "vlan.too_many_layers")
                return NOT_IP
            if off + 4 > len(data):
                invalid(pkt, stats, "vlan.header_too_small")
                return NOT_IP
            tci, ethertype = _VLAN.unpack_from(data, off)
            ids.append(tci & 0x0FFF)
            off += 4
        pkt.vlan = tuple(ids)  # Packet types this field from its None/() default
    if ethertype == ETH_P_IP:
        return 4, off
    if ethertype == ETH_P_IPV6:
        return 6, off
    return NOT_IP


def _ethernet(pkt: Packet, data: bytes, stats: Counter[str], max_vlan: int) -> tuple[int, int]:
    if len(data) < 14:
        invalid(pkt, stats, "ethernet.pkt_too_small")
        return NOT_IP
    stats["ethernet"] += 1
    pkt.dst_mac = data[0:6]  # Packet types this field from its None/() default
    pkt.src_mac = data[6:12]  # Packet types this field from its None/() default
    (ethertype,) = _U16.unpack_from(data, 12)
    return _by_ethertype(pkt, data, ethertype, 14, stats, max_vlan)


def _sll(pkt: Packet, data: bytes, stats: Counter[str], max_vlan: int) -> tuple[int, int]:
    if len(data) < _SLL_LEN:
        invalid(pkt, stats, "sll.pkt_too_small")
        return NOT_IP
    (halen,) = _U16.unpack_from(data, 4)
    if halen == 6:
        pkt.src_mac = data[6:12]  # Packet types this field from its None/() default
    (protocol,) = _U16.unpack_from(data, 14)
    return _by_ethertype(pkt, data, protocol, _SLL_LEN, stats, max_vlan)


def _sll2(pkt: Packet, data: bytes, stats: Counter[str], max_vlan: int) -> tuple[int, int]:
    if len(data) < _SLL2_LEN:
        invalid(pkt, stats, "sll.pkt_too_small")
        return NOT_IP
    if data[11] == 6:
        pkt.src_mac = data[12:18]  # Packet types this field from its None/() default
    (protocol,) = _U16.unpack_from(data, 0)
    return _by_ethertype(pkt, data, protocol, _SLL2_LEN, stats, max_vlan)


def _family_to_ipver(family: int) -> int:
    if family == _AF_INET:
        return 4
    if family in _AF_INET6:
        return 6
    return 0


def _null(pkt: Packet, data: bytes, stats: Counter[str], network_order: bool) -> tuple[int, int]:
    if len(data) < 4:
        invalid(pkt, stats, "ltnull.pkt_too_small")
        return NOT_IP
    if network_order:
        ipver = _family_to_ipver(_U32_BE.unpack_from(data, 0)[0])
    else:
        # DLT_NULL is in the byte order of the machine that captured, which we do not
        # know: try little-endian (nearly every capture host today), then big-endian.
        ipver = _family_to_ipver(_U32_LE.unpack_from(data, 0)[0]) or _family_to_ipver(
            _U32_BE.unpack_from(data, 0)[0]
        )
    if ipver == 0:
        invalid(pkt, stats, "ltnull.unsupported_type")
        return NOT_IP
    return ipver, 4


def _raw(pkt: Packet, data: bytes, stats: Counter[str]) -> tuple[int, int]:
    if len(data) < 1:
        invalid(pkt, stats, "ipv4.pkt_too_small")
        return NOT_IP
    version = data[0] >> 4
    if version in (4, 6):
        return version, 0
    invalid(pkt, stats, "ipraw.invalid_ip_version")
    return NOT_IP


def decode_link(pkt: Packet, stats: Counter[str], max_vlan: int) -> tuple[int, int]:
    """Decode the link header of ``pkt``; return (IP version or 0, offset of the IP header)."""
    data = pkt.data
    linktype = pkt.linktype
    if linktype == DLT_EN10MB:
        return _ethernet(pkt, data, stats, max_vlan)
    if linktype == DLT_LINUX_SLL:
        return _sll(pkt, data, stats, max_vlan)
    if linktype == DLT_LINUX_SLL2:
        return _sll2(pkt, data, stats, max_vlan)
    if linktype in _RAW_LINKTYPES:
        return _raw(pkt, data, stats)
    if linktype == DLT_IPV4:
        return 4, 0
    if linktype == DLT_IPV6:
        return 6, 0
    if linktype == DLT_NULL:
        return _null(pkt, data, stats, network_order=False)
    if linktype == DLT_LOOP:
        return _null(pkt, data, stats, network_order=True)
    stats["unsupported_linktype"] += 1
    pkt.bad = True
    return NOT_IP
