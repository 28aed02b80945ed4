"""The records of a tuning policy: stage assignments, exceptions and the asset inventory.

Scope: frozen dataclasses only, plus the small pure helpers that describe them
(``RuleFacts`` from a compiled signature, an exception's identity and expiry). Parsing is
in sensor/policy/loader.py, decisions in sensor/policy/stages.py, exceptions.py and
assets.py. Non-goals: any I/O or runtime state.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass, field
from typing import Any

STAGES = ("detect", "shadow", "enforce")
MODES = ("detect", "prevent")
CRITICALITY = {"low": 1, "medium": 2, "high": 3}
RESPONSES = ("reset", "block")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class RuleFacts:
    """What a stage entry can be matched against, independent of the rule's compiled form."""

    sid: int
    gid: int = 1
    classtype: str | None = None
    severity: int = 3
    file: str = ""
    metadata: tuple[tuple[str, str], ...] = ()  # (key, value), keys lower-case
    action: str = "alert"
    msg: str = ""

    @classmethod
    def from_signature(cls, sig: Any) -> RuleFacts:
        pairs = []
        for item in getattr(sig, "metadata", ()) or ():
            key, _, value = str(item).strip().partition(" ")
            pairs.append((key.strip().lower(), value.strip()))
        return cls(sid=sig.sid, gid=sig.gid, classtype=sig.classtype, severity=sig.severity,
                   file=sig.file, metadata=tuple(pairs), action=sig.action, msg=sig.msg)  # fmt: skip


@dataclass(frozen=True, slots=True)
class StageEntry:
    """One ``[[stage]]`` table: every criterion present must match (AND); values within one
    criterion are alternatives (OR)."""

    stage: str
    origin: str  # "policy.toml:12"
    sids: frozenset[int] = frozenset()
    ranges: tuple[tuple[int, int], ...] = ()
    classtypes: frozenset[str] = frozenset()
    severities: frozenset[int] = frozenset()
    files: tuple[str, ...] = ()  # fnmatch patterns, against the basename and the full path
    metadata: tuple[tuple[str, frozenset[str]], ...] = ()  # key -> accepted values (lower-case)
    response: tuple[str, ...] | None = None  # None: reset (TCP) and block
    owner: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ExceptionMeta:
    """Accountability every exception carries: who asked, why, until when."""

    kind: str  # suppress | threshold | rate_filter | pass
    origin: str  # "policy.toml:30" or "threshold.config:4"
    owner: str
    reason: str
    expires: dt.date | None = None

    def expired(self, today: dt.date) -> bool:
        return self.expires is not None and today > self.expires

    def key(self, detail: str) -> str:
        """A stable identity for hit counting: kind plus what it selects (not its line)."""
        return f"{self.kind}:{detail}"


@dataclass(frozen=True, slots=True)
class Suppression:
    meta: ExceptionMeta
    gid: int
    sid: int  # 0 = every rule of the gid (as Suricata's sig_id 0)
    track: str | None  # None (all alerts of the sid), by_src, by_dst, by_either
    networks: tuple[Network, ...] = ()

    @property
    def key(self) -> str:
        nets = ",".join(str(n) for n in self.networks)
        return self.meta.key(f"{self.gid}:{self.sid}:{self.track or 'all'}:{nets}")


@dataclass(frozen=True, slots=True)
class Threshold:
    """``threshold``/``event_filter``: limit, threshold or both, per track, per window."""

    meta: ExceptionMeta
    gid: int
    sid: int
    type: str  # limit | threshold | both
    track: str  # by_src | by_dst | by_rule | by_both | by_flow
    count: int
    seconds: int

    @property
    def key(self) -> str:
        return self.meta.key(f"{self.gid}:{self.sid}:{self.type}:{self.track}")


@dataclass(frozen=True, slots=True)
class RateFilter:
    """Above ``count`` matches in ``seconds``, the alert's action becomes ``new_action`` for
    ``timeout`` seconds (``pass`` drops the alert)."""

    meta: ExceptionMeta
    gid: int
    sid: int
    track: str
    count: int
    seconds: int
    new_action: str
    timeout: int

    @property
    def key(self) -> str:
        return self.meta.key(f"{self.gid}:{self.sid}:{self.track}:{self.new_action}")


@dataclass(frozen=True, slots=True)
class PassRule:
    """Traffic that never alerts (any rule, or the listed sids): known-good flows."""

    meta: ExceptionMeta
    sids: frozenset[int] = frozenset()
    src: tuple[Network, ...] = ()
    dst: tuple[Network, ...] = ()
    proto: str | None = None
    dst_ports: frozenset[int] = frozenset()

    @property
    def key(self) -> str:
        parts = (sorted(self.sids), [str(n) for n in self.src], [str(n) for n in self.dst],
                 self.proto, sorted(self.dst_ports))  # fmt: skip
        return self.meta.key(repr(parts))


AnyException = Suppression | Threshold | RateFilter | PassRule


@dataclass(frozen=True, slots=True)
class Asset:
    network: Network
    name: str
    criticality: str  # low | medium | high
    owner: str = ""
    role: str = ""
    origin: str = ""


@dataclass(frozen=True, slots=True)
class Policy:
    """A whole policy file, parsed. ``version`` is a hash of its text (and included files)."""

    source: str
    version: str
    mode: str = "detect"
    default_stage: str = "detect"
    stages: tuple[StageEntry, ...] = ()
    suppressions: tuple[Suppression, ...] = ()
    thresholds: tuple[Threshold, ...] = ()
    rate_filters: tuple[RateFilter, ...] = ()
    passes: tuple[PassRule, ...] = ()
    assets: tuple[Asset, ...] = ()
    internal: tuple[Network, ...] = ()  # networks that count as "ours" besides the assets
    hits_file: str | None = None
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def exceptions(self) -> tuple[AnyException, ...]:
        return (*self.suppressions, *self.thresholds, *self.rate_filters, *self.passes)

    @property
    def display(self) -> str:
        return os.path.basename(self.source)
