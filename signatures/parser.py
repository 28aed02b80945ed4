"""One rule's text -> :class:`ParsedRule`: header fields compiled, options split.

Scope: the structure of a Suricata 7 / Snort rule::

    action proto src sport direction dst dport (name:value; name; ...)

* action: alert, pass, drop, reject, rejectsrc, rejectdst, rejectboth (case-insensitive,
  stored lower-case).
* proto: any token of letters/digits/``-``/``_``/``.``, stored lower-case (``tcp``,
  ``tcp-pkt``, ``http``, ``dns``...); which ones are supported is the builder's decision.
* addresses/ports: see :mod:`signatures.addresses`; whitespace is allowed inside ``[...]``.
* direction: ``->`` or ``<>``. ``=>`` (Suricata 8 transactional rules) and ``<-`` are
  rejected with a reason.
* options: split, exactly as Suricata does, on every ``;`` not immediately preceded by a
  backslash; quotes play no part in splitting (so ``content:"a;b"`` must be written
  ``content:"a|3b|b"`` or ``content:"a\\;b"``, as in Suricata). Every option, including
  the last, must end with ``;`` (Suricata rejects a rule without it: "no terminating ';'
  found"). ``name`` is stripped and lower-cased and must look like a keyword
  (``[a-z0-9_][a-z0-9_.-]*``); ``value`` is the text after the first ``:``, stripped.
  When the value starts and ends with a double quote (the last one not escaped), that one
  pair is removed and ``quoted`` is True -- whatever the keyword; quotes inside need not be
  escaped (``pcre:"/^["']?x/";`` is valid ET Open) and all escapes (``\\"``, ``\\;``,
  ``\\\\``) are kept verbatim for the keyword parsers. Anything else (``content:!"abc"``,
  ``pcre:/x/i``, ``flow:established,to_server``) is kept verbatim with ``quoted`` False.
  An option without ``:`` (``nocase;``) has value None; ``name:;`` has value ``""``.
* sid (required, positive integer, once), gid (default 1) and rev (default 0) are read
  here because rule identity (duplicate detection) is part of loading.

Compatibility: every ET Open rule that Suricata 7 loads also parses here (checked by
tests/test_parser_etopen.py).

Non-goals: keyword semantics (content modifiers, pcre flags, flow, ...), which belong
to the builder and :mod:`signatures.payload`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sensor.errors import RuleError
from signatures.addresses import AddressSet, PortSet, parse_addresses, parse_ports
from signatures.variables import Variables

ACTIONS = frozenset({"alert", "pass", "drop", "reject", "rejectsrc", "rejectdst", "rejectboth"})

# One option up to and including its ';'. As in Suricata, a ';' preceded by a backslash
# is part of the value and quotes play no part in splitting. Possessive quantifiers keep
# a bad rule from backtracking.
_OPTION = re.compile(r"\s*([^:;\s]*)\s*(?::((?:[^;\\]++|\\++;?)*+))?;", re.DOTALL)
_OPTION_NAME = re.compile(r"[a-z0-9_][a-z0-9_.\-]*\Z")
_PROTO = re.compile(r"[a-z0-9_][a-z0-9_.\-]*\Z")
_INT = re.compile(r"\d{1,10}\Z")
_HEADER_FIELDS = "action proto src sport direction dst dport"


@dataclass(frozen=True, slots=True)
class RuleOption:
    """One ``name[:value];`` of the option section; see the module docstring for quoting."""

    name: str
    value: str | None
    quoted: bool


@dataclass(frozen=True, slots=True)
class ParsedRule:
    """A rule whose header is compiled and whose options are split but not interpreted."""

    action: str
    proto: str
    src: AddressSet
    src_text: str
    sport: PortSet
    sport_text: str
    direction: str
    dst: AddressSet
    dst_text: str
    dport: PortSet
    dport_text: str
    options: tuple[RuleOption, ...]
    raw: str
    file: str
    line: int
    enabled: bool
    sid: int = 0
    gid: int = 1
    rev: int = 0

    def option(self, name: str) -> RuleOption | None:
        """The first option called ``name`` (lower-case), or None."""
        for opt in self.options:
            if opt.name == name:
                return opt
        return None


def _split_header(header: str) -> list[str]:
    """Whitespace-separated fields, keeping ``[...]`` lists (which may contain spaces) whole."""
    if "[" not in header:
        return header.split()
    fields: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in header:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch.isspace() and depth <= 0:
            if current:
                fields.append("".join(current))
                current = []
        else:
            current.append(ch)
    if current:
        fields.append("".join(current))
    return fields


def split_options(body: str) -> tuple[RuleOption, ...]:
    """Split the text between the rule's parentheses into options."""
    options: list[RuleOption] = []
    pos = 0
    end = len(body)
    match = _OPTION.match
    while pos < end:
        m = match(body, pos)
        if m is None:
            rest = body[pos:].strip()
            if not rest:
                break
            raise RuleError(_why_unsplittable(rest), category="invalid options")
        pos = m.end()
        name = m.group(1).lower()
        value = m.group(2)
        if not _OPTION_NAME.match(name):
            if not name:
                raise RuleError("empty option (a stray ';' or ':')", category="invalid options")
            raise RuleError(f"invalid option name '{m.group(1)}'", category="invalid options")
        if value is None:
            options.append(RuleOption(name, None, False))
            continue
        value = value.strip()
        inner = _unquote(value)
        if inner is not None:
            options.append(RuleOption(name, inner, True))
        else:
            options.append(RuleOption(name, value, False))
    return tuple(options)


def _why_unsplittable(rest: str) -> str:
    """Explain why the remaining option text does not form ``name[:value];``."""
    name = re.split(r"[:;\s]", rest, maxsplit=1)[0] or rest[:20]
    return f"option '{name}' is not terminated by ';'"


def _unquote(value: str) -> str | None:
    """The inside of ``"..."`` when the value is quoted as a whole, else None.

    Like Suricata, only the first and last characters decide: quotes inside are not
    required to be escaped (ET Open has ``pcre:"/^["']?post/Ri";``). A final quote that
    is escaped (``"abc\\"``) does not close the string.
    """
    if len(value) < 2 or value[0] != '"' or value[-1] != '"':
        return None
    backslashes = len(value) - 1 - len(value[:-1].rstrip("\\"))
    if backslashes % 2:
        return None
    return value[1:-1]


def _header_error(reason: str) -> RuleError:
    return RuleError(reason, category="invalid header")


def _identity(options: tuple[RuleOption, ...]) -> tuple[int, int, int]:
    """(sid, gid, rev) from the options; sid is required."""
    found: dict[str, int] = {}
    for opt in options:
        if opt.name not in ("sid", "gid", "rev"):
            continue
        if opt.name in found:
            raise RuleError(f"option '{opt.name}' given more than once", category="invalid options")
        text = (opt.value or "").strip()
        if not _INT.match(text) or int(text) > 0xFFFFFFFF:
            raise RuleError(
                f"{opt.name} must be an unsigned 32-bit integer, got '{opt.value}'",
                category="invalid options",
            )
        found[opt.name] = int(text)
    sid = found.get("sid")
    if sid is None:
        raise RuleError("rule has no sid", category="invalid options")
    if sid == 0:
        raise RuleError("sid must not be 0", category="invalid options")
    return sid, found.get("gid", 1), found.get("rev", 0)


def _field_error(kind: str, exc: RuleError) -> RuleError:
    if exc.reason.startswith("unknown variable"):
        category = "unknown variable"
    else:
        category = f"invalid {kind.split()[-1]}"
    return RuleError(f"{kind}: {exc.reason}", category=category)


def _addresses(kind: str, text: str, variables: Variables) -> AddressSet:
    try:
        return parse_addresses(text, variables)
    except RuleError as exc:
        raise _field_error(kind, exc) from None


def _ports(kind: str, text: str, variables: Variables) -> PortSet:
    try:
        return parse_ports(text, variables)
    except RuleError as exc:
        raise _field_error(kind, exc) from None


def parse_rule(
    text: str, variables: Variables, file: str = "<string>", line: int = 1, enabled: bool = True
) -> ParsedRule:
    """Parse one rule (continuation lines already joined). Raises RuleError with a reason."""
    raw = text.strip()
    if not raw:
        raise _header_error("empty rule")
    open_at = raw.find("(")
    if open_at < 0:
        raise _header_error("rule has no option section '( ... )'")
    if not raw.endswith(")"):
        raise _header_error("rule does not end with ')'")
    fields = _split_header(raw[:open_at])
    if len(fields) != 7:
        raise _header_error(
            f"rule header needs 7 fields ({_HEADER_FIELDS}), got {len(fields)}: "
            f"'{raw[:open_at].strip()}'"
        )
    action_text, proto_text, src_text, sport_text, direction, dst_text, dport_text = fields
    action = action_text.lower()
    if action not in ACTIONS:
        raise _header_error(f"unknown action '{action_text}'")
    proto = proto_text.lower()
    if not _PROTO.match(proto):
        raise _header_error(f"invalid protocol '{proto_text}'")
    if direction not in ("->", "<>"):
        if direction == "=>":
            raise _header_error(
                "transactional direction '=>' is a Suricata 8 feature; use '->' or '<>'"
            )
        if direction == "<-":
            raise _header_error(
                "direction '<-' is not valid; swap source and destination and use '->'"
            )
        raise _header_error(f"invalid direction '{direction}' (expected '->' or '<>')")
    src = _addresses("source address", src_text, variables)
    sport = _ports("source port", sport_text, variables)
    dst = _addresses("destination address", dst_text, variables)
    dport = _ports("destination port", dport_text, variables)
    options = split_options(raw[open_at + 1 : -1])
    sid, gid, rev = _identity(options)
    return ParsedRule(
        action,
        proto,
        src,
        src_text,
        sport,
        sport_text,
        direction,
        dst,
        dst_text,
        dport,
        dport_text,
        options,
        raw,
        file,
        line,
        enabled,
        sid,
        gid,
        rev,
    )
