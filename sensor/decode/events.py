"""Recording decoder anomalies on a packet and in the decoder's counters.

Scope: two tiny helpers every protocol module uses, so an event is always both attached
to the packet (for ``decode-event`` rules and EVE ``anomaly`` records) and counted.
Event names are Suricata's (``src/decode-events.c``) without the ``decoder.`` prefix.

Non-goals: deciding which anomalies exist; each protocol module owns its checks.
"""

from __future__ import annotations

from collections import Counter

from sensor.packet import Packet


def invalid(pkt: Packet, stats: Counter[str], name: str) -> None:
    """The packet cannot be decoded further: record ``name`` and mark it bad."""
    pkt.add_event(name)
    stats[name] += 1
    pkt.bad = True


def note(pkt: Packet, stats: Counter[str], name: str) -> None:
    """An anomaly worth reporting that does not stop decoding."""
    pkt.add_event(name)
    stats[name] += 1


def l4_invalid(pkt: Packet, stats: Counter[str], name: str) -> None:
    """The transport header is unusable: record ``name`` and drop the L4 view only.

    As in Suricata, the packet still goes to detection as a bare IP packet (no ports, no
    payload), so IP-level rules keep seeing traffic an attacker malformed on purpose.
    """
    pkt.add_event(name)
    stats[name] += 1
    pkt.l4_off = -1
    pkt.l4_hlen = 0
    pkt.sport = pkt.dport = 0
    pkt.payload = b""
