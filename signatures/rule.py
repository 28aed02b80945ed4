"""The compiled form of one rule: what the detection engine needs, nothing else.

Scope: the frozen ``Signature`` record and the constants describing how its payload is
inspected. Built by signatures/build.py from a parsed rule; read by sensor/detect.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from sensor.packet import Packet
from signatures.flowkw import BitOp, FlowintOp, StreamSize, Threshold

# How pkt_data is inspected for a TCP rule (Suricata's SIG_FLAG_REQUIRE_* flags).
INSPECT_PACKET = 1  # packet payload only (tcp-pkt, dsize, flow:no_stream, non-TCP)
INSPECT_STREAM = 2  # reassembled stream, falling back to the packet when it was not streamed
INSPECT_STREAM_ONLY = 3  # tcp-stream / flow:only_stream: never the bare packet
# Both the packet payload and the stream (SIG_FLAG_REQUIRE_PACKET | SIG_FLAG_REQUIRE_STREAM):
# Suricata's SigValidate gives it to a TCP rule with a pkt_data content using depth/offset,
# or using stream_size. In IDS mode such a rule can alert twice for the same bytes: on the
# packet carrying them and again when the raw stream holding them is inspected.
INSPECT_BOTH = 4

# Actions, in Suricata's default action order (pass first, then drop, reject, alert).
ACTION_ORDER = {"pass": 0, "drop": 1, "reject": 2, "rejectsrc": 2, "rejectdst": 2,
                "rejectboth": 2, "alert": 3}  # fmt: skip

# Suricata orders flowbits writers before rules that read and write, before readers.
FB_SET, FB_SET_READ, FB_READ, FB_NONE = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class Signature:
    # identity and what the alert says
    sid: int
    gid: int
    rev: int
    msg: str
    action: str
    classtype: str | None
    category: str  # the classtype's description, "" when none
    severity: int  # priority keyword, else the classtype's priority, else 3
    metadata: tuple[str, ...]
    references: tuple[str, ...]
    target: str | None
    # header
    proto: str  # rule protocol as written (lower-case)
    l4: frozenset[int] | None  # L4 protocol numbers it applies to; None = any IP packet
    ipver: int  # 0 any, 4 or 6 (ipv4/ipv6 header protocols)
    app_proto: str | None
    src: Any  # signatures.addresses.AddressSet
    sport: Any  # signatures.addresses.PortSet
    dst: Any
    dport: Any
    bidirectional: bool
    # per-packet predicates, cheapest first
    checks: tuple[Callable[[Packet], bool], ...]
    check_specs: tuple[tuple[str, str | None], ...]  # (keyword, value) the checks came from
    flow_bits: int  # signatures.flowkw flow option bits
    bit_checks: tuple[BitOp, ...]
    bit_actions: tuple[BitOp, ...]
    flowint_checks: tuple[FlowintOp, ...]
    flowint_actions: tuple[FlowintOp, ...]
    stream_size: StreamSize | None
    noalert: bool
    # payload
    payload: Any  # signatures.payload.PayloadSpec or None
    inspect: int  # INSPECT_* for pkt_data
    header_buffers: tuple[str, ...]  # ipv4.hdr, tcp.hdr... the rule inspects
    app_buffers: tuple[str, ...]  # http.uri, dns.query... the rule inspects
    tx_values: tuple[tuple[str, str | None], ...]  # (tls.version|dns.opcode|..., value text)
    ip_only: bool  # Suricata's IP-only class: checked once per flow direction
    threshold: Threshold | None
    detection_filter: Threshold | None
    # provenance
    file: str
    line: int
    raw: str = field(repr=False)
    order: int = 0  # position in evaluation order (set by the compiler)
    bypass: bool = False  # bypass keyword: once it matched, the flow is no longer inspected

    # Fast pickling for the rule cache: dataclasses' generic frozen-slots state handling
    # costs a second on ET Open's 25k rules; a plain tuple of the fields does not.
    def __getstate__(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in _FIELDS)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        set_field = object.__setattr__
        for name, value in zip(_FIELDS, state, strict=True):
            set_field(self, name, value)

    @property
    def fb_class(self) -> int:
        writes = bool(self.bit_actions) or bool(self.flowint_actions)
        reads = bool(self.bit_checks) or bool(self.flowint_checks)
        if writes and reads:
            return FB_SET_READ
        if writes:
            return FB_SET
        if reads:
            return FB_READ
        return FB_NONE


_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Signature))
