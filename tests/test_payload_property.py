"""Property tests: the content-chain matcher against brute-force references.

Two references, both enumerating every candidate position with slicing (no bytes.find, no
retry bookkeeping):

* ``ideal``: "some assignment of positions satisfies every content" — Suricata agrees with
  it except for a negated content constrained only by distance (see the unit test
  ``test_negated_distance_only_does_not_backtrack``) and a relative keyword anchored on a
  negated content, so those chains are excluded.
* ``suricata_ref``: the same enumeration with Suricata's two pruning rules written out:
  an earlier content is retried only when the next keyword is within-relative to it, and
  a found negated content without any position constraint ends the whole inspection.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from signatures.inspect import RECURSION_LIMIT, MatchEnv
from signatures.payload import PayloadBuilder


@dataclass
class C:
    pattern: bytes
    negated: bool = False
    nocase: bool = False
    offset: int | None = None
    depth: int | None = None
    distance: int | None = None
    within: int | None = None

    @property
    def relative(self) -> bool:
        return self.distance is not None or self.within is not None

    def options(self) -> list[tuple[str, str | None, bool]]:
        text = self.pattern.decode()
        opts: list[tuple[str, str | None, bool]] = [
            ("content", f'!"{text}"', False) if self.negated else ("content", text, True)
        ]
        if self.nocase:
            opts.append(("nocase", None, False))
        for name in ("offset", "depth", "distance", "within"):
            value = getattr(self, name)
            if value is not None:
                opts.append((name, str(value), False))
        return opts


def window(c: C, cursor: int, blen: int) -> tuple[int, int]:
    """[start, end) of the bytes a content may occupy."""
    if c.relative:
        distance = c.distance or 0
        start = max(0, cursor + distance)
        end = blen
        if c.within is not None:
            end = cursor + distance + c.within
            if end < 0:  # Suricata quirk: a negative end wraps to "whole buffer"
                end = blen
        return start, min(end, blen)
    start = c.offset or 0
    end = start + c.depth if c.depth is not None else blen
    return start, min(end, blen)


def occurrences(c: C, buf: bytes, start: int, end: int) -> list[int]:
    pat = c.pattern.lower() if c.nocase else c.pattern
    hay = buf.lower() if c.nocase else buf
    n = len(pat)
    return [p for p in range(start, end - n + 1) if hay[p : p + n] == pat]


def ideal(chain: list[C], buf: bytes) -> bool:
    def go(i: int, cursor: int) -> bool:
        if i == len(chain):
            return True
        c = chain[i]
        start, end = window(c, cursor, len(buf))
        occ = occurrences(c, buf, start, end)
        if c.negated:
            return not occ and go(i + 1, cursor)
        return any(go(i + 1, p + len(c.pattern)) for p in occ)

    return go(0, 0)


def suricata_ref(chain: list[C], buf: bytes) -> bool:
    def within_next(i: int) -> bool:
        return i + 1 < len(chain) and chain[i + 1].within is not None

    def go(i: int, cursor: int) -> int:
        if i == len(chain):
            return 1
        c = chain[i]
        start, end = window(c, cursor, len(buf))
        occ = occurrences(c, buf, start, end)
        if c.negated:
            if not occ:
                return go(i + 1, cursor)
            unconstrained = not (c.relative or c.offset is not None or c.depth is not None)
            relied_on = i + 1 < len(chain) and chain[i + 1].relative
            return -1 if unconstrained and not relied_on else 0
        if not occ:
            return 0 if c.relative else -1
        for p in occ:
            r = go(i + 1, p + len(c.pattern))
            if r != 0:
                return r
            if not within_next(i):
                return -1
        return 0

    return go(0, 0) == 1


@st.composite
def contents(draw: st.DrawFn) -> C:
    pattern = draw(st.text(alphabet="abA", min_size=1, max_size=3)).encode()
    c = C(pattern, negated=draw(st.booleans()), nocase=draw(st.booleans()))
    if draw(st.booleans()):
        if draw(st.booleans()):
            c.distance = draw(st.integers(-4, 6))
        if c.distance is None or draw(st.booleans()):
            c.within = draw(st.integers(len(pattern), len(pattern) + 8))
    else:
        if draw(st.booleans()):
            c.offset = draw(st.integers(0, 6))
        if draw(st.booleans()):
            c.depth = draw(st.integers(len(pattern), len(pattern) + 10))
    return c


chains = st.lists(contents(), min_size=1, max_size=4)
payloads = st.text(alphabet="abAB", max_size=24).map(str.encode)


def run_matcher(chain: list[C], buf: bytes) -> tuple[bool, int]:
    builder = PayloadBuilder(frozenset())
    for c in chain:
        for name, value, quoted in c.options():
            builder.add(name, value, quoted)
    spec = builder.finish()
    env = MatchEnv()
    env.reset()
    matched = spec.programs["pkt_data"].match(buf, env)
    return matched, env.calls


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chains, payloads)
def test_matcher_equals_suricata_shaped_reference(chain: list[C], buf: bytes) -> None:
    matched, calls = run_matcher(chain, buf)
    assume(calls < RECURSION_LIMIT - 1)
    assert matched == suricata_ref(chain, buf)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chains, payloads)
def test_matcher_equals_ideal_when_suricata_backtracks_fully(chain: list[C], buf: bytes) -> None:
    # Suricata's two documented departures from "any assignment": a negated content with
    # distance but no within, and a relative keyword whose anchor is a negated content (the
    # content before the negated one is then never retried).
    assume(not any(c.negated and c.distance is not None and c.within is None for c in chain))
    assume(not any(b.relative and a.negated for a, b in itertools.pairwise(chain)))
    matched, calls = run_matcher(chain, buf)
    assume(calls < RECURSION_LIMIT - 1)
    assert matched == ideal(chain, buf)


def test_reference_agrees_on_a_known_backtracking_case() -> None:
    chain = [C(b"ab"), C(b"b", distance=1, within=2)]
    assert run_matcher(chain, b"ab.ab.b")[0] is True
    assert ideal(chain, b"ab.ab.b") and suricata_ref(chain, b"ab.ab.b")
