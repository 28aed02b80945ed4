"""Compile loaded signatures into the structures the per-packet engine walks.

Scope: evaluation order (Suricata's: action, flowbits/flowint/hostbits/xbits class, priority,
then file order), rule groups by L4 protocol so a packet only meets rules that can apply,
one Hyperscan literal database per group over the rules' pkt_data fast patterns, and the
on-disk cache of those databases keyed by a hash of the patterns and engine version.

Groups: per L4 protocol; within a group the prefiltered rules are split by packet
direction (flow:to_server / to_client), rules without a fast pattern are indexed by port
and IP-only rules by address (signatures/index.py). Non-goals: splitting prefilter
databases by port (a candidate's ports are checked with a bisect), prefiltering header
buffers (their rules are candidates through the port index).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from signatures.flowkw import TO_CLIENT, TO_SERVER
from signatures.hs import ENGINE_VERSION, LiteralSet
from signatures.index import AddressIndex, PortIndex
from signatures.rule import ACTION_ORDER, FB_NONE, Signature

log = logging.getLogger(__name__)

# L4 group keys; OTHER holds packets without a decoded L4 header (fragments, other protocols).
OTHER = -1
GROUP_KEYS = (6, 17, 1, 58, 132, OTHER)


@dataclass(frozen=True, slots=True)
class Prefilter:
    """One Hyperscan literal database and, per pattern id, the rules using that pattern."""

    db: LiteralSet
    pattern_rules: tuple[tuple[int, ...], ...]


@dataclass(frozen=True, slots=True)
class RuleGroup:
    """The rules one kind of packet can meet, split by how they become candidates."""

    key: int
    always: PortIndex  # rules without a pkt_data fast pattern, by port
    ip_only: AddressIndex | None  # IP-only rules (checked once per flow direction), by address
    # Fast patterns of the rest, one database per packet direction: a rule with
    # flow:to_server is only in the first, flow:to_client only in the second.
    to_server: Prefilter | None
    to_client: Prefilter | None


@dataclass(frozen=True, slots=True)
class AppGroup:
    """Rules inspecting one application protocol's transactions (http.uri, dns.query...)."""

    proto: str
    always: tuple[int, ...]  # orders of rules without an application-buffer fast pattern
    prefilters: dict[str, tuple[LiteralSet, tuple[tuple[int, ...], ...]]]  # buffer -> db, users


@dataclass(frozen=True, slots=True)
class CompiledRuleset:
    signatures: tuple[Signature, ...]  # index == Signature.order
    groups: dict[int, RuleGroup]
    app_groups: dict[str, AppGroup]  # app proto -> transaction rules
    version: str  # hash of the rule texts in order, for EVE/stats and the cache
    max_reach: int  # bytes of stream history kept so split matches are found


def _order_key(sig: Signature, index: int) -> tuple[int, ...]:
    hostbits = [b for b in (*sig.bit_checks, *sig.bit_actions) if b.kind == "hostbits"]
    xbits = [b for b in (*sig.bit_checks, *sig.bit_actions) if b.kind == "xbits"]

    def cls(bits: list) -> int:
        reads = any(b.is_check for b in bits)
        writes = any(not b.is_check for b in bits)
        return 1 if reads and writes else 0 if writes else 2 if reads else FB_NONE

    flowbits = [b for b in (*sig.bit_checks, *sig.bit_actions) if b.kind == "flowbits"]
    flowint_w, flowint_r = bool(sig.flowint_actions), bool(sig.flowint_checks)
    flowint = 1 if flowint_w and flowint_r else 0 if flowint_w else 2 if flowint_r else FB_NONE
    # flowvar / pktvar classes: pcre captures set them, the flowvar/pktvar keywords read them
    kinds = sig.payload.var_kinds if sig.payload is not None else frozenset()
    reads = {name for name, _ in sig.check_specs}

    def var_cls(kind: str, keyword: str) -> int:
        w, r = kind in kinds, keyword in reads
        return 1 if w and r else 0 if w else 2 if r else FB_NONE

    return (ACTION_ORDER.get(sig.action, 3), cls(flowbits), flowint, var_cls("flow", "flowvar"),
            var_cls("pkt", "pktvar"), cls(hostbits), cls(xbits), sig.severity, index)  # fmt: skip


def order_signatures(sigs: Sequence[Signature]) -> tuple[Signature, ...]:
    """The signatures in evaluation order, each with ``order`` set to its position.

    ``order`` is set on the given objects (the one field a ruleset build owns); copying
    25k frozen records with dataclasses.replace would cost most of a warm start.
    """
    ranked = sorted(range(len(sigs)), key=lambda i: _order_key(sigs[i], i))
    out = tuple(sigs[i] for i in ranked)
    for n, sig in enumerate(out):
        object.__setattr__(sig, "order", n)
    return out


def ruleset_version(sigs: Iterable[Signature]) -> str:
    h = hashlib.sha256()
    for s in sigs:
        h.update(s.raw.encode("utf-8", "surrogateescape"))
        h.update(b"\n")
    return h.hexdigest()[:16]


def _applies_to(sig: Signature, key: int) -> bool:
    if key == OTHER:
        return sig.l4 is None
    return sig.l4 is None or key in sig.l4


def compile_ruleset(
    sigs: Sequence[Signature],
    cache_dir: str | None = None,
    stream_window_cap: int = 4096,
    version: str | None = None,
) -> CompiledRuleset:
    """Order the signatures and build one group per L4 protocol."""
    ordered = order_signatures(sigs)
    cache = _Cache(cache_dir)
    packet_rules = [s for s in ordered if not s.app_buffers]
    groups: dict[int, RuleGroup] = {}
    for key in GROUP_KEYS:
        groups[key] = _build_group(key, [s for s in packet_rules if _applies_to(s, key)], cache)
    app_groups = {
        proto: _build_app_group(
            proto, [s for s in ordered if s.app_buffers and app_group_of(s) == proto], cache
        )
        for proto in sorted({app_group_of(s) for s in ordered if s.app_buffers})
    }
    reach = 0
    for s in ordered:
        if s.payload is None or "pkt_data" not in s.payload.programs:
            continue
        r = s.payload.max_reach
        reach = stream_window_cap if r is None else max(reach, min(r, stream_window_cap))
        if reach >= stream_window_cap:
            break
    return CompiledRuleset(ordered, groups, app_groups, version or ruleset_version(sigs), reach)


# Transaction rules on file buffers only, without an application protocol in the header
# (``alert tcp ... (filesize:>50;)``): Suricata inspects them on every file-carrying
# protocol's files, so they form their own group, checked on HTTP and SMB transactions.
FILE_GROUP = "file"


def app_group_of(sig: Signature) -> str:
    return sig.app_proto or FILE_GROUP


def _build_group(key: int, sigs: list[Signature], cache: _Cache) -> RuleGroup:
    always: list[Signature] = []
    ip_only: list[Signature] = []
    by_direction: tuple[list[Signature], list[Signature]] = ([], [])
    for s in sigs:
        if s.ip_only:
            ip_only.append(s)
            continue
        fp = s.payload.fast_pattern if s.payload is not None else None
        if fp is None or fp.buffer != "pkt_data" or fp.negated or not fp.pattern:
            always.append(s)
            continue
        if not s.flow_bits & TO_CLIENT:
            by_direction[0].append(s)
        if not s.flow_bits & TO_SERVER:
            by_direction[1].append(s)
    ports = PortIndex.build((s.order, s.sport, s.dport, s.bidirectional) for s in always)
    addresses = (
        AddressIndex.build((s.order, s.src, s.dst, s.bidirectional) for s in ip_only)
        if ip_only
        else None
    )
    return RuleGroup(key, ports, addresses, _prefilter(by_direction[0], cache),
                     _prefilter(by_direction[1], cache))  # fmt: skip


def _prefilter(sigs: list[Signature], cache: _Cache) -> Prefilter | None:
    patterns: dict[tuple[bytes, bool], int] = {}
    users: list[list[int]] = []
    for s in sigs:
        fp = s.payload.fast_pattern
        pid = patterns.setdefault((fp.pattern, fp.nocase), len(patterns))
        if pid == len(users):
            users.append([])
        users[pid].append(s.order)
    if not patterns:
        return None
    return Prefilter(cache.literal_set(list(patterns)), tuple(tuple(u) for u in users))


def _build_app_group(proto: str, sigs: list[Signature], cache: _Cache) -> AppGroup:
    always: list[int] = []
    per_buffer: dict[str, tuple[dict[tuple[bytes, bool], int], list[list[int]]]] = {}
    for s in sigs:
        fp = s.payload.fast_pattern if s.payload is not None else None
        if fp is None or fp.negated or not fp.pattern or fp.buffer not in s.app_buffers:
            always.append(s.order)
            continue
        patterns, users = per_buffer.setdefault(fp.buffer, ({}, []))
        pid = patterns.setdefault((fp.pattern, fp.nocase), len(patterns))
        if pid == len(users):
            users.append([])
        users[pid].append(s.order)
    prefilters = {
        buf: (cache.literal_set(list(patterns)), tuple(tuple(u) for u in users))
        for buf, (patterns, users) in per_buffer.items()
    }
    return AppGroup(proto, tuple(always), prefilters)


class _Cache:
    """Compiled Hyperscan databases on disk, keyed by the exact pattern list."""

    def __init__(self, cache_dir: str | None) -> None:
        self._dir = Path(cache_dir) if cache_dir else None

    def literal_set(self, patterns: list[tuple[bytes, bool]]) -> LiteralSet:
        h = hashlib.sha256(ENGINE_VERSION.encode())
        for p, nocase in patterns:
            h.update(len(p).to_bytes(4, "big") + p + (b"\x01" if nocase else b"\x00"))
        path = self._dir / f"{h.hexdigest()[:32]}.hsdb" if self._dir else None
        if path is not None and path.exists():
            try:
                return LiteralSet.loads(path.read_bytes(), len(patterns))
            except Exception as exc:  # a damaged cache entry is rebuilt, never fatal
                log.warning("ignoring unreadable rule cache %s: %s", path, exc)
        lits = LiteralSet.compile(patterns)
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".tmp{os.getpid()}")
                tmp.write_bytes(lits.dumps())
                tmp.replace(path)
            except OSError as exc:
                log.warning("cannot write rule cache %s: %s", path, exc)
        return lits
