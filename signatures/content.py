"""The ``content`` keyword: parsing its pattern text and matching it with Suricata's semantics.

Scope: turning ``"ab|0d 0a|\\;"`` into bytes, the mutable per-rule :class:`ContentSpec` that
modifiers (nocase, offset, depth, distance, within, startswith, endswith, fast_pattern) edit
while a rule is built, and the precompiled :class:`ContentStep` that runs on the hot path.

Non-goals: choosing the fast pattern and validating modifier combinations (``payload``).
"""

from __future__ import annotations

from dataclasses import dataclass

from sensor.errors import RuleError
from signatures.inspect import (
    DISCONTINUE,
    MATCH,
    NO_MATCH,
    U32,
    MatchEnv,
    Step,
    run_from,
    run_next,
)

_ESCAPABLE = frozenset(';"\\:')
_HEX = frozenset("0123456789abcdefABCDEF")


def _hex_section(text: str, where: str) -> bytes:
    digits = []
    for ch in text:
        if ch in " \t":
            continue
        if ch not in _HEX:
            raise RuleError(f"{where}: invalid hex character {ch!r} in |{text}|")
        digits.append(ch)
    if len(digits) % 2:
        raise RuleError(f"{where}: odd number of hex digits in |{text}|")
    return bytes.fromhex("".join(digits))


def parse_pattern(value: str | None, quoted: bool, keyword: str = "content") -> tuple[bytes, bool]:
    """Return (pattern bytes, negated) for a content-like value.

    ``value`` comes from the rule parser with one pair of quotes removed when ``quoted``;
    a negated value arrives as ``!"..."`` (quotes still on) or, if the parser stripped
    them, as ``!...``.
    """
    if value is None or value.strip() == "":
        raise RuleError(f"{keyword}: empty pattern")
    text = value
    negated = False
    if not quoted:
        text = text.strip()
        if text.startswith("!"):
            negated = True
            text = text[1:].strip()
        if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
            text = text[1:-1]
    out = bytearray()
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "|":
            close = text.find("|", i + 1)
            if close < 0:
                raise RuleError(f"{keyword}: unterminated hex section in {text!r}")
            out += _hex_section(text[i + 1 : close], keyword)
            i = close + 1
            continue
        if ch == "\\":
            if i + 1 >= n or text[i + 1] not in _ESCAPABLE:
                bad = text[i : i + 2]
                raise RuleError(f'{keyword}: invalid escape {bad!r} (only \\; \\" \\\\ \\: exist)')
            out += text[i + 1].encode()
            i += 2
            continue
        if ch == '"':
            raise RuleError(f"{keyword}: unescaped '\"' inside the pattern {text!r}")
        out += ch.encode("utf-8")
        i += 1
    if not out:
        raise RuleError(f"{keyword}: empty pattern")
    return bytes(out), negated


@dataclass
class ContentSpec:
    """A content as the builder accumulates it; frozen into a ContentStep by ``compile``."""

    pattern: bytes
    negated: bool
    buffer: str
    index: int  # position among the rule's payload keywords (for error messages/order)
    nocase: bool = False
    offset: int = 0
    offset_var: str | None = None
    depth: int = 0  # Suricata stores depth as the absolute end: depth + offset
    depth_var: str | None = None
    has_offset: bool = False
    has_depth: bool = False
    distance: int = 0
    distance_var: str | None = None
    has_distance: bool = False
    within: int = 0
    within_var: str | None = None
    has_within: bool = False
    startswith: bool = False
    endswith: bool = False
    fast_pattern: bool = False
    fp_only: bool = False
    fp_chop: tuple[int, int] | None = None
    within_next: bool = False  # a later keyword in this buffer is within-relative to us
    distance_next: bool = False
    moved_by: str | None = None  # legacy modifier that moved it, for messages

    @property
    def relative(self) -> bool:
        return self.has_distance or self.has_within

    @property
    def positioned(self) -> bool:
        return self.relative or self.has_depth or self.has_offset or self.endswith

    def single(self) -> bool:
        """Suricata's DETECT_CONTENT_IS_SINGLE: nothing positions it or depends on it."""
        return not (
            self.relative
            or self.within_next
            or self.distance_next
            or self.has_depth
            or self.has_offset
        )

    def compile(self) -> ContentStep:
        return ContentStep(self)


def _s32(value: int) -> int:
    value &= U32
    return value - (1 << 32) if value & 0x80000000 else value


class ContentStep:
    """Precompiled content; ``run`` is Suricata's content branch including its retries."""

    __slots__ = (
        "depth",
        "depth_var",
        "distance",
        "distance_var",
        "endswith",
        "has_distance",
        "has_within",
        "length",
        "negated",
        "nocase",
        "offset",
        "offset_var",
        "pattern",
        "relative",
        "single",
        "within",
        "within_next",
        "within_var",
    )

    def __init__(self, spec: ContentSpec) -> None:
        self.nocase = spec.nocase
        self.pattern = spec.pattern.lower() if spec.nocase else spec.pattern
        self.length = len(spec.pattern)
        self.negated = spec.negated
        self.relative = spec.relative
        self.has_distance = spec.has_distance
        self.distance = spec.distance
        self.distance_var = spec.distance_var
        self.has_within = spec.has_within
        self.within = spec.within
        self.within_var = spec.within_var
        self.offset = spec.offset
        self.offset_var = spec.offset_var
        self.depth = spec.depth if spec.has_depth else 0
        self.depth_var = spec.depth_var
        self.endswith = spec.endswith
        self.single = spec.single()
        self.within_next = spec.within_next

    def _window(self, blen: int, start: int, env: MatchEnv) -> tuple[int, int]:
        """(offset, depth) of the search window before retries, as Suricata computes it."""
        if self.relative:
            offset = start
            distance = 0
            if self.has_distance:
                distance = self.distance
                if self.distance_var is not None:
                    distance = _s32(env.vars.get(self.distance_var, 0))
                offset = 0 if distance < 0 and -distance > offset else offset + distance
            depth = blen
            if self.has_within:
                within = self.within
                if self.within_var is not None:
                    within = env.vars.get(self.within_var, 0)
                limit = _s32(start + within + distance)
                if blen > limit:  # a negative limit wraps to a huge unsigned depth
                    depth = limit & U32
            return offset, depth
        if self.depth_var is not None:
            depth = env.vars.get(self.depth_var, 0) & U32
        else:
            depth = self.depth if self.depth else blen
        if self.offset_var is not None:
            offset = env.vars.get(self.offset_var, 0) & U32
        else:
            offset = self.offset
        if self.offset_var is not None or self.depth_var is not None:
            depth = (depth + offset) & U32  # variable depth counts from the offset
        return offset, depth

    def run(self, steps: tuple[Step, ...], i: int, buf: bytes, env: MatchEnv) -> int:
        blen = len(buf)
        hay = env.lowered(buf) if self.nocase else buf
        start = env.offset
        window_offset, window_depth = self._window(blen, start, env)
        prev_offset = 0
        length = self.length
        while True:
            offset = prev_offset if prev_offset else window_offset
            depth = min(window_depth, blen)
            if offset > depth or depth == 0:
                return run_next(steps, i, buf, env) if self.negated else NO_MATCH
            if (self.endswith and depth < blen) or length > depth - offset:
                found = -1
            else:
                found = hay.find(self.pattern, offset, depth)
            if found < 0:
                if self.negated:
                    return run_next(steps, i, buf, env)
                return NO_MATCH if self.relative else DISCONTINUE
            match_end = found + length
            if self.negated:
                # Suricata compares the window length with the absolute end here
                if self.endswith and depth - offset != match_end:
                    return run_next(steps, i, buf, env)
                return DISCONTINUE if self.single else NO_MATCH
            env.offset = match_end
            if not self.endswith or match_end == blen:
                if i + 1 == len(steps):
                    return MATCH
                r = run_from(steps, i + 1, buf, env)
                if r != NO_MATCH:
                    return r
                if not self.within_next:
                    return DISCONTINUE  # a later occurrence cannot help a distance-only chain
            prev_offset = match_end - length + 1
