"""HTTP body decoding: chunk sizes, content-codings (gzip/deflate, stacked), bounded output.

Scope: one :class:`BodySink` per message body. It receives de-chunked body bytes in any
slicing, undoes the content-codings the headers announced (as libhtp does by default for
responses) and keeps at most ``limit`` decoded bytes - the inspection window
(``request-body-limit`` / ``response-body-limit``). Like libhtp it is lenient, because the
server's client is: codings are recognised by substring (``x-gzip``, ``gzip x``), the gzip
header is parsed here (reserved flags and a bogus header CRC do not stop decoding), trailers
(CRC32/ISIZE, Adler-32) are not verified, a "gzip" body that is really (zlib or raw) deflate is
inflated anyway, and a layer that cannot be decoded at all passes its bytes through. Every
layer's output is bounded with ``decompressobj.decompress(max_length=...)``, so a
decompression bomb costs at most the configured limits whatever its ratio.

Non-goals: brotli/zstd/lzma, multipart parsing.
"""

from __future__ import annotations

import zlib

IDENTITY = 0
GZIP = 1
DEFLATE = 2

_HEXDIGITS = frozenset(b"0123456789abcdefABCDEF")
_CHUNK_LEADING_WS = b" \t\r\n\x0b\x0c"
CHUNK_EMPTY = -1  # an empty line where a chunk size was expected (tolerated)
CHUNK_INVALID = -2  # no hex digits: the body is not really chunked
_RAW = -zlib.MAX_WBITS  # raw deflate: no header, no trailer check
_FEXTRA, _FNAME, _FCOMMENT, _FHCRC = 4, 8, 16, 2


def codings_of(content_encoding: bytes | None) -> tuple[list[int], list[str]]:
    """Content-Encoding value (repeats already merged with ", ") -> codings in applied order."""
    if not content_encoding:
        return [], []
    out: list[int] = []
    events: list[str] = []
    for token in content_encoding.lower().split(b","):
        token = token.strip(b" \t\x00")
        if b"gzip" in token:
            out.append(GZIP)
        elif b"deflate" in token:
            out.append(DEFLATE)
        elif token and token not in (b"identity", b"none"):
            events.append("http.abnormal_ce_header")
    return out, events


def parse_chunk_size(line: bytes) -> int:
    """A chunk-size line read leniently, as libhtp: leading white space and anything after
    the hex digits (extensions, junk) are ignored; returns CHUNK_EMPTY / CHUNK_INVALID."""
    text = line.lstrip(_CHUNK_LEADING_WS)
    if not text:
        return CHUNK_EMPTY
    digits = 0
    while digits < len(text) and text[digits] in _HEXDIGITS:
        digits += 1
    if digits == 0 or digits > 16:
        return CHUNK_INVALID
    return int(text[:digits], 16)


def chunk_size_hopeless(buf: bytearray, pos: int) -> bool:
    """True when the bytes at ``pos`` can no longer start a chunk-size line, so the decision
    need not wait for a line end (a body that is not really chunked may have none)."""
    text = bytes(buf[pos : pos + 64]).lstrip(_CHUNK_LEADING_WS)
    return bool(text) and text[0] not in _HEXDIGITS


def _gzip_header_len(data: bytes) -> int:
    """Length of a gzip member header at the start of ``data``; -1 if more bytes are needed."""
    if len(data) < 10:
        return -1
    flags = data[3]
    pos = 10
    if flags & _FEXTRA:
        if len(data) < pos + 2:
            return -1
        pos += 2 + int.from_bytes(data[pos : pos + 2], "little")
    for bit in (_FNAME, _FCOMMENT):
        if flags & bit:
            end = data.find(b"\x00", pos)
            if end == -1:
                return -1
            pos = end + 1
    if flags & _FHCRC:
        pos += 2
    return pos if len(data) >= pos else -1


class _Layer:
    """Undoes one content-coding, streaming."""

    __slots__ = ("coding", "failed", "head", "inflater", "limit", "produced")

    def __init__(self, coding: int, limit: int) -> None:
        self.coding = coding
        self.limit = limit
        self.produced = 0
        self.head = b""  # bytes held until the wrapper (gzip header / zlib header) is known
        self.inflater: zlib._Decompress | None = None
        self.failed = False

    def _start(self) -> bytes | None:
        """Pick the inflater from the first bytes; returns the data to inflate, None to wait."""
        head = self.head
        if head[:2] == b"\x1f\x8b":
            hlen = _gzip_header_len(head)
            if hlen == -1:
                return None if len(head) < 64 * 1024 else head
            self.inflater = zlib.decompressobj(wbits=_RAW)
            return head[hlen:]
        if len(head) < 2:
            return None
        self.inflater = zlib.decompressobj(wbits=_RAW)
        zlib_wrapped = (head[0] & 0x0F) == 8 and ((head[0] << 8) | head[1]) % 31 == 0
        return head[2:] if zlib_wrapped else head

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """Decoded bytes for ``data`` and whether this layer just failed."""
        if self.failed:
            return data, False
        if self.inflater is None:
            self.head += data
            start = self._start()
            if start is None:
                return b"", False
            self.head, data = b"", start
        assert self.inflater is not None
        room = self.limit - self.produced
        if room <= 0 or self.inflater.eof:
            return b"", False
        try:
            out = self.inflater.decompress(data, room)
        except zlib.error:
            self.failed = True  # libhtp passes the rest through undecoded
            return (data if self.produced == 0 else b""), True
        self.produced += len(out)
        return out, False


class BodySink:
    """Decoded body bytes of one message, bounded by ``limit``."""

    __slots__ = ("data", "events", "layers", "limit", "wire_len")

    def __init__(
        self,
        codings: list[int],
        limit: int,
        layer_limit: int = 2,
        decompression_limit: int = 1024 * 1024,
    ) -> None:
        self.limit = limit
        self.data = bytearray()
        self.wire_len = 0  # body bytes on the wire after de-chunking (EVE "length")
        self.events: list[str] = []  # new anomalies, drained by the parser
        if len(codings) > layer_limit:
            self.events.append("http.too_many_encoding_layers")
            codings = codings[-layer_limit:] if layer_limit > 0 else []
        # the last coding listed was applied last, so it is undone first
        self.layers = [_Layer(c, decompression_limit) for c in reversed(codings)]

    @property
    def full(self) -> bool:
        return len(self.data) >= self.limit

    def add(self, chunk: bytes) -> None:
        self.wire_len += len(chunk)
        if self.full or not chunk:
            return
        for layer in self.layers:
            chunk, failed = layer.feed(chunk)
            if failed:
                self.events.append("http.gzip_decompression_failed")
            if not chunk:
                return
        self.data += chunk[: self.limit - len(self.data)]
