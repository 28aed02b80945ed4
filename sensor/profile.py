"""Where a run's time goes: per-stage timing and per-rule cost (``run --profile``, ``--profile-rules``).

Scope: a :class:`Profiler` that instruments the objects of one pipeline run *from the
outside*, by wrapping bound methods on the instances (never the classes), so the normal
hot path carries no profiling code at all and an unprofiled run pays nothing. Stages:

- ``capture``: pulling the next frame from the capture file or interface;
- ``decode``: link/IP/L4 decoding and defragmentation;
- ``flow``: flow lookup and bookkeeping (exclusive of ``stream``);
- ``stream``: TCP state tracking and reassembly;
- ``applayer``: protocol detection and HTTP/DNS/TLS parsing into transactions;
- ``prefilter``: candidate selection for a packet (Hyperscan scans of the payload and
  stream window);
- ``verify``: the exact check of each candidate (packet and transaction rules);
- ``detect``: the rest of detection (stream context, transaction candidates, tails);
- ``output``: alert records, policies and sinks (EVE, Redis);
- ``flow-expiry``: finding timed-out flows (their end-of-flow inspection counts as
  ``prefilter``/``verify``).

Times are *exclusive*: a nested stage's time is subtracted from its parent, so the
stages add up to the instrumented total; ``other`` is the rest of the loop (packet
objects, the loop itself, and the profiler's own overhead of a few hundred ns per call).
Per-rule cost counts every exact check of a signature (checks, matches, time).

Non-goals: sampling profilers (use py-spy or cProfile for call graphs), timing of rule
loading (the ruleset report has it), thread safety (one profiler per process).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

STAGES = ("capture", "decode", "flow", "stream", "applayer", "prefilter", "verify", "detect",
          "output", "flow-expiry")  # fmt: skip

# (owner path, method, stage): what ``Profiler.instrument`` wraps on a pipeline loop.
HOOKS: tuple[tuple[str, str, str], ...] = (
    ("decoder", "decode", "decode"),
    ("flows", "process", "flow"),
    ("flows", "expire", "flow-expiry"),
    ("flows", "flush_all", "flow-expiry"),
    ("flows.tcp", "packet", "stream"),
    ("detector", "inspect", "detect"),
    ("detector", "flow_end", "detect"),
    ("detector._tx", "feed", "applayer"),
    ("detector._tx", "close", "applayer"),
    ("detector", "_packet_candidates", "prefilter"),
    ("detector", "_run", "verify"),
    ("", "_emit", "output"),
)

T = TypeVar("T")


@dataclass(frozen=True)
class StageCost:
    name: str
    seconds: float
    calls: int
    share: float  # of the wall time between the first frame and stop()


@dataclass(frozen=True)
class RuleCost:
    sid: int
    gid: int
    msg: str
    checks: int
    matches: int
    seconds: float


@dataclass(frozen=True)
class ProfileReport:
    wall: float
    packets: int
    stages: tuple[StageCost, ...]
    rules: tuple[RuleCost, ...]  # most expensive first; empty without rule profiling

    def as_dict(self) -> dict[str, Any]:
        return {
            "wall_seconds": self.wall,
            "packets": self.packets,
            "stages": {
                s.name: {"seconds": s.seconds, "calls": s.calls, "share": s.share}
                for s in self.stages
            },
            "rules": [r.__dict__ for r in self.rules],
        }


class _Proxy:
    """Stands in for a slotted object (e.g. the TcpTracker) whose methods cannot be
    replaced on the instance: the timed methods are its own, the rest is delegated."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class Profiler:
    """Accumulates exclusive time per stage (and optionally per rule) for one run."""

    def __init__(self, rules: bool = False) -> None:
        self.rules = rules
        self._ns: dict[str, int] = dict.fromkeys(STAGES, 0)
        self._calls: dict[str, int] = dict.fromkeys(STAGES, 0)
        self._stack: list[int] = [0]  # per open stage: time spent in nested stages
        self._rule_ns: dict[int, list[int]] = {}  # sig order -> [checks, matches, ns]
        self._rule_sigs: dict[int, Any] = {}
        self._started: int | None = None
        self._stopped: int | None = None
        self._packets = 0

    # -- instrumentation -----------------------------------------------------------------
    def timed(self, stage: str, fn: Callable[..., T]) -> Callable[..., T]:
        """``fn`` wrapped to add its exclusive time to ``stage``."""
        clock = time.perf_counter_ns
        stack, ns, calls = self._stack, self._ns, self._calls

        def wrapper(*args: Any) -> T:
            stack.append(0)
            t0 = clock()
            try:
                return fn(*args)
            finally:
                dt = clock() - t0
                ns[stage] += dt - stack.pop()
                calls[stage] += 1
                stack[-1] += dt

        return wrapper

    def rule_timed(self, fn: Callable[..., bool], step: str = "whole") -> Callable[..., bool]:
        """``fn(sig, ...)``, a per-signature check, with its time charged to ``sig``.

        ``step``: ``"whole"`` — ``fn`` is the rule's entire exact check (one call = one
        check; True = a match); ``"header"`` / ``"payload"`` — ``fn`` is the first / the
        last of two steps (the header step counts the check, the rule matches when its
        last step returns True: the header step for rules without payload keywords).
        """
        clock = time.perf_counter_ns
        per_rule, sigs = self._rule_ns, self._rule_sigs
        counts_check = step in ("whole", "header")

        def wrapper(sig: Any, *args: Any) -> bool:
            t0 = clock()
            ok = fn(sig, *args)
            dt = clock() - t0
            entry = per_rule.get(id(sig))
            if entry is None:
                entry = per_rule[id(sig)] = [0, 0, 0]
                sigs[id(sig)] = sig
            entry[0] += counts_check
            entry[2] += dt
            if ok and (step != "header" or getattr(sig, "payload", None) is None):
                entry[1] += 1
            return ok

        return wrapper

    def instrument(self, loop: Any) -> None:
        """Wrap the stages of a pipeline loop in place (see ``HOOKS``).

        Works on the instances only. A hook whose owner or method is missing is skipped,
        so a reshaped loop degrades to fewer stages instead of failing; a slotted owner
        is replaced on its parent by a proxy carrying the timed method.
        """
        self._started = time.perf_counter_ns()
        for path, method, stage in HOOKS:
            parent, owner = None, loop
            name = ""
            for name in (n for n in path.split(".") if n):
                parent, owner = owner, getattr(owner, name, None)
                if owner is None:
                    break
            fn = getattr(owner, method, None) if owner is not None else None
            if fn is None:
                continue
            timed = self.timed(stage, fn)
            try:
                setattr(owner, method, timed)
            except AttributeError:  # slotted: proxy it on its parent
                if parent is None or isinstance(owner, _Proxy):
                    continue
                proxy = _Proxy(owner)
                setattr(proxy, method, timed)
                setattr(parent, name, proxy)
        detector = getattr(loop, "detector", None)
        if self.rules and callable(getattr(detector, "_check", None)):
            # A detector that routes each exact check through one method (see the report)
            detector._check = self.rule_timed(detector._check, "whole")  # type: ignore[union-attr]

    def frames(self, frames: Iterable[T]) -> Iterator[T]:
        """The capture's frames, with the time to fetch each one counted as ``capture``."""
        clock = time.perf_counter_ns
        it = iter(frames)
        ns = self._ns
        if self._started is None:
            self._started = clock()
        while True:
            t0 = clock()
            try:
                item = next(it)
            except StopIteration:
                ns["capture"] += clock() - t0
                return
            ns["capture"] += clock() - t0
            self._calls["capture"] += 1
            self._packets += 1
            yield item

    def stop(self) -> None:
        """End of the measured span (call after the loop's finish())."""
        self._stopped = time.perf_counter_ns()

    # -- results -------------------------------------------------------------------------
    def report(self, top: int = 30) -> ProfileReport:
        end = self._stopped or time.perf_counter_ns()
        wall_ns = max(end - (self._started or end), 1)
        stages = [
            StageCost(name, self._ns[name] / 1e9, self._calls[name], self._ns[name] / wall_ns)
            for name in STAGES
        ]
        rest = wall_ns - sum(self._ns.values())
        stages.append(StageCost("other", max(rest, 0) / 1e9, 0, max(rest, 0) / wall_ns))
        rules = sorted(self._rule_ns.items(), key=lambda kv: -kv[1][2])[:top]
        return ProfileReport(
            wall=wall_ns / 1e9,
            packets=self._packets,
            stages=tuple(stages),
            rules=tuple(_rule_cost(self._rule_sigs[k], v) for k, v in rules),
        )


def _rule_cost(sig: Any, entry: list[int]) -> RuleCost:
    return RuleCost(
        sid=int(getattr(sig, "sid", 0)),
        gid=int(getattr(sig, "gid", 1)),
        msg=str(getattr(sig, "msg", "")),
        checks=entry[0],
        matches=entry[1],
        seconds=entry[2] / 1e9,
    )


def format_report(report: ProfileReport) -> str:
    """The profile as text for stderr: a stage table, then the costliest rules."""
    per_pkt = 1e6 / report.packets if report.packets else 0.0
    lines = [f"profile: {report.packets:,} packets in {report.wall:.2f} s",
             f"  {'stage':<12} {'seconds':>9} {'share':>6} {'calls':>11} {'µs/packet':>10}"]  # fmt: skip
    for s in report.stages:
        lines.append(
            f"  {s.name:<12} {s.seconds:9.3f} {s.share:6.1%} {s.calls:11,} {s.seconds * per_pkt:10.2f}"
        )
    if report.rules:
        lines.append(f"  {'sid':>9} {'checks':>10} {'matches':>9} {'ms':>9} {'µs/check':>9}  msg")
        for r in report.rules:
            each = r.seconds * 1e6 / r.checks if r.checks else 0.0
            lines.append(
                f"  {r.sid:>9} {r.checks:>10,} {r.matches:>9,} {r.seconds * 1e3:9.2f}"
                f" {each:9.2f}  {r.msg[:60]}"
            )
    return "\n".join(lines)
