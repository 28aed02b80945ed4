"""Reading capture files: classic pcap and pcapng, detected by their magic number.

Scope: ``open_capture(path)`` opens a file, checks its magic and returns a
:class:`CaptureFile` that yields ``(ts_sec, ts_usec, linktype, data, wirelen)`` tuples.
The whole file is mapped (or read) at once and records are sliced out of the buffer, so
there is no per-packet read syscall and every error can name the byte offset it
happened at. A file that ends or is damaged in the middle of a record is not an error:
iteration stops there and ``truncated`` explains where, so a half-written capture still
gets analysed. Problems that make the file unusable (missing, unreadable, a directory,
empty, not a capture at all) raise :class:`~sensor.errors.CaptureError`.

Non-goals: writing captures, compressed files (.gz/.zst), the "modified" pcap variants
with extra per-record fields, pcapng blocks other than SHB/IDB/EPB/SPB/PB (skipped).
The pcapng block walk lives in :mod:`sensor.capture.pcapng`.
"""

from __future__ import annotations

import mmap
import os
import stat
import struct
from collections.abc import Iterator
from typing import Final

from sensor.capture.pcapng import pcapng_records
from sensor.capture.records import MAX_CAPLEN, PCAPNG_SHB_MAGIC, Record
from sensor.errors import CaptureError

_PCAP_USEC_LE: Final = b"\xd4\xc3\xb2\xa1"
_PCAP_USEC_BE: Final = b"\xa1\xb2\xc3\xd4"
_PCAP_NSEC_LE: Final = b"\x4d\x3c\xb2\xa1"
_PCAP_NSEC_BE: Final = b"\xa1\xb2\x3c\x4d"

_PCAP_GLOBAL_LEN: Final = 24
_PCAP_RECORD_LEN: Final = 16


class CaptureFile:
    """An opened capture file; iterate it once to get its records.

    Attributes kept up to date while iterating: ``packets_read``, ``bytes_read`` (sum of
    captured lengths), ``position`` (bytes of the file consumed) and ``truncated`` (None,
    or a one-line message naming the file, byte offset and record number where reading
    stopped). ``size`` is the file size and ``linktype`` the link type of the first (for
    pcap: the only) interface, -1 when a pcapng file declares none.
    """

    def __init__(self, path: str, buf: bytes | mmap.mmap, fmt: str) -> None:
        self.path = path
        self.format = fmt  # "pcap" or "pcapng"
        self.size = len(buf)
        self.linktype = -1
        self.packets_read = 0
        self.bytes_read = 0
        self.position = 0
        self.truncated: str | None = None
        self._buf: bytes | mmap.mmap | None = buf
        self._records: Iterator[Record] = self._open_records(buf)

    def _open_records(self, buf: bytes | mmap.mmap) -> Iterator[Record]:
        if self.format == "pcap":
            return self._pcap_records(buf)
        return pcapng_records(self, buf)

    def __iter__(self) -> Iterator[Record]:
        try:
            yield from self._records
        finally:
            self.close()

    def __enter__(self) -> CaptureFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the mapping. Safe to call more than once."""
        buf, self._buf = self._buf, None
        if isinstance(buf, mmap.mmap):
            try:
                buf.close()
            except BufferError:  # a generator frame still holds a view; GC frees it
                pass

    def stop_truncated(self, offset: int, record: int, reason: str) -> None:
        """Record why reading stopped early (used by both format readers)."""
        self.truncated = f"{self.path}: truncated at byte {offset} (record {record}): {reason}"

    # -- classic pcap ---------------------------------------------------------------------

    def _pcap_records(self, buf: bytes | mmap.mmap) -> Iterator[Record]:
        magic = bytes(buf[:4])
        order = "<" if magic in (_PCAP_USEC_LE, _PCAP_NSEC_LE) else ">"
        nsec = magic in (_PCAP_NSEC_LE, _PCAP_NSEC_BE)
        if len(buf) < _PCAP_GLOBAL_LEN:
            self.stop_truncated(0, 0, "file header is shorter than 24 bytes")
            return
        (network,) = struct.unpack_from(order + "I", buf, 20)
        self.linktype = linktype = network & 0xFFFF  # upper bits: FCS length flags
        record_hdr = struct.Struct(order + "IIII")
        unpack_hdr = record_hdr.unpack_from
        size = len(buf)
        off = _PCAP_GLOBAL_LEN
        self.position = off
        count = 0
        while off < size:
            count += 1
            if off + _PCAP_RECORD_LEN > size:
                self.stop_truncated(off, count, "record header cut short")
                return
            ts_sec, ts_frac, caplen, wirelen = unpack_hdr(buf, off)
            start = off + _PCAP_RECORD_LEN
            if caplen > MAX_CAPLEN:
                self.stop_truncated(off, count, f"implausible captured length {caplen}")
                return
            end = start + caplen
            if end > size:
                self.stop_truncated(
                    off, count, f"packet data cut short ({size - start} of {caplen} bytes)"
                )
                return
            if nsec:
                ts_frac //= 1000
            off = end
            self.position = off
            self.packets_read = count
            self.bytes_read += caplen
            yield ts_sec, ts_frac, linktype, buf[start:end], wirelen


def _map_file(path: str, fd: int, size: int) -> bytes | mmap.mmap:
    try:
        return mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):  # e.g. a FIFO or a file system without mmap
        try:
            with os.fdopen(os.dup(fd), "rb") as f:
                return f.read()
        except OSError as exc:
            raise CaptureError(f"{path}: cannot read: {exc.strerror or exc}") from exc


def open_capture(path: str) -> CaptureFile:
    """Open a pcap or pcapng file; raise CaptureError when it cannot be one."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError as exc:
        raise CaptureError(f"{path}: no such file") from exc
    except PermissionError as exc:
        raise CaptureError(f"{path}: permission denied") from exc
    except IsADirectoryError as exc:
        raise CaptureError(f"{path}: is a directory, not a capture file") from exc
    except OSError as exc:
        raise CaptureError(f"{path}: cannot open: {exc.strerror or exc}") from exc
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise CaptureError(f"{path}: is a directory, not a capture file")
        if stat.S_ISREG(st.st_mode) and st.st_size == 0:
            raise CaptureError(f"{path}: empty file")
        buf = _map_file(path, fd, st.st_size)
    finally:
        os.close(fd)
    if len(buf) == 0:
        raise CaptureError(f"{path}: empty file")
    magic = bytes(buf[:4])
    if magic in (_PCAP_USEC_LE, _PCAP_USEC_BE, _PCAP_NSEC_LE, _PCAP_NSEC_BE):
        return CaptureFile(path, buf, "pcap")
    if magic == PCAPNG_SHB_MAGIC:
        return CaptureFile(path, buf, "pcapng")
    if isinstance(buf, mmap.mmap):
        buf.close()
    raise CaptureError(f"{path}: not a pcap or pcapng file (magic {magic.hex()})")
