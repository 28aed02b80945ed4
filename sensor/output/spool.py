"""The local, bounded, append-only spool that holds alerts while Redis is unreachable.

Scope: a directory of segment files ``spool-NNNNNNNNNNNN.seg``; each record is a 16-byte
header (payload length, CRC-32 of the payload, the publisher's sequence number) followed by
the serialised alert. Records come back out oldest first; a fully replayed segment is
deleted. The total size on disk is bounded: an append that would pass the bound is refused
and the caller counts and logs the drop (the oldest alerts are kept, so what is replayed
is always a gap-free prefix of what was spooled).

A spool left by a previous run is picked up on open. Writes always go to a fresh segment,
so a torn record at the end of an old segment (crash mid-write) is detected by its length
or CRC, logged, and skipped without disturbing later segments.

Non-goals: fsync per record (a process crash loses nothing; a power loss may lose the
last page-cache seconds), remembering how far a segment was replayed (the publisher's
sequence numbers make replaying a record twice harmless), concurrent writers.
"""

from __future__ import annotations

import logging
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

from sensor.errors import ConfigError

log = logging.getLogger(__name__)

HEADER = struct.Struct(">IIQ")  # payload length, crc32(payload), sequence number
SEGMENT_GLOB = "spool-*.seg"
MAX_RECORD = 64 * 1024 * 1024  # a length above this is a torn header, not a real alert


class Spool:
    """Oldest-first queue of ``(seq, payload)`` records on disk, at most ``max_bytes`` big."""

    def __init__(self, directory: str | Path, max_bytes: int, segment_bytes: int = 8 << 20):
        if max_bytes <= HEADER.size:
            raise ConfigError(f"spool bound {max_bytes} bytes is too small to hold an alert")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        # Small enough that replayed bytes are given back (segment deleted) well before the
        # bound is reached, big enough that a flood does not create thousands of files.
        self.segment_bytes = max(4096, min(segment_bytes, max_bytes // 8))
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"{self.directory}: cannot create spool directory: {exc}") from exc
        self._segments: list[Path] = sorted(self.directory.glob(SEGMENT_GLOB))
        self._sizes: dict[Path, int] = {p: p.stat().st_size for p in self._segments}
        self._next_number = self._number(self._segments[-1]) + 1 if self._segments else 0
        self._writer: BinaryIO | None = None
        self._writer_path: Path | None = None
        self._head_offset = 0  # bytes of the head segment already handed out and consumed
        self._pending: list[tuple[int, int]] = []  # (segment index, end offset) of peeked records
        self._cache: tuple[Path | None, bytes] = (None, b"")
        self.corrupt_records = 0

    # -- size and state ------------------------------------------------------------------

    @property
    def size_bytes(self) -> int:
        return sum(self._sizes.values())

    def is_empty(self) -> bool:
        self._drop_consumed_head()
        return not self._segments

    def max_seq(self) -> int:
        """The highest sequence number on disk (0 when empty); scans, so call it once at start."""
        highest = 0
        for path in self._segments:
            for seq, _payload, _end in self._records(path, 0):
                highest = max(highest, seq)
        return highest

    # -- writing -------------------------------------------------------------------------

    def append(self, seq: int, payload: bytes) -> bool:
        """Add one record; False (nothing written) when that would pass the size bound."""
        record_size = HEADER.size + len(payload)
        if self.size_bytes + record_size > self.max_bytes:
            return False
        writer = self._writer_for(record_size)
        writer.write(HEADER.pack(len(payload), zlib.crc32(payload), seq))
        writer.write(payload)
        assert self._writer_path is not None
        self._sizes[self._writer_path] += record_size
        return True

    def sync(self) -> None:
        """Hand written records to the OS so they survive this process crashing."""
        if self._writer is not None:
            self._writer.flush()

    def _writer_for(self, record_size: int) -> BinaryIO:
        if self._writer is not None and self._writer_path is not None:
            if self._sizes[self._writer_path] + record_size <= self.segment_bytes:
                return self._writer
            self._writer.close()
        path = self.directory / f"spool-{self._next_number:012d}.seg"
        self._next_number += 1
        try:
            self._writer = path.open("ab")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot write spool segment: {exc.strerror}") from exc
        self._writer_path = path
        self._segments.append(path)
        self._sizes[path] = 0
        return self._writer

    # -- reading -------------------------------------------------------------------------

    def peek(self, limit: int) -> list[tuple[int, bytes]]:
        """Up to ``limit`` oldest records not yet consumed (call :meth:`consume` after use)."""
        self.sync()
        self._pending = []
        out: list[tuple[int, bytes]] = []
        offset = self._head_offset
        for index, path in enumerate(self._segments):
            for seq, payload, end in self._records(path, offset if index == 0 else 0):
                out.append((seq, payload))
                self._pending.append((index, end))
                if len(out) >= limit:
                    return out
        return out

    def consume(self, count: int) -> None:
        """Mark the first ``count`` records of the last :meth:`peek` as delivered."""
        if count <= 0:
            return
        index, end = self._pending[count - 1]
        for _ in range(index):  # every earlier segment was read to its end
            self._remove_head()
        self._head_offset = end
        self._pending = []
        self._drop_consumed_head()

    def _drop_consumed_head(self) -> None:
        while self._segments and self._head_offset >= self._sizes[self._segments[0]]:
            if self._segments[0] == self._writer_path:
                if self._head_offset == 0:
                    return  # the writer just opened an empty segment
                assert self._writer is not None
                self._writer.close()
                self._writer = None
                self._writer_path = None
            self._remove_head()

    def _remove_head(self) -> None:
        path = self._segments.pop(0)
        del self._sizes[path]
        self._head_offset = 0
        try:
            path.unlink()
        except FileNotFoundError:
            pass

    def _records(self, path: Path, offset: int) -> list[tuple[int, bytes, int]]:
        """The intact records of ``path`` from ``offset`` (stops at a torn or corrupt one)."""
        data = self._read(path)
        out: list[tuple[int, bytes, int]] = []
        while offset < len(data):
            if offset + HEADER.size > len(data):
                self._report_corrupt(path, offset, "truncated header")
                break
            length, crc, seq = HEADER.unpack_from(data, offset)
            start = offset + HEADER.size
            if length > MAX_RECORD or start + length > len(data):
                self._report_corrupt(path, offset, "truncated record")
                break
            payload = data[start : start + length]
            if zlib.crc32(payload) != crc:
                self._report_corrupt(path, offset, "checksum mismatch")
                break
            offset = start + length
            out.append((seq, payload, offset))
        if offset < len(data) and path != self._writer_path:
            # Treat the unreadable tail as consumed so it is not reported on every peek.
            self._sizes[path] = offset
        return out

    def _read(self, path: Path) -> bytes:
        """The segment's bytes up to its known size; the head segment is cached between peeks."""
        size = self._sizes[path]
        cached_path, cached = self._cache
        if cached_path == path and len(cached) == size:
            return cached
        try:
            with path.open("rb") as handle:
                data = handle.read(size)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read spool segment: {exc.strerror}") from exc
        self._cache = (path, data)
        return data

    def _report_corrupt(self, path: Path, offset: int, why: str) -> None:
        self.corrupt_records += 1
        log.warning("spool %s: %s at byte %d; the rest of this segment is lost", path, why, offset)

    def close(self) -> None:
        self.sync()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self._writer_path = None
        self._drop_consumed_head()

    @staticmethod
    def _number(path: Path) -> int:
        try:
            return int(path.stem.split("-", 1)[1])
        except (IndexError, ValueError):
            return 0
