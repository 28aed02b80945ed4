"""Kerberos 5 KDC exchanges over UDP (one message per datagram) and TCP (4-byte record
marks), as Suricata 7 sees them.

Scope: the DER messages of RFC 4120 that Suricata 7 makes transactions of: AS-REQ and
TGS-REQ (client/server principal of the request body), AS-REP and TGS-REP (client name and
realm, the ticket's server name, the reply's and the ticket's encryption types) and KRB-ERROR
(error code, names; the failed request's type is remembered from the last request).
AP-REQ/AP-REP only update that memory. Values: ``krb5.msg_type`` (10, 11, 12, 13 or 30) and
``krb5.err_code`` (errors only). Multi-buffers ``krb5.cname`` and ``krb5.sname``: one entry
per name-string component (``krbtgt``, ``EXAMPLE.COM``), as Suricata matches each part.
EVE: the ``krb5`` object (``msg_type``, ``failed_request``/``error_code`` for errors,
``cname``, ``realm``, ``sname``, ``encryption``, ``weak_encryption``, ``ticket_encryption``,
``ticket_weak_encryption``).

Events (Suricata's names): ``krb5.malformed_data`` (no DER header), ``krb5.weak_encryption``
(a reply encrypted with anything but AES or Camellia). A message whose body does not decode
is ignored without a transaction, as Suricata does.

Non-goals: decryption, PA-DATA, AP-REQ inside other protocols (GSS-API in SMB/HTTP).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from sensor.applayer.ber import (
    APPLICATION,
    BerError,
    Tlv,
    children,
    explicit,
    integer,
    read_tlv,
)
from sensor.applayer.common import AppLayerSettings, Transaction

AS_REQ, AS_REP, TGS_REQ, TGS_REP, AP_REQ, AP_REP, KRB_ERROR = 10, 11, 12, 13, 14, 15, 30
MSG_NAMES = {10: "KRB_AS_REQ", 11: "KRB_AS_REP", 12: "KRB_TGS_REQ", 13: "KRB_TGS_REP",
             14: "KRB_AP_REQ", 15: "KRB_AP_REP", 30: "KRB_ERROR"}  # fmt: skip
ETYPES = {1: "DES_CBC_CRC", 2: "DES_CBC_MD4", 3: "DES_CBC_MD5", 5: "DES3_CBC_MD5",
          7: "DES3_CBC_SHA1", 16: "DES3_CBC_SHA1_KD", 17: "AES128_CTS_HMAC_SHA1_96",
          18: "AES256_CTS_HMAC_SHA1_96", 19: "AES128_CTS_HMAC_SHA256_128",
          20: "AES256_CTS_HMAC_SHA384_192", 23: "RC4_HMAC", 24: "RC4_HMAC_EXP",
          25: "CAMELLIA128_CTS_CMAC", 26: "CAMELLIA256_CTS_CMAC"}  # fmt: skip
STRONG_ETYPES = frozenset({17, 18, 19, 20, 25, 26})  # Suricata: every other one is weak
ERRORS = {0: "KDC_ERR_NONE", 6: "KDC_ERR_C_PRINCIPAL_UNKNOWN", 7: "KDC_ERR_S_PRINCIPAL_UNKNOWN",
          12: "KDC_ERR_POLICY", 14: "KDC_ERR_ETYPE_NOSUPP", 18: "KDC_ERR_CLIENT_REVOKED",
          23: "KDC_ERR_KEY_EXPIRED", 24: "KDC_ERR_PREAUTH_FAILED",
          25: "KDC_ERR_PREAUTH_REQUIRED", 31: "KRB_AP_ERR_BAD_INTEGRITY",
          32: "KRB_AP_ERR_TKT_EXPIRED", 37: "KRB_AP_ERR_SKEW", 41: "KRB_AP_ERR_MODIFIED",
          52: "KRB_ERR_RESPONSE_TOO_BIG", 60: "KRB_ERR_GENERIC",
          68: "KDC_ERR_WRONG_REALM"}  # fmt: skip
MAX_RECORD = 256 * 1024  # TCP: a record buffered whole up to this size
_PROBE_MAX_RECORD = 16384  # Suricata's probe refuses larger TCP record marks


@dataclass(frozen=True, slots=True)
class Krb5Message:
    msg_type: int
    cname: tuple[bytes, ...] | None = None
    realm: bytes | None = None
    sname: tuple[bytes, ...] | None = None
    etype: int | None = None
    ticket_etype: int | None = None
    error_code: int | None = None
    req_type: int | None = None  # errors: the request that failed, when seen


def probe(data: bytes) -> bool | None:
    """Suricata's UDP probe: an APPLICATION tag below 30 holding a SEQUENCE whose first
    field is ``pvno 5``. None while too short to tell."""
    if len(data) <= 10:
        return None
    first = data[0]
    if first >> 6 != APPLICATION or (first & 0x1F) >= 30:
        return False
    try:
        outer = read_tlv(data, 0, partial=True)  # the message may continue
        seq = read_tlv(data, outer.start, partial=True)
    except BerError:
        return False
    if data[outer.start] != 0x30:
        return False
    rest = data[seq.start :]
    return len(rest) > 5 and rest[2:5] == b"\x02\x01\x05"


def probe_tcp(data: bytes) -> bool | None:
    """Suricata's TCP probe: a record mark of at most 16384, then the UDP probe."""
    if len(data) <= 14:
        return None
    (mark,) = struct.unpack_from("!I", data, 0)
    return mark <= _PROBE_MAX_RECORD and bool(probe(data[4:]))


def _principal(data: bytes, tlv: Tlv | None) -> tuple[bytes, ...] | None:
    if tlv is None:
        return None
    fields = explicit(data, tlv)
    names = fields.get(1)
    if names is None:
        raise BerError("principal without name-string")
    return tuple(n.content(data) for n in children(data, names))


def _etype(data: bytes, tlv: Tlv | None) -> int | None:
    if tlv is None:
        return None
    fields = explicit(data, tlv)
    return integer(data, fields[0]) if 0 in fields else None


def parse_message(data: bytes, req_type: int) -> Krb5Message | None:
    """The transaction-making content of one message (None for AP-REQ/AP-REP and unknown
    tags); raises :class:`BerError` when it does not decode."""
    outer = read_tlv(data, 0)
    if outer.cls != APPLICATION:
        raise BerError("not a Kerberos message")
    seq = read_tlv(data, outer.start, outer.end)
    f = explicit(data, seq)
    tag = outer.tag
    if tag in (AS_REQ, TGS_REQ):
        if 4 not in f:
            raise BerError("KDC-REQ without body")
        body = explicit(data, f[4])
        realm = body[2].content(data) if 2 in body else None
        return Krb5Message(tag, _principal(data, body.get(1)), realm,
                           _principal(data, body.get(3)))  # fmt: skip
    if tag in (AS_REP, TGS_REP):
        if not all(k in f for k in (3, 4, 5, 6)):
            raise BerError("KDC-REP lacks a field")
        ticket = explicit(data, read_tlv(data, f[5].start, f[5].end))
        return Krb5Message(tag, _principal(data, f[4]), f[3].content(data),
                           _principal(data, ticket.get(2)), _etype(data, f[6]),
                           _etype(data, ticket.get(3)))  # fmt: skip
    if tag == KRB_ERROR:
        if 6 not in f or 10 not in f:
            raise BerError("KRB-ERROR lacks a field")
        realm = f[7].content(data) if 7 in f else None
        return Krb5Message(KRB_ERROR, _principal(data, f.get(8)), realm,
                           _principal(data, f[10]), error_code=integer(data, f[6]),
                           req_type=req_type or None)  # fmt: skip
    return None


class Krb5Parser:
    """Kerberos messages of one flow; ``on_update(tx)`` receives each new transaction."""

    def __init__(self, cfg: AppLayerSettings, tcp: bool,
                 on_update: Callable[[Transaction], None]) -> None:  # fmt: skip
        self.cfg = cfg
        self.tcp = tcp
        self._on_update = on_update
        self._next_id = 0
        self._req_type = 0  # the last request's type, for KRB-ERROR's failed_request
        self._bufs = {True: bytearray(), False: bytearray()}
        self._failed = {True: False, False: False}
        self.events: list[str] = []

    def feed(self, to_server: bool, data: bytes) -> None:
        if self._failed[to_server]:
            return
        if not self.tcp:
            self._message(to_server, data)
            return
        buf = self._bufs[to_server]
        buf += data
        while len(buf) >= 4:
            (mark,) = struct.unpack_from("!I", buf, 0)
            length = mark & 0x7FFFFFFF
            if length > MAX_RECORD:
                self._failed[to_server] = True
                buf.clear()
                self.events.append("krb5.malformed_data")
                return
            if len(buf) < 4 + length:
                return
            self._message(to_server, bytes(buf[4 : 4 + length]))
            del buf[: 4 + length]

    def _message(self, to_server: bool, data: bytes) -> None:
        try:
            head = read_tlv(data, 0, partial=True)  # the header alone must decode
        except BerError:
            if "krb5.malformed_data" not in self.events:  # once: the list stays bounded
                self.events.append("krb5.malformed_data")
            return
        if head.cls != APPLICATION:
            return
        try:
            msg = parse_message(data, self._req_type)
        except (BerError, KeyError, ValueError):
            msg = None  # as Suricata: a body that does not decode makes no transaction
        if head.tag in (AS_REQ, TGS_REQ, AP_REQ):
            self._req_type = head.tag
        elif head.tag in (AS_REP, TGS_REP, AP_REP, KRB_ERROR):
            self._req_type = 0
        if msg is None:
            return
        tx = Transaction(self._next_id, "krb5")
        self._next_id += 1
        tx.state = msg
        tx.values["krb5.msg_type"] = msg.msg_type
        if msg.error_code is not None:
            tx.values["krb5.err_code"] = msg.error_code
        if msg.etype is not None and msg.etype not in STRONG_ETYPES:
            tx.events.append("krb5.weak_encryption")
            if "krb5.weak_encryption" not in self.events:  # flow-level for app-layer-event
                self.events.append("krb5.weak_encryption")
        if msg.cname is not None:
            tx.set_buffer("krb5.cname", list(msg.cname), to_server)
        if msg.sname is not None:
            tx.set_buffer("krb5.sname", list(msg.sname), to_server)
        tx.complete()
        self._on_update(tx)


def _name(parts: tuple[bytes, ...] | None) -> str:
    return "<empty>" if parts is None else "/".join(p.decode("latin-1") for p in parts)


def _etype_name(etype: int) -> str:
    return ETYPES.get(etype, f"EncryptionType({etype})")


def eve_krb5(tx: Transaction) -> dict[str, object]:
    """The ``krb5`` object Suricata 7 adds to an alert on this transaction."""
    msg = tx.state
    if not isinstance(msg, Krb5Message):
        return {}
    out: dict[str, object] = {"msg_type": MSG_NAMES.get(msg.msg_type, str(msg.msg_type))}
    if msg.error_code is not None:
        out["failed_request"] = MSG_NAMES.get(msg.req_type or 0, "UNKNOWN")
        out["error_code"] = ERRORS.get(msg.error_code, f"ErrorCode({msg.error_code})")
    out["cname"] = _name(msg.cname)
    out["realm"] = "<empty>" if msg.realm is None else msg.realm.decode("latin-1")
    out["sname"] = _name(msg.sname)
    out["encryption"] = "<none>" if msg.etype is None else _etype_name(msg.etype)
    out["weak_encryption"] = msg.etype is not None and msg.etype not in STRONG_ETYPES
    if msg.ticket_etype is not None:
        out["ticket_encryption"] = _etype_name(msg.ticket_etype)
        out["ticket_weak_encryption"] = msg.ticket_etype not in STRONG_ETYPES
    return out
