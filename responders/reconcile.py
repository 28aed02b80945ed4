"""Make one firewall agree with the ledger: add what is missing, remove what is not ours to
keep, re-assert timeouts before they lapse, and report drift and enforcement.

Scope: :func:`reconcile_target` (one pass over one block responder, given the ledger's
active blocks), :func:`element_timeout` (the timeout a responder puts on an entry: the
ledger's remaining time, capped at a lease plus random jitter so a batch created together
does not lapse, or get refreshed, in the same second), and :class:`Caller` (every
responder call isolated, with a timeout, its failure turned into a ResponderError).

Rules: entries are removed only from the responder's own set (``list_blocks`` lists only
those); when the ledger looks lost (its identity key vanished, e.g. Redis came back empty)
nothing is removed: the caller adopts the firewall's entries instead of flushing them.
Non-goals: reading Redis (blocking.py passes the snapshot) and scheduling the passes.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, TypeVar

from responders.plugin import BlockRequest, BlockResponder
from sensor.errors import ResponderError

T = TypeVar("T")
EXPIRY_TOLERANCE_S = 3.0  # firewalls report expiry in whole seconds; ignore smaller skew


def element_timeout(
    expires_at: float | None,
    now: float,
    lease_s: float,
    jitter_s: float,
    rng: random.Random | None = None,
) -> int:
    """Whole seconds for a firewall entry: the ledger's remaining time, at most a lease
    (plus up to ``jitter_s`` random seconds). At least 1."""
    remaining = math.inf if expires_at is None else expires_at - now
    lease = lease_s + (rng or random).uniform(0.0, jitter_s)
    return max(1, math.ceil(min(remaining, lease)))


class Caller:
    """Runs responder calls one at a time in a worker thread with a timeout.

    A call that hangs past its timeout is abandoned (its thread finishes on its own) and
    reported as a ResponderError; a call that raises is reported the same way.
    """

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sekimori-block")

    def call(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        future = self._pool.submit(fn, *args)
        try:
            return future.result(timeout=self.timeout_s)
        except FutureTimeout as exc:
            raise ResponderError(f"{what}: no answer within {self.timeout_s:g} s") from exc
        except ResponderError:
            raise
        except Exception as exc:
            raise ResponderError(f"{what}: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True)
class ReconcileReport:
    """One pass over one target. ``enforcement`` is measured before repairs."""

    target: str
    desired: int  # active blocks in the ledger
    present: int  # of those, present on the target before the pass
    added: int = 0
    removed: int = 0  # expired or unknown entries taken out of the target's own set
    refreshed: int = 0  # timeouts re-asserted
    failed: int = 0
    adopted: tuple[str, ...] = ()  # entries kept because the ledger was lost
    errors: tuple[str, ...] = ()
    at: float = field(default_factory=time.time)

    @property
    def enforcement(self) -> float:
        return 1.0 if self.desired == 0 else self.present / self.desired

    @property
    def drift(self) -> int:
        return (self.desired - self.present) + self.removed + self.refreshed

    def stats(self) -> dict[str, Any]:
        return {
            "desired": self.desired,
            "present": self.present,
            "added": self.added,
            "removed": self.removed,
            "refreshed": self.refreshed,
            "failed": self.failed,
            "drift": self.drift,
            "enforcement": round(self.enforcement, 4),
            "adopted": len(self.adopted),
            "errors": list(self.errors[:5]),
            "at": self.at,
        }


def _needs_refresh(
    actual: float | None, desired: float | None, now: float, margin_s: float, can_expire: bool
) -> bool:
    if not can_expire:
        return False
    if actual is None:
        return desired is not None  # an entry that never lapses for a block that does
    if desired is not None and actual > desired + EXPIRY_TOLERANCE_S:
        return True  # the firewall would outlive the ledger
    ends_first = desired is None or actual < desired - EXPIRY_TOLERANCE_S
    return ends_first and actual - now < margin_s


def reconcile_target(
    name: str,
    responder: BlockResponder,
    caller: Caller,
    wanted: Mapping[str, BlockRequest],
    *,
    now: float,
    margin_s: float,
    ledger_lost: bool = False,
) -> ReconcileReport:
    """One pass: make ``responder``'s own entries equal ``wanted`` (cidr → request)."""
    errors: list[str] = []
    try:
        actual = dict(caller.call(f"{name}: listing entries", responder.list_blocks))
    except ResponderError as exc:
        return ReconcileReport(name, len(wanted), 0, failed=1, errors=(str(exc),), at=now)
    present = sum(1 for cidr in wanted if cidr in actual)
    missing = [req for cidr, req in wanted.items() if cidr not in actual]
    stale = [
        req
        for cidr, req in wanted.items()
        if cidr in actual
        and _needs_refresh(actual[cidr], req.expires_at, now, margin_s, responder.can_expire)
    ]
    strays = [cidr for cidr in actual if cidr not in wanted]
    adopted: tuple[str, ...] = ()
    if ledger_lost:
        adopted, strays = tuple(strays), []
    added, failed_add = _apply(name, responder, caller, "block", missing, errors)
    refreshed, failed_ref = _apply(name, responder, caller, "block", stale, errors)
    stray_reqs = [
        BlockRequest(cidr=c, expires_at=None, reason="not in the ledger", block_id="")
        for c in strays
    ]
    removed, failed_rm = _apply(name, responder, caller, "unblock", stray_reqs, errors)
    return ReconcileReport(
        target=name,
        desired=len(wanted),
        present=present,
        added=added,
        removed=removed,
        refreshed=refreshed,
        failed=failed_add + failed_ref + failed_rm,
        adopted=adopted,
        errors=tuple(errors),
        at=now,
    )


def _apply(
    name: str,
    responder: BlockResponder,
    caller: Caller,
    verb: str,
    requests: Sequence[BlockRequest],
    errors: list[str],
) -> tuple[int, int]:
    """Run ``verb`` for every request (batched when the responder offers ``<verb>_many``);
    (done, failed)."""
    if not requests:
        return 0, 0
    many = getattr(responder, f"{verb}_many", None)
    if callable(many):
        try:
            caller.call(f"{name}: {verb} {len(requests)} entries", many, list(requests))
            return len(requests), 0
        except ResponderError as exc:
            errors.append(str(exc))  # fall back to one call each: isolate the bad entry
    done = failed = 0
    for req in requests:
        try:
            outcome = caller.call(f"{name}: {verb} {req.cidr}", getattr(responder, verb), req)
        except ResponderError as exc:
            errors.append(str(exc))
            failed += 1
            continue
        if getattr(outcome, "status", "done") == "failed":
            errors.append(f"{name}: {verb} {req.cidr}: {getattr(outcome, 'reason', '')}")
            failed += 1
        else:
            done += 1
    return done, failed
