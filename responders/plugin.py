"""The responder plugin contract: what every responder (built-in or third-party) implements.

Scope: the records a responder receives and returns, the two plugin shapes, and loading
plugins from the ``sekimori.responders`` entry-point group with a clear error for a broken
one. In the spirit of fail2ban actions and Zeek's NetControl: small, idempotent calls,
each isolated (the caller runs every call with a timeout and catches everything, so one
failing responder never stops the others).

- ``AlertResponder`` acts on one alert (e.g. ``tcp-reset``, ``log``).
- ``BlockResponder`` enforces blocks from the ledger on a target (nftables, ipset, a
  firewall's API): ``block``/``unblock``/``check``/``list_blocks``; ``can_expire`` says
  whether the target removes entries by itself at their expiry.

Non-goals: policy (which alerts lead to which action: responders/policy.py) and the
consumer loop (responders/service.py).
"""

from __future__ import annotations

import importlib.metadata
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sensor.errors import ResponderError

ENTRY_POINT_GROUP = "sekimori.responders"

# Outcome statuses
DONE = "done"
SKIPPED = "skipped"
FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one responder did with one request. ``reason`` is for humans and the
    decisions stream; ``details`` carries responder-specific facts (object ids, RST seqs)."""

    responder: str
    status: str  # DONE | SKIPPED | FAILED
    reason: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)
    elapsed_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class BlockRequest:
    """One address or CIDR to block (or unblock) on a target, as the ledger decided."""

    cidr: str  # "203.0.113.5/32", "2001:db8::/64"
    expires_at: float | None  # epoch seconds; None = until unblocked
    reason: str
    block_id: str  # the ledger's id: stable across retries, used for idempotency
    provenance: Mapping[str, Any] = field(default_factory=dict)  # sid, rev, flow_id, ...


class Responder(ABC):
    """Common lifecycle. Constructed with its own config table (already parsed TOML)."""

    name: ClassVar[str]

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config

    def start(self) -> None:  # noqa: B027 - optional hook
        """Acquire resources (sockets, sessions); raise ResponderError with a clear message."""

    def stop(self) -> None:  # noqa: B027 - optional hook
        """Release resources; must not raise."""


class AlertResponder(Responder):
    @abstractmethod
    def respond(self, alert: Mapping[str, Any], *, enforce: bool) -> Outcome:
        """Act on one EVE alert (with its ``sekimori`` response context). With
        ``enforce`` False, record what would be done (``would_...``) and act on nothing."""


class BlockResponder(Responder):
    can_expire: ClassVar[bool] = False

    @abstractmethod
    def block(self, request: BlockRequest) -> Outcome:
        """Ensure the address is blocked until ``expires_at``. Idempotent."""

    @abstractmethod
    def unblock(self, request: BlockRequest) -> Outcome:
        """Ensure the address is not blocked. Idempotent (unknown address: done)."""

    @abstractmethod
    def check(self, request: BlockRequest) -> bool:
        """Whether the target currently blocks the address."""

    @abstractmethod
    def list_blocks(self) -> Mapping[str, float | None]:
        """Every entry this responder owns on its target: cidr -> expiry (None: none)."""


class BatchBlockResponder(BlockResponder):
    """A target that applies blocks in batches: ``block``/``unblock`` are one-element
    batches, timed and described the same way for every such target."""

    @abstractmethod
    def block_many(self, requests: Sequence[BlockRequest]) -> None:
        """Ensure every address is blocked; raises ResponderError on failure."""

    @abstractmethod
    def unblock_many(self, requests: Sequence[BlockRequest]) -> None:
        """Ensure no address is blocked any more; raises ResponderError on failure."""

    @abstractmethod
    def object_id(self, cidr: str) -> str:
        """The target's name for the entry (recorded in the ledger)."""

    def placement(self, cidr: str) -> str:
        """Where a block lands, for the outcome's reason ("in set block4", "on host")."""
        return f"on {self.name}"

    def block(self, request: BlockRequest) -> Outcome:
        started = time.monotonic()
        self.block_many([request])
        return Outcome(self.name, DONE, f"{request.cidr} blocked {self.placement(request.cidr)}",
                       {"object": self.object_id(request.cidr)},
                       (time.monotonic() - started) * 1000)  # fmt: skip

    def unblock(self, request: BlockRequest) -> Outcome:
        started = time.monotonic()
        self.unblock_many([request])
        return Outcome(self.name, DONE, f"{request.cidr} removed {self.placement(request.cidr)}",
                       {}, (time.monotonic() - started) * 1000)  # fmt: skip


def load_plugins(builtins: Mapping[str, type[Responder]]) -> dict[str, type[Responder]]:
    """Built-ins plus every entry point of ``sekimori.responders``.

    A plugin that fails to import, or is not a Responder subclass, raises ResponderError
    naming the entry point, so a broken installation is caught at start, not at first use.
    """
    found: dict[str, type[Responder]] = dict(builtins)
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception as exc:
            raise ResponderError(f"responder plugin '{ep.name}' ({ep.value}) fails to load: "
                                 f"{type(exc).__name__}: {exc}") from exc  # fmt: skip
        if not (isinstance(obj, type) and issubclass(obj, Responder)):
            raise ResponderError(
                f"responder plugin '{ep.name}' ({ep.value}) is not a sekimori Responder class"
            )
        found[ep.name] = obj
    return found
