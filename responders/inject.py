"""Building TCP resets and sending raw frames out of an injection interface (AF_PACKET).

Scope: :func:`build_rst` makes one Ethernet frame holding a TCP RST (IPv4 or IPv6, optional
802.1Q tags) with dpkt; :class:`RawSender` owns one ``AF_PACKET``/``SOCK_RAW`` socket bound
to the injection interface and writes whole frames to it.

Why the L2 header is packed by hand: dpkt computes the IP and TCP checksums, which is the
part worth a library; its Ethernet class costs more than the IP and TCP layers together
(~30 µs per frame, measured) for 14-18 bytes of fixed layout, and every microsecond here is
on the capture-to-send path.

Non-goals: routing (frames go out exactly as built, MACs from the alert), IP options, TCP
options on resets (none are needed; Linux checks only the sequence number).
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass

import dpkt

from sensor.errors import ResponderError

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
ETH_P_8021Q = 0x8100
TH_RST_ACK = dpkt.tcp.TH_RST | dpkt.tcp.TH_ACK


@dataclass(frozen=True, slots=True)
class RstSpec:
    """One reset as it will appear on the wire (addresses in text form, as in EVE)."""

    src_mac: str
    dst_mac: str
    src_ip: str
    dst_ip: str
    sport: int
    dport: int
    seq: int
    ack: int
    ttl: int
    vlan: tuple[int, ...] = ()


def mac_bytes(text: str) -> bytes:
    """``aa:bb:cc:dd:ee:ff`` → 6 bytes; ResponderError for anything else."""
    try:
        raw = bytes.fromhex(text.replace(":", "").replace("-", ""))
    except ValueError as exc:
        raise ResponderError(f"bad MAC address {text!r}") from exc
    if len(raw) != 6:
        raise ResponderError(f"bad MAC address {text!r}")
    return raw


def _l2_header(spec: RstSpec, ethertype: int) -> bytes:
    head = mac_bytes(spec.dst_mac) + mac_bytes(spec.src_mac)
    for vid in spec.vlan:  # outermost first, as the sensor reports them
        head += struct.pack("!HH", ETH_P_8021Q, vid & 0x0FFF)
    return head + struct.pack("!H", ethertype)


def build_rst(spec: RstSpec) -> bytes:
    """The whole frame for ``spec``: RST+ACK, window 0, checksums filled in."""
    try:
        src = ipaddress.ip_address(spec.src_ip)
        dst = ipaddress.ip_address(spec.dst_ip)
    except ValueError as exc:
        raise ResponderError(f"bad address in reset: {exc}") from exc
    if src.version != dst.version:
        raise ResponderError(f"reset between {spec.src_ip} and {spec.dst_ip}: mixed IP versions")
    ttl = spec.ttl if 0 < spec.ttl < 256 else 64
    tcp = dpkt.tcp.TCP(sport=spec.sport, dport=spec.dport, seq=spec.seq, ack=spec.ack,
                       flags=TH_RST_ACK, win=0)  # fmt: skip
    ip: dpkt.Packet
    if src.version == 4:
        ip = dpkt.ip.IP(src=src.packed, dst=dst.packed, p=dpkt.ip.IP_PROTO_TCP, ttl=ttl,
                        data=tcp, len=40)  # fmt: skip
        ethertype = ETH_P_IP
    else:
        ip = dpkt.ip6.IP6(src=src.packed, dst=dst.packed, nxt=dpkt.ip.IP_PROTO_TCP, hlim=ttl,
                          data=tcp, plen=20)  # fmt: skip
        ethertype = ETH_P_IPV6
    return _l2_header(spec, ethertype) + bytes(ip)


class RawSender:
    """One raw socket on the injection interface. Needs root or CAP_NET_RAW."""

    def __init__(self, interface: str) -> None:
        self.interface = interface
        self._sock: socket.socket | None = None

    def open(self) -> None:
        try:
            # Protocol 0: the socket receives nothing, it only sends.
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except PermissionError as exc:
            raise ResponderError(
                f"injection interface {self.interface}: raw sockets need root or CAP_NET_RAW"
            ) from exc
        except OSError as exc:
            raise ResponderError(f"injection interface {self.interface}: {exc}") from exc
        try:
            sock.bind((self.interface, 0))
        except OSError as exc:
            sock.close()
            raise ResponderError(f"injection interface {self.interface}: {exc}") from exc
        self._sock = sock

    def send(self, frames: list[bytes]) -> int:
        """Write every frame; the number written. ResponderError when the kernel refuses."""
        if self._sock is None:
            raise ResponderError(f"injection interface {self.interface} is not open")
        sent = 0
        for frame in frames:
            try:
                self._sock.send(frame)
            except OSError as exc:
                raise ResponderError(
                    f"sending on {self.interface} failed after {sent} frame(s): {exc}"
                ) from exc
            sent += 1
        return sent

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
