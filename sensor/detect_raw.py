"""Suricata's raw stream inspection, for the rules it inspects on packet *and* stream.

Scope: IDS mode only, and only rules with ``INSPECT_BOTH`` (a TCP rule whose pkt_data
content has depth/offset, or which uses stream_size: Suricata's SigValidate gives those
SIG_FLAG_REQUIRE_PACKET on top of SIG_FLAG_REQUIRE_STREAM). Suricata inspects such a rule
on a packet's own payload when the packet arrives and again on the raw stream chunk that
later holds the same bytes, and alerts each time (DetectEngineInspectRulePayloadMatches:
stream first, the packet payload only when the stream did not match). sekimori keeps its
on-arrival inspection for every other rule; for these it reproduces the second look, so a
detect-only run reports what Suricata's IDS mode reports.

When a direction's raw stream is "ready" (StreamReassembleRawHasDataReady /
StreamTcpReassembleRawCheckLimit in stream-tcp-reassemble.c), on a packet of that
direction:

- the application layer asked for it (AppLayerParserTriggerRawStreamReassembly: HTTP and
  DNS when the acknowledgement hands them a request or response), or
- the receiver acknowledged at least ``chunk_size`` bytes beyond the raw progress
  (stream.reassembly.toserver/toclient-chunk-size, 2,560 by default), or
- the flow ends (pseudo packet): everything not yet inspected, acknowledged or not.

The chunk inspected is [raw progress, acknowledged offset) (all held bytes at flow end),
offsets relative to its start; the raw progress then moves to its end, so a byte is in at
most one chunk. Non-goals: Suricata's randomised chunk sizes, its min-inspect-depth rewind
for rules mixing stream and HTTP body keywords, gap handling inside a chunk.
"""

from __future__ import annotations

from typing import Any

from sensor.packet import TH_ACK, Packet
from sensor.stream import seq_diff

CHUNK_SIZE = 2560  # Suricata's default toserver/toclient chunk size
# bytes kept per direction while nothing makes the stream ready (a one-sided flow): the
# oldest go uninspected, as Suricata's raw progress trails the TCP window
MAX_HELD = 64 * 1024
# application protocols whose parser asks for raw reassembly when a message completes
TRIGGERING = frozenset({"http", "dns"})


class RawTrack:
    """One direction's raw-stream progress: the bytes delivered but not yet in a chunk."""

    __slots__ = ("acked", "buf", "start", "trigger")

    def __init__(self, start: int = 0) -> None:
        self.start = start  # stream offset of buf[0]: Suricata's raw progress
        self.buf = bytearray()
        self.acked = 0  # stream offset the receiver acknowledged up to
        self.trigger = False  # the app layer asked for raw reassembly

    def add(self, offset: int, data: bytes) -> None:
        if offset != self.start + len(self.buf):  # a gap (or a first delivery mid-stream)
            self.buf.clear()
            self.start = offset
        self.buf += data
        excess = len(self.buf) - MAX_HELD
        if excess > 0:
            del self.buf[:excess]
            self.start += excess

    def take(self, everything: bool) -> bytes:
        """The chunk ready for inspection now (b"" when none), and advance past it."""
        if not self.buf:
            return b""
        if everything:
            n = len(self.buf)
        else:
            n = min(self.acked - self.start, len(self.buf))
            if n <= 0 or (n < CHUNK_SIZE and not self.trigger):
                return b""
        chunk = bytes(self.buf[:n])
        del self.buf[:n]
        self.start += n
        self.trigger = False
        return chunk


def track(fs: Any, to_server: bool) -> RawTrack:
    t: RawTrack | None = fs.raw_ts if to_server else fs.raw_tc
    if t is None:
        t = RawTrack()
        if to_server:
            fs.raw_ts = t
        else:
            fs.raw_tc = t
    return t


def trigger(fs: Any, to_server: bool, proto: str | None) -> None:
    """The app layer was handed a message of this sender (on the peer's ACK)."""
    t = fs.raw_ts if to_server else fs.raw_tc
    if t is not None and proto in TRIGGERING:
        t.trigger = True


def on_packet(p: Packet, flow: Any, fs: Any, new_data: bytes) -> bytes:
    """Record this packet's data and acknowledgement; the raw chunk of its direction that
    Suricata would inspect on it (b"" when not ready)."""
    own = track(fs, p.to_server)
    if new_data:
        d = flow.toserver if p.to_server else flow.toclient
        own.add(d.new_data_offset, new_data)
    if p.tcp_flags & TH_ACK and p.pcap_cnt:
        peer_dir = flow.toclient if p.to_server else flow.toserver
        if peer_dir is not None:
            peer = track(fs, not p.to_server)
            acked = peer_dir.delivered + seq_diff(p.ack, peer_dir.next_seq)
            if acked > peer.acked:
                peer.acked = acked
    return own.take(everything=p.pcap_cnt == 0)


def flush(fs: Any, to_server: bool) -> bytes:
    """At flow end: the rest of this direction's stream, acknowledged or not."""
    t = fs.raw_ts if to_server else fs.raw_tc
    return t.take(everything=True) if t is not None else b""
