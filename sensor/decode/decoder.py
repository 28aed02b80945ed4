"""The packet decoder: link layer → IP → transport, plus fragment reassembly.

Scope: :class:`Decoder` fills a :class:`~sensor.packet.Packet` in place, first trying
the allocation-free fast path (:mod:`sensor.decode.fastpath`) and otherwise running the
per-protocol decoders, which record Suricata-named events for malformed input instead
of raising. Fragments are decoded up to the IP layer and handed to the
:class:`~sensor.decode.defrag.Defragmenter`; when one completes a datagram, ``decode``
returns a new, fully decoded Packet for it. ``Decoder.stats`` counts protocols, events
and defrag outcomes.

Non-goals: flow lookup, stream reassembly, tunnels (see docs/decode.md).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sensor.decode.defrag import Defragmenter
from sensor.decode.fastpath import fast_decode
from sensor.decode.icmp import decode_icmpv4, decode_icmpv6
from sensor.decode.ipv4 import decode_ipv4
from sensor.decode.ipv6 import decode_ipv6
from sensor.decode.link import decode_link
from sensor.decode.tcp import decode_tcp
from sensor.decode.udp import decode_udp
from sensor.errors import ConfigError
from sensor.packet import IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, Packet


@dataclass(frozen=True)
class DecodeConfig:
    """Decoder limits; the defaults follow Suricata's where it has one."""

    max_vlan_layers: int = 3  # Suricata's VLAN_MAX_LAYERS
    defrag: bool = True  # reassemble fragments (off: fragments are only IP-decoded)
    defrag_max_datagrams: int = 4096  # incomplete datagrams tracked at once
    defrag_max_fragments: int = 256  # fragments kept per datagram
    defrag_max_size: int = 65535  # largest datagram that may be rebuilt (IP header included)
    defrag_timeout: int = 60  # seconds of capture time an incomplete datagram is kept
    defrag_memcap: int = 32 * 1024 * 1024  # fragment bytes held at once (defrag.memcap)

    def __post_init__(self) -> None:
        for name in (
            "max_vlan_layers",
            "defrag_max_datagrams",
            "defrag_max_fragments",
            "defrag_timeout",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(
                    f"decode setting {name} must be at least 1, got {getattr(self, name)}"
                )
        if not 68 <= self.defrag_max_size <= 65535 + 40:
            raise ConfigError(
                f"decode setting defrag_max_size out of range: {self.defrag_max_size}"
            )


class Decoder:
    """Decodes packets in place; one instance per capture thread (it holds defrag state)."""

    def __init__(self, config: DecodeConfig | None = None) -> None:
        self.config = config or DecodeConfig()
        self.stats: Counter[str] = Counter()
        self.defrag = Defragmenter(
            self.config.defrag_max_datagrams,
            self.config.defrag_max_fragments,
            self.config.defrag_max_size,
            self.config.defrag_timeout,
            self.stats,
            self.config.defrag_memcap,
        )

    def decode(self, pkt: Packet) -> Packet | None:
        """Fill ``pkt``; return a reassembled datagram when ``pkt`` completed one, else None."""
        if fast_decode(pkt, self.stats):
            return None
        stats = self.stats
        ipver, off = decode_link(pkt, stats, self.config.max_vlan_layers)
        rebuilt = None
        if ipver and self._decode_ip(pkt, ipver, off):
            if pkt.frag:
                rebuilt = self._fragment(pkt)
            else:
                self._decode_l4(pkt)
        if pkt.bad:
            stats["invalid"] += 1
        return rebuilt

    def _decode_ip(self, pkt: Packet, ipver: int, off: int) -> bool:
        if ipver == 4:
            return decode_ipv4(pkt, off, self.stats)
        return decode_ipv6(pkt, off, self.stats)

    def _decode_l4(self, pkt: Packet) -> None:
        start = pkt.ip_off + pkt.ip_hlen
        end = pkt.ip_off + pkt.ip_len
        proto = pkt.proto
        if proto == IPPROTO_TCP:
            decode_tcp(pkt, start, end, self.stats)
        elif proto == IPPROTO_UDP:
            decode_udp(pkt, start, end, self.stats)
        elif proto == IPPROTO_ICMP and pkt.ipver == 4:
            decode_icmpv4(pkt, start, end, self.stats)
        elif proto == IPPROTO_ICMPV6 and pkt.ipver == 6:
            decode_icmpv6(pkt, start, end, self.stats)
        elif not pkt.payload:
            # Other protocols (GRE, SCTP, ESP, ...): IP-only rules still see the payload.
            pkt.payload = pkt.data[start:end]

    def _fragment(self, pkt: Packet) -> Packet | None:
        self.stats["frag"] += 1
        if not self.config.defrag:
            return None
        datagram = self.defrag.add(pkt)
        if datagram is None:
            return None
        self.stats["defrag_reassembled"] += 1
        return self._decode_rebuilt(pkt, datagram)

    def _decode_rebuilt(self, last: Packet, datagram: bytes) -> Packet:
        whole = Packet(last.pcap_cnt, last.ts_sec, last.ts_usec, last.linktype, datagram)
        whole.defragged = True
        whole.src_mac = last.src_mac
        whole.dst_mac = last.dst_mac
        whole.vlan = last.vlan
        whole.iface = last.iface
        if self._decode_ip(whole, last.ipver, 0) and not whole.frag:
            self._decode_l4(whole)
        if whole.bad:
            self.stats["invalid"] += 1
        return whole
