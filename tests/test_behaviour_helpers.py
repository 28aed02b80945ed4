"""Feed generated frames through the real decoder and flow table into one detector."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import dpkt
from pcapgen import eth_ip

from sensor.config import Config
from sensor.decode import Decoder
from sensor.flow import FlowTable
from sensor.packet import DLT_EN10MB, Packet

START = 1_700_000_000


def feed(detector: Any, frames: Iterable[tuple[float, bytes]]) -> list[tuple[int, Any]]:
    """(time offset, frame) pairs → [(pcap_cnt, signature)] the detector raised."""
    cfg = Config()
    decoder, flows = Decoder(), FlowTable(cfg.flow, cfg.stream)
    hits: list[tuple[int, Any]] = []
    for cnt, (offset, frame) in enumerate(frames, 1):
        ts = START + offset
        p = Packet(cnt, int(ts), round((ts % 1) * 1e6), DLT_EN10MB, frame)
        decoder.decode(p)
        if p.bad:
            continue
        flows.process(p)
        for sig in detector.observe(p) or ():
            hits.append((cnt, sig))
    return hits


def tcp(src: str, dst: str, sport: int, dport: int, flags: int, data: bytes = b"",
        seq: int = 1000, ack: int = 0) -> bytes:  # fmt: skip
    seg = dpkt.tcp.TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags, win=1024,
                       data=data)  # fmt: skip
    return eth_ip(src, dst, seg, 6)


def sids(hits: list[tuple[int, Any]]) -> list[int]:
    return [sig.sid for _, sig in hits]
