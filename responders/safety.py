"""Safety rails between an alert and a block: what may never be blocked, and when not to.

Scope: turning an EVE alert into a block :class:`Candidate` (which address, which CIDR,
the evidence), and the checks that refuse one: protected addresses/CIDRs (configured, plus
the host's own addresses and loopback, added automatically), pinned allows, spoofable
sources (a TCP flow whose handshake was not seen, or any UDP/ICMP/other source) unless
the rule allows it, plus the in-process :class:`Coalescer` that merges repeated decisions
for one address and the high-severity alert raised when a rate limit pauses blocking.

The rate limits themselves are counted in the ledger (one Redis script), so they hold across
every responder process; see ledger.py. Non-goals: talking to firewalls; deciding which
rule actions block (BlockConfig.actions, applied in blocking.py).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from responders.block_config import BlockConfig

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
ALWAYS_PROTECTED = ("127.0.0.0/8", "::1/128", "0.0.0.0/32", "::/128", "255.255.255.255/32")
SPOOFABLE_METADATA = (
    "sekimori_block",
    "allow-spoofable",
)  # metadata: sekimori_block allow-spoofable
COALESCE_MAX = 100_000  # addresses remembered by the coalescer before it forgets the oldest


@dataclass(frozen=True)
class Candidate:
    """What an alert asks to block, with the evidence the ledger keeps."""

    address: str
    cidr: str
    subnet: str  # the /24 (IPv4) or /64 (IPv6) the per-subnet limit counts
    proto: str
    handshake_seen: bool
    spoofable_allowed: bool  # the rule (metadata or config) allows blocking spoofable sources
    sid: int | None
    gid: int | None
    rev: int | None
    ruleset: str | None
    flow_id: int | None
    sensor: str | None
    reason: str
    evidence: Mapping[str, Any] = field(default_factory=dict)


def local_addresses(timeout_s: float = 5.0) -> tuple[str, ...]:
    """This host's addresses (``ip -j addr``; the resolver's view of the hostname as a
    fallback), so the sensor never blocks itself."""
    found: set[str] = set()
    try:
        out = subprocess.run(
            ["ip", "-j", "addr", "show"], capture_output=True, check=True, timeout=timeout_s
        ).stdout
        for link in json.loads(out or b"[]"):
            for info in link.get("addr_info", []):
                if info.get("local"):
                    found.add(str(info["local"]).split("%")[0])
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        log.warning("blocks: cannot list local addresses with `ip` (%s); using the resolver", exc)
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None):
            found.add(str(info[4][0]).split("%")[0])
    except OSError:
        pass
    return tuple(sorted(found))


class ProtectedSet:
    """Addresses and CIDRs nothing may block; a block CIDR that overlaps one is refused."""

    def __init__(self, entries: Iterable[str]) -> None:
        nets: list[Network] = []
        for entry in entries:
            try:
                nets.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                log.warning("blocks: ignoring protected entry %r: not an address or CIDR", entry)
        self.networks = tuple(nets)

    def match(self, cidr: str) -> str | None:
        """The protected entry ``cidr`` overlaps, or None."""
        net = ipaddress.ip_network(cidr, strict=False)
        for protected in self.networks:
            if protected.version == net.version and protected.overlaps(net):
                return str(protected)
        return None


def build_protected(cfg: BlockConfig, own: Iterable[str] | None = None) -> ProtectedSet:
    entries = [*ALWAYS_PROTECTED, *cfg.protected]
    if cfg.protect_self:
        entries.extend(local_addresses() if own is None else own)
    return ProtectedSet(entries)


def to_cidr(address: str, cfg: BlockConfig) -> tuple[str, str]:
    """The block CIDR (``v4_prefix``/``v6_prefix``) and the limit subnet (/24 or /64)."""
    ip = ipaddress.ip_address(address)
    prefix, subnet = (cfg.v4_prefix, 24) if ip.version == 4 else (cfg.v6_prefix, 64)
    cidr = ipaddress.ip_network(f"{ip}/{prefix}", strict=False)
    return str(cidr), str(ipaddress.ip_network(f"{ip}/{min(subnet, prefix)}", strict=False))


def _pick_address(alert: Mapping[str, Any], cfg: BlockConfig) -> str | None:
    if cfg.address == "dest":
        return _str(alert.get("dest_ip"))
    if cfg.address == "attacker":
        inner = alert.get("alert")
        source = inner.get("source") if isinstance(inner, Mapping) else None
        if isinstance(source, Mapping) and source.get("ip"):
            return _str(source.get("ip"))
    return _str(alert.get("src_ip"))


def candidate_from_alert(alert: Mapping[str, Any], cfg: BlockConfig) -> Candidate | str:
    """The candidate, or why this alert cannot name one (a skip reason)."""
    address = _pick_address(alert, cfg)
    if not address:
        return "alert names no source address"
    try:
        cidr, subnet = to_cidr(address, cfg)
    except ValueError:
        return f"alert address {address!r} is not an IP address"
    inner = alert.get("alert") if isinstance(alert.get("alert"), Mapping) else {}
    ctx = alert.get("sekimori") if isinstance(alert.get("sekimori"), Mapping) else {}
    assert isinstance(inner, Mapping) and isinstance(ctx, Mapping)
    sid = _int(inner.get("signature_id"))
    meta = inner.get("metadata") if isinstance(inner.get("metadata"), Mapping) else {}
    assert isinstance(meta, Mapping)
    allowed = sid in cfg.allow_spoofable_sids or SPOOFABLE_METADATA[1] in (
        meta.get(SPOOFABLE_METADATA[0]) or ()
    )
    evidence = {
        k: alert.get(k)
        for k in (
            "timestamp",
            "src_ip",
            "src_port",
            "dest_ip",
            "dest_port",
            "proto",
            "pcap_cnt",
            "in_iface",
            "direction",
            "flow_id",
        )
        if alert.get(k) is not None
    }
    evidence["signature"] = inner.get("signature")
    evidence["rule_action"] = ctx.get("rule_action")
    evidence["handshake_seen"] = ctx.get("handshake_seen")
    return Candidate(
        address=address,
        cidr=cidr,
        subnet=subnet,
        proto=str(alert.get("proto") or ""),
        handshake_seen=ctx.get("handshake_seen") is True,
        spoofable_allowed=allowed,
        sid=sid,
        gid=_int(inner.get("gid")),
        rev=_int(inner.get("rev")),
        ruleset=_str(ctx.get("ruleset_version") or ctx.get("ruleset")),
        flow_id=_int(alert.get("flow_id")),
        sensor=_str(ctx.get("sensor_id")),
        reason=f"[{inner.get('gid', 1)}:{sid}:{inner.get('rev', 0)}] {inner.get('signature', '')}",
        evidence=evidence,
    )


def refusal(
    cand: Candidate, protected: ProtectedSet, pins: Mapping[str, Any], cfg: BlockConfig
) -> str | None:
    """Why ``cand`` must not be blocked, or None."""
    hit = protected.match(cand.cidr)
    if hit is not None:
        return f"protected address ({hit})"
    if pins and ProtectedSet(pins).match(cand.cidr) is not None:
        pinned = ProtectedSet(pins).match(cand.cidr)
        pin = pins.get(str(pinned), {})
        return f"pinned allow for {pinned}: {pin.get('reason', '')}"
    if cfg.require_handshake and not cand.spoofable_allowed:
        if cand.proto != "TCP":
            return f"spoofable source: {cand.proto or 'non-TCP'} traffic proves no return path"
        if not cand.handshake_seen:
            return "spoofable source: the TCP handshake of this flow was not seen"
    return None


class Coalescer:
    """Merges repeated decisions for one CIDR within ``window_s``; counts the repeats."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._last: dict[str, float] = {}
        self.pending_hits: dict[str, int] = {}

    def repeat(self, cidr: str, now: float) -> bool:
        """True (and one more pending hit) when ``cidr`` was decided within the window."""
        last = self._last.get(cidr)
        if last is not None and now - last < self.window_s:
            self.pending_hits[cidr] = self.pending_hits.get(cidr, 0) + 1
            return True
        if len(self._last) >= COALESCE_MAX:  # forget the oldest half rather than grow
            for key in list(self._last)[: COALESCE_MAX // 2]:
                del self._last[key]
        self._last[cidr] = now
        return False

    def forget(self, cidr: str) -> None:
        self._last.pop(cidr, None)

    def take_hits(self) -> dict[str, int]:
        hits, self.pending_hits = self.pending_hits, {}
        return hits


def trip_alert(reason: str, cfg: BlockConfig, now: float | None = None) -> dict[str, Any]:
    """The high-severity EVE alert saying blocking is paused and why."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now or time.time()))
    return {
        "timestamp": f"{stamp}.000000+0000",
        "event_type": "alert",
        "alert": {
            "action": "allowed",
            "gid": 1,
            "signature_id": 0,
            "rev": 1,
            "signature": f"SEKIMORI blocking paused for {int(cfg.pause_s)} s: {reason}",
            "category": "Safety rail",
            "severity": 1,
        },
        "sekimori": {"sensor_id": cfg.sensor_id, "rule_action": "alert", "origin": "blocks"},
    }


def target_failed_alert(target: str, why: str, cfg: BlockConfig,
                        now: float | None = None) -> dict[str, Any]:  # fmt: skip
    """The high-severity EVE alert saying a firewall target keeps failing."""
    alert = trip_alert(why, cfg, now)
    alert["alert"]["signature"] = f"SEKIMORI block target {target} failing: {why}"
    alert["alert"]["category"] = "Responder failure"
    alert["sekimori"]["target"] = target
    return alert


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: object) -> str | None:
    return str(value) if value not in (None, "") else None
