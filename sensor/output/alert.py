"""Build the EVE ``alert`` record Suricata writes, from a packet, its flow and a signature.

Scope: field names, order and formats as Suricata 7's EVE (addresses — IPv6 written in
full with leading zeros, as Suricata does —, proto names, ports only for protocols with
ports, ``alert`` object, ``flow`` counters, metadata as ``{key: [values]}``), plus the
response context the alert bus carries under ``sekimori``. Runs only when an alert fires,
so clarity wins over speed here.
"""

from __future__ import annotations

import time
from typing import Any

from sensor.output.eve import format_timestamp
from sensor.packet import Packet
from signatures.rule import Signature

_PROTO_NAMES = {1: "ICMP", 6: "TCP", 17: "UDP", 58: "IPv6-ICMP", 132: "SCTP", 2: "IGMP",
                47: "GRE", 50: "ESP", 51: "AH"}  # fmt: skip
_PORTED = (6, 17, 132)


def format_ip(ipver: int, addr: int) -> str:
    if ipver == 6:
        h = f"{addr:032x}"
        return ":".join(h[i : i + 4] for i in range(0, 32, 4))
    return f"{addr >> 24 & 255}.{addr >> 16 & 255}.{addr >> 8 & 255}.{addr & 255}"


def proto_name(proto: int) -> str:
    return _PROTO_NAMES.get(proto, str(proto))


def _metadata(items: tuple[str, ...]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in items:
        key, _, value = item.partition(" ")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def _action(sig: Signature, mode: str) -> str:
    if mode == "prevent" and sig.action in (
        "drop",
        "reject",
        "rejectsrc",
        "rejectdst",
        "rejectboth",
    ):
        return "blocked"
    return "allowed"


def alert_record(sig: Signature, p: Packet, mode: str = "detect",
                 sensor_id: str | None = None) -> dict[str, Any]:  # fmt: skip
    """One EVE alert record (see AlertBuilder for the per-packet shared part)."""
    rec = AlertBuilder(mode).record(sig, p)
    if sensor_id is not None:
        rec["sekimori"] = response_context(sig, p, mode, sensor_id)
    return rec


class AlertBuilder:
    """Builds alert records; the fields that depend only on the packet (timestamp,
    addresses, flow counters) are formatted once per packet, however many rules fire."""

    __slots__ = ("_head", "_mode", "_packet", "_tail")

    def __init__(self, mode: str = "detect") -> None:
        self._mode = mode
        self._packet: Packet | None = None
        self._head: dict[str, Any] = {}
        self._tail: dict[str, Any] = {}

    def record(self, sig: Signature, p: Packet) -> dict[str, Any]:
        if p is not self._packet:
            self._packet = p
            self._head, self._tail = _packet_fields(p)
        head = self._head
        alert: dict[str, Any] = {
            "action": _action(sig, self._mode),
            "gid": sig.gid,
            "signature_id": sig.sid,
            "rev": sig.rev,
            "signature": sig.msg,
            "category": sig.category,
            "severity": sig.severity,
        }
        if sig.metadata:
            alert["metadata"] = _metadata(sig.metadata)
        if sig.target:
            src_is_target = sig.target == "src_ip"
            alert["source" if not src_is_target else "target"] = {"ip": head["src_ip"]}
            alert["target" if not src_is_target else "source"] = {"ip": head["dest_ip"]}
        rec = dict(head)
        rec["alert"] = alert
        rec.update(self._tail)
        return rec


def _packet_fields(p: Packet) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fields before and after ``alert`` in Suricata's key order."""
    flow = p.flow
    head: dict[str, Any] = {"timestamp": format_timestamp(p.ts_sec, p.ts_usec)}
    if flow is not None:
        head["flow_id"] = flow.flow_id
    if p.iface:
        head["in_iface"] = p.iface
    head["event_type"] = "alert"
    if p.vlan:
        head["vlan"] = list(p.vlan)
    ported = p.proto in _PORTED and p.l4_off >= 0
    head["src_ip"] = format_ip(p.ipver, p.src)
    if ported:
        head["src_port"] = p.sport
    head["dest_ip"] = format_ip(p.ipver, p.dst)
    if ported:
        head["dest_port"] = p.dport
    head["proto"] = proto_name(p.proto)
    if p.itype >= 0:
        head["icmp_type"] = p.itype
        head["icmp_code"] = p.icode
    if p.pcap_cnt:
        head["pcap_cnt"] = p.pcap_cnt
    tail: dict[str, Any] = {}
    if flow is not None:
        head["direction"] = "to_server" if p.to_server else "to_client"
        app = getattr(flow, "app", None)
        name = getattr(app, "proto_name", None) if app is not None else None
        if name:
            tail["app_proto"] = name
        flow_rec: dict[str, Any] = {
            "pkts_toserver": flow.pkts_toserver,
            "pkts_toclient": flow.pkts_toclient,
            "bytes_toserver": flow.bytes_toserver,
            "bytes_toclient": flow.bytes_toclient,
            "start": format_timestamp(flow.first_sec, flow.first_usec),
            "src_ip": format_ip(flow.ipver, flow.src),
            "dest_ip": format_ip(flow.ipver, flow.dst),
        }
        if flow.proto in _PORTED:
            flow_rec["src_port"] = flow.sport
            flow_rec["dest_port"] = flow.dport
        tail["flow"] = flow_rec
    return head, tail


def _dir_state(d: Any) -> dict[str, Any] | None:
    if d is None:
        return None
    mac = getattr(d, "mac", None)
    return {
        "next_seq": d.next_seq,
        "last_ack": d.last_ack,
        "window": d.window,
        "ttl": d.ttl,
        "mac": mac.hex(":") if mac else None,
    }


def response_context(sig: Signature, p: Packet, mode: str, sensor_id: str) -> dict[str, Any]:
    """What a responder needs to act on this alert without seeing the packet."""
    flow = p.flow
    ctx: dict[str, Any] = {
        "sensor_id": sensor_id,
        "rule_action": sig.action,
        "mode": mode,
        "vlan": list(p.vlan),
        "iface": p.iface,
        "src_mac": p.src_mac.hex(":") if p.src_mac else None,
        "dst_mac": p.dst_mac.hex(":") if p.dst_mac else None,
        # When the alert left detection: splits capture-to-send latency into sensor and bus.
        "alerted_at": time.time(),
    }
    if flow is not None and p.proto == 6 and getattr(flow, "tcp_session", False):
        ctx["handshake_seen"] = getattr(flow, "handshake_seen", None)
        ctx["tcp"] = {
            "toserver": _dir_state(flow.toserver),
            "toclient": _dir_state(flow.toclient),
        }
    return ctx
