"""IPv4 and IPv6 fragment reassembly with Suricata's default ("bsd") overlap policy.

Scope: track fragments per datagram key ``(ipver, src, dst, id, proto)``, and when the
last hole closes return the rebuilt datagram as bytes (IP header fixed up: total/payload
length, no MF, offset 0, IPv4 checksum recomputed, IPv6 fragment header removed). The
BSD policy: where fragments overlap, the bytes of the fragment with the lower offset
win; at equal offsets the one that arrived first wins. Overlaps are reported as
``ipv4.frag_overlap``/``ipv6.frag_overlap`` on the fragment that caused them.

Limits keep memory bounded against fragment floods: datagrams tracked (the oldest is
evicted when full), fragments per datagram (``ipv4.frag_ignored``), datagram size
(``ipv4.frag_pkt_too_large``) and a timeout in capture time. All evictions are counted in
the decoder's stats (``defrag_evicted``, ``defrag_timeout``, ``defrag_max_frags``).

Non-goals: the other Suricata policies (first, last, linux, windows, solaris) and
per-host policy selection.
"""

from __future__ import annotations

import struct
from collections import Counter
from typing import Final

from sensor.decode.events import invalid, note
from sensor.decode.ipv6 import ext_header_len
from sensor.packet import Packet

_IPV6_NEXT_HEADER_OFF: Final = 6

DatagramKey = tuple[int, int, int, int, int]


class _Datagram:
    """Fragments received so far for one datagram (mutable, lives until done/evicted)."""

    __slots__ = ("bytes", "first_seen", "fragments", "header", "total")

    def __init__(self, first_seen: int) -> None:
        self.first_seen = first_seen
        self.bytes = 0  # fragment payload bytes held
        self.fragments: list[tuple[int, int, bytes]] = []  # (start, end, data), arrival order
        self.header: bytes | None = None  # IP header up to the fragmentable part, fixed up
        self.total = -1  # length of the fragmentable part, known once the last fragment came


class Defragmenter:
    """Reassembles fragments handed in one at a time by the decoder."""

    def __init__(
        self,
        max_datagrams: int,
        max_fragments: int,
        max_size: int,
        timeout: int,
        stats: Counter[str],
        max_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        self.max_datagrams = max_datagrams
        self.max_bytes = max_bytes  # Suricata's defrag.memcap default: 32 MiB
        self._bytes = 0
        self.max_fragments = max_fragments
        self.max_size = max_size
        self.timeout = timeout
        self._stats = stats
        # Insertion order is first-seen order, so expiry only ever looks at the front.
        self._tracked: dict[DatagramKey, _Datagram] = {}

    @property
    def tracked(self) -> int:
        """Number of incomplete datagrams currently held."""
        return len(self._tracked)

    def add(self, pkt: Packet) -> bytes | None:
        """Take one decoded fragment; return the rebuilt IP datagram when it completes one."""
        self._expire(pkt.ts_sec)
        family = "ipv4" if pkt.ipver == 4 else "ipv6"
        key = (pkt.ipver, pkt.src, pkt.dst, pkt.ip_id, pkt.proto)
        dgram = self._tracked.get(key)
        if dgram is None:
            if len(self._tracked) >= self.max_datagrams:
                self._drop(next(iter(self._tracked)))
                self._stats["defrag_evicted"] += 1
            dgram = _Datagram(pkt.ts_sec)
            self._tracked[key] = dgram
        start = pkt.frag_off
        end = start + len(pkt.payload)
        header_len = pkt.ip_hlen if pkt.ipver == 4 else pkt.ip_hlen - 8
        if header_len + end > self.max_size:
            invalid(pkt, self._stats, f"{family}.frag_pkt_too_large")
            self._drop(key)
            return None
        if len(dgram.fragments) >= self.max_fragments:
            invalid(pkt, self._stats, f"{family}.frag_ignored")
            self._stats["defrag_max_frags"] += 1
            self._drop(key)
            return None
        if any(s < end and start < e for s, e, _ in dgram.fragments):
            note(pkt, self._stats, f"{family}.frag_overlap")
        dgram.fragments.append((start, end, pkt.payload))
        dgram.bytes += len(pkt.payload)
        self._bytes += len(pkt.payload)
        while self._bytes > self.max_bytes and self._tracked:
            oldest = next(iter(self._tracked))  # a byte flood never outgrows the memcap
            self._drop(oldest)
            self._stats["defrag_memcap_evicted"] += 1
            if oldest == key:
                return None
        if start == 0 and dgram.header is None:
            dgram.header = _unfragmentable_header(pkt)
        if not pkt.more_frags and dgram.total < 0:
            dgram.total = end
        if dgram.total < 0 or dgram.header is None:
            return None
        body = _assemble(dgram.fragments, dgram.total)
        if body is None:
            return None
        self._drop(key)
        return _fix_header(dgram.header, pkt.ipver, body)

    def _drop(self, key: DatagramKey) -> None:
        dgram = self._tracked.pop(key, None)
        if dgram is not None:
            self._bytes -= dgram.bytes

    def _expire(self, now: int) -> None:
        tracked = self._tracked
        while tracked:
            key = next(iter(tracked))
            if now - tracked[key].first_seen < self.timeout:
                return
            self._drop(key)
            self._stats["defrag_timeout"] += 1


def _assemble(fragments: list[tuple[int, int, bytes]], total: int) -> bytes | None:
    """Lay the fragments out by the BSD policy; None while a hole remains."""
    # Sorting by (offset, arrival) and letting the first writer of each byte win is
    # exactly "lower offset wins, ties go to the earlier fragment".
    order = sorted(range(len(fragments)), key=lambda i: (fragments[i][0], i))
    covered = 0
    for i in order:
        start, end, _ = fragments[i]
        if start > covered:
            return None
        covered = max(covered, end)
        if covered >= total:
            break
    if covered < total:
        return None
    body = bytearray(total)
    filled = 0
    for i in order:
        start, end, data = fragments[i]
        lo = max(start, filled)
        hi = min(end, total)
        if hi > lo:
            body[lo:hi] = data[lo - start : hi - start]
        filled = max(filled, end)
        if filled >= total:
            break
    return bytes(body)


def _unfragmentable_header(pkt: Packet) -> bytes:
    """The first fragment's IP header, with IPv6's fragment header cut out."""
    data = pkt.data
    off = pkt.ip_off
    if pkt.ipver == 4:
        return data[off : off + pkt.ip_hlen]
    header = bytearray(data[off : off + pkt.ip_hlen - 8])
    header[_ipv6_next_header_pos(header)] = pkt.proto
    return bytes(header)


def _ipv6_next_header_pos(header: bytearray) -> int:
    """Offset of the next-header byte that pointed at the (removed) fragment header."""
    raw = bytes(header)
    pos = _IPV6_NEXT_HEADER_OFF
    p = 40
    while p < len(raw):  # already validated by the decoder: lengths stay in bounds
        header_type = raw[pos]
        pos = p
        p += ext_header_len(header_type, raw, p)
    return pos


def _fix_header(header: bytes, ipver: int, body: bytes) -> bytes:
    fixed = bytearray(header)
    if ipver == 4:
        struct.pack_into("!H", fixed, 2, len(header) + len(body))
        fixed[6] &= 0x40  # keep DF, clear MF and the offset
        fixed[7] = 0
        struct.pack_into("!H", fixed, 10, 0)
        struct.pack_into("!H", fixed, 10, _ipv4_checksum(fixed))
    else:
        struct.pack_into("!H", fixed, 4, len(header) - 40 + len(body))
    return bytes(fixed) + body


def _ipv4_checksum(header: bytearray) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF
