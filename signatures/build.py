"""Turn a parsed rule into a compiled :class:`Signature`.

Scope: walk the rule's options in order and hand each to the module that owns it — meta
keywords here, packet-header keywords (signatures/header.py), flow-state keywords
(signatures/flowkw.py), buffer keywords (signatures/payload.py) — then decide how the
rule's payload is inspected (packet, stream, or stream only) and whether it is one of
Suricata's IP-only rules.

A keyword Suricata has but sekimori does not implement raises ``UnsupportedKeyword`` so the
loader can skip the rule and count it by keyword; an unknown word raises ``RuleError``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from sensor.errors import RuleError, UnsupportedKeyword
from sensor.packet import Packet
from signatures import flowkw
from signatures.buffers import buffer_app_proto, check_directions
from signatures.classification import Classifications
from signatures.datasets import DatasetRegistry
from signatures.events import EVENT_KEYWORDS, parse_event_keyword
from signatures.flowkw import BitOp, FlowintOp, StreamSize, Threshold
from signatures.header import PACKET_KEYWORDS, flags_need_syn
from signatures.payload import PayloadBuilder
from signatures.requires import check_requires
from signatures.rule import (
    INSPECT_BOTH,
    INSPECT_PACKET,
    INSPECT_STREAM,
    INSPECT_STREAM_ONLY,
    Signature,
)
from signatures.suricata_keywords import UNSUPPORTED_KEYWORDS
from signatures.transforms import TRANSFORM_KEYWORDS
from signatures.txvalues import TX_VALUE_KEYWORDS, VALUE_OF, compile_tx_value

# rule protocol -> (L4 protocol numbers or None for any, IP version restriction)
_PROTOCOLS: dict[str, tuple[frozenset[int] | None, int]] = {
    "ip": (None, 0),
    "pkthdr": (None, 0),
    "ipv4": (None, 4),
    "ip4": (None, 4),
    "ipv6": (None, 6),
    "ip6": (None, 6),
    "tcp": (frozenset({6}), 0),
    "tcp-pkt": (frozenset({6}), 0),
    "tcp-stream": (frozenset({6}), 0),
    "udp": (frozenset({17}), 0),
    "icmp": (frozenset({1, 58}), 0),
    "icmpv4": (frozenset({1}), 4),
    "icmpv6": (frozenset({58}), 6),
    "sctp": (frozenset({132}), 0),
}

# Application protocols a rule header may name, and the transports they run on. A rule on
# one of these only matches flows whose detected app_proto is that protocol.
_APP_PROTOCOLS: dict[str, frozenset[int]] = {
    "http": frozenset({6}), "http1": frozenset({6}), "tls": frozenset({6}),
    "ssl": frozenset({6}), "dns": frozenset({6, 17}), "ssh": frozenset({6}),
    "smtp": frozenset({6}), "ftp": frozenset({6}), "smb": frozenset({6}),
    "pop3": frozenset({6}), "imap": frozenset({6}), "snmp": frozenset({17}),
    "sip": frozenset({6, 17}), "krb5": frozenset({6, 17}), "http2": frozenset({6}),
    "dcerpc": frozenset({6, 17}), "mqtt": frozenset({6}),
    "modbus": frozenset({6}),
}  # fmt: skip
# `http1` stays its own name: in Suricata 7 `http` matches HTTP/1 and HTTP/2, `http1` only
# HTTP/1 (detect_match.header_ok)
_APP_ALIASES = {"ssl": "tls"}

_HEADER_BUFFER_PROTOS = {"ipv4.hdr": 4, "ipv6.hdr": 6}
_LEGACY_TLS = {"tls.subject": "tls.cert_subject", "tls.issuerdn": "tls.cert_issuer",
               "tls.fingerprint": "tls.cert_fingerprint"}  # fmt: skip

_META = frozenset({"msg", "sid", "rev", "gid", "classtype", "priority", "reference", "metadata",
                   "target", "prefilter", "tag", "noalert", "requires"})  # fmt: skip


@dataclass
class _Draft:
    """Mutable accumulator while one rule's options are read (never leaves this module)."""

    msg: str = ""
    sid: int | None = None
    gid: int = 1
    rev: int = 0
    classtype: str | None = None
    priority: int | None = None
    metadata: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    target: str | None = None
    checks: list[tuple[int, Callable[[Packet], bool]]] = field(default_factory=list)
    check_specs: list[tuple[str, str | None]] = field(default_factory=list)
    tx_values: list[tuple[str, str | None]] = field(default_factory=list)
    force_packet: bool = False
    flow_bits: int = 0
    bit_checks: list[BitOp] = field(default_factory=list)
    bit_actions: list[BitOp] = field(default_factory=list)
    flowint_checks: list[FlowintOp] = field(default_factory=list)
    flowint_actions: list[FlowintOp] = field(default_factory=list)
    stream_size: StreamSize | None = None
    noalert: bool = False
    threshold: Threshold | None = None
    detection_filter: Threshold | None = None
    bypass: bool = False
    filestore: bool = False


def unquote(value: str | None) -> str:
    """Resolve the escapes Suricata allows in quoted option values (\\" \\; \\\\ \\:)."""
    if value is None:
        return ""
    out, i = [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            out.append(value[i + 1])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _int(keyword: str, value: str | None, lo: int = 0, hi: int = 2**32 - 1) -> int:
    try:
        n = int((value or "").strip())
    except ValueError as exc:
        raise RuleError(f"{keyword}: '{value}' is not a number") from exc
    if not lo <= n <= hi:
        raise RuleError(f"{keyword}: {n} is out of range {lo}-{hi}")
    return n


class SignatureBuilder:
    """Builds signatures for one ruleset: holds what every rule shares."""

    def __init__(self, classifications: Classifications, supported_buffers: frozenset[str],
                 default_rule_path: str | None = None) -> None:  # fmt: skip
        self._classes = classifications
        self._supported_buffers = supported_buffers
        # dataset sets are shared by name between the rules of one build
        self.datasets = DatasetRegistry(default_rule_path)

    def build(self, parsed: object) -> Signature:
        from signatures.parser import ParsedRule

        assert isinstance(parsed, ParsedRule)
        proto = parsed.proto
        app_proto: str | None = None
        l4: frozenset[int] | None
        if proto in _APP_PROTOCOLS:
            l4, ipver = _APP_PROTOCOLS[proto], 0
            app_proto = _APP_ALIASES.get(proto, proto)
        elif proto in _PROTOCOLS:
            l4, ipver = _PROTOCOLS[proto]
        else:
            raise UnsupportedKeyword(f"protocol {proto}")
        for opt in parsed.options:  # as Suricata: requirements first, before any keyword
            if opt.name == "requires":
                check_requires(opt.value)
        draft = _Draft()
        payload = PayloadBuilder(self._supported_buffers, self.datasets, parsed.file)
        urilen: list[str | None] = []
        for opt in parsed.options:
            name, value = opt.name, opt.value
            if name in TRANSFORM_KEYWORDS:  # to_lowercase, dotprefix ... on the sticky buffer
                payload.transform(name, value, opt.quoted)
            elif name in _META:
                self._meta(draft, name, value)
            elif name in PACKET_KEYWORDS:
                parse, forces_packet = PACKET_KEYWORDS[name]
                draft.checks.append((len(draft.checks), parse(value)))
                draft.check_specs.append((name, value))
                draft.force_packet |= forces_packet
            elif name in EVENT_KEYWORDS:  # decode-event, stream-event, ... on pkt.events
                draft.checks.append((len(draft.checks), parse_event_keyword(name, value)))
                draft.check_specs.append((name, value))
            elif name in _FLOW_HANDLERS:
                _FLOW_HANDLERS[name](draft, value)
            elif name == "uricontent":  # Snort's spelling of content + http_uri
                payload.add("content", value, opt.quoted)
                payload.add("http_uri", None, False)
            elif name in _LEGACY_TLS:  # tls.subject:"x" is content "x" in tls.cert_subject
                payload.add(_LEGACY_TLS[name], None, False)
                payload.add("content", value, opt.quoted)
            elif name == "filemagic":  # Suricata 7: content "x"; nocase; in file.magic
                payload.content_in("file.magic", name, value, opt.quoted)
            elif name in TX_VALUE_KEYWORDS:
                compile_tx_value(name, value)  # validate now; detection compiles its own
                draft.tx_values.append((name, value))
            elif name in ("filestore", "tls.store"):
                # file/certificate extraction is not implemented; the rule still alerts
                draft.filestore |= name == "filestore"
            elif name in _IDS_NO_EFFECT:
                _IDS_NO_EFFECT[name](draft, value, opt.quoted)
            elif name == "urilen":
                urilen.append(value)
            elif payload.claims(name):
                payload.add(name, value, opt.quoted)
            elif name in UNSUPPORTED_KEYWORDS:
                raise UnsupportedKeyword(name)
            else:
                raise RuleError(f"unknown keyword '{name}'", category="unknown keyword")
        if draft.sid is None:
            raise RuleError("rule has no sid", category="missing sid")
        if draft.bypass and draft.filestore:
            raise RuleError("bypass can't work with filestore keyword")
        for value in urilen:  # urilen is bsize on the (normalised or raw) URI buffer
            size, _, kind = (value or "").partition(",")
            raw = kind.strip() == "raw"
            payload.add("http.uri.raw" if raw else "http.uri", None, False)
            payload.add("bsize", size.strip(), False)
        if proto != "ip" and any(n == "ip_proto" for n, _ in draft.check_specs):
            raise RuleError("ip_proto: only in an 'ip' rule")  # as Suricata's ip_proto setup
        spec = payload.finish()
        if (spec is None or spec.fast_pattern is None) and any(
            n == "flags" and flags_need_syn(v) for n, v in draft.check_specs
        ):
            # Suricata keeps such a rule (no prefilter, flags naming S) in its SYN-only store:
            # flags:*SF or *SA without content never fires on a FIN or RST packet
            draft.checks.append((len(draft.checks), PACKET_KEYWORDS["flags"][0]("+S")))
            draft.check_specs.append(("flags", "+S"))
        programs = spec.programs if spec is not None else {}
        header_buffers = tuple(b for b in programs if b.endswith(".hdr"))
        app_buffers = tuple(b for b in programs if b not in header_buffers and b != "pkt_data")
        # a value keyword (tls.version ...) makes the rule a transaction rule of its protocol
        value_names = (VALUE_OF.get(n, n) for n, _ in draft.tx_values)
        app_buffers += tuple(dict.fromkeys(n for n in value_names if n not in app_buffers))
        for b in header_buffers:
            if b in _HEADER_BUFFER_PROTOS and not ipver:
                ipver = _HEADER_BUFFER_PROTOS[b]
        for b in app_buffers:
            implied = buffer_app_proto(b)
            if implied is None:  # file buffers: any file protocol (HTTP, SMB)
                if b.startswith("file.") and app_proto == "dns":
                    raise RuleError(f"buffer {b} does not belong to protocol dns",
                                    category="mixed app protocols")  # fmt: skip
                continue
            if app_proto is None:
                app_proto = implied
                transports = _APP_PROTOCOLS[implied]
                l4 = transports if l4 is None else l4 & transports
            elif app_proto == "smb" and implied == "dcerpc":
                continue  # Suricata: an smb rule may use the DCERPC keywords (DCERPC over SMB)
            elif implied == "smb" and app_proto == "dcerpc":
                raise RuleError(f"buffer {b} can't be used in a dcerpc rule",
                                category="mixed app protocols")  # fmt: skip
            elif implied == "http" and app_proto in ("http1", "http2"):
                pass  # http.* buffers on a rule narrowed to one HTTP version
            elif {implied, app_proto} == {"http", "http2"}:
                # Suricata 7: http.* buffers work on HTTP/2 too, and an http2.* keyword in
                # an `alert http` rule narrows it to HTTP/2
                app_proto = "http2"
            elif implied != app_proto:
                raise RuleError(f"buffer {b} does not belong to protocol {app_proto}",
                                category="mixed app protocols")  # fmt: skip
        check_directions(app_buffers, bool(draft.flow_bits & flowkw.TO_SERVER),
                         bool(draft.flow_bits & flowkw.TO_CLIENT))  # fmt: skip
        if spec is not None and spec.dce_pkt and app_proto is None:
            # byte_*...,dce on the payload makes a DCERPC rule (Suricata's byte_test setup)
            app_proto = "dcerpc"
            l4 = _APP_PROTOCOLS["dcerpc"] if l4 is None else l4 & _APP_PROTOCOLS["dcerpc"]
        has_pkt_data = "pkt_data" in programs
        inspect = self._inspect_mode(proto, draft)
        if inspect == INSPECT_STREAM and (draft.stream_size is not None or spec.positional_pkt):
            inspect = INSPECT_BOTH  # Suricata's SigValidate: "also inspect packets"
        classtype = self._classes.get(draft.classtype) if draft.classtype else None
        if draft.classtype and classtype is None:
            raise RuleError(f"unknown classtype '{draft.classtype}'", category="unknown classtype")
        severity = (
            draft.priority
            if draft.priority is not None
            else (classtype.priority if classtype else 3)
        )
        ip_only = (
            not programs
            and not draft.checks
            and not draft.tx_values
            and not draft.flow_bits
            and not draft.bit_checks
            and all(b.kind == "flowbits" and b.op == "set" for b in draft.bit_actions)
            and not draft.flowint_checks
            and not draft.flowint_actions
            and draft.stream_size is None
            and parsed.sport.is_any
            and parsed.dport.is_any
            and app_proto is None
        )
        return Signature(
            sid=draft.sid, gid=draft.gid, rev=draft.rev, msg=draft.msg, action=parsed.action,
            classtype=draft.classtype, category=classtype.description if classtype else "",
            severity=severity, metadata=tuple(draft.metadata),
            references=tuple(draft.references), target=draft.target,
            proto=proto, l4=l4, ipver=ipver, app_proto=app_proto,
            src=parsed.src, sport=parsed.sport, dst=parsed.dst, dport=parsed.dport,
            bidirectional=parsed.direction == "<>",
            checks=tuple(c for _, c in draft.checks), check_specs=tuple(draft.check_specs),
            flow_bits=draft.flow_bits,
            bit_checks=tuple(draft.bit_checks), bit_actions=tuple(draft.bit_actions),
            flowint_checks=tuple(draft.flowint_checks),
            flowint_actions=tuple(draft.flowint_actions), stream_size=draft.stream_size,
            noalert=draft.noalert, payload=spec if programs else None,
            inspect=inspect if has_pkt_data else INSPECT_PACKET,
            header_buffers=header_buffers, app_buffers=app_buffers,
            tx_values=tuple(draft.tx_values), ip_only=ip_only,
            threshold=draft.threshold, detection_filter=draft.detection_filter,
            file=parsed.file, line=parsed.line, raw=parsed.raw, bypass=draft.bypass,
        )  # fmt: skip

    @staticmethod
    def _inspect_mode(proto: str, draft: _Draft) -> int:
        if proto == "tcp-stream" or draft.flow_bits & flowkw.ONLY_STREAM:
            return INSPECT_STREAM_ONLY
        if proto == "tcp-pkt" or draft.flow_bits & flowkw.NO_STREAM or draft.force_packet:
            return INSPECT_PACKET
        return INSPECT_STREAM

    def _meta(self, d: _Draft, name: str, value: str | None) -> None:
        if name == "msg":
            d.msg = unquote(value)
        elif name == "sid":
            d.sid = _int("sid", value, 1)
        elif name == "rev":
            d.rev = _int("rev", value)
        elif name == "gid":
            d.gid = _int("gid", value)
        elif name == "classtype":
            d.classtype = (value or "").strip()
        elif name == "priority":
            d.priority = _int("priority", value, 1, 255)
        elif name == "reference":
            d.references.append((value or "").strip())
        elif name == "metadata":
            d.metadata.extend(p.strip() for p in (value or "").split(",") if p.strip())
        elif name == "target":
            t = (value or "").strip()
            if t not in ("src_ip", "dest_ip"):
                raise RuleError(f"target: must be src_ip or dest_ip, not '{t}'")
            d.target = t
        elif name == "noalert":
            d.noalert = True
        # requires is checked before any keyword (signatures/requires.py).
        # prefilter and tag change nothing about what matches.


def _flow(d: _Draft, v: str | None) -> None:
    d.flow_bits |= flowkw.parse_flow(v)


def _bits(d: _Draft, op: BitOp | None) -> None:
    if op is None:
        d.noalert = True
    elif op.is_check:
        d.bit_checks.append(op)
    else:
        d.bit_actions.append(op)


def _flowint(d: _Draft, v: str | None) -> None:
    op = flowkw.parse_flowint(v)
    (d.flowint_checks if op.op in flowkw.FLOWINT_CHECKS else d.flowint_actions).append(op)


def _stream_size(d: _Draft, v: str | None) -> None:
    d.stream_size = flowkw.parse_stream_size(v)


def _threshold(d: _Draft, v: str | None) -> None:
    if d.threshold is not None:
        raise RuleError("threshold given twice")
    d.threshold = flowkw.parse_threshold(v)


def _detection_filter(d: _Draft, v: str | None) -> None:
    d.detection_filter = flowkw.parse_threshold(v, detection_filter=True)


def _replace(d: _Draft, v: str | None, quoted: bool) -> None:
    # Suricata outside NFQ/IPFW inline modes loads the rule and ignores the replacement
    # (with a warning) after checking only that it is quoted and not negated.
    text = (v or "").strip()
    if text.startswith("!"):
        raise RuleError(f"replace: can't negate replacement string: {v}")
    if not quoted:
        raise RuleError("replace: value must be double quoted")


def _bypass(d: _Draft, v: str | None, quoted: bool) -> None:
    if v:
        raise RuleError("bypass: takes no value")
    d.bypass = True


_CONFIG = re.compile(r"^\s*([A-z_]+)\s*([A-z_]+)\s*(?:,\s*([A-z_]+)\s+([A-z_]+))?"
                     r"\s*(?:,\s*([A-z_]+)\s+([A-z_]+))?$")  # fmt: skip


def _config(d: _Draft, v: str | None, quoted: bool) -> None:
    """``config:logging disable, type tx|flow, scope tx|flow``: only tunes EVE logging of
    transactions (which sekimori does not log), so it is validated and has no effect."""
    m = _CONFIG.match(v or "")
    if m is None or m.group(6) is None:
        raise RuleError(f"config: expected 'logging disable, type <t>, scope <s>', got {v!r}")
    subsys, state, type_kw, type_val, scope_kw, scope_val = m.groups()
    if subsys != "logging" or state != "disable" or type_kw != "type" or scope_kw != "scope":
        raise RuleError(f"config: only 'logging disable, type <t>, scope <s>' exists, not {v!r}")
    if type_val not in ("tx", "flow") or scope_val not in ("tx", "flow"):
        raise RuleError(f"config: type and scope are 'tx' or 'flow', not {v!r}")


# Keywords that only act inline or on logging: checked as Suricata 7 checks them in IDS mode.
_IDS_NO_EFFECT: dict[str, Callable[[_Draft, str | None, bool], None]] = {
    "replace": _replace,
    "bypass": _bypass,
    "config": _config,
}

_FLOW_HANDLERS: dict[str, Callable[[_Draft, str | None], None]] = {
    "flow": _flow,
    "flowbits": lambda d, v: _bits(d, flowkw.parse_flowbits(v)),
    "xbits": lambda d, v: _bits(d, flowkw.parse_xbits(v)),
    "hostbits": lambda d, v: _bits(d, flowkw.parse_hostbits(v)),
    "flowint": _flowint,
    "stream_size": _stream_size,
    "threshold": _threshold,
    "detection_filter": _detection_filter,
}


def packet_check(name: str, value: str | None) -> Callable[[Packet], bool]:
    """Rebuild one packet-keyword predicate from its (keyword, value) (rule cache)."""
    if name in EVENT_KEYWORDS:
        return parse_event_keyword(name, value)
    return PACKET_KEYWORDS[name][0](value)
