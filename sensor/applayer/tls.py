"""TLS record layer and handshake metadata for one connection (no decryption).

Scope: TLS 1.0-1.3 records in any TCP slicing, handshake messages spanning or sharing records,
ClientHello (SNI, JA3, JA4), ServerHello (version, JA3S) and - where sent in clear (TLS <= 1.2)
- the server Certificate chain (subject, issuer, serial, SHA-1 fingerprint, SAN) and, with
client authentication, the client's (the same buffer names in the to-server direction). Like
Suricata, a connection has a single transaction (id 0). After ChangeCipherSpec (or a TLS 1.3
ServerHello) a direction's handshake is encrypted and no longer parsed. Anomalies use
Suricata's ``tls.*`` event names; a malformed record stops parsing of that direction.

Progress: to-server is LINE after the ClientHello and COMPLETE once that side is encrypted;
to-client is LINE after the ServerHello, HEADERS after the Certificate and COMPLETE once
encrypted.

Non-goals: SSLv2 parsing (only detected), session resumption state, EVE for client certs.
"""

from __future__ import annotations

import calendar
import struct
import time
from collections.abc import Callable

from sensor.applayer.common import (
    PROGRESS_COMPLETE,
    PROGRESS_HEADERS,
    PROGRESS_LINE,
    AppLayerSettings,
    Transaction,
)
from sensor.applayer.tls_hello import (
    VERSION_NAMES,
    Hello,
    HelloError,
    client_version,
    ja3_string,
    ja3s_string,
    ja4,
    md5_hex,
    negotiated_version,
    parse_hello,
)
from sensor.applayer.x509 import Certificate, DerError, parse_certificate

REC_CCS = 20
REC_ALERT = 21
REC_HANDSHAKE = 22
REC_APPDATA = 23
REC_HEARTBEAT = 24
HS_CLIENT_HELLO = 1
HS_SERVER_HELLO = 2
HS_CERTIFICATE = 11
# ssl_state flags of the handshake messages one update carried (tx.values["tls.state"])
STATE_CLIENT_HELLO, STATE_SERVER_HELLO, STATE_CLIENT_KEYX, STATE_SERVER_KEYX = 1, 2, 4, 8
STATE_UNKNOWN = 16
_STATE_OF = {HS_CLIENT_HELLO: STATE_CLIENT_HELLO, HS_SERVER_HELLO: STATE_SERVER_HELLO,
             16: STATE_CLIENT_KEYX, 12: STATE_SERVER_KEYX}  # fmt: skip
# handshake types of the TLS registry (RFC 8446 and earlier): others are "unknown"
_KNOWN_HS = frozenset({0, 1, 2, 3, 4, 5, 6, 8, 11, 12, 13, 14, 15, 16, 20, 21, 22, 23, 24, 25,
                       254})  # fmt: skip
_RECORD = struct.Struct("!BHH")
_MAX_RECORD = 16384 + 2048  # TLSCiphertext limit


class TlsTxData:
    """What the handshake revealed, for EVE."""

    __slots__ = ("certs", "client", "client_certs", "server", "version")

    def __init__(self) -> None:
        self.client: Hello | None = None
        self.server: Hello | None = None
        self.certs: list[Certificate] = []  # the server's leaf certificate (parsed)
        self.client_certs: list[Certificate] = []  # the client's, with client authentication
        self.version = 0


class _Side:
    __slots__ = ("encrypted", "failed", "hs", "rec")

    def __init__(self) -> None:
        self.rec = bytearray()  # undelivered record bytes
        self.hs = bytearray()  # handshake bytes not yet forming a whole message
        self.encrypted = False
        self.failed = False


class TlsParser:
    """Both directions of one TLS connection."""

    def __init__(self, cfg: AppLayerSettings, on_update: Callable[[Transaction], None]) -> None:
        self.cfg = cfg
        self._on_update = on_update
        self.tx = Transaction(0, "tls")
        self.data = TlsTxData()
        self.tx.state = self.data
        self._sides = {True: _Side(), False: _Side()}
        self.events: list[str] = []

    def feed(self, to_server: bool, data: bytes) -> None:
        side = self._sides[to_server]
        if side.failed:
            return
        side.rec += data
        # ssl_state sees the handshake messages of this update only (Suricata's current_flags)
        self.tx.values["tls.state"] = 0
        pos = 0
        buf = side.rec
        while len(buf) - pos >= _RECORD.size and not side.failed:
            rtype, version, length = _RECORD.unpack_from(buf, pos)
            if not REC_CCS <= rtype <= REC_HEARTBEAT:
                self._fail(side, "tls.invalid_record_type")
                break
            if version >> 8 != 3:
                self._fail(side, "tls.invalid_record_version")
                break
            if length > _MAX_RECORD:
                self._fail(side, "tls.invalid_record_length")
                break
            if len(buf) - pos - _RECORD.size < length:
                break
            body = bytes(buf[pos + _RECORD.size : pos + _RECORD.size + length])
            pos += _RECORD.size + length
            self._record(to_server, side, rtype, body)
        del buf[:pos]

    def _event(self, name: str) -> None:
        self.tx.events.append(name)
        self.events.append(name)
        self._on_update(self.tx)

    def _fail(self, side: _Side, event: str) -> None:
        side.failed = True
        side.rec.clear()
        side.hs.clear()
        self._event(event)

    def _record(self, to_server: bool, side: _Side, rtype: int, body: bytes) -> None:
        if rtype in (REC_CCS, REC_APPDATA):
            self._encrypted(to_server, side)
            return
        if rtype == REC_HEARTBEAT:
            self._event("tls.heartbeat_message")
            return
        if rtype != REC_HANDSHAKE or side.encrypted:
            return
        side.hs += body
        while len(side.hs) >= 4 and not side.failed:
            mtype = side.hs[0]
            mlen = int.from_bytes(side.hs[1:4], "big")
            if mlen > self.cfg.tls_max_record:
                self._fail(side, "tls.handshake_invalid_length")
                return
            if len(side.hs) < 4 + mlen:
                return
            msg = bytes(side.hs[4 : 4 + mlen])
            del side.hs[: 4 + mlen]
            self._handshake(to_server, side, mtype, msg)
            if side.encrypted:
                side.hs.clear()
                return

    def _encrypted(self, to_server: bool, side: _Side) -> None:
        if side.encrypted:
            return
        side.encrypted = True
        side.hs.clear()
        tx = self.tx
        if to_server:
            tx.progress_ts, tx.to_server_done = PROGRESS_COMPLETE, True
        else:
            tx.progress_tc, tx.to_client_done = PROGRESS_COMPLETE, True
        self._on_update(tx)

    def _handshake(self, to_server: bool, side: _Side, mtype: int, msg: bytes) -> None:
        state = _STATE_OF.get(mtype, 0 if mtype in _KNOWN_HS else STATE_UNKNOWN)
        if state:
            self.tx.values["tls.state"] = self.tx.values.get("tls.state", 0) | state
        try:
            if mtype == HS_CLIENT_HELLO and to_server and self.data.client is None:
                self._client_hello(parse_hello(msg, client=True))
            elif mtype == HS_SERVER_HELLO and not to_server and self.data.server is None:
                self._server_hello(side, parse_hello(msg, client=False))
            elif mtype == HS_CERTIFICATE:
                seen = self.data.client_certs if to_server else self.data.certs
                if not seen:
                    self._certificates(msg, to_server)
        except HelloError:
            self._fail(side, "tls.invalid_handshake_message")
        except DerError:
            self._event("tls.invalid_certificate")

    def _client_hello(self, hello: Hello) -> None:
        tx = self.tx
        self.data.client = hello
        if hello.sni_count > 1:
            tx.events.append("tls.multiple_sni_extensions")
        if hello.sni is not None:
            tx.buffers["tls.sni"] = hello.sni
        text = ja3_string(hello)
        tx.buffers["ja3.string"] = text.encode()
        tx.buffers["ja3.hash"] = md5_hex(text).encode()
        tx.buffers["ja4.hash"] = ja4(hello).encode()
        _set_random(tx, hello.random, True)
        if not self.data.version:
            self.data.version = hello.version
            tx.values["tls.version"] = hello.version
        tx.values["tls.version.ts"] = client_version(hello)  # what tls.version sees
        tx.progress_ts = max(tx.progress_ts, PROGRESS_LINE)
        self._on_update(tx)

    def _server_hello(self, side: _Side, hello: Hello) -> None:
        tx = self.tx
        self.data.server = hello
        text = ja3s_string(hello)
        tx.set_buffer("ja3s.string", text.encode(), False)
        tx.set_buffer("ja3s.hash", md5_hex(text).encode(), False)
        _set_random(tx, hello.random, False)
        self.data.version = negotiated_version(hello)
        tx.values["tls.version"] = tx.values["tls.version.tc"] = self.data.version
        tx.progress_tc = max(tx.progress_tc, PROGRESS_LINE)
        self._on_update(tx)
        if self.data.version >= 0x0304 and self.data.version != 0x7F00:
            # TLS 1.3: everything after ServerHello is encrypted in both directions
            self._encrypted(False, side)

    def _certificates(self, msg: bytes, to_server: bool) -> None:
        if len(msg) < 3 or int.from_bytes(msg[:3], "big") != len(msg) - 3:
            raise DerError("certificate list length mismatch")
        pos, ders = 3, []
        while pos + 3 <= len(msg):
            clen = int.from_bytes(msg[pos : pos + 3], "big")
            der = msg[pos + 3 : pos + 3 + clen]
            if len(der) != clen:
                raise DerError("certificate runs past the message")
            ders.append(der)
            pos += 3 + clen
        tx = self.tx
        tx.set_buffer("tls.certs", ders, to_server)
        if not to_server:
            tx.values["tls.cert_chain_len"] = len(ders)
        if ders:
            cert = parse_certificate(ders[0])
            (self.data.client_certs if to_server else self.data.certs).append(cert)
            for name, value in (
                ("tls.cert_subject", cert.subject),
                ("tls.cert_issuer", cert.issuer),
                ("tls.cert_serial", cert.serial),
                ("tls.cert_fingerprint", cert.fingerprint),
            ):
                tx.set_buffer(name, value.encode("utf-8"), to_server)
            if cert.san:
                tx.set_buffer("tls.subjectaltname", list(cert.san), to_server)
            if not to_server:  # tls_cert_notbefore/notafter read the server's certificate
                for name, stamp in (("tls.cert_notbefore", cert.not_before),
                                    ("tls.cert_notafter", cert.not_after)):  # fmt: skip
                    epoch = _epoch(stamp)
                    if epoch is not None:
                        tx.values[name] = epoch
        if not to_server:
            tx.progress_tc = max(tx.progress_tc, PROGRESS_HEADERS)
        self._on_update(tx)


def _epoch(stamp: str) -> int | None:
    try:
        return calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None


def _set_random(tx: Transaction, random: bytes, to_server: bool) -> None:
    """tls.random (32 bytes), tls.random_time (its first 4) and tls.random_bytes (the 28
    others) of the hello sent in this direction."""
    tx.set_buffer("tls.random", random, to_server)
    tx.set_buffer("tls.random_time", random[:4], to_server)
    tx.set_buffer("tls.random_bytes", random[4:], to_server)


def eve_tls(tx: Transaction) -> dict[str, object]:
    """The ``tls`` object Suricata adds to an alert on this connection."""
    data = tx.state
    if not isinstance(data, TlsTxData):
        return {}
    out: dict[str, object] = {}
    if data.certs:
        cert = data.certs[0]
        out.update(
            subject=cert.subject,
            issuerdn=cert.issuer,
            serial=cert.serial,
            fingerprint=cert.fingerprint,
            notbefore=cert.not_before,
            notafter=cert.not_after,
        )
    if data.client is not None and data.client.sni is not None:
        out["sni"] = data.client.sni.decode("latin-1")
    out["version"] = VERSION_NAMES.get(data.version, "UNDETERMINED")
    if data.client is not None:
        text = ja3_string(data.client)
        out["ja3"] = {"hash": md5_hex(text), "string": text}
    if data.server is not None:
        text = ja3s_string(data.server)
        out["ja3s"] = {"hash": md5_hex(text), "string": text}
    if data.client is not None:
        out["ja4"] = ja4(data.client)
    return out
