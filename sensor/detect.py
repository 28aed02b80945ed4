"""Per-packet detection: which signatures match this packet (and the stream data it carries).

Scope: candidate selection (the packet's L4 rule group, its IP-only rules once per flow
direction, Hyperscan prefilter hits on the payload / stream window, and rules without a
fast pattern), then the exact check of each candidate in Suricata's evaluation order:
header, flow state, bits, payload buffers, thresholds; then post-match effects (flowbits,
flowint, hostbits) and pass/noalert handling.

Stream inspection, by design different from Suricata's IDS mode: in-order TCP data is
inspected on the packet that delivers it (not when the peer acknowledges it), so the
packet carrying an attack raises the alert. A pattern split across segments is found by
inspecting a bridge window ``tail + new data``, where the tail is the last ``max_reach``
bytes already inspected; a bridge match counts only when the tail alone does not match,
so content already alerted on is not reported again.

Non-goals: app-layer transaction inspection (sensor/applayer wires into this later).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sensor.detect_state import (
    FlowDetectState,
    HostBits,
    Thresholds,
    bits_apply,
    bits_check,
    flowint_apply,
    flowint_check,
    host_keys,
)
from sensor.packet import IPPROTO_TCP, Packet
from signatures import flowkw
from signatures.compiler import OTHER, CompiledRuleset
from signatures.payload import MatchEnv
from signatures.rule import INSPECT_PACKET, INSPECT_STREAM_ONLY, Signature

_HEADER_GETTERS: dict[str, Callable[[Packet], bytes]] = {
    "ipv4.hdr": lambda p: p.ip_header() if p.ipver == 4 else b"",
    "ipv6.hdr": lambda p: p.ip_header() if p.ipver == 6 else b"",
    "tcp.hdr": lambda p: p.l4_header() if p.proto == 6 else b"",
    "udp.hdr": lambda p: p.l4_header() if p.proto == 17 else b"",
    "icmpv4.hdr": lambda p: p.l4_header() if p.proto == 1 else b"",
    "icmpv6.hdr": lambda p: p.l4_header() if p.proto == 58 else b"",
}

_SS_OPS: dict[str, Callable[[int, int], bool]] = {
    ">": lambda a, b: a > b, "<": lambda a, b: a < b, "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b, ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b,
}  # fmt: skip


def pseudo_packet(flow: Any, to_server: bool, ts_sec: int, ts_usec: int) -> Packet:
    """A stand-in packet for inspecting stream data at flow end (Suricata's pseudo packet).

    ``pcap_cnt`` is 0: no captured frame carries this data now, and EVE omits the field.
    """
    p = Packet(0, ts_sec, ts_usec, 0, b"")
    p.ipver, p.proto, p.flow, p.to_server = flow.ipver, flow.proto, flow, to_server
    p.vlan = flow.vlan
    p.l4_off, p.stream_added = 0, True
    if to_server:
        p.src, p.sport, p.dst, p.dport = flow.src, flow.sport, flow.dst, flow.dport
    else:
        p.src, p.sport, p.dst, p.dport = flow.dst, flow.dport, flow.src, flow.sport
    return p


class DetectStats:
    __slots__ = ("candidates", "checked", "matched", "suppressed")

    def __init__(self) -> None:
        self.candidates = 0
        self.checked = 0
        self.matched = 0
        self.suppressed = 0


class Detector:
    """Runs a compiled ruleset over packets; holds cross-packet detection state."""

    def __init__(self, ruleset: CompiledRuleset) -> None:
        self.ruleset = ruleset
        self._sigs = ruleset.signatures
        self._groups = ruleset.groups
        self._reach = ruleset.max_reach
        self._env = MatchEnv()
        self.hostbits = HostBits()
        self.thresholds = Thresholds()
        self.stats = DetectStats()

    # -- entry point -------------------------------------------------------------------
    def inspect(self, p: Packet) -> list[Signature]:
        """The signatures that alert on ``p``, in evaluation order (pass/noalert removed)."""
        key = p.proto if p.l4_off >= 0 else OTHER
        group = self._groups.get(key) or self._groups[OTHER]
        flow = p.flow
        fstate: FlowDetectState | None = None
        if flow is not None:
            fstate = flow.detect
            if fstate is None:
                fstate = flow.detect = FlowDetectState()

        # stream data delivered in order by this packet (TCP sessions only)
        new_data = b""
        tail = b""
        if flow is not None and p.proto == IPPROTO_TCP and flow.tcp_session:
            d = flow.toserver if p.to_server else flow.toclient
            if d is not None:
                new_data = d.new_data
            if fstate is not None:
                tail = fstate.tail_toserver if p.to_server else fstate.tail_toclient
        window = tail + new_data if tail and new_data else new_data

        cand: set[int] = set(group.always)
        if group.ip_only and (
            fstate is None
            or (p.to_server and not fstate.ipo_toserver)
            or (not p.to_server and not fstate.ipo_toclient)
        ):
            cand.update(group.ip_only)
            if fstate is not None:
                if p.to_server:
                    fstate.ipo_toserver = True
                else:
                    fstate.ipo_toclient = True
        pf = group.prefilter
        if pf is not None:
            users = group.pattern_rules
            if window:
                for pid in pf.scan(window):
                    cand.update(users[pid])
            if p.payload and (not new_data or p.payload != new_data):
                for pid in pf.scan(p.payload):
                    cand.update(users[pid])

        alerts: list[Signature] = []
        if cand:
            self.stats.candidates += len(cand)
            sigs = self._sigs
            ctx = (new_data, tail, window)
            for order in sorted(cand):
                sig = sigs[order]
                if not self._match(sig, p, fstate, ctx):
                    continue
                self.stats.matched += 1
                if not self._thresholds_allow(sig, p):
                    continue
                self._post_match(sig, p, fstate)
                if sig.action == "pass":
                    break  # Suricata: a matching pass rule ends inspection of the packet
                if not sig.noalert:
                    alerts.append(sig)

        if new_data and fstate is not None and self._reach > 1:
            keep = (tail + new_data)[-(self._reach - 1) :]
            if p.to_server:
                fstate.tail_toserver = keep
            else:
                fstate.tail_toclient = keep
        return alerts

    def flow_end(self, flow: Any, ts_sec: int, ts_usec: int) -> list[tuple[Signature, Packet]]:
        """Inspect data left beyond a gap when a TCP session ends; alerts with their packets."""
        out: list[tuple[Signature, Packet]] = []
        if flow.proto != IPPROTO_TCP or not flow.tcp_session:
            return out
        for to_server, d in ((True, flow.toserver), (False, flow.toclient)):
            if d is None or not d.final_chunks:
                continue
            chunks, d.final_chunks = d.final_chunks, []
            for chunk in chunks:
                fstate = flow.detect
                if fstate is not None:  # a gap separates these bytes from what came before
                    fstate.tail_toserver = fstate.tail_toclient = b""
                d.new_data = chunk
                p = pseudo_packet(flow, to_server, ts_sec, ts_usec)
                out.extend((sig, p) for sig in self.inspect(p))
            d.new_data = b""
        return out

    # -- one signature -----------------------------------------------------------------
    def _match(self, s: Signature, p: Packet, fs: FlowDetectState | None,
               ctx: tuple[bytes, bytes, bytes]) -> bool:  # fmt: skip
        self.stats.checked += 1
        if s.l4 is not None and (p.l4_off < 0 or p.proto not in s.l4):
            return False
        if s.ipver and p.ipver != s.ipver:
            return False
        if p.ipver == 0:
            return False
        if not self._addresses(s, p):
            return False
        fb = s.flow_bits
        if fb and not self._flow_ok(fb, p):
            return False
        for check in s.checks:
            if not check(p):
                return False
        if s.bit_checks and not self._bits_ok(s, p, fs):
            return False
        if s.flowint_checks and (
            fs is None or not all(flowint_check(fs.ints, op) for op in s.flowint_checks)
        ):
            return False
        if s.stream_size is not None and not self._stream_size_ok(s, p):
            return False
        if s.payload is not None:
            return self._payload(s, p, ctx)
        return True

    @staticmethod
    def _addresses(s: Signature, p: Packet) -> bool:
        v = p.ipver
        if (s.src.contains(v, p.src) and s.dst.contains(v, p.dst)
                and s.sport.contains(p.sport) and s.dport.contains(p.dport)):  # fmt: skip
            return True
        return bool(
            s.bidirectional
            and s.src.contains(v, p.dst)
            and s.dst.contains(v, p.src)
            and s.sport.contains(p.dport)
            and s.dport.contains(p.sport)
        )

    @staticmethod
    def _flow_ok(fb: int, p: Packet) -> bool:
        flow = p.flow
        if fb & flowkw.ONLY_FRAG and not p.defragged:
            return False
        if fb & flowkw.NO_FRAG and p.defragged:
            return False
        if fb & (flowkw.TO_SERVER | flowkw.TO_CLIENT | flowkw.ESTABLISHED | flowkw.NOT_ESTABLISHED):
            if flow is None:
                return False
            if fb & flowkw.TO_SERVER and not p.to_server:
                return False
            if fb & flowkw.TO_CLIENT and p.to_server:
                return False
            if fb & flowkw.ESTABLISHED and not flow.is_established(p):
                return False
            if fb & flowkw.NOT_ESTABLISHED and flow.is_established(p):
                return False
        return True

    def _bits_ok(self, s: Signature, p: Packet, fs: FlowDetectState | None) -> bool:
        now = float(p.ts_sec)
        for op in s.bit_checks:
            if op.kind == "flowbits":
                if not bits_check(fs.bits if fs is not None else set(), op, now):
                    return False
            else:
                keys = host_keys(op, p)
                if not all(bits_check(self.hostbits.peek(k), op, now) for k in keys):
                    return False
        return True

    @staticmethod
    def _stream_size_ok(s: Signature, p: Packet) -> bool:
        flow = p.flow
        ss = s.stream_size
        if flow is None or ss is None or not flow.tcp_session or flow.toserver is None:
            return False
        client = flow.toserver.delivered
        server = flow.toclient.delivered if flow.toclient is not None else 0
        op = _SS_OPS[ss.op]
        if ss.side == "client":
            return op(client, ss.value)
        if ss.side == "server":
            return op(server, ss.value)
        if ss.side == "both":
            return op(client, ss.value) and op(server, ss.value)
        return op(client, ss.value) or op(server, ss.value)

    def _payload(self, s: Signature, p: Packet, ctx: tuple[bytes, bytes, bytes]) -> bool:
        env = self._env
        env.reset()
        for buf_name, prog in s.payload.programs.items():
            if buf_name == "pkt_data":
                if not self._pkt_data(s, p, prog, env, ctx):
                    return False
            else:
                getter = _HEADER_GETTERS.get(buf_name)
                if getter is None:
                    return False  # app-layer buffers are not produced yet
                data = getter(p)
                if not data or not prog.match(data, env):
                    return False
        return True

    @staticmethod
    def _pkt_data(s: Signature, p: Packet, prog, env: MatchEnv,
                  ctx: tuple[bytes, bytes, bytes]) -> bool:  # fmt: skip
        new_data, tail, window = ctx
        flow = p.flow
        streamed = p.proto == IPPROTO_TCP and flow is not None and flow.tcp_session
        if s.inspect == INSPECT_PACKET or not streamed:
            if s.inspect == INSPECT_STREAM_ONLY:
                return False
            return bool(p.payload) and prog.match(p.payload, env)
        if new_data:
            if prog.match(new_data, env):
                return True
            if tail and prog.match(window, env) and not prog.match(tail, env):
                return True
        if s.inspect == INSPECT_STREAM_ONLY or p.stream_added:
            return False
        return bool(p.payload) and prog.match(p.payload, env)

    def _thresholds_allow(self, s: Signature, p: Packet) -> bool:
        now = p.ts_sec + p.ts_usec / 1e6
        if s.detection_filter is not None and not self.thresholds.allow(
            s.sid, s.gid, s.detection_filter, p, now
        ):
            return False
        if s.threshold is not None and not self.thresholds.allow(s.sid, s.gid, s.threshold, p, now):
            self.stats.suppressed += 1
            return False
        return True

    def _post_match(self, s: Signature, p: Packet, fs: FlowDetectState | None) -> None:
        for op in s.bit_actions:
            if op.kind == "flowbits":
                if fs is not None:
                    bits_apply(fs.bits, op)
                continue
            expiry = p.ts_sec + op.expire if op.expire else 0
            for key in host_keys(op, p):
                table = self.hostbits.get(key)
                for name in op.names:
                    if op.op == "set":
                        table[name] = expiry
                    elif op.op == "unset":
                        table.pop(name, None)
                    elif name in table:
                        del table[name]
                    else:
                        table[name] = expiry
        if fs is not None:
            for iop in s.flowint_actions:
                flowint_apply(fs.ints, iop)
