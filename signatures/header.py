"""Packet-header keywords: predicates on one decoded packet.

Scope: dsize, ttl, id, tos, ip_proto, ipopts, sameip, fragbits, fragoffset, flags, seq, ack,
window, tcp.mss, itype, icode, icmp_id, icmp_seq. Each parser returns a predicate
``Packet -> bool``; the builder appends it to the rule's packet checks, evaluated before any
payload inspection (they are cheap).

Non-goals: flow state (signatures/flowkw.py), payload (signatures/payload.py).
Semantics follow Suricata 7's keyword documentation; where Suricata silently accepts
nonsense, we reject the rule with a reason instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sensor.decode import ipv4_options, tcp_mss
from sensor.errors import RuleError
from sensor.packet import (
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    TH_ACK,
    TH_CWR,
    TH_ECE,
    TH_FIN,
    TH_PUSH,
    TH_RST,
    TH_SYN,
    TH_URG,
    Packet,
)
from signatures.checksums import CHECKSUM_KEYWORDS
from signatures.l4kw import icmpv6_mtu, rpc
from signatures.numeric import parse_uint
from signatures.pcre_vars import flowvar, pktvar

Check = Callable[[Packet], bool]

_TCP_FLAG_BITS = {
    "F": TH_FIN, "S": TH_SYN, "R": TH_RST, "P": TH_PUSH, "A": TH_ACK, "U": TH_URG,
    "C": TH_CWR, "E": TH_ECE, "1": TH_CWR, "2": TH_ECE,
}  # fmt: skip
_INITDEINIT = TH_SYN | TH_FIN | TH_RST  # Suricata's SIG_MASK_REQUIRE_FLAGS_INITDEINIT
_UNUSUAL = TH_URG | TH_CWR | TH_ECE  # SIG_MASK_REQUIRE_FLAGS_UNUSUAL

_IPOPTS = {"eol": 0, "nop": 1, "rr": 7, "ts": 68, "sec": 130, "esec": 133, "lsrr": 131,
           "ssrr": 137, "satid": 136, "lsrre": 131, "qs": 25, "cipso": 134}  # fmt: skip

_PROTO_NAMES = {"icmp": 1, "igmp": 2, "ipip": 4, "tcp": 6, "udp": 17, "ipv6": 41, "gre": 47,
                "esp": 50, "ah": 51, "icmpv6": 58, "ipv6-icmp": 58, "sctp": 132}  # fmt: skip


def _is_icmp(p: Packet) -> bool:
    return p.proto == IPPROTO_ICMP or p.proto == IPPROTO_ICMPV6


def dsize(value: str | None) -> Check:
    m = parse_uint("dsize", value, 65535).test
    # Suricata requires a payload unless the comparison is "less than" or "equals 0": an
    # empty packet never matches dsize:!9 or dsize:>=0.
    text = (value or "").strip()
    if text.startswith("<") or text.lstrip("=").strip() == "0":
        return lambda p: m(len(p.payload))
    return lambda p: bool(p.payload) and m(len(p.payload))


def ttl(value: str | None) -> Check:
    m = parse_uint("ttl", value, 255).test
    return lambda p: p.ipver != 0 and m(p.ttl)


def ip_id(value: str | None) -> Check:
    m = _plain_number("id", value)
    return lambda p: p.ipver == 4 and m(p.ip_id)


def tos(value: str | None) -> Check:
    text = (value or "").strip()
    neg = text.startswith("!")
    text = text.lstrip("!").strip()
    try:
        n = int(text[1:], 16) if text[:1] in ("x", "X") else int(text, 0)
    except ValueError as exc:
        raise RuleError(f"tos: invalid value '{value}'") from exc
    if not 0 <= n <= 255:
        raise RuleError(f"tos: value {n} out of range 0-255")
    return (
        (lambda p: p.ipver == 4 and p.tos != n) if neg else (lambda p: p.ipver == 4 and p.tos == n)
    )


def ip_proto(value: str | None) -> Check:
    text = (value or "").strip()
    op = ""
    if text[:1] in ("!", "<", ">"):
        op, text = text[0], text[1:].strip()
    n = _PROTO_NAMES.get(text.lower())
    if n is None:
        try:
            n = int(text)
        except ValueError as exc:
            raise RuleError(f"ip_proto: unknown protocol '{value}'") from exc
    if not 0 <= n <= 255:
        raise RuleError(f"ip_proto: {n} out of range 0-255")
    tests: dict[str, Check] = {
        "": lambda p: p.ipver != 0 and p.proto == n,
        "!": lambda p: p.ipver != 0 and p.proto != n,
        "<": lambda p: p.ipver != 0 and p.proto < n,
        ">": lambda p: p.ipver != 0 and p.proto > n,
    }
    return tests[op]


def ipopts(value: str | None) -> Check:
    name = (value or "").strip().lower()
    if name == "any":
        return lambda p: p.ipver == 4 and p.ip_hlen > 20
    code = _IPOPTS.get(name)
    if code is None:
        raise RuleError(f"ipopts: unknown option '{value}'")
    return lambda p: p.ipver == 4 and p.ip_hlen > 20 and code in ipv4_options(p)


def sameip(value: str | None) -> Check:
    if value:
        raise RuleError("sameip: takes no value")
    return lambda p: p.ipver != 0 and p.src == p.dst


def fragbits(value: str | None) -> Check:
    text = (value or "").strip()
    mod = ""
    if text[:1] in ("+", "*", "!"):
        mod, text = text[0], text[1:]
    elif text[-1:] in ("+", "*", "!"):
        mod, text = text[-1], text[:-1]
    bits = 0
    for ch in text.upper():
        if ch == "M":
            bits |= 1
        elif ch == "D":
            bits |= 2
        elif ch == "R":
            bits |= 4
        else:
            raise RuleError(f"fragbits: unknown bit '{ch}' in '{value}'")

    def have(p: Packet) -> int:
        if p.ipver != 4:
            return -1
        raw = int.from_bytes(p.data[p.ip_off + 6 : p.ip_off + 8], "big")
        return (1 if raw & 0x2000 else 0) | (2 if raw & 0x4000 else 0) | (4 if raw & 0x8000 else 0)

    if mod == "+":
        return lambda p: (h := have(p)) >= 0 and h & bits == bits
    if mod == "*":
        return lambda p: (h := have(p)) >= 0 and bool(h & bits)
    if mod == "!":
        return lambda p: (h := have(p)) >= 0 and not h & bits
    return lambda p: have(p) == bits


def fragoffset(value: str | None) -> Check:
    text = (value or "").strip()
    op = ""
    if text[:1] in ("!", "<", ">"):
        op, text = text[0], text[1:]
    try:
        n = int(text)
    except ValueError as exc:
        raise RuleError(f"fragoffset: invalid value '{value}'") from exc
    tests: dict[str, Check] = {
        "": lambda p: p.ipver != 0 and p.frag_off == n,
        "!": lambda p: p.ipver != 0 and p.frag_off != n,
        "<": lambda p: p.ipver != 0 and p.frag_off < n,
        ">": lambda p: p.ipver != 0 and p.frag_off > n,
    }
    return tests[op]


_FLAGS = re.compile(r"^\s*([+*!]?)([FSRPAUCE120]+)([+*!]?)\s*(?:,\s*([FSRPAUCE12]+))?\s*$", re.I)


def flags(value: str | None) -> Check:
    """``flags:[+*!]FSRPAUCE0[,ignore]``; no modifier means exactly these (after the mask)."""
    m = _FLAGS.match(value or "")
    if not m or (m.group(1) and m.group(3)):
        raise RuleError(f"flags: invalid value '{value}'")
    mod = m.group(1) or m.group(3)
    want = 0
    for ch in m.group(2).upper():
        if ch != "0":
            want |= _TCP_FLAG_BITS[ch]
    ignore = 0
    for ch in (m.group(4) or "").upper():
        ignore |= _TCP_FLAG_BITS[ch]
    keep = 0xFF & ~ignore
    # As Suricata, the ignore mask applies under every modifier, and ``!`` means "not all of
    # these" (flags:!SA matches a bare SYN and a FIN-ACK). Suricata's signature mask also
    # gates the rule, whatever the modifier: naming S, F or R needs a packet carrying one of
    # them, naming U, C or E one carrying one of those (flags:!SA never fires on a bare ACK).
    need = [m for m in (_INITDEINIT, _UNUSUAL) if want & m]
    if mod == "+":
        test: Callable[[int], bool] = lambda f: f & keep & want == want  # noqa: E731
    elif mod == "*":
        test = lambda f: bool(f & keep & want)  # noqa: E731
    elif mod == "!":
        test = lambda f: f & keep & want != want  # noqa: E731
    else:
        test = lambda f: f & keep == want  # noqa: E731
    return lambda p: (
        p.l4_off >= 0 and p.proto == 6 and all(p.tcp_flags & m for m in need) and test(p.tcp_flags)
    )


def flags_need_syn(value: str | None) -> bool:
    """Suricata's DetectFlagsSignatureNeedsSynPackets: S named without the ``!`` modifier.
    A rule without a fast pattern that needs SYN packets is only evaluated on SYN packets."""
    m = _FLAGS.match(value or "")
    if m is None:
        return False
    return (m.group(1) or m.group(3)) != "!" and "S" in m.group(2).upper()


def _u32(keyword: str, value: str | None) -> int:
    try:
        n = int((value or "").strip())
    except ValueError as exc:
        raise RuleError(f"{keyword}: invalid value '{value}'") from exc
    if not 0 <= n <= 0xFFFFFFFF:
        raise RuleError(f"{keyword}: value {n} out of range")
    return n


def seq(value: str | None) -> Check:
    n = _u32("seq", value)
    return lambda p: p.proto == 6 and p.l4_off >= 0 and p.seq == n


def ack(value: str | None) -> Check:
    n = _u32("ack", value)
    return lambda p: p.proto == 6 and p.l4_off >= 0 and p.ack == n


def window(value: str | None) -> Check:
    text = (value or "").strip()
    neg = text.startswith("!")
    n = _u32("window", text.lstrip("!"))
    if n > 65535:
        raise RuleError(f"window: {n} is larger than 65535")
    if neg:
        return lambda p: p.proto == 6 and p.l4_off >= 0 and p.win != n
    return lambda p: p.proto == 6 and p.l4_off >= 0 and p.win == n


def tcp_mss_kw(value: str | None) -> Check:
    m = parse_uint("tcp.mss", value, 65535).test

    def check(p: Packet) -> bool:
        if p.proto != 6 or p.l4_off < 0:
            return False
        mss = tcp_mss(p)
        return mss is not None and m(mss)

    return check


def itype(value: str | None) -> Check:
    m = parse_uint("itype", value, 255).test
    return lambda p: p.itype >= 0 and _is_icmp(p) and m(p.itype)


def icode(value: str | None) -> Check:
    m = parse_uint("icode", value, 255).test
    return lambda p: p.icode >= 0 and _is_icmp(p) and m(p.icode)


def _plain_number(keyword: str, value: str | None) -> Callable[[int], bool]:
    """Suricata's id, icmp_id and icmp_seq take one plain number: no operator nor range."""
    text = (value or "").strip()
    if not text.isdigit():
        raise RuleError(f"{keyword}: expects a number, not '{value}'")
    return parse_uint(keyword, text, 65535).test


def icmp_id(value: str | None) -> Check:
    m = _plain_number("icmp_id", value)
    return lambda p: p.icmp_id >= 0 and m(p.icmp_id)


def icmp_seq(value: str | None) -> Check:
    m = _plain_number("icmp_seq", value)
    return lambda p: p.icmp_seq >= 0 and m(p.icmp_seq)


def app_layer_protocol(value: str | None) -> Check:
    """``app-layer-protocol:[!]name[,mode]``: the flow's detected application protocol.

    ``failed`` names a flow whose detection gave up. Suricata 7.0 has no mode suffix
    (",final" is refused).
    """
    if "," in (value or ""):  # Suricata 7.0 knows no mode suffix ("tls,final" is refused)
        raise RuleError(f"app-layer-protocol: unknown protocol {value!r}")
    text = (value or "").strip()
    negated = text.startswith("!")
    name = text.lstrip("!").strip().lower()
    if not name:
        raise RuleError("app-layer-protocol: needs a protocol name")
    name = {"ssl": "tls", "http1": "http"}.get(name, name)
    # Suricata 7's AppProtoEquals: `http` names HTTP/1 and HTTP/2 flows
    names = {"http", "http2"} if text.lstrip("!").strip().lower() == "http" else {name}

    def detected(p: Packet) -> str | None:
        flow = p.flow
        if flow is None or flow.app is None:
            return None
        return getattr(flow.app, "proto_name", None)

    if negated:
        return lambda p: (proto := detected(p)) is not None and proto not in names
    return lambda p: detected(p) in names


# keyword -> (parser, forces packet-only payload inspection as Suricata's dsize does)
PACKET_KEYWORDS: dict[str, tuple[Callable[[str | None], Check], bool]] = {
    "dsize": (dsize, True),
    "ttl": (ttl, False),
    "id": (ip_id, False),
    "tos": (tos, False),
    "ip_proto": (ip_proto, False),
    "ipopts": (ipopts, False),
    "sameip": (sameip, False),
    "fragbits": (fragbits, False),
    "fragoffset": (fragoffset, False),
    "flags": (flags, False),
    "seq": (seq, False),
    "ack": (ack, False),
    "window": (window, False),
    "tcp.mss": (tcp_mss_kw, False),
    "itype": (itype, False),
    "icode": (icode, False),
    "icmp_id": (icmp_id, False),
    "icmp_seq": (icmp_seq, False),
    "app-layer-protocol": (app_layer_protocol, False),
    **{name: (parse, False) for name, parse in CHECKSUM_KEYWORDS.items()},
    "flowvar": (flowvar, False),  # reads flow variables set by pcre captures
    "pktvar": (pktvar, False),
    "icmpv6.mtu": (icmpv6_mtu, False),
    "rpc": (rpc, True),  # Suricata: SIG_FLAG_REQUIRE_PACKET
}
