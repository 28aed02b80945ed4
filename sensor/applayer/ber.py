"""A minimal BER/DER reader for the application-layer parsers (SNMP, Kerberos 5, X.509).

Scope: read one tag-length-value header (:func:`read_header`, or :func:`read_tlv` as a
:class:`Tlv`), the children of a constructed value (:func:`children`), and the universal
INTEGER / OCTET STRING / OID contents the SNMP and Kerberos parsers need; the certificate
parser (x509.py) reads its DER through :func:`read_header` and :func:`decode_oid`. Definite lengths only (DER; SNMP agents and KDCs use them); the
indefinite form, multi-byte lengths over 4 bytes and high tag numbers over 3 bytes are
:class:`BerError`.

Non-goals: validating universal types beyond what is read, encoding, and the ``asn1`` rule
keyword (signatures/asn1.py walks BER for that, with Suricata's own checks).
"""

from __future__ import annotations

from dataclasses import dataclass

UNIVERSAL, APPLICATION, CONTEXT, PRIVATE = range(4)
TAG_INTEGER = 2
TAG_OCTET_STRING = 4
TAG_OID = 6
TAG_SEQUENCE = 16
TAG_GENERAL_STRING = 27
MAX_CHILDREN = 256  # elements read from one constructed value (bounds the work per message)


class BerError(ValueError):
    """Malformed or truncated BER (parsers turn it into their ``malformed_data`` event)."""


@dataclass(frozen=True, slots=True)
class Tlv:
    """One element: class, constructed bit, tag number and its content's [start, end)."""

    cls: int
    constructed: bool
    tag: int
    start: int
    end: int

    def content(self, data: bytes) -> bytes:
        return data[self.start : self.end]

    def is_(self, cls: int, tag: int) -> bool:
        return self.cls == cls and self.tag == tag


def read_tlv(data: bytes, pos: int, limit: int | None = None, partial: bool = False) -> Tlv:
    """The element starting at ``pos``; its content must end by ``limit`` (default: the end)
    unless ``partial`` (only the header must be there: probing a message's first bytes)."""
    return Tlv(*read_header(data, pos, limit, partial))


def read_header(data: bytes, pos: int, limit: int | None = None, partial: bool = False
                ) -> tuple[int, bool, int, int, int]:  # fmt: skip
    """:func:`read_tlv` as a plain tuple (class, constructed, tag number, content start,
    content end): no object per element, for the certificate parser's many small ones."""
    end_limit = min(len(data), len(data) if limit is None else limit)
    if pos + 2 > end_limit:
        raise BerError("truncated header")
    first = data[pos]
    cls, constructed, tag = first >> 6, bool(first & 0x20), first & 0x1F
    pos += 1
    if tag == 0x1F:  # high tag number form
        tag = 0
        for _ in range(3):
            if pos >= end_limit:
                raise BerError("truncated tag")
            byte = data[pos]
            pos += 1
            tag = (tag << 7) | (byte & 0x7F)
            if not byte & 0x80:
                break
        else:
            raise BerError("tag number too large")
    if pos >= end_limit:
        raise BerError("truncated length")
    length = data[pos]
    pos += 1
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4:
            raise BerError("indefinite or oversized length")
        if pos + count > end_limit:
            raise BerError("truncated length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > end_limit and not partial:
        raise BerError("content runs past its container")
    return cls, constructed, tag, pos, pos + length


def children(data: bytes, parent: Tlv) -> list[Tlv]:
    """The elements inside a constructed value, in order."""
    if not parent.constructed:
        raise BerError("primitive value has no children")
    out: list[Tlv] = []
    pos = parent.start
    while pos < parent.end:
        if len(out) >= MAX_CHILDREN:
            raise BerError("too many elements")
        item = read_tlv(data, pos, parent.end)
        out.append(item)
        pos = item.end
    return out


def integer(data: bytes, tlv: Tlv) -> int:
    """A (signed, two's complement) INTEGER's value."""
    raw = tlv.content(data)
    if not raw or len(raw) > 8:
        raise BerError("bad integer length")
    return int.from_bytes(raw, "big", signed=True)


def oid_text(raw: bytes) -> str:
    """Dotted text of an OBJECT IDENTIFIER's content (``1.3.6.1.2.1.1.1.0``)."""
    if not raw or raw[-1] & 0x80:  # empty, or the last arc unterminated
        raise BerError("bad object identifier")
    return decode_oid(raw)


def decode_oid(raw: bytes) -> str:
    """Dotted text of OID content, leniently (an unterminated last arc is dropped, as the
    certificate parser has always read them); BerError when empty."""
    if not raw:
        raise BerError("empty OID")
    parts: list[int] = []
    value = 0
    for b in raw:
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            parts.append(value)
            value = 0
    if not parts:
        raise BerError("unterminated OID")
    first = parts[0]
    head = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    return ".".join(str(p) for p in head + parts[1:])


def explicit(data: bytes, seq: Tlv) -> dict[int, Tlv]:
    """Context-tagged ([n]) fields of a SEQUENCE, each unwrapped to the value it holds."""
    out: dict[int, Tlv] = {}
    for item in children(data, seq):
        if item.cls == CONTEXT and item.constructed and item.tag not in out:
            out[item.tag] = read_tlv(data, item.start, item.end)
    return out
