"""BlockManager: alert → safety rails → ledger → block responders, and the reconcile loop.

Scope: the entry points the responder service calls, :meth:`BlockManager.handle_alert`
(one alert, ``enforce`` as the response policy decided; returns one Outcome per target, or
one ``blocks`` Outcome saying why nothing was blocked) and :meth:`BlockManager.reconcile_once`
(expire due blocks, count coalesced hits, replay decisions queued during a Redis outage,
make every target agree with the ledger, write drift/enforcement stats). Plus the manual
operations behind ``sekimori blocks`` (add, remove with an optional pinned allow, flush).

Failure behaviour (docs/blocking.md): Redis unreachable → decisions queue in memory
(bounded) and are written when Redis answers; with ``on-redis-down = "enforce"`` they are
also pushed to the targets at once (first ladder step). A target that fails keeps its
ledger block; the next reconcile pass repairs it. Nothing here ever flushes a firewall.
Non-goals: reading the bus (responders/service.py), firewall specifics (builtin/*).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from responders.block_config import BlockConfig, format_duration, parse_blocks
from responders.ledger import Block, Ledger, new_block_id
from responders.plugin import (
    DONE,
    FAILED,
    SKIPPED,
    BlockRequest,
    BlockResponder,
    Outcome,
    load_plugins,
)
from responders.reconcile import Caller, ReconcileReport, reconcile_target
from responders.safety import (
    Candidate,
    Coalescer,
    build_protected,
    candidate_from_alert,
    refusal,
    target_failed_alert,
    trip_alert,
)
from sensor.errors import BusError, ResponderError

log = logging.getLogger(__name__)
NAME = "blocks"


def builtin_block_responders() -> dict[str, type[BlockResponder]]:
    from responders.builtin.ipset import IpsetResponder
    from responders.builtin.nftables import NftablesResponder

    return {"nftables": NftablesResponder, "ipset": IpsetResponder}


def build_responders(cfg: BlockConfig) -> dict[str, BlockResponder]:
    """One configured instance per ``cfg.targets`` entry (built-ins or entry points)."""
    found = load_plugins(builtin_block_responders())
    out: dict[str, BlockResponder] = {}
    for name in cfg.targets:
        cls = found.get(name)
        if cls is None or not issubclass(cls, BlockResponder):
            raise ResponderError(
                f"blocks.targets: {name!r} is not a block responder "
                f"(known: {', '.join(sorted(found))})"
            )
        table = {"lease": cfg.lease_s, "jitter": cfg.jitter_s, **cfg.target_config(name)}
        out[name] = cls(table)
    return out


def _skip(reason: str, **details: Any) -> list[Outcome]:
    return [Outcome(NAME, SKIPPED, reason, details)]


# Reconcile passes in a row a target may fail before it is reported as down.
FAILING_PASSES = 3


class BlockManager:
    """Owns the ledger, the safety rails and the block responders of one process."""

    def __init__(
        self,
        cfg: BlockConfig,
        responders: Mapping[str, BlockResponder] | None = None,
        *,
        client: Any = None,
        own_addresses: tuple[str, ...] | None = None,
    ) -> None:
        self.cfg = cfg
        self.ledger = Ledger(cfg, client)
        self.responders = dict(responders) if responders is not None else build_responders(cfg)
        self.protected = build_protected(cfg, own_addresses)
        self.coalescer = Coalescer(cfg.coalesce_s)
        self.caller = Caller(cfg.call_timeout_s)
        self.queue: deque[Candidate] = deque(maxlen=cfg.queue_max)
        self.counters: dict[str, int] = {}
        self.reports: dict[str, ReconcileReport] = {}
        # consecutive reconcile passes in which each target failed, and which are reported
        self._failing: dict[str, int] = {}
        self._reported_down: set[str] = set()
        self._paused_until = 0.0
        self._pins: tuple[float, dict[str, Any]] = (0.0, {})
        self._ledger_id: str | None = None

    @classmethod
    def from_table(cls, table: Mapping[str, Any], **kwargs: Any) -> BlockManager:
        """From a parsed ``[blocks]`` TOML table."""
        return cls(parse_blocks(table), **kwargs)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start every target (tables, sets) and make it agree with the ledger."""
        for name, responder in self.responders.items():
            self.caller.call(f"{name}: start", responder.start)
        self.reconcile_once()

    def stop(self) -> None:
        """Stop the targets; their entries stay until their timeouts (fail-open)."""
        for name, responder in self.responders.items():
            try:
                self.caller.call(f"{name}: stop", responder.stop)
            except ResponderError as exc:
                log.warning("blocks: %s", exc)
        self.caller.close()

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    # -- alerts --------------------------------------------------------------------------

    def handle_alert(self, alert: Mapping[str, Any], enforce: bool) -> list[Outcome]:
        """Decide and, when allowed, block the alert's attacker. Never raises for Redis or
        firewall trouble: the outcomes say what happened."""
        if not self.cfg.enabled:
            return _skip("blocking is disabled (blocks.enabled = false)")
        trigger = self._trigger(alert)
        if trigger is None:
            return _skip("rule action does not block (blocks.actions / blocks.sids)")
        cand = candidate_from_alert(alert, self.cfg)
        if isinstance(cand, str):
            return _skip(cand)
        now = time.time()
        if self.coalescer.repeat(cand.cidr, now):
            self._count("coalesced")
            return _skip(
                f"coalesced: {cand.cidr} decided within {self.cfg.coalesce_s:g} s", cidr=cand.cidr
            )
        try:
            return self._decide(cand, enforce, now)
        except BusError as exc:
            return self._ledger_down(cand, enforce, exc)

    def _trigger(self, alert: Mapping[str, Any]) -> str | None:
        inner = alert.get("alert") if isinstance(alert.get("alert"), Mapping) else {}
        ctx = alert.get("sekimori") if isinstance(alert.get("sekimori"), Mapping) else {}
        assert isinstance(inner, Mapping) and isinstance(ctx, Mapping)
        action = ctx.get("rule_action")
        if not isinstance(action, str):  # Suricata's own alerts: "blocked" = drop/reject rule
            action = "drop" if inner.get("action") == "blocked" else None
        if action is not None and action.lower() in self.cfg.actions:
            return f"rule action {action}"
        sid = inner.get("signature_id")
        return f"sid {sid}" if isinstance(sid, int) and sid in self.cfg.sids else None

    def _decide(self, cand: Candidate, enforce: bool, now: float) -> list[Outcome]:
        why = refusal(cand, self.protected, self._allows(now), self.cfg)
        if why is not None:
            self._count("refused")
            self.ledger.record_refusal(cand.cidr, why, cand.evidence)
            self.ledger.event("refused", cand.cidr, why, sid=cand.sid, flow_id=cand.flow_id)
            return _skip(f"refused: {why}", cidr=cand.cidr)
        if not enforce or self.cfg.dry_run:
            self._count("would_block")
            mode = "dry run" if self.cfg.dry_run else "detect mode"
            self.ledger.event("would_block", cand.cidr, f"{mode}: {cand.reason}", sid=cand.sid)
            return _skip(f"would_block {cand.cidr} ({mode})", cidr=cand.cidr)
        if now < self._paused_until:
            self._count("paused")
            return _skip("blocking paused (detect-only) by a safety limit", cidr=cand.cidr)
        result = self.ledger.upsert(self._block_of(cand, now), cand.subnet, now)
        if result.status == "exists":
            self._count("existing")
            return [
                Outcome(
                    NAME,
                    DONE,
                    f"{cand.cidr} already blocked",
                    {"block_id": result.detail, "cidr": cand.cidr},
                )
            ]
        if result.status in ("paused", "tripped"):
            self._paused_until = now + min(5.0, self.cfg.pause_s)  # re-ask Redis now and then
            self._count(result.status)
            if result.status == "tripped":
                self._raise_pause_alert(result.detail, cand)
            self.ledger.event("paused", cand.cidr, result.detail)
            return _skip(f"blocking paused (detect-only): {result.detail}", cidr=cand.cidr)
        self._count("created")
        block = self.ledger.get(cand.cidr)
        assert block is not None
        self.ledger.event(
            "created",
            cand.cidr,
            cand.reason,
            block_id=block.block_id,
            level=block.level,
            expires=block.expires,
        )
        return self._push(block)

    def _block_of(self, cand: Candidate, now: float) -> Block:
        return Block(
            block_id=new_block_id(),
            cidr=cand.cidr,
            reason=cand.reason,
            origin="alert",
            created=now,
            expires=None,
            sid=cand.sid,
            gid=cand.gid,
            rev=cand.rev,
            ruleset=cand.ruleset,
            flow_id=cand.flow_id,
            sensor=cand.sensor,
            first_evidence=cand.evidence,
            last_evidence=cand.evidence,
        )

    def _allows(self, now: float) -> dict[str, Any]:
        fetched, pins = self._pins
        if now - fetched > 1.0:  # pins change by hand: a second's staleness is fine
            pins = self.ledger.allows(now)
            self._pins = (now, pins)
        return pins

    def _raise_pause_alert(self, reason: str, cand: Candidate) -> None:
        log.error(
            "blocks: safety limit tripped, blocking paused for %s: %s",
            format_duration(self.cfg.pause_s),
            reason,
        )
        self.ledger.event("tripped", cand.cidr, reason, pause_s=self.cfg.pause_s)
        self.ledger.publish_alert(self.cfg.alert_stream, trip_alert(reason, self.cfg))

    def _push(self, block: Block) -> list[Outcome]:
        """Enforce one ledger block on every target; record their object ids."""
        request = BlockRequest(
            cidr=block.cidr,
            expires_at=block.expires,
            reason=block.reason,
            block_id=block.block_id,
            provenance={"sid": block.sid, "flow_id": block.flow_id},
        )
        outcomes = []
        for name, responder in self.responders.items():
            started = time.monotonic()
            try:
                outcome = self.caller.call(f"{name}: block {block.cidr}", responder.block, request)
            except ResponderError as exc:
                self._count("target_failed")
                outcome = Outcome(
                    name,
                    FAILED,
                    f"{exc}; the ledger keeps the block and the next reconcile pass retries",
                    {"cidr": block.cidr},
                    (time.monotonic() - started) * 1000,
                )
            else:
                obj = outcome.details.get("object") if outcome.details else None
                if obj:
                    try:
                        self.ledger.set_target(block.cidr, name, str(obj))
                    except BusError as exc:
                        log.warning("blocks: %s", exc)
            outcomes.append(outcome)
        return outcomes or [Outcome(NAME, DONE, f"{block.cidr} in the ledger (no targets)")]

    def _ledger_down(self, cand: Candidate, enforce: bool, exc: BusError) -> list[Outcome]:
        self._count("queued")
        self.coalescer.forget(cand.cidr)
        if not enforce or self.cfg.dry_run:
            return [Outcome(NAME, FAILED, f"ledger unreachable, nothing recorded: {exc}")]
        self.queue.append(cand)
        outcomes = [Outcome(NAME, FAILED, f"ledger unreachable, decision queued: {exc}")]
        if self.cfg.on_redis_down == "enforce" and self.protected.match(cand.cidr) is None:
            now = time.time()
            block = Block(
                block_id=new_block_id(),
                cidr=cand.cidr,
                reason=cand.reason,
                origin="alert",
                created=now,
                expires=now + self.cfg.ladder[0],
            )
            outcomes += self._push(block)
        return outcomes

    # -- reconciliation ------------------------------------------------------------------

    def reconcile_once(self) -> dict[str, ReconcileReport]:
        """One pass; when Redis is unreachable, targets are left exactly as they are."""
        now = time.time()
        try:
            lost = self._check_ledger_identity()
            self._replay_queue()
            self.ledger.add_hits(self.coalescer.take_hits(), now)
            for cidr in self.ledger.due(now):
                if self.ledger.end(cidr, "expired", "ttl reached", now) is not None:
                    self.ledger.event("expired", cidr, "ttl reached")
            blocks = self.ledger.active_blocks(now)
        except BusError as exc:
            log.warning("blocks: reconcile skipped, firewalls left as they are: %s", exc)
            self._count("reconcile_skipped")
            return {}
        wanted = {
            b.cidr: BlockRequest(
                cidr=b.cidr, expires_at=b.expires, reason=b.reason, block_id=b.block_id
            )
            for b in blocks
        }
        margin = 2 * self.cfg.reconcile_interval_s + 5.0
        for name, responder in self.responders.items():
            report = reconcile_target(
                name, responder, self.caller, wanted, now=now, margin_s=margin, ledger_lost=lost
            )
            self.reports[name] = report
            self._track_target_health(name, report)
            if report.adopted:
                self._adopt(name, report.adopted, now)
            try:
                self.ledger.write_stats(name, report.stats())
            except BusError as exc:
                log.warning("blocks: %s", exc)
        return dict(self.reports)

    def _track_target_health(self, name: str, report: ReconcileReport) -> None:
        """A target failing FAILING_PASSES reconcile passes in a row is reported once: an
        event in the ledger and a severity-1 alert (other targets carry on regardless);
        its recovery is recorded too."""
        if report.failed or report.errors:
            self._failing[name] = self._failing.get(name, 0) + 1
        else:
            self._failing.pop(name, None)
            if name in self._reported_down:
                self._reported_down.discard(name)
                self._count("target_recovered")
                self._safe(lambda: self.ledger.event("target_recovered", "-", name))
            return
        if self._failing[name] < FAILING_PASSES or name in self._reported_down:
            return
        self._reported_down.add(name)
        self._count("target_failed")
        why = "; ".join(report.errors[:2]) or f"{report.failed} entries could not be applied"
        log.error("blocks: target %s failing for %d passes: %s", name, self._failing[name], why)
        alert = target_failed_alert(name, why, self.cfg)
        self._safe(lambda: self.ledger.event("target_failed", "-", name, errors=why))
        self._safe(lambda: self.ledger.publish_alert(self.cfg.alert_stream, alert))

    def _safe(self, call: Callable[[], object]) -> None:
        try:
            call()
        except BusError as exc:
            log.warning("blocks: %s", exc)

    def _check_ledger_identity(self) -> bool:
        """True when the ledger we knew has vanished (Redis came back empty)."""
        current = self.ledger.meta_id()
        lost = self._ledger_id is not None and current is None
        if lost:
            log.error("blocks: the ledger in Redis is gone; keeping (adopting) firewall entries")
        self._ledger_id = self.ledger.ensure_meta()
        return lost

    def _adopt(self, target: str, cidrs: tuple[str, ...], now: float) -> None:
        listing = self.responders[target].list_blocks()
        for cidr in cidrs:
            expiry = listing.get(cidr)
            self.ledger.put(
                Block(
                    block_id=new_block_id(),
                    cidr=cidr,
                    origin="recovered",
                    reason=f"recovered from {target} after the ledger was lost",
                    created=now,
                    expires=expiry,
                    targets={target: cidr},
                )
            )
            self.ledger.event("recovered", cidr, f"adopted from {target}")

    def _replay_queue(self) -> None:
        while self.queue:
            cand = self.queue[0]
            self._decide(cand, True, time.time())  # BusError: stays queued
            self.queue.popleft()

    # -- manual operations (sekimori blocks) ---------------------------------------------

    def add(self, cidr: str, ttl_s: float | None, reason: str, by: str) -> Block:
        """A manual block (no rate limits or handshake rule; protected addresses still win)."""
        hit = self.protected.match(cidr)
        if hit is not None:
            raise ResponderError(f"{cidr} is protected ({hit}); nothing blocks it")
        now = time.time()
        block = Block(
            block_id=new_block_id(),
            cidr=cidr,
            reason=reason,
            origin="manual",
            created=now,
            expires=None if ttl_s is None else now + ttl_s,
            first_evidence={"by": by},
        )
        self.ledger.put(block)
        self._pins = (0.0, {})
        self.ledger.event("added", cidr, reason, by=by, ttl=ttl_s)
        return block

    def remove(
        self, cidr: str, reason: str, by: str, pin_s: float | None = None, pin: bool = False
    ) -> Block | None:
        """Manual unblock (recorded); ``pin`` also keeps it from being blocked again."""
        now = time.time()
        ended = self.ledger.end(cidr, "removed", f"{reason} (by {by})", now)
        self._pins = (0.0, {})  # our own change is seen at once (others': within a second)
        self.coalescer.forget(cidr)
        if pin:
            self.ledger.pin_allow(cidr, reason, by, None if pin_s is None else now + pin_s)
        self.ledger.event("removed", cidr, reason, by=by, pinned=pin)
        return ended

    def flush(self, reason: str, by: str) -> int:
        """End every active block (recorded one by one); targets follow on reconcile."""
        now = time.time()
        cidrs = list(self.ledger.active(now)) + self.ledger.due(now)
        return sum(1 for c in cidrs if self.remove(c, reason, by) is not None)
