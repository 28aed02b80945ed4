"""Keywords about flow state: flow, flowbits, xbits, hostbits, flowint, stream_size,
threshold and detection_filter.

Scope: parse each into a small frozen record the detection engine interprets against its
per-flow / per-host state. Parsing is here; the state itself lives in sensor/detect_state.py.
Non-goals: ippair storage beyond what xbits' ``track ip_pair`` needs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sensor.errors import RuleError

# flow option bits
TO_SERVER = 1
TO_CLIENT = 2
ESTABLISHED = 4
NOT_ESTABLISHED = 8
STATELESS = 16
ONLY_STREAM = 32
NO_STREAM = 64
ONLY_FRAG = 128
NO_FRAG = 256

_FLOW_WORDS = {
    "to_server": TO_SERVER, "from_client": TO_SERVER, "to_client": TO_CLIENT,
    "from_server": TO_CLIENT, "established": ESTABLISHED, "not_established": NOT_ESTABLISHED,
    "stateless": STATELESS, "only_stream": ONLY_STREAM, "no_stream": NO_STREAM,
    "only_frag": ONLY_FRAG, "no_frag": NO_FRAG,
}  # fmt: skip


def parse_flow(value: str | None) -> int:
    if not value or not value.strip():
        raise RuleError("flow: needs at least one option")
    bits = 0
    for word in value.split(","):
        w = word.strip().lower()
        b = _FLOW_WORDS.get(w)
        if b is None:
            raise RuleError(f"flow: unknown option '{w}'")
        if bits & b:
            raise RuleError(f"flow: option '{w}' given twice")
        bits |= b
    for a, b, what in (
        (TO_SERVER, TO_CLIENT, "to_server and to_client"),
        (ESTABLISHED, NOT_ESTABLISHED, "established and not_established"),
        (ONLY_STREAM, NO_STREAM, "only_stream and no_stream"),
        (ESTABLISHED, STATELESS, "established and stateless"),
    ):
        if bits & a and bits & b:
            raise RuleError(f"flow: {what} contradict each other")
    return bits


@dataclass(frozen=True, slots=True)
class BitOp:
    """One flowbits/xbits/hostbits operation. ``names`` joined by OR for checks with ``|``."""

    kind: str  # "flowbits" | "xbits" | "hostbits"
    op: str  # set, unset, toggle, isset, isnotset
    names: tuple[str, ...]
    any_of: bool  # True for "a|b": one of them suffices
    track: str = "flow"  # flow | ip_src | ip_dst | ip_pair | src | dst | both
    expire: int = 0  # seconds a set lasts (hostbits/xbits); 0 = no expiry (flowbits)

    @property
    def is_check(self) -> bool:
        return self.op in ("isset", "isnotset")


_BIT_OPS = ("set", "unset", "toggle", "isset", "isnotset")
# Suricata 7: an xbit lasts 30 s unless the rule says ``expire <n>``; a hostbit always 300 s.
XBITS_EXPIRE = 30
HOSTBITS_EXPIRE = 300
# Suricata takes any name without spaces or the operators themselves (ET uses "a/b/c").
_NAME = re.compile(r"^[^\s|&,;]+$")


def parse_flowbits(value: str | None) -> BitOp | None:
    """Returns None for ``flowbits:noalert`` (the builder turns that into noalert)."""
    parts = [p.strip() for p in (value or "").split(",")]
    op = parts[0].lower()
    if op == "noalert" and len(parts) == 1:
        return None
    if op not in _BIT_OPS:
        raise RuleError(f"flowbits: unknown operation '{parts[0]}'")
    if len(parts) != 2 or not parts[1]:
        raise RuleError(f"flowbits:{op} needs exactly one name (or names joined by | or &)")
    return _bitop("flowbits", op, parts[1])


def _bitop(kind: str, op: str, spec: str, track: str = "flow", expire: int = 0) -> BitOp:
    any_of = "|" in spec
    if any_of and "&" in spec:
        raise RuleError(f"{kind}: cannot mix | and & in '{spec}'")
    names = tuple(n.strip() for n in re.split(r"[|&]", spec))
    for n in names:
        if not _NAME.match(n):
            raise RuleError(f"{kind}: invalid name '{n}'")
    if len(names) > 1 and op not in ("isset", "isnotset") and any_of:
        raise RuleError(f"{kind}:{op} cannot take alternatives joined by |")
    return BitOp(kind, op, names, any_of, track, expire)


def parse_xbits(value: str | None) -> BitOp:
    # xbits:<op>,<name>,track <ip_src|ip_dst|ip_pair>[,expire <n>]
    parts = [p.strip() for p in (value or "").split(",")]
    if len(parts) < 2:
        raise RuleError("xbits: expected '<op>,<name>,track <ip_src|ip_dst|ip_pair>'")
    op = parts[0].lower()
    if op not in _BIT_OPS:
        raise RuleError(f"xbits: unknown operation '{parts[0]}'")
    track, expire = "", XBITS_EXPIRE
    for extra in parts[2:]:
        words = extra.split()
        if len(words) == 2 and words[0] == "track" and words[1] in ("ip_src", "ip_dst", "ip_pair"):
            track = words[1]
        elif len(words) == 2 and words[0] == "expire" and words[1].isdigit() and int(words[1]):
            expire = int(words[1])
        else:
            raise RuleError(f"xbits: unexpected '{extra}'")
    if not track:
        raise RuleError("xbits: 'track ip_src|ip_dst|ip_pair' is required")
    return _bitop("xbits", op, parts[1], track, expire)


def parse_hostbits(value: str | None) -> BitOp | None:
    # hostbits:<op>,<name>[,<src|dst|both>]   or hostbits:noalert
    parts = [p.strip() for p in (value or "").split(",")]
    op = parts[0].lower()
    if op == "noalert" and len(parts) == 1:
        return None
    if op not in _BIT_OPS or len(parts) < 2:
        raise RuleError(f"hostbits: invalid value '{value}'")
    track = "src"
    if len(parts) >= 3:
        track = parts[2].lower()
        if track not in ("src", "dst", "both"):
            raise RuleError(f"hostbits: direction must be src, dst or both, not '{parts[2]}'")
    return _bitop("hostbits", op, parts[1], track, HOSTBITS_EXPIRE)


@dataclass(frozen=True, slots=True)
class FlowintOp:
    name: str
    op: str  # "=", "+", "-", "==", "!=", "<", ">", "<=", ">=", "isset", "notset"
    value: int | str | None  # int constant or another flowint's name


_FLOWINT_MODIFY = ("=", "+", "-")
_FLOWINT_COMPARE = ("==", "!=", "<", ">", "<=", ">=")


def parse_flowint(value: str | None) -> FlowintOp:
    parts = [p.strip() for p in (value or "").split(",")]
    if len(parts) == 2 and parts[1] in ("isset", "notset", "isnotset"):
        return FlowintOp(parts[0], "notset" if parts[1] != "isset" else "isset", None)
    if len(parts) != 3 or parts[1] not in _FLOWINT_MODIFY + _FLOWINT_COMPARE:
        raise RuleError(f"flowint: expected '<name>,<op>,<value>', got '{value}'")
    name, op, raw = parts
    val: int | str = int(raw) if raw.isdigit() else raw
    return FlowintOp(name, op, val)


FLOWINT_CHECKS = frozenset((*_FLOWINT_COMPARE, "isset", "notset"))


@dataclass(frozen=True, slots=True)
class StreamSize:
    side: str  # server | client | both | either
    op: str
    value: int


def parse_stream_size(value: str | None) -> StreamSize:
    parts = [p.strip() for p in (value or "").split(",")]
    if len(parts) != 3 or parts[0] not in ("server", "client", "both", "either"):
        raise RuleError(
            f"stream_size: expected '<server|client|both|either>,<op>,<n>', got '{value}'"
        )
    if parts[1] not in (">", "<", "=", "!=", ">=", "<="):
        raise RuleError(f"stream_size: unknown operator '{parts[1]}'")
    if not parts[2].isdigit():
        raise RuleError(f"stream_size: '{parts[2]}' is not a number")
    return StreamSize(parts[0], parts[1], int(parts[2]))


@dataclass(frozen=True, slots=True)
class Threshold:
    kind: str  # limit | threshold | both | detection_filter
    track: str  # by_src | by_dst | by_rule | by_both | by_flow
    count: int
    seconds: int


def parse_threshold(value: str | None, detection_filter: bool = False) -> Threshold:
    keyword = "detection_filter" if detection_filter else "threshold"
    fields: dict[str, str] = {}
    for part in (value or "").split(","):
        words = part.split()
        if len(words) != 2:
            raise RuleError(f"{keyword}: cannot read '{part.strip()}'")
        fields[words[0].lower()] = words[1]
    kind = "detection_filter" if detection_filter else fields.get("type", "")
    if kind not in ("limit", "threshold", "both", "detection_filter"):
        raise RuleError(f"{keyword}: type must be limit, threshold or both")
    track = fields.get("track", "")
    if detection_filter and track not in ("by_src", "by_dst"):
        # Suricata 7's detection_filter parser knows only these two
        raise RuleError("detection_filter: track must be by_src or by_dst")
    if track not in ("by_src", "by_dst", "by_rule", "by_both", "by_flow"):
        raise RuleError(f"{keyword}: track must be by_src, by_dst, by_rule, by_both or by_flow")
    try:
        count, seconds = int(fields["count"]), int(fields["seconds"])
    except (KeyError, ValueError) as exc:
        raise RuleError(f"{keyword}: needs numeric 'count' and 'seconds'") from exc
    if count < 1 and kind != "detection_filter":
        raise RuleError(f"{keyword}: count must be at least 1")
    return Threshold(kind, track, count, seconds)
