"""Application protocol detection from a flow's first bytes (ports only break ties).

Scope: :func:`detect_protocol` looks at the first bytes one direction sent and answers a
protocol name (Suricata's ``app_proto`` names: http, tls, ssh, smtp, ftp, dns, smb, pop3, imap),
``NEED_MORE`` when the bytes are a prefix of a known pattern, or ``NO_MATCH``. Patterns follow
Suricata's: HTTP methods (to server) and ``HTTP/`` (to client), TLS/SSL record headers, the
``SSH-`` banner, SMTP/FTP commands, ``+OK``/``* OK`` banners; a ``220`` banner is resolved by port
(21 ftp, 25/465/587 smtp). DNS is recognised by port 53 plus a plausible header, as Suricata's
probing parser does.

Non-goals: keeping state across calls (``AppLayer`` buffers the bytes and calls again) and
protocols sekimori cannot parse beyond naming them.
"""

from __future__ import annotations

import struct

NEED_MORE = None
NO_MATCH = ""

_HTTP_METHODS = (
    b"GET",
    b"POST",
    b"HEAD",
    b"PUT",
    b"DELETE",
    b"OPTIONS",
    b"TRACE",
    b"CONNECT",
    b"PATCH",
    b"PROPFIND",
    b"PROPPATCH",
    b"MKCOL",
    b"COPY",
    b"MOVE",
    b"LOCK",
    b"UNLOCK",
    b"CHECKOUT",
    b"UNCHECKOUT",
    b"CHECKIN",
    b"UPDATE",
    b"LABEL",
    b"REPORT",
    b"MKWORKSPACE",
    b"MKACTIVITY",
    b"MERGE",
    b"SEARCH",
    b"VERSION-CONTROL",
    b"BASELINE-CONTROL",
)
_TS_PATTERNS: tuple[tuple[bytes, str], ...] = (
    *((m + b" ", "http") for m in _HTTP_METHODS),
    *((m + b"\t", "http") for m in _HTTP_METHODS),
    (b"SSH-", "ssh"),
    (b"EHLO", "smtp"),
    (b"HELO", "smtp"),
    (b"USER ", "ftp"),
    (b"PASS ", "ftp"),
    (b"PORT ", "ftp"),
    (b"AUTH TLS", "ftp"),
    (b"AUTH SSL", "ftp"),
    (b"FEAT", "ftp"),
    (b"SYST", "ftp"),
)
_TC_PATTERNS: tuple[tuple[bytes, str], ...] = (
    (b"HTTP/", "http"),
    (b"SSH-", "ssh"),
    (b"+OK", "pop3"),
    (b"* OK", "imap"),
)
_FTP_PORTS = frozenset({21})
_SMTP_PORTS = frozenset({25, 465, 587})
_DNS_PORTS = frozenset({53})


def _match(data: bytes, patterns: tuple[tuple[bytes, str], ...]) -> str | None:
    prefix = False
    for pattern, name in patterns:
        if data.startswith(pattern):
            return name
        if pattern.startswith(data):
            prefix = True
    return NEED_MORE if prefix else NO_MATCH


def _tls(data: bytes) -> str | None:
    """TLS record header (handshake/alert/ccs, version 3.x) or an SSLv2 ClientHello."""
    if len(data) < 3:
        first_ok = data[0] in (0x14, 0x15, 0x16) or data[0] & 0x80
        second_ok = len(data) < 2 or data[1] == 3 or data[0] & 0x80
        return NEED_MORE if first_ok and second_ok else NO_MATCH
    if data[0] in (0x14, 0x15, 0x16) and data[1] == 3 and data[2] <= 4:
        return "tls"
    if data[0] & 0x80 and data[2] == 1:  # SSLv2 record header, ClientHello
        return "tls"
    return NO_MATCH


def plausible_dns(msg: bytes) -> bool:
    """A DNS header with a sane count of questions/records (Suricata's probe is as loose)."""
    if len(msg) < 12:
        return False
    _id, flags, qd, an, ns, ar = struct.unpack_from("!HHHHHH", msg, 0)
    opcode = (flags >> 11) & 0xF
    return opcode <= 6 and qd <= 32 and an + ns + ar <= 1024 and (qd > 0 or flags & 0x8000 != 0)


def detect_protocol(
    data: bytes, to_server: bool, ipproto: int, sport: int, dport: int
) -> str | None:
    """Protocol name, ``NEED_MORE`` (None) or ``NO_MATCH`` ("") for a direction's first bytes."""
    if not data:
        return NEED_MORE
    ports = (sport, dport)
    if ipproto == 17:
        if any(p in _DNS_PORTS for p in ports) and plausible_dns(data):
            return "dns"
        return NO_MATCH
    if any(p in _DNS_PORTS for p in ports):
        if len(data) < 14:
            return NEED_MORE
        (length,) = struct.unpack_from("!H", data, 0)
        if length >= 12 and plausible_dns(data[2:]):
            return "dns"
    tls = _tls(data)
    if tls is not NO_MATCH:
        return tls
    if len(data) >= 8 and data[4:8] in (b"\xffSMB", b"\xfeSMB") and data[0] == 0:
        return "smb"
    found = _match(data, _TS_PATTERNS if to_server else _TC_PATTERNS)
    if found is not NO_MATCH:
        return found
    if not to_server and data.startswith(b"220"):
        if any(p in _FTP_PORTS for p in ports):
            return "ftp"
        if any(p in _SMTP_PORTS for p in ports):
            return "smtp"
        return NEED_MORE if len(data) < 512 else NO_MATCH
    if not to_server and len(data) < 3 and b"220".startswith(data):
        return NEED_MORE
    return NO_MATCH
