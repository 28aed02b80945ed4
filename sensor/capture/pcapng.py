"""The pcapng block walk behind :class:`sensor.capture.pcapfile.CaptureFile`.

Scope: Section Header Blocks (either byte order, any number of sections, each resetting
the interface list), Interface Description Blocks (link type, snaplen, ``if_tsresol``
and ``if_tsoffset`` options), Enhanced Packet Blocks, Simple Packet Blocks (which use
the section's single interface) and the obsolete Packet Block. Other block types (name
resolution, statistics, decryption secrets, custom) are skipped by their length.

Non-goals: writing pcapng, per-packet options (comments, flags, hashes), interface
statistics. Damaged blocks stop the walk with ``CaptureFile.truncated`` set; they are
never raised, so the packets before the damage are still analysed.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from sensor.capture.records import MAX_CAPLEN, PCAPNG_SHB_MAGIC, Record

if TYPE_CHECKING:
    from sensor.capture.pcapfile import CaptureFile

_BT_IDB: Final = 1
_BT_PB: Final = 2  # obsolete Packet Block
_BT_SPB: Final = 3
_BT_EPB: Final = 6
_BOM_LE: Final = b"\x4d\x3c\x2b\x1a"
_BOM_BE: Final = b"\x1a\x2b\x3c\x4d"
_OPT_END: Final = 0
_OPT_IF_TSRESOL: Final = 9
_OPT_IF_TSOFFSET: Final = 14

Buffer = bytes | mmap.mmap


@dataclass(frozen=True)
class _Interface:
    linktype: int
    snaplen: int
    units_per_sec: int  # timestamp units per second (10**6 unless if_tsresol says otherwise)
    ts_offset: int  # seconds added to every timestamp (if_tsoffset)


class _Damaged(Exception):
    """Internal: the block at the current offset cannot be used; stop the walk."""


def _parse_idb(buf: Buffer, order: str, body: int, body_end: int) -> _Interface:
    if body_end - body < 8:
        raise _Damaged("interface description block too short")
    linktype, _reserved, snaplen = struct.unpack_from(order + "HHI", buf, body)
    units, offset = 10**6, 0
    opt = body + 8
    while opt + 4 <= body_end:
        code, length = struct.unpack_from(order + "HH", buf, opt)
        value = opt + 4
        if code == _OPT_END or value + length > body_end:
            break
        if code == _OPT_IF_TSRESOL and length >= 1:
            resol = buf[value]
            units = 2 ** (resol & 0x7F) if resol & 0x80 else 10 ** (resol & 0x7F)
        elif code == _OPT_IF_TSOFFSET and length >= 8:
            (offset,) = struct.unpack_from(order + "q", buf, value)
        opt = value + ((length + 3) & ~3)
    if units == 0:
        raise _Damaged("if_tsresol of zero")
    return _Interface(linktype, snaplen, units, offset)


def _split_ts(iface: _Interface, high: int, low: int) -> tuple[int, int]:
    ticks = (high << 32) | low
    units = iface.units_per_sec
    sec, frac = divmod(ticks, units)
    return sec + iface.ts_offset, frac * 1_000_000 // units


def _section_order(buf: Buffer, off: int) -> str:
    bom = bytes(buf[off + 8 : off + 12])
    if bom == _BOM_LE:
        return "<"
    if bom == _BOM_BE:
        return ">"
    raise _Damaged("section header with unknown byte-order magic")


def pcapng_records(cap: CaptureFile, buf: Buffer) -> Iterator[Record]:
    """Yield the packets of a pcapng buffer, updating ``cap``'s counters as it goes."""
    size = len(buf)
    off = 0
    count = 0
    order = "<"
    interfaces: list[_Interface] = []
    while off < size:
        try:
            if size - off < 12:
                raise _Damaged("block header cut short")
            if bytes(buf[off : off + 4]) == PCAPNG_SHB_MAGIC:
                order = _section_order(buf, off)
                interfaces = []
            btype, blen = struct.unpack_from(order + "II", buf, off)
            if blen < 12 or blen % 4:
                raise _Damaged(f"invalid block length {blen}")
            if off + blen > size:
                raise _Damaged(f"block of {blen} bytes runs past the end of the file")
            body, body_end = off + 8, off + blen - 4
            record = None
            if btype == _BT_IDB:
                interfaces.append(_parse_idb(buf, order, body, body_end))
                if cap.linktype < 0:
                    cap.linktype = interfaces[-1].linktype
            elif btype in (_BT_EPB, _BT_PB, _BT_SPB):
                record = _packet(buf, order, btype, body, body_end, interfaces)
        except _Damaged as exc:
            cap.stop_truncated(off, count + 1, str(exc))
            return
        off += blen
        cap.position = off
        if record is not None:
            count += 1
            cap.packets_read = count
            cap.bytes_read += len(record[3])
            yield record


def _packet(
    buf: Buffer, order: str, btype: int, body: int, body_end: int, interfaces: list[_Interface]
) -> Record:
    if btype == _BT_SPB:
        if len(interfaces) != 1:
            raise _Damaged("simple packet block needs exactly one interface in its section")
        iface = interfaces[0]
        if body_end - body < 4:
            raise _Damaged("simple packet block too short")
        (wirelen,) = struct.unpack_from(order + "I", buf, body)
        caplen = min(wirelen, body_end - body - 4)
        if iface.snaplen:
            caplen = min(caplen, iface.snaplen)
        # SPBs carry no timestamp.
        return 0, 0, iface.linktype, _slice(buf, body + 4, caplen, body_end), wirelen
    if btype == _BT_EPB:
        if body_end - body < 20:
            raise _Damaged("enhanced packet block too short")
        if_id, high, low, caplen, wirelen = struct.unpack_from(order + "IIIII", buf, body)
        data_off = body + 20
    else:
        if body_end - body < 20:
            raise _Damaged("packet block too short")
        if_id, _drops, high, low, caplen, wirelen = struct.unpack_from(order + "HHIIII", buf, body)
        data_off = body + 20
    if if_id >= len(interfaces):
        raise _Damaged(f"packet refers to undeclared interface {if_id}")
    iface = interfaces[if_id]
    sec, usec = _split_ts(iface, high, low)
    return sec, usec, iface.linktype, _slice(buf, data_off, caplen, body_end), wirelen


def _slice(buf: Buffer, start: int, caplen: int, body_end: int) -> bytes:
    if caplen > MAX_CAPLEN:
        raise _Damaged(f"implausible captured length {caplen}")
    if start + caplen > body_end:
        raise _Damaged(f"captured length {caplen} exceeds its block")
    return buf[start : start + caplen]
