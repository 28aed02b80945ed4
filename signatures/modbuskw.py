"""Suricata 7's ``modbus`` keyword, matched against a request (``ModbusRequest``).

Forms (the value may be quoted):

* ``modbus: function <code>[, subfunction <n>]``: the request's function code (1-255; the
  sub-function only for Diagnostic, code 8); ``function [!]<category>`` with ``assigned``,
  ``unassigned``, ``public``, ``user``, ``reserved`` or ``all``;
* ``modbus: access read|write [discretes|coils|input|holding][, address <r>[, value <r>]]``:
  the request reads / writes (that table), touches an address in the range and, for writes,
  writes a value in the range at the rule's address;
* ``modbus: unit <r>[, <function or access form>]``: the unit identifier, then the rest.

Ranges ``<r>`` are ``N``, ``<N``, ``>N`` or ``N<>M`` and compare as Suricata 7's modbus
detection does (``check_match``: exact, below, above or strictly between; an address range
matches when it overlaps the request's addresses). Suricata's quirks are kept: ``<0`` and
``>65535`` collapse to an exact value, ``discretes``/``input`` cannot be written and
``value`` needs a single address and write access.

Non-goals: the request's response (Suricata inspects requests only).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sensor.applayer.modbus import (
    COILS,
    DISCRETES,
    HOLDING,
    INPUT,
    PUBLIC_ASSIGNED,
    PUBLIC_UNASSIGNED,
    READ,
    RESERVED,
    TABLE_MASK,
    USER_DEFINED,
    WRITE,
    ModbusRequest,
)
from sensor.errors import RuleError

_RANGE = r"([<>]?\d+)(?:<>(\d+))?"
_ACCESS_RE = re.compile(r'^\s*"?\s*access\s*(read|write)\s*(discretes|coils|input|holding)?'
                        rf"(?:,\s*address\s+{_RANGE}(?:,\s*value\s+{_RANGE})?)?"
                        r'\s*"?\s*$')  # fmt: skip
_FUNC_RE = re.compile(r'^\s*"?\s*function\s*(!?[A-Za-z0-9]+)(?:,\s*subfunction\s+(\d+))?\s*"?\s*$')
_UNIT_RE = re.compile(rf'^\s*"?\s*unit\s+{_RANGE}(?:,\s*(.*))?\s*"?\s*$')
_CATEGORIES = {"assigned": PUBLIC_ASSIGNED, "unassigned": PUBLIC_UNASSIGNED,
               "public": PUBLIC_ASSIGNED | PUBLIC_UNASSIGNED, "user": USER_DEFINED,
               "reserved": RESERVED,
               "all": PUBLIC_ASSIGNED | PUBLIC_UNASSIGNED | USER_DEFINED | RESERVED}  # fmt: skip
_TABLES = {"discretes": DISCRETES, "coils": COILS, "input": INPUT, "holding": HOLDING}
_U16_MAX = 0xFFFF

Span = tuple[int, int]  # Suricata's Range<u16> (start, end)


@dataclass(frozen=True, slots=True)
class ModbusMatch:
    category: int | None = None
    function: int | None = None
    subfunction: int | None = None
    access: int | None = None
    unit: Span | None = None
    address: Span | None = None
    value: Span | None = None


def _span(low: str, high: str | None) -> Span:
    if high is not None:
        lo, hi = int(low), int(high)
        if lo > _U16_MAX or hi > _U16_MAX:
            raise RuleError(f"modbus: {low}<>{high} out of range")
        return lo, hi
    sign = low[0] if not low[0].isdigit() else ""
    number = int(low[len(sign) :])
    if number > _U16_MAX:
        raise RuleError(f"modbus: {low} out of range")
    return {">": (number, _U16_MAX), "<": (0, number)}.get(sign, (number, number))


def _hits(sig: Span, value: int) -> bool:
    start, end = sig
    if start == end:
        return value == start
    if start == 0:
        return end > value
    if end == _U16_MAX:
        return start < value
    return start < value < end


def _overlaps(sig: Span, lo: int, hi: int) -> bool:
    start, end = sig
    if start == end:
        return lo <= start <= hi
    if start == 0:
        return end > lo
    if end == _U16_MAX:
        return start < hi
    return start < hi and lo < end


def _function(text: str) -> ModbusMatch | None:
    m = _FUNC_RE.match(text)
    if m is None:
        return None
    word = m.group(1)
    if word.isdigit():
        code = int(word)
        if not 0 < code <= 255:
            raise RuleError(f"modbus: invalid function '{word}'")
        sub = int(m.group(2)) if m.group(2) is not None else None
        if sub is not None and sub > _U16_MAX:
            raise RuleError(f"modbus: invalid subfunction '{m.group(2)}'")
        return ModbusMatch(function=code, subfunction=sub)
    negated = word.startswith("!")
    cat = _CATEGORIES.get(word.lstrip("!"))
    if cat is None or m.group(2) is not None:
        raise RuleError(f"modbus: unknown function '{word}'")
    return ModbusMatch(category=~cat & 0xF if negated else cat)


def _access(text: str) -> ModbusMatch | None:
    m = _ACCESS_RE.match(text)
    if m is None:
        return None
    access = READ if m.group(1) == "read" else WRITE
    table = m.group(2)
    if table in ("discretes", "input") and access == WRITE:
        raise RuleError(f"modbus: {table} can only be read")
    if table is not None:
        access |= _TABLES[table]
    address = _span(m.group(3), m.group(4)) if m.group(3) is not None else None
    value = None
    if m.group(5) is not None:
        assert address is not None
        if address[0] != address[1]:
            raise RuleError("modbus: value needs a single address, not a range")
        if access & READ:
            raise RuleError("modbus: value only works with write access")
        value = _span(m.group(5), m.group(6))
    return ModbusMatch(access=access, address=address, value=value)


def parse_modbus(text: str) -> ModbusMatch:
    m = _UNIT_RE.match(text)
    if m is not None:
        rest = m.group(3)
        base = ModbusMatch()
        if rest is not None:
            found = _function(rest) or _access(rest)
            if found is None:
                raise RuleError(f"modbus: invalid option '{rest}'")
            base = found
        return ModbusMatch(base.category, base.function, base.subfunction, base.access,
                           _span(m.group(1), m.group(2)), base.address, base.value)  # fmt: skip
    found = _function(text) or _access(text)
    if found is None:
        raise RuleError(f"modbus: invalid value '{text}'")
    return found


def _inspect(sig: ModbusMatch, req: ModbusRequest) -> bool:
    """Suricata 7's rs_modbus_inspect, in its order of checks."""
    if sig.unit is not None and not _hits(sig.unit, req.unit_id):
        return False
    if sig.access is not None:
        wanted = sig.access & (READ | WRITE)
        table = sig.access & TABLE_MASK
        if not req.access & wanted or (table and not req.access & table):
            return False
        if sig.address is None:
            return True
        if req.address is None or not _overlaps(sig.address, *req.address):
            return False
        if sig.value is None:
            return True
        written = req.value_at(sig.address[0])
        return written is not None and _hits(sig.value, written)
    if sig.category is not None:
        return bool(req.category & sig.category)
    if sig.function is None:
        return True
    if sig.function != req.function:
        return False
    return sig.subfunction is None or sig.subfunction == req.subfunction


def compile_modbus(text: str) -> Callable[[Any], bool]:
    """Predicate over a :class:`ModbusRequest`; RuleError when the value is invalid."""
    sig = parse_modbus(text)
    return lambda req: isinstance(req, ModbusRequest) and _inspect(sig, req)
