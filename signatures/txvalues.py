"""Keywords on a transaction's values: tls.version, ssl_version, tls_cert_notbefore,
tls_cert_notafter, tls_cert_expired, tls_cert_valid, tls.cert_chain_len, ssl_state, dns.opcode, dns.rrtype, the
file keywords filename, fileext, filesize (on HTTP and SMB files), the legacy SSH keywords
ssh.protoversion and ssh.softwareversion (on the ssh.proto / ssh.software buffers of the
packet's direction), ftpbounce (on FTP's PORT command), snmp.version and snmp.pdu_type
(Suricata 7's u32 comparisons), krb5_msg_type and krb5_err_code (one exact integer), the DCERPC
dce_iface/dce_opnum (signatures/dcekw.py), the MQTT value keywords (signatures/mqttkw.py) and
modbus (signatures/modbuskw.py).

Scope: parse the keyword into a (value name, predicate) pair checked against
``Transaction.values`` of the application layer. Signatures keep only the (keyword, value)
text (so the rule cache can pickle them); ``compile_tx_value`` builds the predicate.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sensor.errors import RuleError
from signatures.dcekw import DCE_KEYWORDS, compile_dce
from signatures.http2kw import HTTP2_KEYWORDS, compile_http2
from signatures.modbuskw import compile_modbus
from signatures.mqttkw import MQTT_KEYWORDS, compile_mqtt
from signatures.numeric import parse_uint
from signatures.txtime import cert_time_test

TX_VALUE_KEYWORDS = {"tls.version": "tls", "ssl_version": "tls", "tls_cert_notbefore": "tls",
                     "tls_cert_notafter": "tls", "dns.opcode": "dns", "dns.rrtype": "dns",
                     "filename": "file", "fileext": "file", "filesize": "file",
                     "ssh.protoversion": "ssh", "ssh.softwareversion": "ssh",
                     "ftpbounce": "ftp", "tls_cert_expired": "tls", "tls_cert_valid": "tls",
                     "ssl_state": "tls", "tls.cert_chain_len": "tls", "snmp.version": "snmp", "snmp.pdu_type": "snmp",
                     "krb5_msg_type": "krb5", "krb5_err_code": "krb5",
                     **dict.fromkeys(DCE_KEYWORDS, "dcerpc"),
                     **dict.fromkeys(HTTP2_KEYWORDS, "http2"),
                     **dict.fromkeys(MQTT_KEYWORDS, "mqtt"), "mqtt.protocol_version": "mqtt",
                     "modbus": "modbus"}  # fmt: skip
# names of the values they read: numbers in Transaction.values, the others buffers
NUMERIC_VALUES = frozenset({"tls.version", "dns.opcode", "dns.rrtype", "file.size",
                            "ftp.bounce", "tls.cert_notbefore", "tls.cert_notafter",
                            "tls.cert_validity", "tls.state", "tls.cert_chain_len",
                            "snmp.version",
                            "snmp.pdu_type", "krb5.msg_type", "krb5.err_code",
                            "dce.opnum", "mqtt.protocol_version"})  # fmt: skip
# values whose predicate also needs the packet's time: it gets (value, epoch seconds)
TIMED_VALUES = frozenset({"tls.cert_validity"})
VALUE_OF = {"filename": "file.name", "fileext": "file.name", "filesize": "file.size",
            "ssh.protoversion": "ssh.proto", "ssh.softwareversion": "ssh.software",
            "ftpbounce": "ftp.bounce", "ssl_version": "tls.version",
            "tls_cert_notbefore": "tls.cert_notbefore",
            "tls_cert_notafter": "tls.cert_notafter", "tls_cert_expired": "tls.cert_validity",
            "tls_cert_valid": "tls.cert_validity", "ssl_state": "tls.state",
            "krb5_msg_type": "krb5.msg_type", "krb5_err_code": "krb5.err_code",
            **DCE_KEYWORDS}  # fmt: skip
_PROTOVERSION_RE = re.compile(r'\s*"?\s*([0-9]+(?:[.\-0-9]+)?|2_compat)\s*"?\s*')
_SOFTWAREVERSION_RE = re.compile(r'\s*"?\s*([0-9a-zA-Z:._+\-\s]+?)\s*"?\s*')

_TLS_VERSIONS = {"ssl3": 0x0300, "3.0": 0x0300, "1.0": 0x0301, "1.1": 0x0302, "1.2": 0x0303,
                 "1.3": 0x0304, "tls1.0": 0x0301, "tls1.1": 0x0302, "tls1.2": 0x0303,
                 "tls1.3": 0x0304}  # fmt: skip


def compile_tx_value(keyword: str, value: str | None) -> tuple[str, Callable[[Any], bool]]:
    """(name of the value read, predicate) for one keyword; RuleError when invalid."""
    text = (value or "").strip()
    if keyword in DCE_KEYWORDS:
        return compile_dce(keyword, value)
    if keyword in MQTT_KEYWORDS or keyword == "mqtt.protocol_version":
        return keyword, compile_mqtt(keyword, text)  # MQTT_KEYWORDS: the tx's packets
    if keyword == "modbus":  # the request (tx.state)
        return "modbus", compile_modbus(text)
    if keyword in HTTP2_KEYWORDS:  # read the frames of the packet's direction
        return keyword, compile_http2(keyword, text)
    if keyword in ("filename", "fileext"):
        return "file.name", _file_name_test(keyword, text)
    if keyword == "filesize":
        return "file.size", parse_uint("filesize", text, 2**63).test
    if keyword == "tls.version":
        negated = text.startswith("!")
        key = text.lstrip("!").strip().lower()
        try:
            version = _TLS_VERSIONS[key] if key in _TLS_VERSIONS else int(key, 0)
        except ValueError as exc:
            raise RuleError(f"tls.version: unknown version '{text}'") from exc
        if negated:
            return "tls.version", lambda v: v != version
        return "tls.version", lambda v: v == version
    if keyword == "ssl_version":
        return "tls.version", _ssl_version_test(text)
    if keyword in ("tls_cert_notbefore", "tls_cert_notafter"):
        return VALUE_OF[keyword], cert_time_test(keyword, text)
    if keyword in ("tls_cert_expired", "tls_cert_valid"):
        if text:
            raise RuleError(f"{keyword} takes no value")
        return "tls.cert_validity", _validity_test(keyword == "tls_cert_expired")
    if keyword == "ssl_state":
        return "tls.state", _ssl_state_test(text)
    if keyword == "tls.cert_chain_len":  # Suricata 7: u32 on the server's certificate count
        return keyword, parse_uint(keyword, text, 2**32 - 1).test
    if keyword == "dns.opcode":
        # Suricata 7: an exact opcode, optionally negated ("!0"); no ranges nor ">", "<"
        m = re.fullmatch(r"\s*(!?)\s*(\d+)\s*", text or "")
        if m is None or int(m.group(2)) > 255:
            raise RuleError(f"dns.opcode: expected [!]<number>, got {text!r}")
        return "dns.opcode", parse_uint("dns.opcode", text, 255).test
    if keyword == "dns.rrtype":
        return "dns.rrtype", parse_uint("dns.rrtype", text, 65535).test
    if keyword in ("snmp.version", "snmp.pdu_type"):  # Suricata 7: u32 with operators
        return keyword, parse_uint(keyword, text, 2**32 - 1).test
    if keyword in ("krb5_msg_type", "krb5_err_code"):
        return VALUE_OF[keyword], _exact_int(keyword, text)
    if keyword == "ssh.protoversion":
        return "ssh.proto", _protoversion_test(value or "")
    if keyword == "ssh.softwareversion":
        m = _SOFTWAREVERSION_RE.fullmatch(value or "")
        if m is None:
            raise RuleError(f"ssh.softwareversion: invalid value '{text}'")
        wanted = m.group(1).encode()
        return "ssh.software", lambda v: bytes(v) == wanted  # Suricata: the whole string
    if keyword == "ftpbounce":
        if text:
            raise RuleError("ftpbounce takes no value")
        return "ftp.bounce", lambda v: v == 1
    raise RuleError(f"unknown transaction keyword '{keyword}'")


def _exact_int(keyword: str, text: str) -> Callable[[Any], bool]:
    """krb5_msg_type / krb5_err_code: Suricata 7 takes one integer, matched exactly (no
    operators; the error code may be negative, as Kerberos' Int32)."""
    if not re.fullmatch(r"-?\d+", text):
        raise RuleError(f"{keyword}: invalid value '{text}'")
    if keyword == "krb5_msg_type" and not 0 <= int(text) <= 255:
        raise RuleError(f"{keyword}: value {text} out of range")
    wanted = int(text)
    return lambda v: v == wanted


def _validity_test(expired: bool) -> Callable[[Any], bool]:
    """tls_cert_expired: the packet's time is after the server certificate's notAfter;
    tls_cert_valid: strictly between notBefore and notAfter (Suricata 7, flow's last time)."""

    def test(value: Any) -> bool:
        (not_before, not_after), now = value
        if not not_after:
            return False
        if expired:
            return bool(now > not_after)
        return not_before is not None and not_before < now < not_after

    return test


_SSL_STATES = {
    "client_hello": 1,
    "server_hello": 2,
    "client_keyx": 4,
    "server_keyx": 8,
    "unknown": 16,
}  # fmt: skip (the flags sensor/applayer/tls.py records)


def _ssl_state_test(text: str) -> Callable[[Any], bool]:
    """ssl_state:client_hello|!server_hello (``|`` or ``,`` separated): Suricata 7 matches
    when (listed flags & the update's flags) differs from the negated flags - so a plain
    list is "any of these", a negated state "not this one"."""
    flags = mask = 0
    for item in re.split(r"\s*[|,]\s*", text.strip()):
        negated = item.startswith("!")
        name = item.lstrip("!")
        if name not in _SSL_STATES:
            raise RuleError(f"ssl_state: unknown state '{item}'")
        flags |= _SSL_STATES[name]
        if negated:
            mask |= _SSL_STATES[name]
    return lambda v: bool((v & flags) ^ mask)


def _file_name_test(keyword: str, text: str) -> Callable[[Any], bool]:
    """filename: the name contains the string; fileext: the extension is the string; both
    case-insensitive, ``!`` negates (Suricata 7's legacy file keywords)."""
    negated = text.startswith("!")
    text = text.lstrip("!").strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    if not text:
        raise RuleError(f"{keyword}: needs a name")
    needle = text.encode("utf-8", "surrogateescape").lower()
    if keyword == "fileext":

        def test(name: Any) -> bool:
            _stem, dot, ext = bytes(name).lower().rpartition(b".")
            return (dot == b"." and ext == needle) != negated

        return test
    return lambda name: (needle in bytes(name).lower()) != negated


def _protoversion_test(value: str) -> Callable[[Any], bool]:
    """ssh.protoversion: the banner's version equals the value; ``2_compat`` accepts any
    version starting with ``2`` and ``1.99`` (Suricata 7's semantics)."""
    m = _PROTOVERSION_RE.fullmatch(value)
    if m is None:
        raise RuleError(f"ssh.protoversion: invalid value '{value.strip()}'")
    wanted = m.group(1).encode()
    if wanted == b"2_compat":
        return lambda v: bytes(v)[:1] == b"2" or bytes(v)[:4] == b"1.99"
    return lambda v: bytes(v) == wanted


_SSL_VERSIONS = {"sslv2": 0x0002, "sslv3": 0x0300, "tls1.0": 0x0301, "tls1.1": 0x0302,
                 "tls1.2": 0x0303, "tls1.3": 0x0304}  # fmt: skip


def _ssl_version_test(text: str) -> Callable[[Any], bool]:
    """ssl_version:sslv3,tls1.0 matches any listed version. As in Suricata 7, a negated
    entry (``!tls1.2``) only stops that version from matching: it never matches by itself."""
    wanted: set[int] = set()
    for item in text.split(","):
        name = item.strip().lower()
        negated = name.startswith("!")
        name = name.lstrip("!").strip()
        if name not in _SSL_VERSIONS:
            raise RuleError(f"ssl_version: unknown version '{item.strip()}'")
        if not negated:
            wanted.add(_SSL_VERSIONS[name])
    if not wanted and not text.strip():
        raise RuleError("ssl_version: needs a version")
    return lambda v: v in wanted or (v >= 0x7F00 and 0x0304 in wanted)  # TLS 1.3 drafts
