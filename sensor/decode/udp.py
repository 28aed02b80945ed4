"""UDP header decoding.

Scope: Suricata's checks and events (``udp.hlen_too_small`` when fewer than 8 bytes,
``udp.pkt_too_small`` when the length field claims more than the IP payload holds,
``udp.hlen_invalid`` when it claims less than a header), ports, and the payload as the
UDP length field delimits it: bytes after it inside the IP payload are ignored.

Non-goals: checksum validation, tunnels carried in UDP (VXLAN, Geneve, Teredo).
"""

from __future__ import annotations

import struct
from collections import Counter
from typing import Final

from sensor.decode.events import l4_invalid
from sensor.packet import Packet

UDP_HDR: Final = struct.Struct("!HHHH")


def decode_udp(pkt: Packet, start: int, end: int, stats: Counter[str]) -> None:
    """Decode the UDP datagram in ``pkt.data[start:end]``."""
    stats["udp"] += 1
    data = pkt.data
    if end - start < 8:
        l4_invalid(pkt, stats, "udp.hlen_too_small")
        return
    sport, dport, length, _csum = UDP_HDR.unpack_from(data, start)
    if length > end - start:
        l4_invalid(pkt, stats, "udp.pkt_too_small")
        return
    if length < 8:
        l4_invalid(pkt, stats, "udp.hlen_invalid")
        return
    pkt.l4_off = start
    pkt.l4_hlen = 8
    pkt.sport = sport
    pkt.dport = dport
    pkt.payload = data[start + 8 : start + length]
