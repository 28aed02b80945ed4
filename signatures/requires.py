"""The ``requires`` keyword (Suricata 7.0.3+): load a rule only on engines that qualify.

Scope: ``requires: feature NAME, version >= 7.0.3 < 8 | >= 8.0.1`` evaluated as the Suricata
7.0.10 sekimori emulates: every ``feature`` must be one sekimori provides, and one of the
``|``-separated version ranges (each a conjunction of comparisons) must hold. A rule whose
requirements fail is skipped with reason "requirements not met" (Suricata skips it
silently, without counting it as a failed rule). Unknown requirement names are ignored, as
Suricata does for forward compatibility.

Non-goals: the exact set of optional build features of a given Suricata build: sekimori
claims none of them (no Lua, GeoIP, NFQueue ...).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable

from sensor.errors import RuleError

ENGINE_VERSION = (7, 0, 10)
FEATURES: frozenset[str] = frozenset()

_OPS: dict[str, Callable[[tuple[int, ...], tuple[int, ...]], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "=": operator.eq,
}  # fmt: skip
_CMP = re.compile(r"\s*(>=|<=|>|<|=)\s*(\d+(?:\.\d+){0,2})\s*")


def _version(text: str) -> tuple[int, ...]:
    parts = [int(p) for p in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def _range_holds(expr: str) -> bool:
    pos, held, seen = 0, True, False
    while pos < len(expr):
        m = _CMP.match(expr, pos)
        if m is None:
            raise RuleError(f"requires: invalid version expression '{expr.strip()}'")
        held = held and _OPS[m.group(1)](ENGINE_VERSION, _version(m.group(2)))
        pos, seen = m.end(), True
    if not seen:
        raise RuleError("requires: empty version expression")
    return held


def check_requires(value: str | None) -> None:
    """Raise RuleError (category "requirements not met") unless the rule may load."""
    text = (value or "").strip()
    if not text:
        raise RuleError("requires: needs a requirement")
    for entry in text.split(","):
        key, _, arg = entry.strip().partition(" ")
        arg = arg.strip()
        if key == "feature":
            if arg not in FEATURES:
                raise RuleError(f"requires: feature '{arg}' is not available",
                                category="requirements not met")  # fmt: skip
        elif key == "version" and not any(_range_holds(alt) for alt in arg.split("|")):
            raise RuleError(f"requires: version {arg} does not hold for 7.0.10",
                            category="requirements not met")  # fmt: skip
