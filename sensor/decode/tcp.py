"""TCP header decoding and lazy option accessors.

Scope: validate the header as Suricata does (``tcp.pkt_too_small``,
``tcp.hlen_too_small``, ``tcp.invalid_optlen``), fill ports, flags, seq/ack, window and
urgent pointer, and slice the payload. Options are not parsed per packet: the helpers
:func:`tcp_mss`, :func:`tcp_wscale`, :func:`tcp_sack_permitted` and
:func:`tcp_timestamp` walk them from ``pkt.data`` only when a caller (the stream
engine on SYNs, a ``tcp.mss`` rule) asks.

Non-goals: checksum validation; option anomaly events (``tcp.opt_invalid_len``,
``tcp.opt_duplicate``), which would need the per-packet walk we avoid.
"""

from __future__ import annotations

import struct
from collections import Counter
from typing import Final

from sensor.decode.events import l4_invalid
from sensor.packet import IPPROTO_TCP, Packet

TCP_HDR: Final = struct.Struct("!HHIIBBHHH")
_U16 = struct.Struct("!H")
_TS = struct.Struct("!II")

TCPOPT_EOL: Final = 0
TCPOPT_NOP: Final = 1
TCPOPT_MSS: Final = 2
TCPOPT_WSCALE: Final = 3
TCPOPT_SACK_PERMITTED: Final = 4
TCPOPT_TIMESTAMP: Final = 8


def decode_tcp(pkt: Packet, start: int, end: int, stats: Counter[str]) -> None:
    """Decode the TCP segment in ``pkt.data[start:end]``."""
    stats["tcp"] += 1
    data = pkt.data
    if end - start < 20:
        l4_invalid(pkt, stats, "tcp.pkt_too_small")
        return
    sport, dport, seq, ack, off_byte, flags, win, _csum, urg = TCP_HDR.unpack_from(data, start)
    hlen = (off_byte >> 4) << 2
    if end - start < hlen:
        l4_invalid(pkt, stats, "tcp.hlen_too_small")
        return
    if hlen < 20:
        l4_invalid(pkt, stats, "tcp.invalid_optlen")
        return
    pkt.l4_off = start
    pkt.l4_hlen = hlen
    pkt.sport = sport
    pkt.dport = dport
    pkt.seq = seq
    pkt.ack = ack
    pkt.tcp_flags = flags
    pkt.win = win
    pkt.urg_ptr = urg
    pkt.payload = data[start + hlen : end]


def tcp_option(pkt: Packet, kind: int) -> bytes | None:
    """Value bytes of the first TCP option ``kind`` (without kind/length), or None."""
    if pkt.proto != IPPROTO_TCP or pkt.l4_off < 0 or pkt.l4_hlen <= 20:
        return None
    data = pkt.data
    p = pkt.l4_off + 20
    end = pkt.l4_off + pkt.l4_hlen
    while p < end:
        opt = data[p]
        if opt == TCPOPT_EOL:
            return None
        if opt == TCPOPT_NOP:
            p += 1
            continue
        if p + 1 >= end:
            return None
        length = data[p + 1]
        if length < 2 or p + length > end:
            return None  # malformed: stop rather than guess
        if opt == kind:
            return data[p + 2 : p + length]
        p += length
    return None


def tcp_mss(pkt: Packet) -> int | None:
    """The MSS option value, or None when absent or malformed."""
    value = tcp_option(pkt, TCPOPT_MSS)
    if value is None or len(value) != 2:
        return None
    return int(_U16.unpack(value)[0])


def tcp_wscale(pkt: Packet) -> int | None:
    """The window scale shift count as sent (not capped at 14), or None."""
    value = tcp_option(pkt, TCPOPT_WSCALE)
    if value is None or len(value) != 1:
        return None
    return value[0]


def tcp_sack_permitted(pkt: Packet) -> bool:
    """True when the SACK-permitted option is present."""
    return tcp_option(pkt, TCPOPT_SACK_PERMITTED) is not None


def tcp_timestamp(pkt: Packet) -> tuple[int, int] | None:
    """(TSval, TSecr) of the timestamp option, or None."""
    value = tcp_option(pkt, TCPOPT_TIMESTAMP)
    if value is None or len(value) != 8:
        return None
    tsval, tsecr = _TS.unpack(value)
    return int(tsval), int(tsecr)
