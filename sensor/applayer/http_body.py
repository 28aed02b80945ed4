"""HTTP body decoding: content-coding (gzip/deflate) with bounded output.

Scope: one :class:`BodySink` per message body. It receives de-chunked body bytes in any
slicing, decodes the content-coding the headers announced (``gzip``/``x-gzip``/``deflate``, as
libhtp does by default for responses), and keeps at most ``limit`` decoded bytes - the
inspection window (``request-body-limit`` / ``response-body-limit``). Output is bounded with
``decompressobj.decompress(max_length=...)``, so a decompression bomb costs at most ``limit``
bytes of memory whatever its ratio.

Non-goals: brotli/zstd/lzma (Suricata 7 does not decode them either by default), multiple
stacked encodings (treated as identity after an ``http.too_many_encoding_layers`` event),
multipart parsing.
"""

from __future__ import annotations

import zlib

IDENTITY = 0
GZIP = 1
DEFLATE = 2


def coding_of(content_encoding: bytes | None) -> tuple[int, str | None]:
    """Map a Content-Encoding value to a coding, plus an anomaly event name if any."""
    if not content_encoding:
        return IDENTITY, None
    parts = [p.strip().lower() for p in content_encoding.split(b",") if p.strip()]
    if len(parts) > 1:
        return IDENTITY, "http.too_many_encoding_layers"
    value = parts[0] if parts else b""
    if value in (b"gzip", b"x-gzip"):
        return GZIP, None
    if value == b"deflate":
        return DEFLATE, None
    if value in (b"identity", b"none", b""):
        return IDENTITY, None
    return IDENTITY, "http.abnormal_ce_header"


class BodySink:
    """Decoded body bytes of one message, bounded by ``limit``."""

    __slots__ = ("_decomp", "_pending", "coding", "data", "event", "failed", "limit", "wire_len")

    def __init__(self, coding: int, limit: int) -> None:
        self.coding = coding
        self.limit = limit
        self.data = bytearray()
        self.wire_len = 0  # body bytes seen on the wire after de-chunking (EVE "length")
        self.failed = False
        self.event: str | None = None  # set once when decompression fails
        self._decomp: zlib._Decompress | None = None
        self._pending = b""  # first bytes of a deflate body until the wrapper is known

    @property
    def full(self) -> bool:
        return len(self.data) >= self.limit

    def add(self, chunk: bytes) -> None:
        self.wire_len += len(chunk)
        if self.full or not chunk:
            return
        if self.coding == IDENTITY or self.failed:
            self.data += chunk[: self.limit - len(self.data)]
            return
        if self._decomp is None:
            if self.coding == GZIP:
                self._decomp = zlib.decompressobj(wbits=32 + zlib.MAX_WBITS)
            else:
                # deflate is sent both zlib-wrapped (RFC) and raw (IIS, old servers):
                # decide from the first two bytes as libhtp does.
                self._pending += chunk
                if len(self._pending) < 2:
                    return
                chunk, self._pending = self._pending, b""
                wrapped = (chunk[0] & 0x0F) == 8 and ((chunk[0] << 8) | chunk[1]) % 31 == 0
                self._decomp = zlib.decompressobj(
                    wbits=zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS
                )
        self._inflate(chunk)

    def _inflate(self, chunk: bytes) -> None:
        assert self._decomp is not None
        try:
            out = self._decomp.decompress(chunk, self.limit - len(self.data))
        except zlib.error:
            # libhtp passes the rest through undecoded after a failure; so do we.
            self.failed = True
            self.event = "http.gzip_decompression_failed"
            self.data += chunk[: self.limit - len(self.data)]
            return
        self.data += out
