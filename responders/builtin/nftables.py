"""The nftables block responder: the ledger's blocks as timed elements of sekimori's own sets.

Scope: table ``inet <table>`` (default ``sekimori``) with sets ``block4``/``block6``
(``flags interval, timeout``: addresses and CIDRs, each element with its own timeout and
the ledger's block id as comment) and a chain ``<chain>`` at a configurable hook and
priority holding ``ip saddr @block4 drop`` / ``ip6 saddr @block6 drop``. Everything goes
through the ``nft`` CLI (``-j`` JSON to read), every call with a timeout, optionally inside
a network namespace (``netns``). Other tables are never read or written; ``stop()`` leaves
the table in place (existing blocks stay until their timeout: fail-open).

Config (``[blocks.nftables]``): ``table``, ``chain``, ``hook`` (input|forward|prerouting),
``priority`` (int), ``netns``, ``nft`` (binary), ``call-timeout`` (s); ``lease``/``jitter``
are filled in by the BlockManager from ``[blocks]``.
Non-goals: overlapping CIDRs in one set (nft rejects conflicting intervals: the call fails
and says so); packet counters per block.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from responders.plugin import BatchBlockResponder, BlockRequest
from responders.reconcile import element_timeout
from sensor.errors import ResponderError

HOOKS = ("input", "forward", "prerouting")


def run_command(
    argv: Sequence[str], timeout_s: float, what: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a firewall command; ResponderError (first line of stderr) on failure or timeout."""
    try:
        done = subprocess.run(
            list(argv), input=stdin, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise ResponderError(f"{what}: `{argv[0]}` gave no answer within {timeout_s:g} s") from exc
    except OSError as exc:
        raise ResponderError(f"{what}: cannot run {argv[0]}: {exc.strerror}") from exc
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.splitlines() if ln.strip() and not set(ln) <= {"^", " "}]
        detail = next((ln for ln in lines if "rror" in ln), lines[0] if lines else "failed")
        raise ResponderError(f"{what}: {detail.strip()}")
    return done


def netns_prefix(config: Mapping[str, Any]) -> list[str]:
    netns = config.get("netns")
    return ["ip", "netns", "exec", str(netns)] if netns else []


def _text(config: Mapping[str, Any], key: str, default: str) -> str:
    value = config.get(key, default)
    if not isinstance(value, str) or not value.replace("_", "").replace("-", "").isalnum():
        raise ResponderError(f"blocks.nftables.{key}: {value!r} is not a plain name")
    return value


class NftablesResponder(BatchBlockResponder):
    name: ClassVar[str] = "nftables"
    can_expire: ClassVar[bool] = True

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.table = _text(config, "table", "sekimori")
        self.chain = _text(config, "chain", "block")
        self.hook = _text(config, "hook", "input")
        if self.hook not in HOOKS:
            raise ResponderError(f"blocks.nftables.hook: one of {', '.join(HOOKS)}")
        priority = config.get("priority", -10)
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise ResponderError("blocks.nftables.priority: an integer (e.g. -10)")
        self.priority = priority
        self.timeout_s = float(config.get("call-timeout", 5.0))
        self.lease_s = float(config.get("lease", 3600.0))
        self.jitter_s = float(config.get("jitter", 300.0))
        self._argv = [*netns_prefix(config), str(config.get("nft", "nft"))]

    # -- plumbing ------------------------------------------------------------------------

    def _nft(self, what: str, *args: str, script: str | None = None) -> str:
        argv = [*self._argv, *args] if script is None else [*self._argv, "-f", "-"]
        return run_command(argv, self.timeout_s, f"nftables: {what}", stdin=script).stdout

    def _set_for(self, cidr: str) -> str:
        return "block4" if ipaddress.ip_network(cidr, strict=False).version == 4 else "block6"

    def placement(self, cidr: str) -> str:
        return f"in {self._set_for(cidr)}"

    def object_id(self, cidr: str) -> str:
        return f"nft:inet/{self.table}/{self._set_for(cidr)}/{cidr}"

    def _element(self, req: BlockRequest, now: float) -> str:
        timeout = element_timeout(req.expires_at, now, self.lease_s, self.jitter_s)
        comment = "".join(ch for ch in req.block_id if ch.isalnum())[:64] or "sekimori"
        return f'{req.cidr} timeout {timeout}s comment "{comment}"'

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Create the table, sets and chain when missing; fix the chain's hook/priority."""
        t = f"inet {self.table}"
        chain_spec = f"{{ type filter hook {self.hook} priority {self.priority}; policy accept; }}"
        self._nft(
            "creating the table and sets",
            script="\n".join(
                [
                    f"add table {t}",
                    f"add set {t} block4 {{ type ipv4_addr; flags interval, timeout; }}",
                    f"add set {t} block6 {{ type ipv6_addr; flags interval, timeout; }}",
                ]
            )
            + "\n",
        )
        chain = self._chain()
        rules_ok = chain is not None and chain[1] >= 2
        if chain is not None and chain[0] != (self.hook, self.priority):
            # Our own chain at another hook/priority: replace it (sets and elements stay).
            self._nft(
                "moving the chain",
                script=f"flush chain {t} {self.chain}\ndelete chain {t} {self.chain}\n",
            )
            rules_ok = False
        if not rules_ok:
            self._nft(
                "creating the drop chain",
                script="\n".join(
                    [
                        f"add chain {t} {self.chain} {chain_spec}",
                        f"flush chain {t} {self.chain}",
                        f"add rule {t} {self.chain} ip saddr @block4 counter drop",
                        f"add rule {t} {self.chain} ip6 saddr @block6 counter drop",
                    ]
                )
                + "\n",
            )

    def _chain(self) -> tuple[tuple[str, int], int] | None:
        """((hook, priority), number of drop rules) of our chain, None when absent."""
        try:
            out = self._nft(
                "reading the chain", "-j", "list", "chain", "inet", self.table, self.chain
            )
        except ResponderError:
            return None
        hook: tuple[str, int] = ("", 0)
        rules = 0
        for item in json.loads(out).get("nftables", []):
            if "chain" in item:
                hook = (str(item["chain"].get("hook", "")), int(item["chain"].get("prio", 0)))
            elif "rule" in item and "@block" in json.dumps(item["rule"].get("expr", [])):
                rules += 1
        return hook, rules

    def remove_table(self) -> None:
        """Delete sekimori's table (``blocks flush --firewall``, tests); others untouched."""
        try:
            self._nft("deleting the table", "delete", "table", "inet", self.table)
        except ResponderError as exc:
            if "No such file" not in str(exc):
                raise

    # -- the contract --------------------------------------------------------------------

    def block_many(self, requests: Sequence[BlockRequest]) -> None:
        """Add (or re-time) every element in one atomic transaction: add, delete, add puts
        the new timeout on an element that already exists."""
        now = time.time()
        lines = []
        t = f"inet {self.table}"
        for req in requests:
            s, element = self._set_for(req.cidr), self._element(req, now)
            lines += [
                f"add element {t} {s} {{ {element} }}",
                f"delete element {t} {s} {{ {req.cidr} }}",
                f"add element {t} {s} {{ {element} }}",
            ]
        if lines:
            self._nft(f"adding {len(requests)} element(s)", script="\n".join(lines) + "\n")

    def unblock_many(self, requests: Sequence[BlockRequest]) -> None:
        """Remove elements; an absent one is first added for a second so the delete never
        fails (idempotent, one transaction)."""
        t = f"inet {self.table}"
        lines = []
        for req in requests:
            s = self._set_for(req.cidr)
            lines += [
                f"add element {t} {s} {{ {req.cidr} timeout 1s }}",
                f"delete element {t} {s} {{ {req.cidr} }}",
            ]
        if lines:
            self._nft(f"removing {len(requests)} element(s)", script="\n".join(lines) + "\n")

    def check(self, request: BlockRequest) -> bool:
        s = self._set_for(request.cidr)
        net = ipaddress.ip_network(request.cidr, strict=False)
        # nft finds a host only without its /32 (/128); a CIDR finds its covering interval.
        value = str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)
        try:
            self._nft(
                "looking up an element", "get", "element", "inet", self.table, s, f"{{ {value} }}"
            )
        except ResponderError:
            return False
        return True

    def list_blocks(self) -> Mapping[str, float | None]:
        now = time.time()
        found: dict[str, float | None] = {}
        for s in ("block4", "block6"):
            out = self._nft(f"listing {s}", "-j", "list", "set", "inet", self.table, s)
            for item in json.loads(out).get("nftables", []):
                for elem in item.get("set", {}).get("elem", []):
                    cidr, expiry = _parse_elem(elem, now)
                    if cidr is not None:
                        found[cidr] = expiry
        return found


def _parse_elem(elem: Any, now: float) -> tuple[str | None, float | None]:
    """(cidr, absolute expiry) of one JSON set element."""
    body = elem.get("elem", elem) if isinstance(elem, dict) else {"val": elem}
    val = body.get("val") if isinstance(body, dict) else None
    if isinstance(val, dict) and "prefix" in val:
        text = f"{val['prefix']['addr']}/{val['prefix']['len']}"
    elif isinstance(val, str):
        text = val
    else:
        return None, None
    try:
        cidr = str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        return None, None
    expires = body.get("expires") if isinstance(body, dict) else None
    return cidr, (now + float(expires)) if expires is not None else None
