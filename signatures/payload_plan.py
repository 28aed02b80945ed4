"""Rule-level planning over built payload keywords: fast pattern choice and match reach.

Scope: picking the content handed to Hyperscan (Suricata 7's rules: an explicit
fast_pattern wins; otherwise the longest non-negated content, ties broken by Suricata's
PatternStrength and then rule order; negated contents only when nothing else exists) and
the upper bound on how many bytes one match of the pkt_data chain can span.

Non-goals: buffer priorities between app-layer buffers (all treated alike), building steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from signatures.content import ContentSpec


@dataclass(frozen=True)
class FastPattern:
    """The pattern a rule contributes to the prefilter.

    ``only`` is True when a prefilter hit alone proves this content matched (explicit
    ``fast_pattern:only``, or a content without position constraints or chop). The content
    stays in its BufferProgram either way, so running the programs is always exact; a
    caller may skip a program whose only step is this content. ``negated`` patterns (chosen only when the rule
    has no other content) must not gate the rule: a hit means "run the rule's programs
    anyway" exactly like a miss.
    """

    buffer: str
    pattern: bytes
    nocase: bool
    only: bool
    negated: bool


def pattern_strength(pattern: bytes) -> int:
    """Suricata's PatternStrength: rarer-looking bytes score higher, repeats score 1."""
    seen: set[int] = set()
    score = 0
    for byte in pattern:
        if byte in seen:
            score += 1
            continue
        seen.add(byte)
        if 65 <= byte <= 90 or 97 <= byte <= 122:
            score += 3
        elif 32 <= byte <= 126 or byte in (0x00, 0x01, 0xFF):
            score += 4
        else:
            score += 6
    return score


def conclusive(cd: ContentSpec) -> bool:
    """A prefilter hit proves this content matched (Suricata's DETECT_CONTENT_MPM_IS_CONCLUSIVE)."""
    return not (cd.negated or cd.positioned or cd.startswith or cd.fp_chop is not None)


def choose_fast_pattern(
    contents: Sequence[ContentSpec], mpm_buffers: frozenset[str]
) -> ContentSpec | None:
    eligible = [cd for cd in contents if cd.buffer in mpm_buffers]
    for cd in eligible:
        if cd.fast_pattern:
            return cd
    plain = [cd for cd in eligible if not cd.negated]
    pool = plain or eligible
    best: ContentSpec | None = None
    best_key = (-1, -1)
    for cd in pool:
        key = (len(cd.pattern), pattern_strength(cd.pattern))
        if key > best_key:
            best, best_key = cd, key
    return best


def make_fast_pattern(cd: ContentSpec) -> FastPattern:
    pattern = cd.pattern
    if cd.fp_chop is not None:
        off, length = cd.fp_chop
        pattern = pattern[off : off + length]
    only = cd.fp_only or conclusive(cd)
    return FastPattern(cd.buffer, pattern, cd.nocase, only, cd.negated)


@dataclass
class ReachItem:
    """What max_reach needs to know about one pkt_data keyword."""

    kind: str  # content, isdataat, bytes, unbounded
    relative: bool
    length: int = 0  # content length / bytes read
    offset: int = 0  # content offset / byte_* offset / isdataat position
    depth: int | None = None  # content absolute end limit
    distance: int = 0
    within: int | None = None
    moves_cursor: bool = False
    negated: bool = False


def max_reach(items: Sequence[ReachItem]) -> int | None:
    """Upper bound on the bytes one match spans, or None when unbounded.

    The chain splits into components at every non-relative keyword. A component anchored
    by a depth (or an absolute byte_*/isdataat position) spans from the buffer start; a
    floating component spans from its lowest start to its highest end relative to its
    first match. Two floating components can be arbitrarily far apart (as can a floating
    one and the buffer start an anchored one needs), so that case is unbounded. The cursor
    is tracked as a range [c_lo, c_hi] so negative distances stay safe.
    """
    floating: list[int] = []
    anchored = 0
    lo = hi = c_lo = c_hi = 0
    state = ""  # "" no component yet, "float", "anchor"

    for it in items:
        if it.kind == "unbounded":
            return None
        if not it.relative or state == "":
            if state == "float":
                floating.append(hi - lo)
            elif state == "anchor":
                anchored = max(anchored, hi)
            if it.kind == "content" and not it.relative and it.depth is None:
                if it.negated:
                    return None  # absence anywhere in the buffer
                state, lo, hi, c_lo, c_hi = "float", 0, it.length, it.length, it.length
                continue
            state, lo, hi, c_lo, c_hi = "anchor", 0, 0, 0, 0
            if not it.relative:
                if it.kind == "content":
                    hi = it.depth if it.depth is not None else 0
                    c_lo, c_hi = it.offset + it.length, hi
                else:
                    hi = it.offset + max(it.length, 1)
                    if it.moves_cursor:
                        c_lo, c_hi = it.offset, hi
                continue
        if it.kind == "content":
            if it.within is None:
                return None
            lo = min(lo, c_lo + it.distance)
            end = c_hi + it.distance + it.within
            hi = max(hi, end)
            if not it.negated:
                c_lo, c_hi = c_lo + it.distance + it.length, end
        else:
            lo = min(lo, c_lo + min(it.offset, 0))
            end = c_hi + it.offset + it.length
            hi = max(hi, end)
            if it.moves_cursor:
                c_lo, c_hi = c_lo + it.offset, end
    if state == "float":
        floating.append(hi - lo)
    elif state == "anchor":
        anchored = max(anchored, hi)
    if len(floating) > 1 or (floating and anchored):
        return None
    if floating:
        return floating[0]
    return anchored
