"""Building TCP resets and sending raw frames out of an injection interface (AF_PACKET).

Scope: :func:`build_rst` makes one Ethernet frame holding a TCP RST (IPv4 or IPv6, optional
802.1Q tags); :class:`RawSender` owns one ``AF_PACKET``/``SOCK_RAW`` socket bound to the
injection interface and writes whole frames to it.

Why the frame is packed by hand and not built with dpkt: this is on the capture-to-send
path of a race. A reset is 54 bytes of fixed layout; building it through dpkt's classes
cost ~35 µs per frame idle and 70 µs in the reset lab (object construction, default
copying), struct packing and two checksums cost ~6 µs. dpkt stays the reference: the tests
build the same frames with dpkt for random inputs and require identical bytes, and parse
ours with it.

Non-goals: routing (frames go out exactly as built, MACs from the alert), IP options, TCP
options on resets (none are needed; Linux checks only the sequence number).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from sensor.errors import ResponderError

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
ETH_P_8021Q = 0x8100
IPPROTO_TCP = 6
TH_RST_ACK = 0x04 | 0x10
_TCP = struct.Struct("!HHIIBBHHH")
_IP4 = struct.Struct("!BBHHHBBH4s4s")
_IP6 = struct.Struct("!IHBB16s16s")
_PSEUDO4 = struct.Struct("!xBH")  # zero, protocol, TCP length (after the two addresses)
_PSEUDO6 = struct.Struct("!I3xB")  # TCP length, three zeros, next header


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


def l2_header(dst_mac: bytes, src_mac: bytes, vlan: tuple[int, ...], ethertype: int) -> bytes:
    """Ethernet header (with 802.1Q tags, outermost first as the sensor reports them)."""
    head = dst_mac + src_mac
    for vid in vlan:
        head += struct.pack("!HH", ETH_P_8021Q, vid & 0x0FFF)
    return head + struct.pack("!H", ethertype)


def _address(text: str) -> tuple[int, bytes]:
    """(4 or 6, packed address); ResponderError when ``text`` is neither."""
    family, version = (socket.AF_INET6, 6) if ":" in text else (socket.AF_INET, 4)
    try:
        return version, socket.inet_pton(family, text)
    except OSError as exc:
        raise ResponderError(f"bad address in reset: {text!r}") from exc


def internet_checksum(data: bytes) -> int:
    """RFC 1071 ones' complement sum of ``data`` (even length), complemented.

    The ones' complement sum of 16-bit words is the big-endian number modulo 0xFFFF (2^16 ≡ 1),
    with 0xFFFF standing for a residue of 0 when any bit is set: one C-level big-integer
    operation instead of unpacking and summing words in Python (this runs on the reset path).
    """
    residue = int.from_bytes(data, "big") % 0xFFFF
    if residue == 0:
        return 0 if any(data) else 0xFFFF
    return 0xFFFF - residue


def build_rst(spec: RstSpec) -> bytes:
    """The whole frame for ``spec``: RST+ACK, window 0, checksums filled in."""
    v_src, src = _address(spec.src_ip)
    v_dst, dst = _address(spec.dst_ip)
    if v_src != v_dst:
        raise ResponderError(f"reset between {spec.src_ip} and {spec.dst_ip}: mixed IP versions")
    ethertype = ETH_P_IP if v_src == 4 else ETH_P_IPV6
    head = l2_header(mac_bytes(spec.dst_mac), mac_bytes(spec.src_mac), spec.vlan, ethertype)
    return rst_frame(head, src, dst, spec.sport, spec.dport, spec.seq, spec.ack, spec.ttl)


def rst_frame(l2: bytes, src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int,
              ttl: int) -> bytes:  # fmt: skip
    """One RST frame from packed parts: ``l2`` from :func:`l2_header`, 4- or 16-byte
    addresses. The sensor's in-sensor reset calls this directly (no text round trip)."""
    ttl = ttl if 0 < ttl < 256 else 64
    # TCP header with a zero checksum: ports, seq, ack, data offset 5, RST|ACK, window 0.
    tcp = _TCP.pack(sport & 0xFFFF, dport & 0xFFFF, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 0x50,
                    TH_RST_ACK, 0, 0, 0)  # fmt: skip
    if len(src) == 4:
        pseudo = src + dst + _PSEUDO4.pack(IPPROTO_TCP, _TCP.size)
        ip = _IP4.pack(0x45, 0, 20 + _TCP.size, 0, 0, ttl, IPPROTO_TCP, 0, src, dst)
        ip = ip[:10] + struct.pack("!H", internet_checksum(ip)) + ip[12:]
    else:
        pseudo = src + dst + _PSEUDO6.pack(_TCP.size, IPPROTO_TCP)
        ip = _IP6.pack(0x60000000, _TCP.size, IPPROTO_TCP, ttl, src, dst)
    tcp = tcp[:16] + struct.pack("!H", internet_checksum(pseudo + tcp)) + tcp[18:]
    return l2 + ip + tcp


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
