"""The signatures behavioural alerts carry: gid 9100, one sid per detector and kind.

Scope: a tiny factory that fills a ``signatures.rule.Signature`` the way
signatures/build.py does for a parsed rule (any address, any port, no checks, no payload),
so behavioural alerts pass through the same policies, sinks and responders as rule alerts.
Built once when a detector starts; the hot path only hands these objects out.

Sid ranges (documented in docs/detectors.md): 9100001-099 protocol anomalies,
9100100-199 scans, 9100200-299 brute force, 9100300-399 floods.

Non-goals: loading rules from text; per-alert dynamic messages (EVE carries addresses).
"""

from __future__ import annotations

from signatures.addresses import AddressSet, PortSet
from signatures.rule import INSPECT_PACKET, Signature

GID = 9100

_V4_MAX = (1 << 32) - 1
_V6_MAX = (1 << 128) - 1
_ANY_ADDR = AddressSet.from_intervals([(0, _V4_MAX)], [(0, _V6_MAX)])
_ANY_PORT = PortSet.from_intervals([(0, 65535)])

# classtype -> (description, priority) as in Suricata's classification.config, so the
# alert's category and severity read like a rule's even with a custom classification file.
CLASSTYPES = {
    "attempted-recon": ("Attempted Information Leak", 2),
    "network-scan": ("Detection of a Network Scan", 3),
    "attempted-dos": ("Attempted Denial of Service", 2),
    "attempted-user": ("Attempted User Privilege Gain", 1),
    "protocol-command-decode": ("Generic Protocol Command Decode", 3),
    "misc-activity": ("Misc activity", 3),
}

_L4 = {"tcp": frozenset({6}), "udp": frozenset({17}), "icmp": frozenset({1, 58}), "ip": None}


def behaviour_signature(
    sid: int,
    msg: str,
    classtype: str,
    *,
    proto: str = "ip",
    severity: int | None = None,
    metadata: tuple[str, ...] = (),
    target: str | None = "dest_ip",
) -> Signature:
    """A Signature for a detector alert; ``target`` names the victim side of the packet."""
    category, priority = CLASSTYPES[classtype]
    return Signature(
        sid=sid, gid=GID, rev=1, msg=msg, action="alert", classtype=classtype,
        category=category, severity=severity if severity is not None else priority,
        metadata=("sekimori_detector behaviour", *metadata), references=(), target=target,
        proto=proto, l4=_L4[proto], ipver=0, app_proto=None,
        src=_ANY_ADDR, sport=_ANY_PORT, dst=_ANY_ADDR, dport=_ANY_PORT, bidirectional=False,
        checks=(), check_specs=(), flow_bits=0, bit_checks=(), bit_actions=(), flowint_checks=(),
        flowint_actions=(), stream_size=None, noalert=False, payload=None,
        inspect=INSPECT_PACKET, header_buffers=(), app_buffers=(), tx_values=(), ip_only=False,
        threshold=None, detection_filter=None, file="<behaviour>", line=0, raw="",
    )  # fmt: skip
