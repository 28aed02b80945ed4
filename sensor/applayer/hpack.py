"""HPACK (RFC 7541) header block decoding for the HTTP/2 parser.

Scope: prefix integers, string literals (raw or Huffman-coded), the static table, one
dynamic table per direction with its size bound and size updates, and the four field
representations. :meth:`HpackDecoder.decode` turns one complete header block into
``(name, value)`` pairs plus the dynamic table size updates it carried (``http2.size_update``).

Malformed blocks never raise: decoding stops at the first error and reports it in
:attr:`Block.error`; the fields decoded before it are kept (Suricata keeps them too).

Non-goals: encoding (tests carry their own tiny encoder), header list validation (pseudo
header order, forbidden connection headers).
"""

from __future__ import annotations

from dataclasses import dataclass

# RFC 7541 Appendix B code lengths per symbol 0..256 (EOS). The code is canonical: codes
# are assigned in order of length, then symbol, so the lengths define it completely.
_LENGTHS = (
    [13, 23] + [28] * 7 + [24, 30, 28, 28, 30] + [28] * 8 + [30] + [28] * 9
    + [6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5] + [6] * 7
    + [7, 8, 15, 6, 12, 10, 13, 6] + [7] * 22
    + [8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6,
       5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28]
    + [20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24,
       23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22, 21, 20, 22, 22, 23, 23, 21, 23, 22,
       22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22,
       23, 26, 26, 20, 19, 22, 23, 22]
    + [25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26,
       28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, 26,
       27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30]
)  # fmt: skip
EOS = 256


def huffman_codes() -> list[tuple[int, int]]:
    """(code, length) per symbol, derived from the canonical lengths."""
    order = sorted(range(len(_LENGTHS)), key=lambda s: (_LENGTHS[s], s))
    codes: list[tuple[int, int]] = [(0, 0)] * len(_LENGTHS)
    code, prev = 0, _LENGTHS[order[0]]
    for i, sym in enumerate(order):
        length = _LENGTHS[sym]
        if i:
            code = (code + 1) << (length - prev)
        codes[sym] = (code, length)
        prev = length
    return codes


def _decode_map() -> dict[tuple[int, int], int]:
    return {(length, code): sym for sym, (code, length) in enumerate(huffman_codes())}


_DECODE = _decode_map()  # immutable after import: a lookup table, not state
_MIN_LEN = min(_LENGTHS)
_MAX_LEN = max(_LENGTHS)


def huffman_decode(data: bytes) -> bytes | None:
    """The decoded string, or None when the code is invalid (EOS inside, bad padding)."""
    out = bytearray()
    code = length = 0
    for byte in data:
        for shift in range(7, -1, -1):
            code = (code << 1) | ((byte >> shift) & 1)
            length += 1
            if length < _MIN_LEN:
                continue
            sym = _DECODE.get((length, code))
            if sym is not None:
                if sym == EOS:
                    return None
                out.append(sym)
                code = length = 0
            elif length >= _MAX_LEN:
                return None
    # padding: fewer than 8 bits, all ones (the EOS prefix)
    if length > 7 or code != (1 << length) - 1:
        return None
    return bytes(out)


STATIC_TABLE: tuple[tuple[bytes, bytes], ...] = tuple(
    (n.encode(), v.encode())
    for n, v in (
        (":authority", ""), (":method", "GET"), (":method", "POST"), (":path", "/"),
        (":path", "/index.html"), (":scheme", "http"), (":scheme", "https"),
        (":status", "200"), (":status", "204"), (":status", "206"), (":status", "304"),
        (":status", "400"), (":status", "404"), (":status", "500"), ("accept-charset", ""),
        ("accept-encoding", "gzip, deflate"), ("accept-language", ""),
        ("accept-ranges", ""), ("accept", ""), ("access-control-allow-origin", ""),
        ("age", ""), ("allow", ""), ("authorization", ""), ("cache-control", ""),
        ("content-disposition", ""), ("content-encoding", ""), ("content-language", ""),
        ("content-length", ""), ("content-location", ""), ("content-range", ""),
        ("content-type", ""), ("cookie", ""), ("date", ""), ("etag", ""), ("expect", ""),
        ("expires", ""), ("from", ""), ("host", ""), ("if-match", ""),
        ("if-modified-since", ""), ("if-none-match", ""), ("if-range", ""),
        ("if-unmodified-since", ""), ("last-modified", ""), ("link", ""), ("location", ""),
        ("max-forwards", ""), ("proxy-authenticate", ""), ("proxy-authorization", ""),
        ("range", ""), ("referer", ""), ("refresh", ""), ("retry-after", ""), ("server", ""),
        ("set-cookie", ""), ("strict-transport-security", ""), ("transfer-encoding", ""),
        ("user-agent", ""), ("vary", ""), ("via", ""), ("www-authenticate", ""),
    )
)  # fmt: skip
_ENTRY_OVERHEAD = 32  # RFC 7541 4.1
_MAX_INT = 1 << 32


@dataclass(frozen=True)
class Block:
    """One decoded header block."""

    headers: tuple[tuple[bytes, bytes], ...]
    size_updates: tuple[int, ...]
    error: str | None  # why decoding stopped early (None: the whole block decoded)


class HpackDecoder:
    """The decoding context of one direction: its dynamic table.

    ``limit`` is our own bound on the table (and on announced sizes); ``max_size`` starts at
    the protocol default and follows SETTINGS_HEADER_TABLE_SIZE and size updates.
    """

    __slots__ = ("_entries", "_size", "limit", "max_size", "settings_max")

    def __init__(self, limit: int = 65536) -> None:
        self.limit = limit
        self.settings_max = 4096  # what the peer allowed (SETTINGS_HEADER_TABLE_SIZE)
        self.max_size = 4096
        self._entries: list[tuple[bytes, bytes]] = []  # newest first
        self._size = 0

    @property
    def size(self) -> int:
        return self._size

    def set_settings_max(self, value: int) -> None:
        self.settings_max = min(value, self.limit)

    def _evict(self) -> None:
        while self._entries and self._size > self.max_size:
            name, value = self._entries.pop()
            self._size -= len(name) + len(value) + _ENTRY_OVERHEAD

    def _add(self, name: bytes, value: bytes) -> None:
        self._entries.insert(0, (name, value))
        self._size += len(name) + len(value) + _ENTRY_OVERHEAD
        self._evict()  # an entry larger than the table empties it (RFC 7541 4.4)

    def _entry(self, index: int) -> tuple[bytes, bytes] | None:
        if 1 <= index <= len(STATIC_TABLE):
            return STATIC_TABLE[index - 1]
        dyn = index - len(STATIC_TABLE) - 1
        if 0 <= dyn < len(self._entries):
            return self._entries[dyn]
        return None

    def decode(self, data: bytes, max_list: int = 65536) -> Block:
        """Decode one complete header block; ``max_list`` bounds the decoded list's size."""
        headers: list[tuple[bytes, bytes]] = []
        updates: list[int] = []
        pos, end, listed = 0, len(data), 0
        error: str | None = None
        while pos < end and error is None:
            first = data[pos]
            if first & 0x80:  # indexed field
                index, pos = _integer(data, pos, 7)
                entry = self._entry(index) if index is not None else None
                if entry is None:
                    error = "invalid_index"
                    break
                name, value = entry
            elif first & 0xE0 == 0x20:  # dynamic table size update
                size, pos = _integer(data, pos, 5)
                if size is None or size > self.settings_max:
                    error = "invalid_size_update"
                    break
                updates.append(size)
                self.max_size = size
                self._evict()
                continue
            else:
                indexing = first & 0xC0 == 0x40
                index, pos = _integer(data, pos, 6 if indexing else 4)
                if index is None:
                    error = "truncated"
                    break
                if index:
                    entry = self._entry(index)
                    if entry is None:
                        error = "invalid_index"
                        break
                    name = entry[0]
                else:
                    raw_name, pos = _string(data, pos)
                    if raw_name is None:
                        error = "invalid_string"
                        break
                    name = raw_name
                raw_value, pos = _string(data, pos)
                if raw_value is None:
                    error = "invalid_string"
                    break
                value = raw_value
                if indexing:
                    self._add(name, value)
            listed += len(name) + len(value) + _ENTRY_OVERHEAD
            if listed > max_list:
                error = "header_list_too_large"
                break
            headers.append((name, value))
        return Block(tuple(headers), tuple(updates), error)


def _integer(data: bytes, pos: int, prefix: int) -> tuple[int | None, int]:
    """RFC 7541 5.1 integer at ``pos`` with an N-bit prefix; None when cut short or huge."""
    if pos >= len(data):
        return None, pos
    mask = (1 << prefix) - 1
    value = data[pos] & mask
    pos += 1
    if value < mask:
        return value, pos
    shift = 0
    while pos < len(data):
        byte = data[pos]
        pos += 1
        value += (byte & 0x7F) << shift
        shift += 7
        if value >= _MAX_INT:
            return None, pos
        if not byte & 0x80:
            return value, pos
    return None, pos


def _string(data: bytes, pos: int) -> tuple[bytes | None, int]:
    if pos >= len(data):
        return None, pos
    huffman = bool(data[pos] & 0x80)
    length, pos = _integer(data, pos, 7)
    if length is None or pos + length > len(data):
        return None, pos
    raw = data[pos : pos + length]
    pos += length
    return (huffman_decode(raw) if huffman else raw), pos
