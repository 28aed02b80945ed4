"""Which RSTs kill a session: from the two ends' TCP state to the frames, exact ones first.

Scope: :class:`End` is one end of a TCP session as its resets need it (packed address,
port, MAC, the next sequence number it sends, its window and TTL). :func:`plan_frames`
turns the client and server ends into the frames to send — toward the server at the
client's next sequence number (the server's RCV.NXT) and toward the client at the server's,
each from the MAC/TTL of the side it pretends to come from, plus ``extra`` RSTs per
direction for data in flight — and the sequence numbers used. :func:`ends_from_alert` reads
the ends from an alert's response context (the responder's input); the sensor's in-sensor
reset builds them from its flow table directly (sensor/output/reset_sink.py), so both paths
plan alike.

Non-goals: sending (responders/inject.py), guessing unknown sequence numbers.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from responders.inject import ETH_P_IP, ETH_P_IPV6, l2_header, mac_bytes, rst_frame
from responders.seq import reset_burst
from sensor.errors import ResponderError


@dataclass(frozen=True, slots=True)
class End:
    """One end of the session."""

    addr: bytes  # packed IPv4 or IPv6 address
    port: int
    mac: bytes  # 6 bytes; b"" when never seen
    next_seq: int | None  # the next sequence number this end sends; None when never seen
    window: int  # its receive window (0 = unknown)
    ttl: int  # the TTL its packets arrive with


def plan_frames(client: End, server: End, vlan: tuple[int, ...], extra: int, step: int
                ) -> tuple[list[bytes], dict[str, list[int]]]:  # fmt: skip
    """The frames (exact RSTs both ways first, then the extras) and the sequence numbers
    toward each end; no frames when neither direction's state is known."""
    exact: list[bytes] = []
    extras: list[bytes] = []
    seqs: dict[str, list[int]] = {"to_server": [], "to_client": []}
    for label, sender, receiver in (("to_server", client, server), ("to_client", server, client)):
        if sender.next_seq is None or not sender.mac or not receiver.mac:
            continue  # that side was never seen: its state is unknown
        ethertype = ETH_P_IP if len(sender.addr) == 4 else ETH_P_IPV6
        l2 = l2_header(receiver.mac, sender.mac, vlan, ethertype)
        ack = receiver.next_seq or 0
        for i, seq in enumerate(reset_burst(sender.next_seq, extra, step, receiver.window)):
            frame = rst_frame(l2, sender.addr, receiver.addr, sender.port, receiver.port, seq,
                              ack, sender.ttl)  # fmt: skip
            (extras if i else exact).append(frame)
            seqs[label].append(seq)
    # Exact RSTs first, both ways: an extra that arrives first at a receiver whose RCV.NXT
    # has not moved would only earn a challenge ACK.
    return exact + extras, seqs


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _int(m: Mapping[str, Any], key: str, default: int) -> int:
    value = m.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def endpoints(alert: Mapping[str, Any]) -> tuple[tuple[str, int], tuple[str, int]] | None:
    """(client, server) as (address, port): the EVE ``flow`` object names them."""
    flow = _map(alert.get("flow"))
    try:
        if "src_ip" in flow and "src_port" in flow:
            return ((str(flow["src_ip"]), int(flow["src_port"])),
                    (str(flow["dest_ip"]), int(flow["dest_port"])))  # fmt: skip
        src = (str(alert["src_ip"]), int(alert["src_port"]))
        dst = (str(alert["dest_ip"]), int(alert["dest_port"]))
    except (KeyError, TypeError, ValueError):
        return None
    return (dst, src) if alert.get("direction") == "to_client" else (src, dst)


def _packed(text: str) -> bytes:
    family = socket.AF_INET6 if ":" in text else socket.AF_INET
    try:
        return socket.inet_pton(family, text)
    except OSError as exc:
        raise ResponderError(f"bad address in reset: {text!r}") from exc


def ends_from_alert(alert: Mapping[str, Any]) -> tuple[End, End, tuple[int, ...]] | None:
    """(client, server, VLAN tags) from the alert's response context; None without TCP
    session state. ResponderError for a malformed address or MAC."""
    ctx = _map(alert.get("sekimori"))
    tcp = _map(ctx.get("tcp"))
    ends = endpoints(alert)
    if alert.get("proto") != "TCP" or not tcp or ends is None:
        return None
    c, s = _map(tcp.get("toserver")), _map(tcp.get("toclient"))
    to_server = alert.get("direction", "to_server") == "to_server"
    macs = (c.get("mac") or ctx.get("src_mac" if to_server else "dst_mac"),
            s.get("mac") or ctx.get("dst_mac" if to_server else "src_mac"))  # fmt: skip
    (cip, cport), (sip, sport) = ends
    if len(_packed(cip)) != len(_packed(sip)):
        raise ResponderError(f"reset between {cip} and {sip}: mixed IP versions")
    client, server = (
        End(_packed(ip), port, mac_bytes(str(mac)) if mac else b"",
            nxt if isinstance(nxt := d.get("next_seq"), int) else None,
            _int(d, "window", 0), _int(d, "ttl", 64))
        for (ip, port), mac, d in (((cip, cport), macs[0], c), ((sip, sport), macs[1], s))
    )  # fmt: skip
    vlan = tuple(int(v) for v in ctx.get("vlan") or ())
    return client, server, vlan
