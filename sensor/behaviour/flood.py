"""Floods toward one host: TCP SYN, UDP and ICMP packet rates.

Scope: ``FloodDetector``, a PacketObserver keyed by (destination, kind). The rate is
measured over ``window`` seconds with two tumbling buckets (the previous bucket weighted
by how much of it still lies inside the sliding window), so state is four numbers per key.
An alert fires when the estimated count in the window reaches ``rate * window`` and again
at most once per window while the flood lasts.

Flood sources are trivially spoofed, so every flood signature carries the metadata
``sekimori_spoofable true``: it appears in EVE and tells responders that the source
address is not evidence and never eligible for blocking. The alert's ``target`` is the
destination (the victim).

Memory: at most ``max_entries`` keys (LRU, evictions counted). Non-goals: reflection and
amplification detection, per-source accounting (sources may be forged).
"""

from __future__ import annotations

from sensor.behaviour.settings import FloodConfig
from sensor.behaviour.sigs import behaviour_signature
from sensor.behaviour.table import LruTable
from sensor.packet import (
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    TH_ACK,
    TH_SYN,
    Packet,
)
from signatures.rule import Signature

SPOOFABLE = "sekimori_spoofable true"


class _Rate:
    __slots__ = ("bucket", "cur", "next_alert", "prev")

    def __init__(self, bucket: int) -> None:
        self.bucket = bucket
        self.cur = 0
        self.prev = 0
        self.next_alert = 0.0


class FloodDetector:
    def __init__(self, config: FloodConfig) -> None:
        self._cfg = config
        self._window = max(1, config.window)
        w = self._window
        self._limits = {"syn": config.syn_rate * w, "udp": config.udp_rate * w,
                        "icmp": config.icmp_rate * w}  # fmt: skip
        meta = (SPOOFABLE,)
        self._sigs = {
            "syn": behaviour_signature(9100300, "SEKIMORI FLOOD TCP SYN flood toward host",
                                       "attempted-dos", proto="tcp", metadata=meta),
            "udp": behaviour_signature(9100301, "SEKIMORI FLOOD UDP flood toward host",
                                       "attempted-dos", proto="udp", metadata=meta),
            "icmp": behaviour_signature(9100302, "SEKIMORI FLOOD ICMP flood toward host",
                                        "attempted-dos", proto="icmp", metadata=meta),
        }  # fmt: skip
        self._table: LruTable[_Rate] = LruTable(config.max_entries)
        self.alerts = 0

    def observe(self, p: Packet) -> list[Signature] | None:
        proto = p.proto
        if proto == IPPROTO_TCP:
            if p.l4_off < 0 or p.tcp_flags & (TH_SYN | TH_ACK) != TH_SYN:
                return None
            kind = "syn"
        elif proto == IPPROTO_UDP:
            kind = "udp"
        elif proto in (IPPROTO_ICMP, IPPROTO_ICMPV6):
            kind = "icmp"
        else:
            return None
        limit = self._limits[kind]
        if not limit:
            return None
        return self._count(p, kind, limit)

    def _count(self, p: Packet, kind: str, limit: int) -> list[Signature] | None:
        w = self._window
        bucket = p.ts_sec // w
        key = (p.dst, kind)
        r = self._table.get(key)
        if r is None:
            r = _Rate(bucket)
            self._table.put(key, r)
        elif bucket != r.bucket:
            r.prev = r.cur if bucket == r.bucket + 1 else 0
            r.cur = 0
            r.bucket = bucket
        r.cur += 1
        now = p.ts_sec + p.ts_usec / 1e6
        elapsed = (now - bucket * w) / w  # fraction of the current bucket gone by
        estimate = r.cur + r.prev * (1.0 - elapsed)
        if estimate < limit or now < r.next_alert:
            return None
        r.next_alert = now + w
        self.alerts += 1
        return [self._sigs[kind]]

    def stats(self) -> dict[str, int]:
        return {"flood.alerts": self.alerts, "flood.tracked": len(self._table),
                "flood.evicted": self._table.evictions}  # fmt: skip

    def close(self) -> None:
        pass
