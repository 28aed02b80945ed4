"""pcre captures into flow and packet variables, and the ``flowvar``/``pktvar`` keywords.

Scope, as Suricata 7's ``detect-pcre.c``/``detect-flowvar.c``/``detect-pktvar.c``:

* Capture names after the expression: ``pcre:"/(\\w+) (\\w+)/, flow:first, pkt:second"``
  (``flow:``/``pkt:`` names, separated by commas or spaces; ``pkt:key, pkt:value`` stores a
  packet variable named by the first capture with the second as value).
* Named groups ``(?P<flow_name>...)`` and ``(?P<pkt_name>...)``; other prefixes are plain
  groups.
* As in Suricata the n-th capture name receives the n-th capturing group, whatever group
  carries the name; more names than groups is a rule error. A group that did not take part
  stores nothing; values are cut at 65,535 bytes.
* Values are stored only when the whole rule matches (after thresholds), flow variables on
  the flow (a later packet of the flow sees them), packet variables on the packet (later
  rules on the same packet see them).
* ``flowvar:name,"content"`` / ``pktvar:name,"content"`` match when the variable exists and
  contains the content (content syntax: ``|hex|`` and escapes).

Non-goals: logging variables in EVE (``metadata.flowvars``/``pktvars``), ``flowvar``
assignment forms of Suricata 8, variable expiry.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sensor.errors import RuleError
from sensor.packet import Packet
from signatures.content import parse_pattern

# One capture target: ("flow" | "pkt" | "pkt_kv", name); "pkt_kv" takes two groups.
Capture = tuple[str, str]
MAX_VALUE = 0xFFFF
_NAMED = re.compile(rb"\(\?P<([A-Za-z\[\]^_`\\]+?)_([A-Za-z0-9_\[\]^`\\]+?)>")


def cut_capture_names(value: str) -> tuple[str, str]:
    """Split ``/re/flags, flow:a, pkt:b`` into the pcre text and the capture-name list.

    Suricata cuts at the first ``flow:`` or ``pkt:`` when a comma or space precedes it;
    without a separator the text is part of the expression.
    """
    spots = [i for i in (value.find("flow:"), value.find("pkt:")) if i > 1]
    if not spots:
        return value, ""
    cut = min(spots)
    end = cut
    while end > 0 and value[end - 1] in ", ":
        end -= 1
    if end == cut:
        return value, ""
    names = value[cut:].strip()
    if names.endswith('"'):
        names = names[:-1]
    text = value[:end]
    if text.lstrip("!").lstrip().startswith('"') and not text.endswith('"'):
        text += '"'  # the closing quote went with the names
    return text, names


def parse_captures(names: str, expression: bytes, groups: int) -> tuple[Capture, ...]:
    """Capture targets in group order: the listed names first, then the named groups."""
    out: list[Capture] = []
    kv = False
    for name in (n for n in re.split(r"[ ,]+", names) if n):
        if name == "pkt:key":
            out.append(("pkt_kv", ""))
            kv = True
        elif name == "pkt:value":
            if not kv:
                raise RuleError("pcre: 'pkt:value' without a preceding 'pkt:key'")
            kv = False
        elif kv:
            raise RuleError("pcre: 'pkt:key' must be followed by 'pkt:value'")
        elif name.startswith("flow:") and len(name) > 5:
            out.append(("flow", name[5:]))
        elif name.startswith("pkt:") and len(name) > 4:
            out.append(("pkt", name[4:]))
        else:
            raise RuleError(f"pcre: capture name '{name}' must start with 'pkt:' or 'flow:'")
    for m in _NAMED.finditer(expression):
        kind = m.group(1).decode()
        if kind in ("flow", "pkt"):
            out.append((kind, m.group(2).decode()))
    used = len(out) + sum(1 for kind, _ in out if kind == "pkt_kv")
    if used > groups:
        raise RuleError("pcre: more pkt/flow variable names than capturing groups")
    return tuple(out)


def record(captures: tuple[Capture, ...], m: re.Match[bytes], store: dict[Capture, bytes]) -> None:
    """Keep the values of one successful match (a later match of the rule replaces them)."""
    for i, (kind, name) in enumerate(captures, 1):
        value = m.group(i)
        if value is None:
            continue
        if kind == "pkt_kv":
            second = m.group(i + 1) if i + 1 <= (m.re.groups or 0) else None
            if second is None:
                continue
            store[("pkt", bytes(value[:255]).decode("latin-1"))] = bytes(second[:MAX_VALUE])
        else:
            store[(kind, name)] = bytes(value[:MAX_VALUE])


def apply(store: dict[Capture, bytes], p: Packet, flow_vars: dict[str, bytes] | None) -> None:
    """Post-match: move a matched rule's captured values into the flow and the packet."""
    for (kind, name), value in store.items():
        if kind == "flow":
            if flow_vars is not None:
                flow_vars[name] = value
        else:
            if p.pktvars is None:
                p.pktvars = {}
            p.pktvars[name] = value


def _parse_var_value(keyword: str, value: str | None) -> tuple[str, bytes]:
    name, sep, content = (value or "").rpartition(",")
    name = name.strip()
    content = content.strip()
    if not sep or not name or not content:
        raise RuleError(f'{keyword}: expected <name>,"<content>", got {value!r}')
    if len(content) >= 2 and content[0] == '"' and content[-1] == '"':
        content = content[1:-1]
    return name, parse_pattern(content, True, keyword)[0]


def _flow_vars(p: Packet) -> Any:
    flow = p.flow
    state = flow.detect if flow is not None else None
    return state.vars if state is not None else None


def flowvar(value: str | None) -> Callable[[Packet], bool]:
    name, needle = _parse_var_value("flowvar", value)

    def check(p: Packet) -> bool:
        have = _flow_vars(p)
        stored = have.get(name) if have else None
        return stored is not None and needle in stored

    return check


def pktvar(value: str | None) -> Callable[[Packet], bool]:
    name, needle = _parse_var_value("pktvar", value)

    def check(p: Packet) -> bool:
        have = p.pktvars
        stored = have.get(name) if have else None
        return stored is not None and needle in stored

    return check
