"""Indexes that pick rules by address or port instead of trying each one.

Scope: two lookups the compiler builds for rules a literal prefilter cannot select:

- ``AddressIndex``: the IP-only rules (ET's reputation lists: thousands of rules, each a
  list of hosts) by the more selective side of their header. Built once as elementary
  segments over every interval boundary, so a lookup is one bisect per address family
  (Suricata's IP-only engine does the same with radix trees).
- ``PortIndex``: rules without a fast pattern (``flags:S; dsize:0`` probes to port 1433,
  ...) by destination or source port.

A lookup returns *candidates*: the detection engine still checks every header field, so
an index may over-select but never under-select. Rules an index cannot narrow (both sides
``any``-like) are returned by every lookup.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

Intervals = Sequence[tuple[int, int]]

# A side covering more than this many addresses is too broad to index on.
_BROAD = {4: 1 << 24, 6: 1 << 100}
_MAX_INDEXED_PORTS = 1024


def _size(intervals: Intervals) -> int:
    return sum(hi - lo + 1 for lo, hi in intervals)


@dataclass(frozen=True, slots=True)
class _Segments:
    """Elementary segments of one address family: bounds[i] starts the segment rules[i]."""

    bounds: tuple[int, ...]
    rules: tuple[tuple[int, ...], ...]

    @classmethod
    def build(cls, entries: Iterable[tuple[int, int, int]]) -> _Segments:
        starts: dict[int, list[int]] = {}
        ends: dict[int, list[int]] = {}
        for lo, hi, order in entries:
            starts.setdefault(lo, []).append(order)
            ends.setdefault(hi + 1, []).append(order)
        active: dict[int, int] = {}
        bounds: list[int] = []
        rules: list[tuple[int, ...]] = []
        for point in sorted(starts.keys() | ends.keys()):
            for order in ends.get(point, ()):
                if active[order] == 1:
                    del active[order]
                else:
                    active[order] -= 1
            for order in starts.get(point, ()):
                active[order] = active.get(order, 0) + 1
            current = tuple(sorted(active))
            if rules and rules[-1] == current:
                continue  # same rules as the previous segment: extend it
            bounds.append(point)
            rules.append(current)
        return cls(tuple(bounds), tuple(rules))

    def lookup(self, addr: int) -> tuple[int, ...]:
        i = bisect_right(self.bounds, addr) - 1
        return self.rules[i] if i >= 0 else ()


@dataclass(frozen=True, slots=True)
class AddressIndex:
    src4: _Segments
    dst4: _Segments
    src6: _Segments
    dst6: _Segments
    broad4: tuple[int, ...]
    broad6: tuple[int, ...]

    @classmethod
    def build(cls, rules: Iterable[tuple[int, Any, Any, bool]]) -> AddressIndex:
        """``rules``: (order, src AddressSet, dst AddressSet, bidirectional)."""
        by: dict[tuple[str, int], list[tuple[int, int, int]]] = {}
        broad: dict[int, list[int]] = {4: [], 6: []}
        for order, src, dst, both_ways in rules:
            for ver in (4, 6):
                s_iv, d_iv = (src.v4, dst.v4) if ver == 4 else (src.v6, dst.v6)
                if not s_iv or not d_iv:
                    continue  # this family can never match
                s_size, d_size = _size(s_iv), _size(d_iv)
                if min(s_size, d_size) > _BROAD[ver]:
                    broad[ver].append(order)
                    continue
                side, intervals = ("src", s_iv) if s_size <= d_size else ("dst", d_iv)
                sides = ("src", "dst") if both_ways else (side,)
                for sd in sides:
                    by.setdefault((sd, ver), []).extend((lo, hi, order) for lo, hi in intervals)

        def seg(side: str, ver: int) -> _Segments:
            return _Segments.build(by.get((side, ver), ()))

        return cls(seg("src", 4), seg("dst", 4), seg("src", 6), seg("dst", 6),
                   tuple(broad[4]), tuple(broad[6]))  # fmt: skip

    def candidates(self, ipver: int, src: int, dst: int) -> Iterable[int]:
        if ipver == 4:
            return (*self.broad4, *self.src4.lookup(src), *self.dst4.lookup(dst))
        if ipver == 6:
            return (*self.broad6, *self.src6.lookup(src), *self.dst6.lookup(dst))
        return ()


@dataclass(frozen=True, slots=True)
class PortIndex:
    by_dport: dict[int, tuple[int, ...]]
    by_sport: dict[int, tuple[int, ...]]
    broad: tuple[int, ...]

    @classmethod
    def build(cls, rules: Iterable[tuple[int, Any, Any, bool]]) -> PortIndex:
        """``rules``: (order, sport PortSet, dport PortSet, bidirectional)."""
        dports: dict[int, list[int]] = {}
        sports: dict[int, list[int]] = {}
        broad: list[int] = []
        for order, sport, dport, both_ways in rules:
            s_n = 65536 if sport.is_any else _size(sport.ranges)
            d_n = 65536 if dport.is_any else _size(dport.ranges)
            if min(s_n, d_n) > _MAX_INDEXED_PORTS:
                broad.append(order)
                continue
            key_set, forward = (dport, dports) if d_n <= s_n else (sport, sports)
            reverse = sports if forward is dports else dports
            for lo, hi in key_set.ranges:
                for port in range(lo, hi + 1):
                    forward.setdefault(port, []).append(order)
                    if both_ways:
                        reverse.setdefault(port, []).append(order)
        return cls({p: tuple(o) for p, o in dports.items()},
                   {p: tuple(o) for p, o in sports.items()}, tuple(broad))  # fmt: skip

    def candidates(self, sport: int, dport: int) -> Iterable[int]:
        return (*self.broad, *self.by_dport.get(dport, ()), *self.by_sport.get(sport, ()))
