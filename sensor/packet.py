"""The decoded view of one captured frame, shared by every stage of the hot path.

Scope: one mutable, slotted object per captured frame that the decoder fills in place
and the flow, stream and detection stages read. Offsets point into ``data`` (the frame's
bytes) instead of copying headers; only ``payload`` is a copy, because Hyperscan and the
content matcher need a ``bytes`` object.

Non-goals: this is not a record handed to other processes. Alerts, flows and decisions
that leave the hot path are frozen dataclasses built from it when (rarely) needed.

Why not a frozen dataclass: the decoder fills ~40 fields per packet; a slotted class
with class-level defaults costs one allocation and plain attribute stores, which matters
at hundreds of thousands of packets per second in Python.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sensor.flow import Flow

# Link types (DLT_* values as written in pcap headers).
DLT_NULL = 0  # BSD loopback: 4-byte host-order address family
DLT_EN10MB = 1  # Ethernet
DLT_RAW = 101  # raw IPv4/IPv6 (LINKTYPE_RAW)
DLT_RAW_ALT = 12  # raw IP on some BSDs (DLT_RAW value there)
DLT_RAW_ALT2 = 14  # raw IP on OpenBSD
DLT_LOOP = 108  # OpenBSD loopback: 4-byte network-order address family
DLT_LINUX_SLL = 113  # Linux cooked capture v1
DLT_IPV4 = 228  # raw IPv4
DLT_IPV6 = 229  # raw IPv6
DLT_LINUX_SLL2 = 276  # Linux cooked capture v2

# TCP flag bits as in the header's flags byte (plus the two ECN bits Suricata names).
TH_FIN = 0x01
TH_SYN = 0x02
TH_RST = 0x04
TH_PUSH = 0x08
TH_ACK = 0x10
TH_URG = 0x20
TH_ECE = 0x40
TH_CWR = 0x80

IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ICMPV6 = 58


class Packet:
    """One frame, decoded in place. Fields left at their class default were not present.

    Addresses are integers (IPv4 in 32 bits, IPv6 in 128 bits; ``ipver`` tells which),
    because the hot path hashes them into flow keys and compares them against CIDR
    ranges; text forms are made only when an alert is written.
    """

    __slots__ = (
        "ack",
        "bad",  # True when the packet could not be decoded far enough for detection
        "data",  # bytes: the whole frame as captured (or a rebuilt IP datagram after defrag)
        "defragged",  # True for a datagram rebuilt from fragments
        "dport",
        "dst",  # int address
        "dst_mac",
        # anomalies
        "events",  # list[str] of decoder event names (Suricata's names), or None
        # set by later stages
        "flow",  # the Flow this packet belongs to, or None
        "frag",  # True when this datagram is a fragment (before reassembly)
        "frag_off",  # fragment offset in bytes
        "icmp_id",  # echo id / seq, -1 when the ICMP type has none
        "icmp_seq",
        "icode",
        "iface",  # capture interface name (live) or None
        "ip6_exthdrs",  # tuple of IPv6 extension header numbers in order, () if none
        "ip_hlen",  # IPv4 header length incl. options; IPv6: 40 + extension headers
        "ip_id",  # IPv4 identification (IPv6: fragment id when fragmented, else 0)
        "ip_len",  # IP total length as claimed by the header (clamped to what was captured)
        "ip_off",  # offset of the IP header in data
        # network layer
        "ipver",  # 4, 6, or 0 when not IP
        "itype",  # ICMP/ICMPv6 type, -1 when not ICMP
        "l4_hlen",  # L4 header length (TCP incl. options, UDP 8, ICMP 8 / 4)
        # transport layer
        "l4_off",  # offset of the L4 header in data (-1 when absent/undecodable)
        "linktype",  # DLT_* of the frame
        "more_frags",  # MF flag
        "payload",  # bytes: L4 payload (for non-first fragments / unknown L4: IP payload)
        # capture
        "pcap_cnt",  # 1-based index of the frame in the capture / since start
        "pktvars",  # dict[str, bytes] of packet variables set by matched rules, or None
        "proto",  # L4 protocol number (IPv6: after extension headers)
        "seq",
        "sport",  # TCP/UDP ports; 0 otherwise
        "src",  # int address
        # link layer
        "src_mac",  # bytes(6) or None
        "stream_added",  # TCP: payload was accepted into the stream reassembly
        "tcp_flags",  # int, TH_* bits
        "to_server",  # True when travelling in the flow's client -> server direction
        "tos",  # IPv4 TOS / IPv6 traffic class
        "ts_sec",  # capture time, whole seconds since the epoch
        "ts_usec",  # capture time, microseconds part
        "ttl",  # IPv4 TTL or IPv6 hop limit
        "urg_ptr",
        "vlan",  # tuple of VLAN ids, outermost first; () when untagged
        "win",  # raw window field (unscaled)
        "wirelen",  # original length on the wire
    )

    def __init__(
        self, pcap_cnt: int, ts_sec: int, ts_usec: int, linktype: int, data: bytes
    ) -> None:
        self.pcap_cnt = pcap_cnt
        self.ts_sec = ts_sec
        self.ts_usec = ts_usec
        self.linktype = linktype
        self.data = data
        self.wirelen = len(data)
        self.src_mac: bytes | None = None
        self.dst_mac: bytes | None = None
        self.vlan: tuple[int, ...] = ()
        self.ipver = 0
        self.ip_off = -1
        self.ip_hlen = 0
        self.ip_len = 0
        self.src = 0
        self.dst = 0
        self.proto = -1
        self.ttl = -1
        self.ip_id = 0
        self.tos = 0
        self.frag = False
        self.frag_off = 0
        self.more_frags = False
        self.ip6_exthdrs: tuple[int, ...] = ()
        self.defragged = False
        self.l4_off = -1
        self.l4_hlen = 0
        self.sport = 0
        self.dport = 0
        self.tcp_flags = 0
        self.seq = 0
        self.ack = 0
        self.win = 0
        self.urg_ptr = 0
        self.itype = -1
        self.icode = -1
        self.icmp_id = -1
        self.icmp_seq = -1
        self.payload = b""
        self.events: list[str] | None = None
        self.bad = False
        self.flow: Flow | None = None
        self.pktvars: dict[str, bytes] | None = None
        self.to_server = True
        self.stream_added = False
        self.iface: str | None = None

    def add_event(self, name: str) -> None:
        """Record a decoder anomaly (Suricata's event name, e.g. ``ipv4.trunc_pkt``)."""
        if self.events is None:
            self.events = [name]
        else:
            self.events.append(name)

    # Header slices for the ``ipv4.hdr``/``tcp.hdr``/... sticky buffers; not on the hot path.
    def ip_header(self) -> bytes:
        if self.ip_off < 0:
            return b""
        return self.data[self.ip_off : self.ip_off + self.ip_hlen]

    def l4_header(self) -> bytes:
        if self.l4_off < 0:
            return b""
        return self.data[self.l4_off : self.l4_off + self.l4_hlen]

    def __repr__(self) -> str:  # debugging aid only
        fields: dict[str, Any] = {
            s: getattr(self, s) for s in ("pcap_cnt", "ipver", "proto", "sport", "dport")
        }
        return f"Packet({fields})"
