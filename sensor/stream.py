"""Per-direction TCP stream reassembly: in-order delivery, out-of-order hold, first-wins overlaps.

Scope: one :class:`TcpDir` per direction of a tracked TCP session holds the sender-side
sequence state (what an active response needs: next_seq, last_ack, window, MAC, TTL) and the
reassembly state. :class:`StreamEngine` applies a segment to a direction and publishes the bytes
that became contiguous in ``new_data``/``new_data_offset``.

Semantics follow Suricata 7's reassembly in IDS mode with one deliberate difference: data is
delivered as soon as it is in sequence order, not when the receiver acknowledges it. Overlaps
are resolved first-wins (bytes received earlier stay); overlaps whose bytes differ are counted
and raise ``stream.reassembly_overlap_different_data``. A hole that the receiver acknowledged
(it got data we never saw) is skipped on the sender's next packet and counted as a gap.

Non-goals: the TCP state machine (``sensor.tcp``), flow lookup (``sensor.flow``), OS-specific
overlap policies (always first-wins), SACK, keeping delivered data beyond a bounded window of
unacknowledged bytes (kept only to spot retransmissions carrying different data).
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections import Counter, deque

from sensor.config import StreamConfig
from sensor.packet import Packet

SEQ_MASK = 0xFFFFFFFF
_SEQ_HALF = 0x80000000
_SEQ_SPAN = 0x100000000

# Delivered-but-unacknowledged bytes kept per direction to compare retransmissions against.
# Bounded so one-sided captures (no ACKs ever seen) cannot grow it without limit.
RETAIN_UNACKED_MAX = 65536
# An ACK further than this past what we have seen is treated as bogus, not as a gap.
_MAX_ACK_JUMP = 1 << 30


def seq_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` in 32-bit sequence space (RFC 1982 serial arithmetic)."""
    d = (a - b) & SEQ_MASK
    return d - _SEQ_SPAN if d & _SEQ_HALF else d


def _coalesce(held: list[tuple[int, bytes]]) -> list[bytes]:
    """Sorted, non-overlapping held segments -> their contiguous runs of bytes."""
    runs: list[bytes] = []
    end = -1
    for off, seg in held:
        if off == end and runs:
            runs[-1] += seg
        else:
            runs.append(seg)
        end = off + len(seg)
    return runs


def _seg_start(seg: tuple[int, bytes]) -> int:
    return seg[0]


class FlowStats:
    """Counters of the flow table and stream engine (plain ints, updated in place)."""

    __slots__ = (
        "depth_reached",
        "evicted_memcap",
        "flows_active",
        "flows_created",
        "flows_reused",
        "ooo_dropped",
        "overlaps",
        "overlaps_diff_data",
        "reassembly_gaps",
        "reassembly_memcap_drops",
        "reassembly_memuse",
        "retransmissions",
        "tcp_midstream",
        "tcp_no_session",
        "tcp_sessions",
        "timed_out",
    )

    def __init__(self) -> None:
        self.depth_reached = 0
        self.evicted_memcap = 0
        self.flows_active = 0
        self.flows_created = 0
        self.flows_reused = 0
        self.ooo_dropped = 0
        self.overlaps = 0
        self.overlaps_diff_data = 0
        self.reassembly_gaps = 0
        self.reassembly_memcap_drops = 0
        self.reassembly_memuse = 0
        self.retransmissions = 0
        self.tcp_midstream = 0
        self.tcp_no_session = 0
        self.tcp_sessions = 0
        self.timed_out = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class TcpDir:
    """One direction of a TCP session, named after its sender."""

    __slots__ = (
        "base_seq",  # sequence number of stream offset 0
        "delivered",  # bytes delivered in order so far == offset of the next byte
        "depth_reached",
        "fin_consumed",  # 1 once an in-order FIN advanced next_seq past the data
        "fin_seen",
        "final_chunks",  # held data left at session end, in contiguous pieces (see release)
        "gap_ack",  # peer ACKed up to here but we never saw the bytes (None: no gap pending)
        "held",  # out-of-order segments: sorted, non-overlapping [(offset, bytes)]
        "held_bytes",
        "isn",
        "last_ack",  # last ACK number this sender sent
        "mac",
        "new_data",
        "new_data_offset",
        "next_seq",  # next expected sequence number from this sender (receiver's RCV.NXT)
        "rst_seen",
        "ttl",
        "unacked",  # delivered, not yet acknowledged: deque[(offset, bytes)]
        "unacked_bytes",
        "window",  # last advertised window, scaled by wscale
        "wscale",
    )

    def __init__(self) -> None:
        self.isn = 0
        self.next_seq = 0
        self.base_seq = 0
        self.last_ack = 0
        self.window = 0
        self.wscale = 0
        self.mac: bytes | None = None
        self.ttl = -1
        self.delivered = 0
        self.new_data = b""
        self.new_data_offset = 0
        self.fin_seen = False
        self.fin_consumed = 0
        self.rst_seen = False
        self.depth_reached = False
        self.gap_ack: int | None = None
        self.held: list[tuple[int, bytes]] = []
        self.held_bytes = 0
        self.final_chunks: list[bytes] = []
        self.unacked: deque[tuple[int, bytes]] = deque()
        self.unacked_bytes = 0

    def start(self, isn: int) -> None:
        """(Re)start the direction at ``isn``; stream offset 0 is the byte after it."""
        self.isn = isn & SEQ_MASK
        self.base_seq = self.next_seq = (isn + 1) & SEQ_MASK
        self.delivered = 0

    def buffered(self) -> int:
        return self.held_bytes + self.unacked_bytes

    def __repr__(self) -> str:  # debugging aid only
        return (
            f"TcpDir(next_seq={self.next_seq}, delivered={self.delivered}, held={len(self.held)})"
        )


class StreamEngine:
    """Applies segments and ACKs to :class:`TcpDir` objects under one config and one memcap."""

    __slots__ = ("depth", "events", "max_ooo_bytes", "max_ooo_segments", "memcap", "stats")

    def __init__(self, cfg: StreamConfig, stats: FlowStats, events: Counter[str]) -> None:
        self.depth = cfg.reassembly_depth
        self.memcap = cfg.reassembly_memcap
        self.max_ooo_bytes = cfg.max_ooo_bytes
        self.max_ooo_segments = cfg.max_ooo_segments
        self.stats = stats
        self.events = events

    def event(self, pkt: Packet, name: str) -> None:
        self.events[name] += 1
        pkt.add_event(name)

    # -- segments ---------------------------------------------------------------------------

    def segment(self, d: TcpDir, seq: int, payload: bytes, pkt: Packet) -> None:
        """Apply ``payload`` sent at ``seq`` by ``d``'s sender; fills ``d.new_data``."""
        if d.depth_reached:
            self._track_past_depth(d, seq, len(payload))
            return
        if not d.held and d.gap_ack is None and seq == d.next_seq and not d.fin_consumed:
            # Common case: the next bytes, nothing pending. Inlined: this runs per packet.
            n = len(payload)
            if not n:
                return
            off = d.delivered
            if not self.depth or off + n < self.depth:
                d.new_data = payload
                d.new_data_offset = off
                d.delivered = off + n
                d.next_seq = (seq + n) & SEQ_MASK
                d.unacked.append((off, payload))
                d.unacked_bytes += n
                self.stats.reassembly_memuse += n
                if d.unacked_bytes > RETAIN_UNACKED_MAX:
                    self._trim_unacked(d)
                pkt.stream_added = True
                return
        self._segment_slow(d, seq, payload, pkt)

    def _segment_slow(self, d: TcpDir, seq: int, payload: bytes, pkt: Packet) -> None:
        out: list[bytes] = []
        first = d.delivered
        if payload:
            data_seq = (d.next_seq - d.fin_consumed) & SEQ_MASK
            start = d.delivered + seq_diff(seq, data_seq)
            if self._accept(d, start, payload, pkt):
                pkt.stream_added = True
        if d.gap_ack is not None:
            first = self._resolve_gap(d, pkt, first)
        self._drain(d, out)
        if d.depth_reached:  # the cut-off tail still moves the sequence tracking
            self._track_past_depth(d, seq, len(payload))
        if out:
            d.new_data_offset = first
            d.new_data = out[0] if len(out) == 1 else b"".join(out)

    def _accept(self, d: TcpDir, start: int, data: bytes, pkt: Packet) -> bool:
        """Trim ``data`` at stream offset ``start`` against what is known; hold the rest."""
        end = start + len(data)
        if end <= d.delivered:
            self.stats.retransmissions += 1
            self.event(pkt, "stream.pkt_retransmission")
            self._compare_delivered(d, start, data, pkt)
            # Nothing new, but these bytes belong to the stream: the packet must not be
            # inspected again on its own (a retransmitted attack is one attack, one alert).
            pkt.stream_added = True
            return False
        if start < d.delivered:
            self.stats.overlaps += 1
            self._compare_delivered(d, start, data[: d.delivered - start], pkt)
            data = data[d.delivered - start :]
            start = d.delivered
        if self.depth and end > self.depth:
            if start >= self.depth:
                return False
            data = data[: self.depth - start]
        accepted = False
        for off, piece in self._first_wins(d, start, data, pkt):
            if off != d.delivered and not self._may_hold(d, len(piece), pkt):
                continue
            insort(d.held, (off, piece), key=_seg_start)
            d.held_bytes += len(piece)
            self.stats.reassembly_memuse += len(piece)
            accepted = True
        return accepted

    def _first_wins(
        self, d: TcpDir, start: int, data: bytes, pkt: Packet
    ) -> list[tuple[int, bytes]]:
        """Pieces of ``data`` not covered by held segments; the held bytes win overlaps."""
        held = d.held
        if not held:
            return [(start, data)]
        end = start + len(data)
        pieces: list[tuple[int, bytes]] = []
        cur = start
        overlapped = differs = False
        i = max(bisect_right(held, start, key=_seg_start) - 1, 0)
        while i < len(held) and cur < end:
            a, seg = held[i]
            b = a + len(seg)
            i += 1
            if b <= cur:
                continue
            if a >= end:
                break
            if a > cur:
                pieces.append((cur, data[cur - start : a - start]))
            lo, hi = max(a, cur), min(b, end)
            overlapped = True
            differs = differs or seg[lo - a : hi - a] != data[lo - start : hi - start]
            cur = hi
        if cur < end:
            pieces.append((cur, data[cur - start :]))
        if overlapped:
            self.stats.overlaps += 1
            if not pieces:
                self.stats.retransmissions += 1
        if differs:
            self._different_data(pkt)
        return pieces

    def _may_hold(self, d: TcpDir, size: int, pkt: Packet) -> bool:
        if len(d.held) >= self.max_ooo_segments or d.held_bytes + size > self.max_ooo_bytes:
            self.stats.ooo_dropped += 1
            self.event(pkt, "stream.reassembly_insert_limit")
            return False
        if self.stats.reassembly_memuse + size > self.memcap:
            self.stats.reassembly_memcap_drops += 1
            self.stats.ooo_dropped += 1
            self.event(pkt, "stream.reassembly_insert_memcap")
            return False
        return True

    def _compare_delivered(self, d: TcpDir, start: int, data: bytes, pkt: Packet) -> None:
        """First-wins against already delivered bytes still retained: flag different data."""
        end = start + len(data)
        for a, seg in d.unacked:
            b = a + len(seg)
            if b <= start:
                continue
            if a >= end:
                break
            lo, hi = max(a, start), min(b, end)
            if seg[lo - a : hi - a] != data[lo - start : hi - start]:
                self._different_data(pkt)
                return

    def _different_data(self, pkt: Packet) -> None:
        self.stats.overlaps_diff_data += 1
        self.event(pkt, "stream.reassembly_overlap_different_data")

    def _drain(self, d: TcpDir, out: list[bytes]) -> None:
        while d.held and d.held[0][0] <= d.delivered and not d.depth_reached:
            off, seg = d.held.pop(0)
            d.held_bytes -= len(seg)
            self.stats.reassembly_memuse -= len(seg)
            if off + len(seg) > d.delivered:
                self._emit(d, seg[d.delivered - off :], out)

    def _emit(self, d: TcpDir, data: bytes, out: list[bytes]) -> None:
        """Deliver in-order ``data`` (cut at the reassembly depth) and advance the direction."""
        depth = self.depth
        if depth and d.delivered + len(data) >= depth:
            self._reach_depth(d, len(data))
            data = data[: depth - d.delivered]
        off = d.delivered
        d.delivered = off + len(data)
        d.next_seq = (d.next_seq + len(data)) & SEQ_MASK
        if data:
            out.append(data)
            d.unacked.append((off, data))
            d.unacked_bytes += len(data)
            self.stats.reassembly_memuse += len(data)
            if d.unacked_bytes > RETAIN_UNACKED_MAX:
                self._trim_unacked(d)

    def _reach_depth(self, d: TcpDir, seg_len: int) -> None:
        if not d.depth_reached:
            d.depth_reached = True
            self.stats.depth_reached += 1
        # Sequence tracking continues past the depth (responses need next_seq), data does not.
        d.next_seq = (d.next_seq + seg_len - (self.depth - d.delivered)) & SEQ_MASK
        self.release(d, keep_unacked=True)

    def _track_past_depth(self, d: TcpDir, seq: int, size: int) -> None:
        ahead = seq_diff((seq + size) & SEQ_MASK, d.next_seq)
        if ahead > 0 and seq_diff(seq, d.next_seq) <= 0:
            d.next_seq = (seq + size) & SEQ_MASK

    def _trim_unacked(self, d: TcpDir) -> None:
        while d.unacked_bytes > RETAIN_UNACKED_MAX:
            self._drop_unacked(d)

    def _drop_unacked(self, d: TcpDir) -> None:
        _, seg = d.unacked.popleft()
        d.unacked_bytes -= len(seg)
        self.stats.reassembly_memuse -= len(seg)

    # -- ACKs and gaps ----------------------------------------------------------------------

    def acked(self, d: TcpDir, ack: int) -> None:
        """The peer of ``d``'s sender acknowledged up to ``ack``: free retained bytes, note gaps."""
        if ack == d.next_seq:  # common case: everything we delivered is acknowledged
            if d.unacked_bytes:
                self.stats.reassembly_memuse -= d.unacked_bytes
                d.unacked.clear()
                d.unacked_bytes = 0
            return
        ahead = seq_diff(ack, d.next_seq)
        if d.unacked:
            acked_off = d.delivered + ahead
            while d.unacked and d.unacked[0][0] + len(d.unacked[0][1]) <= acked_off:
                self._drop_unacked(d)
        # An ACK past what we saw means the receiver got bytes we missed; an ACK of just the
        # FIN (not yet consumed in order) is no gap.
        if 0 < ahead < _MAX_ACK_JUMP and not d.depth_reached and not (d.fin_seen and ahead == 1):
            d.gap_ack = ack

    def _resolve_gap(self, d: TcpDir, pkt: Packet, first: int) -> int:
        """Skip bytes the receiver got but we never will; returns the new first offset."""
        assert d.gap_ack is not None
        gap_off = d.delivered + seq_diff(d.gap_ack, d.next_seq)
        d.gap_ack = None
        if gap_off <= d.delivered:
            return first
        target = gap_off
        if d.held and d.held[0][0] < target:
            target = d.held[0][0]
        if target <= d.delivered:
            return first
        d.next_seq = (d.next_seq + target - d.delivered) & SEQ_MASK
        d.delivered = target
        self.stats.reassembly_gaps += 1
        self.event(pkt, "stream.reassembly_seq_gap")
        return target if first <= target else first

    def release(self, d: TcpDir, keep_unacked: bool = False) -> None:
        """Forget buffered bytes of ``d`` (session end, depth, eviction).

        At session end (``keep_unacked`` False) held out-of-order data is kept aside in
        ``final_chunks``, joined where contiguous: like Suricata flushing a stream at flow
        timeout, detection gets one last look at data that arrived beyond a gap.
        """
        if not keep_unacked and d.held and not d.depth_reached:
            d.final_chunks = _coalesce(d.held)
        self.stats.reassembly_memuse -= d.held_bytes
        d.held = []
        d.held_bytes = 0
        if not keep_unacked:
            self.stats.reassembly_memuse -= d.unacked_bytes
            d.unacked.clear()
            d.unacked_bytes = 0
