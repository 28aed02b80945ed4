"""Checks of one signature against one packet: header, flow state, bits, payload buffers.

Scope: pure functions over (signature, packet, per-flow state) used by the detection engine
for packet rules and transaction rules alike. No candidate selection, no side effects
(post-match effects live in sensor/detect.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from sensor.detect_state import FlowDetectState, HostBits, bits_check, flowint_check, host_keys
from sensor.packet import IPPROTO_TCP, Packet
from sensor.stream import SEQ_MASK, TcpDir, seq_diff
from signatures import flowkw
from signatures.payload import MatchEnv
from signatures.rule import INSPECT_BOTH, INSPECT_PACKET, INSPECT_STREAM_ONLY, Signature

# (new in-order stream data, retained tail, tail + new data, raw chunk) of the packet being
# inspected. The raw chunk is Suricata's IDS raw-stream chunk ready on this packet for the
# INSPECT_BOTH rules (sensor/detect_raw.py): b"" when none is ready, None when that timing
# is off (inline mode): those rules are then inspected on arrival as stream rules.
StreamCtx = tuple[bytes, bytes, bytes, bytes | None]

HEADER_GETTERS: dict[str, Callable[[Packet], bytes]] = {
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


# Rule protocols that also match a flow of another protocol: Suricata 7's AppProtoEquals (an
# `http` rule sees HTTP/2, `http1` is HTTP/1 only, which sekimori's flows call "http") and
# DCERPC rules on SMB flows (DCERPC over named pipes). Packet rules and the transaction rule
# groups (detect_app.TxSource) both read it.
ALSO_MATCHED_BY: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"http2": ("http",), "http": ("http1",), "smb": ("dcerpc",)}
)
_APP_EQUIVALENT = frozenset(
    (rule, flow) for flow, rules in ALSO_MATCHED_BY.items() for rule in rules
)


def app_proto_of(p: Packet) -> str | None:
    flow = p.flow
    app: Any = flow.app if flow is not None else None
    return app.proto_name if app is not None else None


def header_ok(s: Signature, p: Packet, fs: FlowDetectState | None, hostbits: HostBits,
              app_proto: str | None) -> bool:  # fmt: skip
    """Everything but the payload buffers: protocol, addresses, flow, packet keywords, bits.

    ``app_proto`` is the flow's application protocol as this rule may see it (see
    Detector._run for why that is not always the protocol known right now).
    """
    if s.l4 is not None and (p.l4_off < 0 or p.proto not in s.l4):
        return False
    if s.ipver and p.ipver != s.ipver:
        return False
    if p.ipver == 0:
        return False
    # Suricata 7's AppProtoEquals: an `http` rule also matches HTTP/2 flows, `http1` is
    # HTTP/1 only (which sekimori's flows call "http"); dcerpc rules match SMB flows
    if (
        s.app_proto is not None
        and app_proto != s.app_proto
        and (s.app_proto, app_proto) not in _APP_EQUIVALENT
    ):
        return False
    if not addresses_ok(s, p):
        return False
    fb = s.flow_bits
    if fb and not flow_ok(fb, p):
        return False
    for check in s.checks:
        if not check(p):
            return False
    if s.bit_checks and not bits_ok(s, p, fs, hostbits):
        return False
    if s.flowint_checks and (
        fs is None or not all(flowint_check(fs.ints, op) for op in s.flowint_checks)
    ):
        return False
    return s.stream_size is None or stream_size_ok(s, p)


def addresses_ok(s: Signature, p: Packet) -> bool:
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


def flow_ok(fb: int, p: Packet) -> bool:
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


def bits_ok(s: Signature, p: Packet, fs: FlowDetectState | None, hostbits: HostBits) -> bool:
    now = p.ts_sec + p.ts_usec / 1e6
    for op in s.bit_checks:
        if op.kind == "flowbits":
            if not bits_check(fs.bits if fs is not None else set(), op, now):
                return False
        elif not all(bits_check(hostbits.peek(k), op, now) for k in host_keys(op, p)):
            return False
    return True


def _stream_size(d: TcpDir, peer: TcpDir | None) -> int:
    """Suricata's stream_size of one direction: sequence space (next_seq - isn), not payload
    bytes. The SYN counts one, so a client that sent 16 bytes is at 17. A FIN leaves the
    sender's next_seq at the end of its data; it counts once the peer ACKs it (Suricata
    raises next_seq to an ACK beyond it), from that acknowledging packet on."""
    size = (d.next_seq - d.isn) & SEQ_MASK
    if d.fin_consumed and (peer is None or seq_diff(peer.last_ack, d.next_seq) < 0):
        size -= 1
    return size


def stream_size_ok(s: Signature, p: Packet) -> bool:
    flow = p.flow
    ss = s.stream_size
    if flow is None or ss is None or not flow.tcp_session or flow.toserver is None:
        return False
    client = _stream_size(flow.toserver, flow.toclient)
    server = _stream_size(flow.toclient, flow.toserver) if flow.toclient is not None else 0
    op = _SS_OPS[ss.op]
    if ss.side == "client":
        return op(client, ss.value)
    if ss.side == "server":
        return op(server, ss.value)
    if ss.side == "both":
        return op(client, ss.value) and op(server, ss.value)
    return op(client, ss.value) or op(server, ss.value)


def pkt_data_ok(s: Signature, p: Packet, prog: Any, env: MatchEnv, ctx: StreamCtx) -> bool:
    """pkt_data: the packet payload or the stream data it delivered, as the rule asks."""
    new_data, tail, window, raw = ctx
    flow = p.flow
    streamed = p.proto == IPPROTO_TCP and flow is not None and flow.tcp_session
    if s.inspect == INSPECT_BOTH and raw is not None and streamed:
        # Suricata (IDS): the raw stream chunk ready on this packet first, else the packet's
        # own payload; the chunk holding these bytes later is inspected (and alerts) again.
        if raw and prog.match(raw, env):
            return True
        return bool(p.payload) and prog.match(p.payload, env)
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


def packet_buffers_ok(s: Signature, p: Packet, env: MatchEnv, ctx: StreamCtx,
                      app_buffer: Callable[[str], Any] | None = None) -> bool:  # fmt: skip
    """Every buffer program of ``s`` matches; app buffers come from ``app_buffer(name)``."""
    env.reset()
    for name, prog in s.payload.programs.items():
        if name == "pkt_data":
            if not pkt_data_ok(s, p, prog, env, ctx):
                return False
            continue
        getter = HEADER_GETTERS.get(name)
        if getter is not None:
            data = getter(p)
            if not data or not prog.match(data, env):
                return False
            continue
        value = app_buffer(name) if app_buffer is not None else None
        if value is None:
            return False
        if isinstance(value, list):
            if not any(prog.match(v, env) for v in value):
                return False
        elif not prog.match(value, env):
            return False
    return True
