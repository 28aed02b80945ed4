"""Which stage (detect, shadow, enforce) a rule is in, and which policy line decided it.

Scope: matching a rule's facts (sid, classtype, severity, rule file, metadata) against the
``[[stage]]`` entries; the most specific matching entry wins. Specificity is the sum of the
weights of the criteria an entry uses:

    sid 1000 · sid range 500 (narrower ranges first) · metadata 40 per key ·
    classtype 30 · rule file 20 · severity 10

so a sid beats a range, a range beats any metadata/classtype combination, and an entry
that combines criteria beats one that uses a subset of them. On a tie the later entry in
the file wins (later lines refine earlier ones). No match: the policy's ``default_stage``.

Non-goals: exceptions and priorities (other modules), loading rules.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass

from sensor.policy.model import Policy, RuleFacts, StageEntry

W_SID, W_RANGE, W_METADATA, W_CLASSTYPE, W_FILE, W_SEVERITY = 1000, 500, 40, 30, 20, 10


@dataclass(frozen=True, slots=True)
class StageDecision:
    stage: str
    entry: StageEntry | None  # None: the policy default
    origin: str  # "policy.toml:12" or "policy.toml: default_stage"
    candidates: tuple[tuple[StageEntry, tuple[int, int]], ...] = ()  # every match, best first


def _matches(entry: StageEntry, facts: RuleFacts) -> bool:
    if (entry.sids or entry.ranges) and not (
        facts.sid in entry.sids or any(lo <= facts.sid <= hi for lo, hi in entry.ranges)
    ):
        return False
    if entry.classtypes and (facts.classtype or "").lower() not in entry.classtypes:
        return False
    if entry.severities and facts.severity not in entry.severities:
        return False
    if entry.files:
        base = os.path.basename(facts.file)
        if not any(fnmatch.fnmatch(base, pat) or fnmatch.fnmatch(facts.file, pat)
                   for pat in entry.files):  # fmt: skip
            return False
    for key, wanted in entry.metadata:
        values = {v.lower() for k, v in facts.metadata if k == key}
        if not values & wanted:
            return False
    return True


def specificity(entry: StageEntry, facts: RuleFacts) -> int:
    score = 0
    if facts.sid in entry.sids:
        score += W_SID
    elif entry.ranges:
        score += W_RANGE
    score += W_METADATA * len(entry.metadata)
    score += W_CLASSTYPE * bool(entry.classtypes)
    score += W_FILE * bool(entry.files)
    score += W_SEVERITY * bool(entry.severities)
    return score


def _range_width(entry: StageEntry, facts: RuleFacts) -> int:
    widths = [hi - lo for lo, hi in entry.ranges if lo <= facts.sid <= hi]
    return min(widths) if widths else 0


def decide_stage(policy: Policy, facts: RuleFacts) -> StageDecision:
    scored = []
    for index, entry in enumerate(policy.stages):
        if _matches(entry, facts):
            # Higher specificity, then narrower range, then later in the file.
            scored.append((entry, (specificity(entry, facts), -_range_width(entry, facts)), index))
    if not scored:
        return StageDecision(policy.default_stage, None, f"{policy.display}: default_stage")
    scored.sort(key=lambda t: (t[1], t[2]), reverse=True)
    best = scored[0][0]
    return StageDecision(best.stage, best, best.origin,
                         tuple((entry, score) for entry, score, _ in scored))  # fmt: skip


def describe_entry(entry: StageEntry) -> str:
    """The entry's criteria as one short line, for ``policy explain``."""
    parts = []
    if entry.sids:
        parts.append("sid " + ",".join(str(s) for s in sorted(entry.sids)))
    if entry.ranges:
        parts.append("sid " + ",".join(f"{lo}-{hi}" for lo, hi in entry.ranges))
    if entry.classtypes:
        parts.append("classtype " + ",".join(sorted(entry.classtypes)))
    if entry.severities:
        parts.append("severity " + ",".join(str(s) for s in sorted(entry.severities)))
    if entry.files:
        parts.append("file " + ",".join(entry.files))
    for key, values in entry.metadata:
        parts.append(f"metadata {key}=" + "|".join(sorted(values)))
    return " and ".join(parts)
