"""Bounded state for the behavioural detectors: an LRU table and a small HyperLogLog.

Scope: ``LruTable`` caps how many keys a detector remembers (the least recently touched
key is dropped first and counted), and ``HyperLogLog`` estimates how many distinct items a
source touched over a long window in a fixed 64 bytes. Both exist so that a flood of
distinct (possibly spoofed) sources can never grow a detector's memory past its limit.

Non-goals: exact counting over long windows, thread safety (one detector per packet loop).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")

_MASK64 = (1 << 64) - 1


class LruTable(Generic[V]):
    """A dict with at most ``capacity`` keys; inserting past it drops the stalest key."""

    __slots__ = ("_data", "_on_evict", "capacity", "evictions")

    def __init__(
        self, capacity: int, on_evict: Callable[[Hashable, V], None] | None = None
    ) -> None:
        self.capacity = max(1, capacity)
        self._data: OrderedDict[Hashable, V] = OrderedDict()
        self._on_evict = on_evict
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: Hashable) -> V | None:
        """The value for ``key`` (marked as most recently used), or None."""
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def peek(self, key: Hashable) -> V | None:
        """The value for ``key`` without touching its recency."""
        return self._data.get(key)

    def put(self, key: Hashable, value: V) -> None:
        data = self._data
        data[key] = value
        data.move_to_end(key)
        if len(data) > self.capacity:
            old_key, old_value = data.popitem(last=False)
            self.evictions += 1
            if self._on_evict is not None:
                self._on_evict(old_key, old_value)


def mix64(x: int) -> int:
    """SplitMix64's finaliser: spreads any integer over 64 well-mixed bits.

    Python's hash of an int is the int itself, so register choice needs real mixing.
    """
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


class HyperLogLog:
    """Distinct-count estimate in 2**precision one-byte registers (default 64 bytes).

    With 64 registers the standard error is about 13%; the detectors compare it with
    thresholds in the hundreds, where that error is acceptable and memory is what counts.
    """

    __slots__ = ("_bits", "_regs")

    def __init__(self, precision: int = 6) -> None:
        self._bits = precision
        self._regs = bytearray(1 << precision)

    def add(self, item: int) -> None:
        x = mix64(item)
        bits = self._bits
        idx = x & ((1 << bits) - 1)
        rest = x >> bits
        rank = (64 - bits) - rest.bit_length() + 1
        if rank > self._regs[idx]:
            self._regs[idx] = rank

    def estimate(self) -> float:
        regs = self._regs
        m = len(regs)
        alpha = 0.709 if m == 64 else 0.7213 / (1 + 1.079 / m)
        raw = alpha * m * m / sum(2.0**-r for r in regs)
        zeros = regs.count(0)
        if raw <= 2.5 * m and zeros:
            return m * math.log(m / zeros)  # linear counting for small sets
        return raw

    @property
    def size(self) -> int:
        return len(self._regs)
