"""The asset inventory (CIDR → name, criticality, owner, role) and alert priority.

Scope: longest-prefix lookup of an address, and ``priority``: the rule's severity score
(severity 1 → 3, 2 → 2, 3 and above → 1) times the highest criticality of the two ends
(high 3, medium 2, low 1; an address not in the inventory counts as low), bucketed as

    score ≥ 6 → high · 3–4 → medium · 1–2 → low

so a severity-1 alert on a medium or high asset is high, and so is a severity-2 alert on a
high asset; a severity-1 alert between unknown hosts is medium. Also which end of an alert
is "external" (neither an asset nor in the policy's ``internal`` networks): the address a
block would target.

Non-goals: discovering assets; anything per packet (this runs per alert).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from sensor.policy.model import CRITICALITY, Asset, Network, Policy

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_CACHE_LIMIT = 65_536


def severity_score(severity: int) -> int:
    return 3 if severity <= 1 else 2 if severity == 2 else 1


def priority_label(score: int) -> str:
    return "high" if score >= 6 else "medium" if score >= 3 else "low"


PRIORITY_RANK = {"high": 1, "medium": 2, "low": 3}


@dataclass
class Inventory:
    """Longest-prefix lookups over the policy's assets, cached per address."""

    assets: tuple[Asset, ...]
    internal: tuple[Network, ...] = ()
    _cache: dict[Address, Asset | None] = field(default_factory=dict)

    @classmethod
    def of(cls, policy: Policy) -> Inventory:
        ordered = sorted(policy.assets, key=lambda a: a.network.prefixlen, reverse=True)
        return cls(tuple(ordered), policy.internal)

    def lookup(self, addr: Address | None) -> Asset | None:
        if addr is None:
            return None
        if addr in self._cache:
            return self._cache[addr]
        found = next((a for a in self.assets
                      if a.network.version == addr.version and addr in a.network), None)  # fmt: skip
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[addr] = found
        return found

    def is_internal(self, addr: Address | None) -> bool:
        if addr is None:
            return False
        if self.lookup(addr) is not None:
            return True
        return any(addr.version == n.version and addr in n for n in self.internal)


def priority(severity: int, *assets: Asset | None) -> tuple[int, str]:
    crit = max((CRITICALITY[a.criticality] for a in assets if a is not None), default=1)
    score = severity_score(severity) * crit
    return score, priority_label(score)


def asset_dict(asset: Asset | None) -> dict[str, str] | None:
    if asset is None:
        return None
    return {"name": asset.name, "criticality": asset.criticality, "owner": asset.owner,
            "role": asset.role, "cidr": str(asset.network)}  # fmt: skip
