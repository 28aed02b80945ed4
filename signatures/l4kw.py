"""Packet keywords that read a fixed field of the L4 header or payload: ``icmpv6.mtu``, ``rpc``.

Scope, as Suricata 7:

* ``icmpv6.mtu:<uint32 comparison>`` — the MTU of an ICMPv6 *Packet Too Big* message (type
  2, code 0); any other packet does not match.
* ``rpc:<program>[, <version>|*[, <procedure>|*]]`` — an ONC RPC *call* (message type 0) in
  the packet payload: UDP payloads of 24+ bytes, TCP payloads of 28+ bytes (after the 4-byte
  record mark). The RPC version field is not checked, as in Suricata. Like Suricata's
  ``SIG_FLAG_REQUIRE_PACKET``, the rule looks at packets, not at the reassembled stream.

Non-goals: RPC records split across TCP segments, replies.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sensor.errors import RuleError
from sensor.packet import IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, Packet
from signatures.numeric import parse_uint

Check = Callable[[Packet], bool]

_RPC = re.compile(
    r"^\s*([0-9]{0,10})\s*(?:,\s*([0-9]{0,10}|[*])\s*(?:,\s*([0-9]{0,10}|[*]))?)?\s*$"
)


def icmpv6_mtu(value: str | None) -> Check:
    test = parse_uint("icmpv6.mtu", value, 0xFFFFFFFF).test

    def check(p: Packet) -> bool:
        if p.proto != IPPROTO_ICMPV6 or p.itype != 2 or p.icode != 0 or p.l4_off < 0:
            return False
        field = p.data[p.l4_off + 4 : p.l4_off + 8]
        return len(field) == 4 and test(int.from_bytes(field, "big"))

    return check


def _rpc_number(part: str | None, what: str, value: str | None) -> int | None:
    if part is None or part == "*":
        return None
    if not part or int(part) > 0xFFFFFFFF:
        raise RuleError(f"rpc: invalid {what} in {value!r}")
    return int(part)


def rpc(value: str | None) -> Check:
    m = _RPC.match(value or "")
    if m is None:
        raise RuleError(f"rpc: expected <program>[,<version>|*[,<procedure>|*]], got {value!r}")
    program = _rpc_number(m.group(1), "program", value)
    if program is None:
        raise RuleError(f"rpc: invalid program in {value!r}")
    version = _rpc_number(m.group(2), "version", value)
    procedure = _rpc_number(m.group(3), "procedure", value)
    want = program.to_bytes(4, "big")

    def check(p: Packet) -> bool:
        data = p.payload
        if p.proto == IPPROTO_TCP:
            if len(data) < 28:
                return False
            base = 4  # record mark
        elif p.proto == IPPROTO_UDP:
            if len(data) < 24:
                return False
            base = 0
        else:
            return False
        if data[base + 4 : base + 8] != b"\x00\x00\x00\x00":  # not a call
            return False
        if data[base + 12 : base + 16] != want:
            return False
        if version is not None and int.from_bytes(data[base + 16 : base + 20], "big") != version:
            return False
        return procedure is None or int.from_bytes(data[base + 20 : base + 24], "big") == procedure

    return check
