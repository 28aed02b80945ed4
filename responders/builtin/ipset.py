"""The ipset block responder, for iptables-based hosts: ledger blocks as timed ipset entries.

Scope: two sets of sekimori's own (``<set>4`` ``hash:net family inet`` and ``<set>6``
``family inet6``, default name ``sekimori``, created with per-entry timeouts and comments),
entries added with ``-exist`` (re-adding re-times them) and removed with ``-exist``
(idempotent), listed with ``ipset save``. Batches go through ``ipset restore``. When
``iptables-chain`` is set (e.g. ``INPUT``) and iptables/ip6tables exist, the DROP rule
matching the set is inserted if missing; otherwise hooking the sets into iptables is the
administrator's (docs/blocking.md shows the two lines). Every call has a timeout and may
run inside a network namespace (``netns``). Other sets are never touched.

Non-goals: ipset's ``maxelem`` beyond the default 65536; list:set or bitmap types.
"""

from __future__ import annotations

import ipaddress
import shutil
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from responders.builtin.nftables import netns_prefix, run_command
from responders.plugin import BatchBlockResponder, BlockRequest
from responders.reconcile import element_timeout
from sensor.errors import ResponderError

IPSET_MAX_TIMEOUT = 2_147_483  # seconds; ipset refuses larger per-entry timeouts


class IpsetResponder(BatchBlockResponder):
    name: ClassVar[str] = "ipset"
    can_expire: ClassVar[bool] = True

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        base = str(config.get("set", "sekimori"))
        if not base.replace("_", "").replace("-", "").isalnum() or len(base) > 28:
            raise ResponderError(f"blocks.ipset.set: {base!r} is not a plain name (<= 28)")
        self.sets = {4: f"{base}4", 6: f"{base}6"}
        self.chain = config.get("iptables-chain")
        self.timeout_s = float(config.get("call-timeout", 5.0))
        self.lease_s = min(float(config.get("lease", 3600.0)), IPSET_MAX_TIMEOUT - 3600)
        self.jitter_s = float(config.get("jitter", 300.0))
        self._prefix = netns_prefix(config)
        self._ipset = str(config.get("ipset", "ipset"))

    def _run(self, what: str, *args: str, stdin: str | None = None) -> str:
        argv = [*self._prefix, self._ipset, *args]
        return run_command(argv, self.timeout_s, f"ipset: {what}", stdin=stdin).stdout

    def placement(self, cidr: str) -> str:
        return f"in {self._set_for(cidr)}"

    def object_id(self, cidr: str) -> str:
        return f"ipset:{self._set_for(cidr)}/{cidr}"

    def _set_for(self, cidr: str) -> str:
        return self.sets[ipaddress.ip_network(cidr, strict=False).version]

    def start(self) -> None:
        for version, family in ((4, "inet"), (6, "inet6")):
            self._run(
                "creating the set",
                "create",
                self.sets[version],
                "hash:net",
                "family",
                family,
                "timeout",
                "0",
                "comment",
                "-exist",
            )
        if self.chain:
            self._ensure_iptables_rules(str(self.chain))

    def _ensure_iptables_rules(self, chain: str) -> None:
        for version, tool in ((4, "iptables"), (6, "ip6tables")):
            if shutil.which(tool) is None:
                raise ResponderError(
                    f"ipset: blocks.ipset.iptables-chain is set but {tool} is not installed"
                )
            rule = [chain, "-m", "set", "--match-set", self.sets[version], "src", "-j", "DROP"]
            try:
                run_command(
                    [*self._prefix, tool, "-w", "5", "-C", *rule],
                    self.timeout_s,
                    f"{tool}: checking the DROP rule",
                )
            except ResponderError:
                run_command(
                    [*self._prefix, tool, "-w", "5", "-I", *rule],
                    self.timeout_s,
                    f"{tool}: inserting the DROP rule",
                )

    def block_many(self, requests: Sequence[BlockRequest]) -> None:
        now = time.time()
        lines = []
        for req in requests:
            timeout = min(
                element_timeout(req.expires_at, now, self.lease_s, self.jitter_s), IPSET_MAX_TIMEOUT
            )
            comment = "".join(ch for ch in req.block_id if ch.isalnum())[:64] or "sekimori"
            lines.append(
                f'add {self._set_for(req.cidr)} {req.cidr} timeout {timeout} comment "{comment}"'
            )
        if lines:
            self._run(
                f"adding {len(lines)} entries", "restore", "-exist", stdin="\n".join(lines) + "\n"
            )

    def unblock_many(self, requests: Sequence[BlockRequest]) -> None:
        lines = [f"del {self._set_for(r.cidr)} {r.cidr}" for r in requests]
        if lines:
            self._run(
                f"removing {len(lines)} entries", "restore", "-exist", stdin="\n".join(lines) + "\n"
            )

    def check(self, request: BlockRequest) -> bool:
        try:
            self._run("testing an entry", "test", self._set_for(request.cidr), request.cidr)
        except ResponderError:
            return False
        return True

    def list_blocks(self) -> Mapping[str, float | None]:
        now = time.time()
        found: dict[str, float | None] = {}
        for name in self.sets.values():
            for line in self._run(f"listing {name}", "save", name).splitlines():
                parts = line.split()
                if len(parts) < 3 or parts[0] != "add" or parts[1] != name:
                    continue
                cidr = str(ipaddress.ip_network(parts[2], strict=False))
                expiry = None
                if "timeout" in parts[3:]:
                    seconds = int(parts[parts.index("timeout") + 1])
                    expiry = now + seconds if seconds > 0 else None
                found[cidr] = expiry
        return found

    def remove_sets(self) -> None:
        """Destroy sekimori's sets (tests, ``blocks flush --firewall``); fails while
        iptables still references them."""
        for name in self.sets.values():
            try:
                self._run("destroying a set", "destroy", name)
            except ResponderError as exc:
                if "does not exist" not in str(exc):
                    raise
