"""What every firewall-API block responder shares on top of the plugin contract.

Scope: :class:`ApiBlockResponder` turns ``block``/``unblock`` into ``block_many``/
``unblock_many`` (each vendor batches as far as its API allows), answers ``check`` from
the vendor's own listing, knows the lease/jitter the BlockManager passes, and offers
``probe`` for ``sekimori responders check``: a read call with the same credentials and,
when asked, a write round trip on a documentation address (RFC 5737), each saying exactly
what is wrong. Helpers normalise addresses (vendors write hosts without ``/32``).

Non-goals: HTTP (http.py), the ledger and reconciliation (responders/reconcile.py).
"""

from __future__ import annotations

import ipaddress
import time
from abc import abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from responders.plugin import BatchBlockResponder, BlockRequest
from responders.plugins.http import HttpClient, http_settings
from responders.reconcile import element_timeout
from sensor.errors import ResponderError

T = TypeVar("T")
PROBE_CIDR = "198.51.100.254/32"  # TEST-NET-2 (RFC 5737): never a real peer
PROBE_TTL_S = 120.0


def cidr_of(text: str) -> str | None:
    """``203.0.113.5`` → ``203.0.113.5/32``; None for anything that is not an address."""
    try:
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError:
        return None


def host_or_cidr(cidr: str) -> str:
    """How most firewall APIs write an address: a host without its prefix, a network with."""
    net = ipaddress.ip_network(cidr, strict=False)
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), max(1, size)):
        yield items[start : start + size]


class ApiBlockResponder(BatchBlockResponder):
    """A BlockResponder whose target is reached over HTTPS (see the module docstring)."""

    name: ClassVar[str] = "api"
    default_rate: ClassVar[float] = 5.0  # requests per second unless ``rate`` says otherwise
    default_burst: ClassVar[int] = 5
    default_batch: ClassVar[int] = 1  # addresses per write call

    def __init__(self, config: Mapping[str, Any], *, url: str | None = None) -> None:
        super().__init__(config)
        self.where = f"blocks.{self.name}"
        self.http = HttpClient(
            http_settings(
                config, self.where, url=url, rate_per_s=self.default_rate, burst=self.default_burst
            ),
            self.name,
        )
        self.lease_s = float(config.get("lease", 3600.0))
        self.jitter_s = float(config.get("jitter", 300.0))
        batch = config.get("batch", self.default_batch)
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ResponderError(f"{self.where}.batch: a positive integer")
        self.batch = batch

    def timeout_for(self, request: BlockRequest, now: float | None = None) -> int:
        """Seconds for a target with native expiry: the ledger's, capped at a lease."""
        return element_timeout(
            request.expires_at, time.time() if now is None else now, self.lease_s, self.jitter_s
        )

    def object_id(self, cidr: str) -> str:
        return f"{self.name}:{self.http.settings.host}/{cidr}"

    def placement(self, cidr: str) -> str:
        return f"on {self.http.settings.host}"

    # -- the contract ----------------------------------------------------------------------

    def check(self, request: BlockRequest) -> bool:
        return cidr_of(request.cidr) in self.list_blocks()

    @abstractmethod
    def block_many(self, requests: Sequence[BlockRequest]) -> None:
        """Ensure every address is blocked (idempotent); raise ResponderError on failure."""

    @abstractmethod
    def unblock_many(self, requests: Sequence[BlockRequest]) -> None:
        """Ensure no address is blocked (absent ones: fine)."""

    # -- sekimori responders check ---------------------------------------------------------

    def probe(self, write: bool = False) -> list[str]:
        """Connectivity, credentials and permissions, as lines for a human. Raises
        ResponderError saying what is wrong. ``write`` also blocks and unblocks
        :data:`PROBE_CIDR` (a documentation address) for at most two minutes."""
        details = self.probe_details()  # first: "the alias is missing" beats "no rows"
        listing = self.list_blocks()
        lines = [f"reached {self.http.settings.base_url}; read access: {len(listing)} entries"]
        lines += details
        if write:
            req = BlockRequest(
                cidr=PROBE_CIDR,
                expires_at=time.time() + PROBE_TTL_S,
                reason="sekimori responders check",
                block_id="sekimoricheck",
            )
            self.block_many([req])
            present = self.check(req)
            self.unblock_many([req])
            if not present:
                raise ResponderError(
                    f"{self.where}: wrote {PROBE_CIDR} but the listing does not show it"
                )
            lines.append(f"write access: blocked and unblocked {PROBE_CIDR}")
        return lines

    def probe_details(self) -> list[str]:
        """Vendor-specific read checks (e.g. the alias or IP set exists)."""
        return []
