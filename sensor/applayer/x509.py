"""A minimal DER reader for the X.509 fields TLS keywords and EVE need.

Scope: from one DER certificate, the subject and issuer rendered as Suricata 7 prints them
(``C=US, O=Example, CN=host`` - RDNs in certificate order, multi-valued RDNs joined with
``" + "``), the serial as upper-case colon-separated hex of its DER bytes, the SHA-1 fingerprint
as lower-case colon-separated hex, validity times, and subjectAltName DNS names.

Non-goals: signature verification, chain building, every attribute type's short name
(unknown ones print as the dotted OID), BER indefinite lengths.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sensor.applayer.ber import BerError, decode_oid, read_header

# Attribute types whose short names Suricata (via x509-parser's OID registry) prints.
_ATTR_NAMES = {
    "2.5.4.3": "CN",
    "2.5.4.4": "SN",
    "2.5.4.5": "serialNumber",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.9": "street",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.12": "title",
    "2.5.4.42": "GN",
    "2.5.4.43": "initials",
    "2.5.4.46": "dnQualifier",
    "2.5.4.65": "pseudonym",
    "0.9.2342.19200300.100.1.25": "DC",
    "0.9.2342.19200300.100.1.1": "UID",
    "1.2.840.113549.1.9.1": "emailAddress",
}
_SAN_OID = "2.5.29.17"


# Malformed DER is malformed BER (the TLS parser turns it into ``tls.invalid_certificate``).
DerError = BerError


def read_tlv(data: bytes, off: int) -> tuple[int, int, int]:
    """Read the TLV at ``off``: returns (tag byte, value offset, value end)."""
    cls, constructed, tag, start, end = read_header(data, off)
    if tag >= 0x1F:
        raise DerError("multi-byte tags are not used by X.509")
    return cls << 6 | constructed << 5 | tag, start, end


def children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    """The TLVs directly inside [start, end)."""
    out = []
    while start < end:
        tag, vstart, vend = read_tlv(data, start)
        if vend > end:
            raise DerError("child overruns parent")
        out.append((tag, vstart, vend))
        start = vend
    return out


def _string(tag: int, raw: bytes) -> str:
    if tag == 0x1E:  # BMPString
        return raw.decode("utf-16-be", "replace")
    if tag == 0x1C:  # UniversalString
        return raw.decode("utf-32-be", "replace")
    if tag in (0x0C, 0x13, 0x16, 0x14, 0x1A, 0x12):
        return raw.decode("utf-8", "replace")
    return raw.hex()


def render_name(data: bytes, start: int, end: int) -> str:
    """An X.501 Name as ``C=.., O=.., CN=..``."""
    rdns = []
    for _tag, s, e in children(data, start, end):  # each RDN is a SET
        attrs = []
        for _t, ps, pe in children(data, s, e):  # AttributeTypeAndValue SEQUENCE
            parts = children(data, ps, pe)
            if len(parts) != 2 or parts[0][0] != 0x06:
                raise DerError("bad attribute")
            oid = decode_oid(data[parts[0][1] : parts[0][2]])
            vtag, vs, ve = parts[1]
            attrs.append(f"{_ATTR_NAMES.get(oid, oid)}={_string(vtag, data[vs:ve])}")
        rdns.append(" + ".join(attrs))
    return ", ".join(rdns)


def _time(tag: int, raw: bytes) -> str:
    text = raw.decode("ascii", "replace").rstrip("Z")
    if tag == 0x17 and len(text) >= 12:  # UTCTime YYMMDDHHMMSS
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    if len(text) < 14 or not text[:14].isdigit():
        return text
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}T{text[8:10]}:{text[10:12]}:{text[12:14]}"


def colon_hex(raw: bytes, upper: bool) -> str:
    text = raw.hex().upper() if upper else raw.hex()
    return ":".join(text[i : i + 2] for i in range(0, len(text), 2))


@dataclass(frozen=True)
class Certificate:
    subject: str
    issuer: str
    serial: str
    fingerprint: str
    not_before: str
    not_after: str
    san: tuple[bytes, ...]


def _san_names(data: bytes, start: int, end: int) -> list[bytes]:
    names = []
    for tag, s, e in children(data, start, end):
        if tag == 0x82:  # [2] dNSName
            names.append(data[s:e])
    return names


def _extensions(data: bytes, start: int, end: int) -> list[bytes]:
    """subjectAltName DNS names from the [3] extensions wrapper."""
    (_, s, e), *_ = children(data, start, end)  # Extensions SEQUENCE
    for _tag, es, ee in children(data, s, e):
        parts = children(data, es, ee)
        if (
            parts
            and parts[0][0] == 0x06
            and decode_oid(data[parts[0][1] : parts[0][2]]) == _SAN_OID
        ):
            octets = parts[-1]
            _t, ss, se = read_tlv(data, octets[1])
            return _san_names(data, ss, se)
    return []


def parse_certificate(der: bytes) -> Certificate:
    """Parse one DER certificate; raises :class:`DerError` when malformed."""
    try:
        _t, cs, ce = read_tlv(der, 0)
        tbs_tag, ts, te = children(der, cs, ce)[0]
        if tbs_tag != 0x30:
            raise DerError("tbsCertificate is not a SEQUENCE")
        fields = children(der, ts, te)
        if fields and fields[0][0] == 0xA0:  # explicit version
            fields = fields[1:]
        if len(fields) < 6:
            raise DerError("tbsCertificate too short")
        serial_tlv, _alg, issuer, validity, subject = fields[:5]
        times = children(der, validity[1], validity[2])
        if len(times) != 2:
            raise DerError("bad validity")
        san: list[bytes] = []
        for tag, s, e in fields[6:]:
            if tag == 0xA3:
                san = _extensions(der, s, e)
        return Certificate(
            subject=render_name(der, subject[1], subject[2]),
            issuer=render_name(der, issuer[1], issuer[2]),
            serial=colon_hex(der[serial_tlv[1] : serial_tlv[2]], upper=True),
            fingerprint=colon_hex(hashlib.sha1(der).digest(), upper=False),
            not_before=_time(times[0][0], der[times[0][1] : times[0][2]]),
            not_after=_time(times[1][0], der[times[1][1] : times[1][2]]),
            san=tuple(san),
        )
    except (IndexError, ValueError) as exc:  # ValueError covers DerError and bad unpacking
        raise DerError(str(exc)) from exc
