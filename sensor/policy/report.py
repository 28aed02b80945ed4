"""Tuning numbers from recorded alerts: the ``tune report`` and ``tune replay`` analyses.

Scope: pure functions over EVE alert records (from a file or the Redis stream):

- ``build_report``: noisiest rules, top talkers per rule, would-block counts per rule and
  per asset, rules that never fired (given the rule set), alerts over time, and two lists
  of candidates — for suppression (a noisy rule whose alerts come mostly from one source)
  and for promotion (a quiet rule of severity 1–2 in detect → shadow, shadow → enforce);
- ``replay``: the same alerts judged by the current and by a proposed policy: which rules
  would block under the proposal and which internal hosts that would touch.

Records carrying ``sekimori`` annotations are taken as annotated; a policy passed in
re-judges them (replay always does). Non-goals: printing (cli/tune_cmd.py), HTML
(report_html.py), reading Redis or files.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sensor.policy.engine import PolicyDecider
from sensor.policy.exceptions import _addr as _address
from sensor.policy.model import RuleFacts

NEXT_STAGE = {"detect": "shadow", "shadow": "enforce"}


def eve_time(record: dict[str, Any]) -> float | None:
    try:
        return dt.datetime.strptime(
            str(record.get("timestamp")), "%Y-%m-%dT%H:%M:%S.%f%z"
        ).timestamp()
    except ValueError:
        return None


@dataclass
class RuleStats:
    gid: int
    sid: int
    msg: str
    severity: int
    count: int = 0
    stages: Counter[str] = field(default_factory=Counter)
    sources: Counter[str] = field(default_factory=Counter)
    dests: Counter[str] = field(default_factory=Counter)
    would_block: int = 0

    @property
    def stage(self) -> str:
        return self.stages.most_common(1)[0][0] if self.stages else "-"


@dataclass(frozen=True)
class Report:
    start: float
    end: float
    total: int
    by_stage: dict[str, int]
    rules: list[RuleStats]  # noisiest first
    timeline: list[tuple[float, int]]
    would_block_by_asset: dict[str, int]
    never_fired: list[tuple[int, str]]
    suppress_candidates: list[tuple[RuleStats, str, float]]  # rule, source, its share
    promote_candidates: list[tuple[RuleStats, str, str]]  # rule, from stage, to stage


def _judge(record: dict[str, Any], decider: PolicyDecider | None,
           facts: dict[int, RuleFacts]) -> dict[str, Any] | None:  # fmt: skip
    """The record's sekimori annotation (re-judged by ``decider`` when given); None when the
    policy suppresses it."""
    if decider is None:
        ctx = record.get("sekimori")
        return ctx if isinstance(ctx, dict) else {}
    alert = record.get("alert") or {}
    sid = int(alert.get("signature_id", 0))
    fact = facts.get(sid) or RuleFacts(sid=sid, gid=int(alert.get("gid", 1)),
                                       severity=int(alert.get("severity", 3)))  # fmt: skip
    decision = decider.decide(record, fact, eve_time(record) or 0.0)
    return decision.annotation if decision.keep else None


def build_report(records: Iterable[dict[str, Any]], *, since_s: float, end: float | None = None,
                 facts: dict[int, RuleFacts] | None = None, decider: PolicyDecider | None = None,
                 noisy: int = 50, buckets: int = 24) -> Report:  # fmt: skip
    alerts = [(t, r) for r in records if r.get("event_type", "alert") == "alert"
              and (t := eve_time(r)) is not None]  # fmt: skip
    end = end if end is not None else max((t for t, _ in alerts), default=0.0)
    start = end - since_s
    facts = facts or {}
    stats: dict[tuple[int, int], RuleStats] = {}
    by_stage: Counter[str] = Counter()
    per_asset: Counter[str] = Counter()
    width = max(since_s / buckets, 1.0)
    timeline = [0] * buckets
    total = 0
    for t, rec in sorted(alerts, key=lambda a: a[0]):
        if not start < t <= end:
            continue
        ctx = _judge(rec, decider, facts)
        if ctx is None:
            continue
        total += 1
        alert = rec.get("alert") or {}
        key = (int(alert.get("gid", 1)), int(alert.get("signature_id", 0)))
        s = stats.get(key)
        if s is None:
            s = stats[key] = RuleStats(key[0], key[1], str(alert.get("signature", "")),
                                       int(alert.get("severity", 3)))  # fmt: skip
        s.count += 1
        stage = str(ctx.get("stage", "-"))
        s.stages[stage] += 1
        by_stage[stage] += 1
        s.sources[str(rec.get("src_ip"))] += 1
        s.dests[str(rec.get("dest_ip"))] += 1
        blocked = ctx.get("would_block") or (ctx.get("response") or {}).get("block")
        if blocked and stage in ("shadow", "enforce"):
            s.would_block += 1
            for name in ctx.get("asset_names") or ["(no asset)"]:
                per_asset[str(name)] += 1
        timeline[min(int((t - start) / width), buckets - 1)] += 1
    rules = sorted(stats.values(), key=lambda s: (-s.count, s.sid))
    fired = {int((r.get("alert") or {}).get("signature_id", 0)) for _, r in alerts}
    never = sorted((sid, f.msg) for sid, f in facts.items() if sid not in fired)
    return Report(start, end, total, dict(by_stage), rules,
                  [(start + i * width, n) for i, n in enumerate(timeline)], dict(per_asset),
                  never, _suppress_candidates(rules, noisy), _promote_candidates(rules, noisy))  # fmt: skip


def _suppress_candidates(rules: list[RuleStats], noisy: int) -> list[tuple[RuleStats, str, float]]:
    out = []
    for s in rules:
        if s.count >= noisy:
            src, n = s.sources.most_common(1)[0]
            if n / s.count >= 0.8:
                out.append((s, src, n / s.count))
    return out


def _promote_candidates(rules: list[RuleStats], noisy: int) -> list[tuple[RuleStats, str, str]]:
    return [(s, s.stage, NEXT_STAGE[s.stage]) for s in rules
            if s.stage in NEXT_STAGE and s.severity <= 2 and s.count < noisy]  # fmt: skip


@dataclass
class ReplayRule:
    sid: int
    msg: str
    alerts: int = 0
    old_stage: str = "-"
    new_stage: str = "-"
    blocks: Counter[str] = field(default_factory=Counter)  # address that would be blocked
    resets: int = 0
    internal_hosts: Counter[str] = field(default_factory=Counter)
    suppressed_new: int = 0


def replay(records: Iterable[dict[str, Any]], facts: dict[int, RuleFacts],
           new: PolicyDecider, current: PolicyDecider | None = None) -> list[ReplayRule]:  # fmt: skip
    """Per rule: what the proposal would enforce (blocks, resets, internal hosts touched)."""
    out: dict[int, ReplayRule] = {}
    for rec in sorted(records, key=lambda r: eve_time(r) or 0.0):
        if rec.get("event_type", "alert") != "alert":
            continue
        alert = rec.get("alert") or {}
        sid = int(alert.get("signature_id", 0))
        row = out.setdefault(sid, ReplayRule(sid, str(alert.get("signature", ""))))
        row.alerts += 1
        if current is not None:
            old = _judge(rec, current, facts)
            row.old_stage = str(old.get("stage")) if old else "suppressed"
        ctx = _judge(rec, new, facts)
        if ctx is None:
            row.suppressed_new += 1
            continue
        row.new_stage = str(ctx.get("stage"))
        if row.new_stage != "enforce":
            continue
        response = ctx.get("response") or {}
        if response.get("block"):
            row.blocks[str(response["block"])] += 1
        row.resets += bool(response.get("reset"))
        for end in ("src_ip", "dest_ip"):
            addr = rec.get(end)
            if addr is not None and new.inventory.is_internal(_address(addr)):
                row.internal_hosts[str(addr)] += 1
    return sorted(out.values(), key=lambda r: (-sum(r.blocks.values()), -r.alerts, r.sid))
