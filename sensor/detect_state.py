"""State the detection engine keeps between packets.

Scope: per-flow state (flowbits, flowints, IP-only bookkeeping, the retained stream tail per
direction), per-host bits (hostbits, xbits) with expiry, and threshold / detection_filter
counters. Bounded: host and threshold tables evict their oldest entries past a cap.

Non-goals: the flow table itself (sensor/flow.py owns flows and their lifetime).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from sensor.applayer.common import Transaction
from sensor.packet import Packet
from signatures.flowkw import TO_CLIENT, TO_SERVER, BitOp, FlowintOp, Threshold


class FlowDetectState:
    """Hung on ``Flow.detect``; created on the first packet a rule looks at."""

    __slots__ = (
        "action",
        "alp_ready",
        "app_pending",
        "app_reversed",
        "app_visible",
        "bits",
        "data_seen",
        "ints",
        "ipo_toclient",
        "ipo_toserver",
        "parsed_tc",
        "parsed_ts",
        "raw_tc",
        "raw_ts",
        "tail_toclient",
        "tail_toserver",
        "tx_done",
        "tx_later_tc",
        "tx_later_ts",
        "unparsed_tc",
        "unparsed_ts",
        "vars",
    )

    def __init__(self) -> None:
        self.bits: set[str] = set()
        self.ints: dict[str, int] = {}
        self.vars: dict[str, bytes] = {}  # flow variables (pcre captures into flow:...)
        self.ipo_toserver = False
        self.ipo_toclient = False
        self.tail_toserver = b""
        self.tail_toclient = b""
        # (tx id, rule order, to server) already matched: as in Suricata, whose detect state
        # is per direction, a rule on buffers both sides fill alerts once per direction
        self.tx_done: set[tuple[int, int, bool]] = set()
        # transactions grown by one direction, to inspect on the other's next packet too
        self.tx_later_ts: list[Any] = []
        self.tx_later_tc: list[Any] = []
        # TCP data per sender, (stream offset, bytes), that the peer has not acknowledged
        # yet: the app layer parses it on the acknowledging packet (Suricata's IDS mode)
        self.unparsed_ts: list[tuple[int, bytes]] = []
        self.unparsed_tc: list[tuple[int, bytes]] = []
        # per sender, the bytes its last acknowledgement handed to the parser: the pkt_data a
        # transaction rule's stream contents see (Suricata inspects the raw stream up to the ACK)
        self.parsed_ts = b""
        self.parsed_tc = b""
        # per sender, Suricata's raw-stream progress (sensor.detect_raw.RawTrack) for the
        # rules it inspects on packet and stream alike; None until the first packet needs it
        self.raw_ts: Any = None
        self.raw_tc: Any = None
        # The app protocol as packet rules see it (Suricata's timing, see Detector.inspect),
        # and the direction of the data that revealed it while that is not yet visible.
        self.app_visible: str | None = None
        self.app_pending: bool | None = None
        self.data_seen = [False, False]  # [to client, to server]: a packet carried data
        self.alp_ready = False  # this packet's direction carried data before it
        self.app_reversed = False  # the app layer sees this flow's directions swapped
        # "drop"/"pass" once such a rule decided for the whole flow, "bypass" after a rule with
        # the bypass keyword matched: no more inspection
        self.action: str | None = None

    def note_packet(self, to_server: bool, has_data: bool) -> None:
        self.alp_ready = self.data_seen[to_server]
        self.data_seen[to_server] |= has_data

    def first(self, order: int, to_server: bool) -> bool:
        """True the first time rule ``order`` matches in this direction of the flow."""
        key = (-1, order, to_server)
        if key in self.tx_done:
            return False
        self.tx_done.add(key)
        return True


def bits_check(have: set[str] | dict[str, float], op: BitOp, now: float) -> bool:
    def isset(name: str) -> bool:
        if isinstance(have, dict):
            exp = have.get(name)
            return exp is not None and (exp == 0 or exp >= now)  # expired once passed
        return name in have

    if op.op == "isset":
        hits = (isset(n) for n in op.names)
        return any(hits) if op.any_of else all(hits)
    # isnotset: with "a|b", true when any of them is unset; with one name, when it is unset
    misses = (not isset(n) for n in op.names)
    return any(misses) if op.any_of else all(misses)


def bits_apply(have: set[str], op: BitOp) -> None:
    for n in op.names:
        if op.op == "set":
            have.add(n)
        elif op.op == "unset":
            have.discard(n)
        elif n in have:
            have.remove(n)
        else:
            have.add(n)


def flowint_check(ints: dict[str, int], op: FlowintOp) -> bool:
    cur = ints.get(op.name)
    if op.op == "isset":
        return cur is not None
    if op.op == "notset":
        return cur is None
    if cur is None:
        return False
    other = op.value if isinstance(op.value, int) else ints.get(str(op.value))
    if other is None:
        return False
    return {
        "==": cur == other, "!=": cur != other, "<": cur < other,
        ">": cur > other, "<=": cur <= other, ">=": cur >= other,
    }[op.op]  # fmt: skip


def flowint_apply(ints: dict[str, int], op: FlowintOp) -> None:
    val = op.value if isinstance(op.value, int) else ints.get(str(op.value))
    if val is None:
        return
    if op.op == "=":
        ints[op.name] = val
    elif op.op == "+":
        ints[op.name] = ints.get(op.name, 0) + val
    elif op.op == "-":
        ints[op.name] = ints.get(op.name, 0) - val


class HostBits:
    """hostbits / xbits storage: key -> {name: expiry (0 = none)}; bounded LRU."""

    def __init__(self, cap: int = 65536) -> None:
        self._table: OrderedDict[tuple[int, ...], dict[str, float]] = OrderedDict()
        self._cap = cap
        self.evicted = 0

    def get(self, key: tuple[int, ...]) -> dict[str, float]:
        bits = self._table.get(key)
        if bits is None:
            bits = {}
            self._table[key] = bits
            if len(self._table) > self._cap:
                self._table.popitem(last=False)
                self.evicted += 1
        return bits

    def peek(self, key: tuple[int, ...]) -> dict[str, float]:
        return self._table.get(key) or {}


def host_keys(op: BitOp, p: Packet) -> list[tuple[int, ...]]:
    """Which hosts (or host pairs) an operation applies to for this packet."""
    src, dst = (p.ipver, p.src), (p.ipver, p.dst)
    track = op.track
    if track in ("src", "ip_src"):
        return [src]
    if track in ("dst", "ip_dst"):
        return [dst]
    if track == "both":
        return [src, dst]
    a, b = sorted((p.src, p.dst))
    return [(p.ipver, a, b)]


class Thresholds:
    """threshold / detection_filter counters keyed by rule and tracked address."""

    def __init__(self, cap: int = 65536) -> None:
        self._table: OrderedDict[tuple[object, ...], list[float]] = OrderedDict()
        self._cap = cap
        self.suppressed = 0

    def allow(self, sid: int, gid: int, t: Threshold, p: Packet, now: float) -> bool:
        """Count one match; True when it may produce an alert."""
        if t.track == "by_src":
            who: tuple[int, ...] = (p.ipver, p.src)
        elif t.track == "by_dst":
            who = (p.ipver, p.dst)
        elif t.track == "by_both":
            who = (p.ipver, p.src, p.dst)
        elif t.track == "by_flow":
            who = (id(p.flow),)
        else:
            who = ()
        key = (gid, sid, t.kind, *who)
        entry = self._table.get(key)
        if entry is None or now - entry[0] >= t.seconds:
            entry = [now, 0.0, 0.0]  # window start, count, alerted-in-window
            self._table[key] = entry
            if len(self._table) > self._cap:
                self._table.popitem(last=False)
        entry[1] += 1
        count = entry[1]
        ok = self._decide(t, entry, count)
        if not ok:
            self.suppressed += 1
        return ok

    @staticmethod
    def _decide(t: Threshold, entry: list[float], count: float) -> bool:
        if t.kind == "limit":
            return count <= t.count
        if t.kind == "threshold":
            if count >= t.count:
                entry[1] = 0  # alert every count-th match in the window
                return True
            return False
        if t.kind == "both":
            if count >= t.count and not entry[2]:
                entry[2] = 1
                return True
            return False
        return count > t.count  # detection_filter: alert once the rate is exceeded


# Protocols whose transactions hold a request and its response: Suricata's detect state is
# per direction there, so a rule on buffers both sides fill (http.protocol, http.header ...)
# alerts once on the request and once on the response (TLS: the session's one transaction,
# tls.version ... once on the client's side, once on the server's). Other transactions are one message
# (DNS, SNMP ...: the other direction skips them) or are checked once per transaction.
_BOTH_SIDES = frozenset({"http", "http2", "tls"})


def done_side(tx: Any, to_server: bool) -> bool:
    return to_server if tx.proto in _BOTH_SIDES else True


def is_pd_only(sig: Any) -> bool:
    """Suricata's "protocol detection only" signature: app-layer-protocol with nothing
    else to match but a flow direction and flowbits:set. It alerts only on the packet where
    detection completed, so once per flow direction."""
    if not any(k == "app-layer-protocol" for k, _ in sig.check_specs):
        return False
    return (
        all(k in ("app-layer-protocol", "flow") for k, _ in sig.check_specs)
        and not sig.flow_bits & ~(TO_SERVER | TO_CLIENT)
        and sig.payload is None
        and not sig.app_buffers
        and not sig.tx_values
        and sig.app_proto is None
        and not sig.bit_checks
        and all(b.kind == "flowbits" and b.op == "set" for b in sig.bit_actions)
        and not sig.flowint_checks
        and not sig.flowint_actions
        and sig.stream_size is None
    )


def alp_gated(sig: Any) -> bool:
    """A rule with app-layer-protocol and no payload keywords (see Detector._run)."""
    return sig.payload is None and any(k == "app-layer-protocol" for k, _ in sig.check_specs)


def with_deferred(txs: list[Transaction], to_server: bool,
                   fs: FlowDetectState) -> list[Transaction]:  # fmt: skip
    """Transactions grown by this packet, plus those grown by the other direction since
    this direction's last packet: a request parsed only once the response revealed the
    protocol (an unknown method) still meets its request rules on the next packet
    towards the server, as in Suricata; rules alert once per transaction anyway."""
    deferred = fs.tx_later_ts if to_server else fs.tx_later_tc
    other = fs.tx_later_tc if to_server else fs.tx_later_ts
    out = txs
    if deferred:
        seen = {id(tx) for tx in txs}
        out = txs + [tx for tx in deferred if id(tx) not in seen]
        deferred.clear()
    if txs:
        other.extend(tx for tx in txs if tx not in other)
        del other[:-8]  # bounded: only the most recent transactions wait
    return out
