"""The policy as the pipeline's AlertPolicy: stage, priority, assets, evidence, exceptions.

Scope: ``PolicyDecider`` applies one parsed policy to one alert record (used live and by
``tune replay``/``tune report`` on recorded alerts); ``PolicyEngine`` is the
``sensor.extensions.AlertPolicy`` the sensor runs: it re-reads the policy file when its
modification time changes (checked at most once a second, so stages change without a
restart; a policy that fails to load is logged and the running one kept) and records which
exceptions fired in a small JSON hits file for ``sekimori tune``.

What an alert gets, under ``record["sekimori"]`` (the contract is in docs/policy.md):
``stage``, ``mode`` (``prevent`` only for stage enforce under a prevent policy),
``policy_mode``, ``stage_origin``, ``policy_version``, ``priority``, ``priority_score``,
``assets``, ``asset_names``, ``response`` (what enforcing would do), ``would_reset`` and
``would_block`` (set for shadow and enforce), ``rate_filter`` when one changed the action.

Non-goals: acting (responders do, only for stage enforce in mode prevent), parsing.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from sensor.errors import SekimoriError
from sensor.policy.assets import Inventory, asset_dict, priority
from sensor.policy.exceptions import AlertView, ExceptionState, Verdict, view_of
from sensor.policy.loader import load_policy
from sensor.policy.model import AnyException, Policy, RuleFacts
from sensor.policy.stages import StageDecision, decide_stage

log = logging.getLogger("sekimori.policy")
RELOAD_CHECK_S = 1.0
HITS_FLUSH_S = 60.0


@dataclass(frozen=True, slots=True)
class Decision:
    keep: bool
    suppressed_by: AnyException | None
    annotation: dict[str, Any]


class PolicyDecider:
    """One policy version with its exception windows and per-rule stage cache."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.inventory = Inventory.of(policy)
        self.exceptions = ExceptionState(policy)
        self._stages: dict[tuple[int, int], StageDecision] = {}

    def stage_of(self, facts: RuleFacts) -> StageDecision:
        key = (facts.gid, facts.sid)
        found = self._stages.get(key)
        if found is None:
            found = self._stages[key] = decide_stage(self.policy, facts)
        return found

    def decide(self, record: dict[str, Any], facts: RuleFacts, ts: float,
               today: dt.date | None = None) -> Decision:  # fmt: skip
        view = view_of(record, ts)
        verdict = self.exceptions.check(view, today or dt.date.today())
        if verdict.suppressed_by is not None:
            return Decision(False, verdict.suppressed_by, {})
        return Decision(True, None, self._annotation(record, facts, view, verdict))

    def _annotation(self, record: dict[str, Any], facts: RuleFacts, view: AlertView,
                    verdict: Verdict) -> dict[str, Any]:  # fmt: skip
        stage = self.stage_of(facts)
        src, dst = self.inventory.lookup(view.src), self.inventory.lookup(view.dst)
        score, label = priority(facts.severity, src, dst)
        enforced = stage.stage == "enforce" and self.policy.mode == "prevent"
        wanted = (
            stage.entry.response if stage.entry and stage.entry.response else ("reset", "block")
        )
        reset = "reset" in wanted and view.proto == "tcp"
        block = self._block_target(record, view) if "block" in wanted else None
        out: dict[str, Any] = {
            # mode is per alert: prevent only for an enforced rule under a prevent policy, so
            # responders that follow the sensor's mode act exactly on enforced rules.
            "stage": stage.stage, "policy_mode": self.policy.mode,
            "mode": "prevent" if enforced else "detect", "stage_origin": stage.origin,
            "policy_version": self.policy.version, "priority": label, "priority_score": score,
            "assets": {"src": asset_dict(src), "dest": asset_dict(dst)},
            "asset_names": [a.name for a in (src, dst) if a is not None],
            "response": {"reset": reset, "block": block},
        }  # fmt: skip
        acting = stage.stage in ("shadow", "enforce")
        if verdict.rate_action is not None and verdict.rate_filter is not None:
            out["rate_filter"] = {"new_action": verdict.rate_action,
                                  "origin": verdict.rate_filter.meta.origin}  # fmt: skip
            if verdict.rate_action in ("drop", "reject"):
                acting = True
        out["would_reset"] = reset if acting else False
        out["would_block"] = block if acting else None
        return out

    def _block_target(self, record: dict[str, Any], view: AlertView) -> str | None:
        alert = record.get("alert") or {}
        source = alert.get("source")
        if isinstance(source, dict) and source.get("ip"):  # the rule said who the target is
            return str(source["ip"])
        src_in, dst_in = self.inventory.is_internal(view.src), self.inventory.is_internal(view.dst)
        if src_in and not dst_in:
            return record.get("dest_ip")
        return record.get("src_ip")


def _merge_sekimori(record: dict[str, Any], annotation: dict[str, Any]) -> None:
    ctx = record.get("sekimori")
    if not isinstance(ctx, dict):
        ctx = record["sekimori"] = {}
    ctx.update(annotation)


class PolicyEngine:
    """The AlertPolicy registered in sensor/extensions.py ``build_extensions``."""

    def __init__(self, path: str, *, address_groups: dict[str, str] | None = None,
                 hits_file: str | None = None) -> None:  # fmt: skip
        self.path = path
        self._groups = address_groups
        self._stamp = self._file_stamp()
        self.decider = PolicyDecider(load_policy(path, address_groups))
        self._default_hits = hits_file
        self._next_check = time.monotonic() + RELOAD_CHECK_S
        self._flushed: dict[str, int] = {}
        self._next_flush = 0.0
        for warning in self.decider.policy.warnings:
            log.warning("%s", warning)

    @property
    def policy(self) -> Policy:
        return self.decider.policy

    @property
    def hits_file(self) -> str | None:
        return self.policy.hits_file or self._default_hits

    def annotate(self, event: Any) -> bool:
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + RELOAD_CHECK_S
            self.reload_if_changed()
        p = event.packet
        decision = self.decider.decide(event.record, RuleFacts.from_signature(event.signature),
                                       p.ts_sec + p.ts_usec / 1e6)  # fmt: skip
        if decision.suppressed_by is not None or "rate_filter" in decision.annotation:
            self._maybe_flush(now, decision.suppressed_by)
        if decision.keep:
            _merge_sekimori(event.record, decision.annotation)
        return decision.keep

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def reload_if_changed(self) -> bool:
        """Load the policy again if its file changed; keep the running one if that fails."""
        stamp = self._file_stamp()
        if stamp is None or stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            policy = load_policy(self.path, self._groups)
        except SekimoriError as exc:
            log.error("policy not reloaded, keeping version %s: %s", self.policy.version, exc)
            return False
        self.flush_hits()
        self.decider = PolicyDecider(policy)
        self._flushed = {}
        log.info("policy %s reloaded: version %s", self.path, policy.version)
        return True

    def _maybe_flush(self, now: float, exc: AnyException | None) -> None:
        first = exc is not None and exc.key not in self._flushed
        if first or now >= self._next_flush:
            self.flush_hits()
            self._next_flush = now + HITS_FLUSH_S

    def flush_hits(self) -> None:
        """Merge the exception hit counts into the hits file (best effort, never raises)."""
        path = self.hits_file
        hits = self.decider.exceptions.hits
        changed = [(k, h.count) for k, h in hits.items() if h.count != self._flushed.get(k)]
        if not path or not changed:
            return
        try:
            stored = read_hits(path)
            wall = time.time()
            for key, count in changed:
                entry = stored.setdefault(key, {"count": 0, "last_seen": 0.0})
                entry["count"] = int(entry.get("count", 0)) + count - self._flushed.get(key, 0)
                entry["last_seen"] = wall
                self._flushed[key] = count
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            tmp = f"{path}.tmp{os.getpid()}"
            with open(tmp, "w", encoding="utf-8") as handle:
                json.dump(stored, handle, indent=1, sort_keys=True)
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("cannot write policy hits file %s: %s", path, exc)

    def tick(self, now_sec: float, counters: Any = None) -> None:
        """Ticker hook (about once a second and at close): reload check, flush the hits."""
        self.reload_if_changed()
        if self.decider.exceptions.hits:
            self.flush_hits()

    def close(self) -> None:
        self.flush_hits()


def read_hits(path: str) -> dict[str, dict[str, Any]]:
    """The hits file as {exception key: {"count", "last_seen"}}; {} when absent or unreadable."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
