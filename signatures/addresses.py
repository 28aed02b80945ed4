"""Address and port expressions of a rule header, compiled to sorted interval lists.

Scope: the grammar of the source/destination address and port fields (and of the
address/port variables they reference), with Suricata 7's semantics:

* addresses: ``any``, IPv4/IPv6 host, CIDR, IPv4 netmask form ``1.2.3.0/255.255.255.0``,
  ranges ``1.1.1.1-1.1.1.9`` / ``2001::1-2001::9``; ports: ``any``, ``80``, ``1:100``,
  ``1024:``, ``:1023``;
* ``$VAR`` (resolved recursively, cycles rejected), lists ``[a,b]`` (nestable), negation
  ``!x`` / ``![...]`` / ``!$VAR``.
* A list is evaluated like Suricata: its non-negated elements (flattening nested
  non-negated lists and variables) form the positive set, its negated elements the negative
  set, and the result is positives minus negatives. A negated element is itself evaluated
  as a complete expression first (so ``![1.2.3.0/24,!1.2.3.4]`` negates ``1.2.3.0/24``
  without ``1.2.3.4``). When a list has negatives but no positives *in an address family*,
  the positives of that family are the whole family: ``!1.2.3.4`` therefore means "every
  IPv4 address except 1.2.3.4" and contains **no IPv6 address** (Suricata does the same;
  it is why ``!$HOME_NET`` with an IPv4-only HOME_NET never matches IPv6 traffic).
* An expression whose negatives cover the whole IPv4 space (``!any``) or that leaves
  nothing is an error, as in Suricata.

Non-goals: interface/config parsing; deciding what a rule does with the sets. Compiled
sets are cached per :class:`~signatures.variables.Variables` object by expression text.
"""

from __future__ import annotations

import socket
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field

from sensor.errors import ConfigError, RuleError
from signatures.variables import Variables

_V4_MAX = (1 << 32) - 1
_V6_MAX = (1 << 128) - 1
_PORT_MAX = 65535
_MAX_DEPTH = 64  # nesting of lists/variables; deeper is a mistake, not a real rule

Intervals = list[tuple[int, int]]


def _normalize(intervals: Intervals) -> Intervals:
    """Sort and merge overlapping or adjacent intervals."""
    merged: Intervals = []
    for lo, hi in sorted(intervals):
        if merged and lo <= merged[-1][1] + 1:
            if hi > merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return merged


def _subtract(keep: Intervals, remove: Intervals) -> Intervals:
    """``keep`` minus ``remove``; both normalized."""
    result: Intervals = []
    for lo, hi in keep:
        for rlo, rhi in remove:
            if rhi < lo or rlo > hi:
                continue
            if rlo > lo:
                result.append((lo, rlo - 1))
            lo = rhi + 1
            if lo > hi:
                break
        if lo <= hi:
            result.append((lo, hi))
    return result


def _starts_ends(intervals: tuple[tuple[int, int], ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    return tuple(lo for lo, _ in intervals), tuple(hi for _, hi in intervals)


def _in(starts: tuple[int, ...], ends: tuple[int, ...], value: int) -> bool:
    i = bisect_right(starts, value) - 1
    return i >= 0 and value <= ends[i]


@dataclass(frozen=True, slots=True)
class AddressSet:
    """A compiled address expression: disjoint sorted intervals per IP version."""

    is_any: bool
    v4: tuple[tuple[int, int], ...]
    v6: tuple[tuple[int, int], ...]
    _v4_starts: tuple[int, ...] = field(repr=False, compare=False, default=())
    _v4_ends: tuple[int, ...] = field(repr=False, compare=False, default=())
    _v6_starts: tuple[int, ...] = field(repr=False, compare=False, default=())
    _v6_ends: tuple[int, ...] = field(repr=False, compare=False, default=())

    @classmethod
    def from_intervals(cls, v4: Intervals, v6: Intervals) -> AddressSet:
        t4, t6 = tuple(_normalize(v4)), tuple(_normalize(v6))
        is_any = t4 == ((0, _V4_MAX),) and t6 == ((0, _V6_MAX),)
        return cls(is_any, t4, t6, *_starts_ends(t4), *_starts_ends(t6))

    def contains(self, ipver: int, addr: int) -> bool:
        if self.is_any:
            return True
        if ipver == 4:
            return _in(self._v4_starts, self._v4_ends, addr)
        if ipver == 6:
            return _in(self._v6_starts, self._v6_ends, addr)
        return False


@dataclass(frozen=True, slots=True)
class PortSet:
    """A compiled port expression: disjoint sorted port intervals."""

    is_any: bool
    ranges: tuple[tuple[int, int], ...]
    _starts: tuple[int, ...] = field(repr=False, compare=False, default=())
    _ends: tuple[int, ...] = field(repr=False, compare=False, default=())

    @classmethod
    def from_intervals(cls, ranges: Intervals) -> PortSet:
        t = tuple(_normalize(ranges))
        return cls(t == ((0, _PORT_MAX),), t, *_starts_ends(t))

    def contains(self, port: int) -> bool:
        return self.is_any or _in(self._starts, self._ends, port)


def _split_list(text: str, expr: str) -> list[str]:
    """Split ``text`` on commas outside brackets, checking that brackets balance."""
    parts: list[str] = []
    depth = 0
    start = 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise RuleError(f"unbalanced brackets in '{expr}': unexpected ']'")
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth > 0:
        raise RuleError(f"unbalanced brackets in '{expr}': missing ']'")
    parts.append(text[start:])
    return parts


class _Evaluator:
    """One evaluation of one expression (addresses or ports); see the module docstring."""

    def __init__(self, kind: str, expr: str, groups: Mapping[str, str], other: Mapping[str, str]):
        self.kind = kind  # "address" or "port"
        self.expr = expr
        self.groups = groups
        self.other_groups = other  # the other kind's variables, for a helpful error
        self.maxima = (_V4_MAX, _V6_MAX) if kind == "address" else (_PORT_MAX,)

    def _where(self, part: str) -> str:
        return f"'{part}'" if part == self.expr else f"'{part}' in '{self.expr}'"

    def evaluate(self) -> list[Intervals]:
        if not self.expr.strip():
            raise RuleError(f"empty {self.kind} expression")
        pos: list[Intervals] = [[] for _ in self.maxima]
        neg: list[Intervals] = [[] for _ in self.maxima]
        self._list(self.expr, pos, neg, 0, ())
        return self._merge(pos, neg)

    def _list(
        self,
        text: str,
        pos: list[Intervals],
        neg: list[Intervals],
        depth: int,
        stack: tuple[str, ...],
    ) -> None:
        if depth > _MAX_DEPTH:
            raise RuleError(f"{self.kind} expression '{self.expr}' is nested too deeply")
        for element in _split_list(text, self.expr):
            self._element(element.strip(), pos, neg, depth, stack)

    def _element(
        self,
        el: str,
        pos: list[Intervals],
        neg: list[Intervals],
        depth: int,
        stack: tuple[str, ...],
    ) -> None:
        if not el:
            raise RuleError(f"empty element in {self.kind} list '{self.expr}'")
        negated = False
        while el.startswith("!"):
            negated = not negated
            el = el[1:].lstrip()
        if not el:
            raise RuleError(f"'!' with nothing after it in '{self.expr}'")
        if not negated:
            self._positive(el, pos, neg, depth, stack)
            return
        sub_pos: list[Intervals] = [[] for _ in self.maxima]
        sub_neg: list[Intervals] = [[] for _ in self.maxima]
        self._positive(el, sub_pos, sub_neg, depth, stack)
        for family, intervals in enumerate(self._merge(sub_pos, sub_neg)):
            neg[family].extend(intervals)

    def _positive(
        self,
        el: str,
        pos: list[Intervals],
        neg: list[Intervals],
        depth: int,
        stack: tuple[str, ...],
    ) -> None:
        if el[0] == "[":
            if el[-1] != "]":
                raise RuleError(f"unexpected text after ']' in {self._where(el)}")
            self._list(el[1:-1], pos, neg, depth + 1, stack)
        elif el[0] == "$":
            name = el[1:]
            if name in stack:
                chain = " -> ".join(f"${n}" for n in (*stack, name))
                raise RuleError(f"variable cycle: {chain}")
            value = self.groups.get(name)
            if value is None:
                hint = ""
                if name in self.other_groups:
                    other = "a port" if self.kind == "address" else "an address"
                    hint = f" (it is {other} variable, used here as {self.kind})"
                raise RuleError(f"unknown variable ${name}{hint}")
            self._list(value, pos, neg, depth + 1, (*stack, name))
        elif el.lower() == "any":
            for family, top in enumerate(self.maxima):
                pos[family].append((0, top))
        elif self.kind == "address":
            family, lo, hi = self._address(el)
            pos[family].append((lo, hi))
        else:
            pos[0].append(self._port_range(el))

    def _merge(self, pos: list[Intervals], neg: list[Intervals]) -> list[Intervals]:
        """Positives minus negatives, per family; empty positives mean 'the whole family'."""
        negs = [_normalize(n) for n in neg]
        # Like Suricata, only the first family (IPv4 / ports) is checked for total negation.
        if negs[0] == [(0, self.maxima[0])]:
            space = "IP" if self.kind == "address" else "port"
            raise RuleError(
                f"{self.kind} expression '{self.expr}' negates the complete {space} space"
            )
        result: list[Intervals] = []
        for family, top in enumerate(self.maxima):
            positives = (
                _normalize(pos[family]) if pos[family] else ([(0, top)] if negs[family] else [])
            )
            result.append(_subtract(positives, negs[family]))
        if not any(result):
            what = "addresses" if self.kind == "address" else "ports"
            raise RuleError(f"{self.kind} expression '{self.expr}' leaves no {what} after negation")
        return result

    def _address(self, text: str) -> tuple[int, int, int]:
        """One address atom -> (family index, first, last)."""
        v6 = ":" in text
        family, top, width = (1, _V6_MAX, 128) if v6 else (0, _V4_MAX, 32)
        if "/" in text:
            ip_text, mask_text = text.split("/", 1)
            base = self._ip(ip_text, v6, text)
            if not v6 and "." in mask_text:
                mask = self._ip(mask_text, False, text)  # Suricata accepts any mask value here
            elif mask_text.isascii() and mask_text.isdigit() and int(mask_text) <= width:
                mask = (top << (width - int(mask_text))) & top
            else:
                raise RuleError(f"invalid CIDR prefix length '/{mask_text}' in {self._where(text)}")
            lo = base & mask
            return family, lo, lo | (top ^ mask)
        if "-" in text:
            first_text, last_text = text.split("-", 1)
            lo, hi = self._ip(first_text, v6, text), self._ip(last_text, v6, text)
            if lo > hi:
                raise RuleError(f"address range {self._where(text)} has its start after its end")
            return family, lo, hi
        value = self._ip(text, v6, text)
        return family, value, value

    def _ip(self, text: str, v6: bool, atom: str) -> int:
        try:
            packed = socket.inet_pton(socket.AF_INET6 if v6 else socket.AF_INET, text.strip())
        except (OSError, ValueError):
            version = "IPv6" if v6 else "IPv4"
            raise RuleError(
                f"invalid {version} address '{text.strip()}' in {self._where(atom)}"
            ) from None
        return int.from_bytes(packed, "big")

    def _port_range(self, text: str) -> tuple[int, int]:
        if ":" not in text:
            port = self._port(text, text)
            return port, port
        first, last = text.split(":", 1)
        if "!" in last:
            raise RuleError(f"negated value inside a port range in {self._where(text)}")
        if not first.strip() and not last.strip():
            raise RuleError(f"invalid port range {self._where(text)}")
        lo = self._port(first, text) if first.strip() else 0
        hi = self._port(last, text) if last.strip() else _PORT_MAX
        if lo > hi:
            raise RuleError(f"port range {self._where(text)} has its start after its end")
        return lo, hi

    def _port(self, text: str, atom: str) -> int:
        text = text.strip()
        if not (text.isascii() and text.isdigit()):
            raise RuleError(f"invalid port '{text}' in {self._where(atom)}")
        port = int(text)
        if port > _PORT_MAX:
            raise RuleError(f"port {port} out of range 0-65535 in {self._where(atom)}")
        return port


def parse_addresses(expr: str, variables: Variables) -> AddressSet:
    """Compile an address expression (a header field or a variable's value)."""
    key = ("address", expr)
    cached = variables._compiled.get(key)
    if cached is None:
        v4, v6 = _Evaluator(
            "address", expr.strip(), variables.address_groups, variables.port_groups
        ).evaluate()
        cached = variables._compiled[key] = AddressSet.from_intervals(v4, v6)
    return cached


def parse_ports(expr: str, variables: Variables) -> PortSet:
    """Compile a port expression (a header field or a variable's value)."""
    key = ("port", expr)
    cached = variables._compiled.get(key)
    if cached is None:
        (ranges,) = _Evaluator(
            "port", expr.strip(), variables.port_groups, variables.address_groups
        ).evaluate()
        cached = variables._compiled[key] = PortSet.from_intervals(ranges)
    return cached


def check_variables(variables: Variables) -> None:
    """Compile every variable once, as Suricata does at startup; ConfigError lists the bad ones."""
    problems: list[str] = []
    for name in variables.address_groups:
        try:
            parse_addresses(f"${name}", variables)
        except RuleError as exc:
            problems.append(f"address variable {name}: {exc.reason}")
    for name in variables.port_groups:
        try:
            parse_ports(f"${name}", variables)
        except RuleError as exc:
            problems.append(f"port variable {name}: {exc.reason}")
    if problems:
        raise ConfigError("invalid rule variables: " + "; ".join(problems))
