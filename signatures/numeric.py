"""Suricata's unsigned-integer comparison syntax, shared by dsize, ttl, itype, icode, tcp.mss...

Scope: parse ``N``, ``=N``, ``!N``, ``!=N``, ``<N``, ``<=N``, ``>N``, ``>=N``, ``A<>B`` and ``A-B``
(both exclusive ranges, as Suricata's ``DetectUintParse``) into a predicate on ints.
Non-goals: bitmask forms (``&``) used by a few app-layer keywords.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from sensor.errors import RuleError

_RANGE = re.compile(r"^\s*(\d+)\s*(?:<>|-)\s*(\d+)\s*$")
_OP = re.compile(r"^\s*(<=|>=|<|>|!=|=|!)?\s*(\d+)\s*$")


@dataclass(frozen=True, slots=True)
class UintMatch:
    """A compiled comparison; ``test(value)`` is the hot-path predicate."""

    text: str
    test: Callable[[int], bool]


def parse_uint(keyword: str, text: str | None, max_value: int) -> UintMatch:
    if text is None or not text.strip():
        raise RuleError(f"{keyword}: needs a value")
    m = _RANGE.match(text)
    if m:
        lo, hi = int(m.group(1)), int(m.group(2))
        if lo >= hi:
            raise RuleError(f"{keyword}: range '{text}' is empty (the bounds are exclusive)")
        _check(keyword, hi, max_value)
        return UintMatch(text, lambda v: lo < v < hi)
    m = _OP.match(text)
    if not m:
        raise RuleError(f"{keyword}: invalid value '{text}'")
    op, n = m.group(1) or "=", int(m.group(2))
    op = "!" if op == "!=" else op  # Suricata 7 reads both spellings as "not equal"
    _check(keyword, n, max_value)
    tests: dict[str, Callable[[int], bool]] = {
        "=": lambda v: v == n,
        "!": lambda v: v != n,
        "<": lambda v: v < n,
        "<=": lambda v: v <= n,
        ">": lambda v: v > n,
        ">=": lambda v: v >= n,
    }
    return UintMatch(text, tests[op])


def _check(keyword: str, n: int, max_value: int) -> None:
    if n > max_value:
        raise RuleError(f"{keyword}: value {n} is larger than {max_value}")
