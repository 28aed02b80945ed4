"""Acting on an alert at most once per idempotency key, across consumers and restarts.

Scope: :class:`IdempotencyGuard` wraps an action with a Redis key per alert: ``SET key
pending:<owner> NX PX lease`` before the action, ``SET key done EX ttl`` after it. Whoever
gets the key acts; a later delivery of the same alert (redelivery after a crash, XAUTOCLAIM,
a replayed duplicate, the same alert on a second source) finds ``done`` and is only
acknowledged. If the action fails the key is deleted so a redelivery retries it; if the
consumer dies mid-action the lease expires, so the consumer that claims the entry (after
the same idle time) can act.

Non-goals: exactly-once side effects. A consumer that dies after acting and before writing
``done`` leaves the alert to be acted on again (at-least-once): actions should themselves be
safe to repeat (a block of an address already blocked is a no-op).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from typing import Any

from responders.bus_message import BusMessage

log = logging.getLogger(__name__)

DONE = b"done"


class Outcome(enum.Enum):
    HANDLED = "handled"  # the action ran and succeeded
    DUPLICATE = "duplicate"  # someone already handled this alert
    BUSY = "busy"  # someone is handling it right now
    FAILED = "failed"  # the action raised; left for redelivery


class IdempotencyGuard:
    """Runs actions under per-alert keys in Redis."""

    def __init__(self, client: Any, *, prefix: str, owner: str, lease_ms: int, ttl_s: int):
        self._client = client
        self.prefix = prefix
        self.owner = owner
        self.lease_ms = lease_ms
        self.ttl_s = ttl_s

    def key(self, message: BusMessage) -> str:
        return self.prefix + message.idempotency_key

    def already_done(self, message: BusMessage) -> bool:
        return bool(self._client.get(self.key(message)) == DONE)

    def run(self, message: BusMessage, action: Callable[[BusMessage], None]) -> Outcome:
        """Run ``action(message)`` unless another delivery of the same alert got there first."""
        key = self.key(message)
        mine = f"pending:{self.owner}"
        if not self._client.set(key, mine, nx=True, px=self.lease_ms):
            current = self._client.get(key)
            if current == DONE:
                return Outcome.DUPLICATE
            if current is not None:
                return Outcome.BUSY
            # The other holder's lease expired between our two calls: try once more.
            if not self._client.set(key, mine, nx=True, px=self.lease_ms):
                return Outcome.BUSY
        try:
            action(message)
        except Exception as exc:  # any action failure must release the key, whatever its type
            self._client.delete(key)
            log.error("bus: action on %s %s (key %s) failed: %s", message.source, message.id,
                      message.idempotency_key, exc)  # fmt: skip
            return Outcome.FAILED
        self._client.set(key, DONE, ex=self.ttl_s)
        return Outcome.HANDLED
