"""Application protocol detection from a flow's first bytes.

Scope: :func:`detect_protocol` looks at the first bytes one direction sent and answers a
protocol name (Suricata's ``app_proto`` names: http, http2 (the client preface), tls, ssh,
smtp, ftp, dns, smb, dcerpc, pop3, imap),
``NEED_MORE`` when the bytes are a prefix of a known pattern, or ``NO_MATCH``. Patterns follow
Suricata 7's: HTTP methods (to server) and ``HTTP/`` (to client), TLS/SSL record headers, the
``SSH-`` banner (either side), SMTP's ``EHLO``/``HELO``/``QUIT`` and FTP's ``USER ``/``PASS ``/
``PORT ``/``FEAT`` from the client (case-insensitive), FTP's ``220 (`` greeting from the server,
``+OK``/``* OK`` banners. Any other ``220`` greeting decides nothing: as in Suricata, an SMTP or
FTP flow is recognised by the client's first command. DNS is recognised by port 53 plus a
plausible header, as Suricata's probing parser does; SNMP (UDP 161/162) and Kerberos 5
(UDP/TCP 88) by port plus Suricata's probes (a BER envelope with a known version; an
APPLICATION-tagged message with ``pvno 5``); SIP by its request methods (to server) and
``SIP/2.0`` (to client) on UDP and TCP, whatever the port.
DCERPC by a version 5.0 PDU header on any port (either direction), as Suricata's TCP probe.
MQTT by TCP port 1883 plus Suricata's probe (a complete fixed header of an assigned packet
type with QoS <= 2), tried after the patterns as Suricata tries probing parsers; Modbus by
the client's data to TCP port 502 (an MBAP header with protocol id 0 and a plausible length).

Non-goals: keeping state across calls (``AppLayer`` buffers the bytes and calls again) and
protocols sekimori cannot parse beyond naming them.
"""

from __future__ import annotations

import struct

from sensor.applayer.dcerpc import looks_like_dcerpc
from sensor.applayer.krb5 import probe as krb5_probe
from sensor.applayer.krb5 import probe_tcp as krb5_probe_tcp
from sensor.applayer.modbus import probe as modbus_probe
from sensor.applayer.mqtt_message import probe as mqtt_probe
from sensor.applayer.snmp import envelope_version as snmp_version

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
_SIP_METHODS = (b"REGISTER", b"INVITE", b"ACK", b"BYE", b"CANCEL", b"UPDATE", b"REFER",
                b"PRACK", b"SUBSCRIBE", b"NOTIFY", b"PUBLISH", b"MESSAGE", b"INFO")  # fmt: skip
# (pattern, protocol, case-insensitive) at offset 0, as Suricata registers them
_TS_PATTERNS: tuple[tuple[bytes, str, bool], ...] = (
    *((m + b" ", "http", False) for m in _HTTP_METHODS),
    *((m + b"\t", "http", False) for m in _HTTP_METHODS),
    (b"SSH-", "ssh", False),
    (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "http2", False),  # h2c with prior knowledge
    (b"EHLO", "smtp", True),
    (b"HELO", "smtp", True),
    (b"QUIT", "smtp", True),
    (b"USER ", "ftp", True),
    (b"PASS ", "ftp", True),
    (b"PORT ", "ftp", True),
    (b"FEAT", "ftp", True),
    # SIP request methods, as Suricata 7 registers them (no OPTIONS: that one is HTTP's)
    *((m, "sip", False) for m in _SIP_METHODS),
)
_TC_PATTERNS: tuple[tuple[bytes, str, bool], ...] = (
    (b"HTTP/", "http", False),
    (b"SSH-", "ssh", False),
    (b"220 (", "ftp", True),  # vsftpd-style greeting; other 220 banners decide nothing
    (b"+OK", "pop3", False),
    (b"* OK", "imap", False),
    (b"SIP/2.0", "sip", False),
)
_SIP_TS = tuple((m, "sip", False) for m in _SIP_METHODS)
_SIP_TC = ((b"SIP/2.0", "sip", False),)
_DNS_PORTS = frozenset({53})
_SNMP_PORTS = frozenset({161, 162})
_KRB5_PORTS = frozenset({88})
_MQTT_PORTS = frozenset({1883})
_MODBUS_PORTS = frozenset({502})


def _match(data: bytes, patterns: tuple[tuple[bytes, str, bool], ...]) -> str | None:
    prefix = False
    upper = data[:16].upper()
    for pattern, name, nocase in patterns:
        head = upper if nocase else data
        if head.startswith(pattern):
            return name
        if pattern.startswith(head[: len(pattern)]) and len(data) < len(pattern):
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
        if any(p in _SNMP_PORTS for p in ports) and snmp_version(data) is not None:
            return "snmp"
        if any(p in _KRB5_PORTS for p in ports) and krb5_probe(data):
            return "krb5"
        found = _match(data, _SIP_TS if to_server else _SIP_TC)
        return found if found else NO_MATCH  # a datagram is whole: a prefix is no match
    if any(p in _KRB5_PORTS for p in ports):
        krb5 = krb5_probe_tcp(data)
        if krb5 is None:
            return NEED_MORE
        if krb5:
            return "krb5"
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
    if data[0] == 5:  # a DCERPC CO PDU header, on any port (Suricata's probe)
        dce = looks_like_dcerpc(data)
        if dce is not False:
            return "dcerpc" if dce else NEED_MORE
    found = _match(data, _TS_PATTERNS if to_server else _TC_PATTERNS)
    if found is not NO_MATCH:
        return found
    if any(p in _MQTT_PORTS for p in ports):  # a probing parser: after the patterns
        mqtt = mqtt_probe(data)
        return NEED_MORE if mqtt is None else "mqtt" if mqtt else NO_MATCH
    if to_server and dport in _MODBUS_PORTS:  # Suricata: a to-server probe on port 502
        modbus = modbus_probe(data)
        return NEED_MORE if modbus is None else "modbus" if modbus else NO_MATCH
    return NO_MATCH
