"""Application-layer parsing for one flow: protocol detection, HTTP/1.x, DNS, TLS, SSH, FTP,
SMB, SNMP, SIP and Kerberos 5.

Scope: :class:`AppLayer` is created lazily by the detection engine for a flow with data. It
detects the protocol from the first bytes of either direction (``proto_name``, EVE's
``app_proto``; ``"failed"`` when detection gave up), hands stream data (TCP, in order, any
chunking) or datagrams (UDP) to the matching parser, and returns the transactions whose
buffers changed (:meth:`AppLayer.pop_ready`). Buffers carry Suricata 7's sticky-buffer names;
:meth:`AppLayer.eve_fields` builds the ``http``/``dns``/``tls``/``ssh``/``snmp``/``sip``/``krb5``
object of an EVE alert. SMB is parsed for files and shares (``smb.py``); SMTP, IMAP and POP3
flows are detected and named but not parsed; DCERPC over TCP and SMB named pipes feeds the
dce keywords (``dcerpc.py``).

Malformed input never raises: parsers record Suricata's app-layer event names on the
transaction (``tx.events``) or, when there is none, on ``AppLayer.events``, and stop parsing
the offending direction (``anomalous`` turns true).

Non-goals: stream reassembly (the caller feeds in-order data), rule matching, output.
"""

from __future__ import annotations

from sensor.applayer.common import (
    DUAL_DIRECTION_BUFFERS,
    PROGRESS_BODY,
    PROGRESS_COMPLETE,
    PROGRESS_HEADERS,
    PROGRESS_LINE,
    PROGRESS_NONE,
    AppLayerSettings,
    Transaction,
)
from sensor.applayer.dcerpc import DcerpcParser
from sensor.applayer.detect import NEED_MORE, NO_MATCH, detect_protocol
from sensor.applayer.dns import DnsParser, eve_dns
from sensor.applayer.ftp import FtpParser
from sensor.applayer.http import HttpParser
from sensor.applayer.http2 import Http2Parser
from sensor.applayer.http2_tx import Http2TxData, eve_http2
from sensor.applayer.http2_tx import body_buffers as http2_body_buffers
from sensor.applayer.http_message import HttpTxData, body_buffers, eve_http
from sensor.applayer.krb5 import Krb5Parser, eve_krb5
from sensor.applayer.modbus import ModbusParser, eve_modbus
from sensor.applayer.mqtt import MqttParser, eve_mqtt
from sensor.applayer.sip import SipParser, eve_sip
from sensor.applayer.smb import SmbFile, SmbParser
from sensor.applayer.snmp import SnmpParser, eve_snmp
from sensor.applayer.ssh import SshParser, eve_ssh
from sensor.applayer.tls import TlsParser, eve_tls

__all__ = [
    "DUAL_DIRECTION_BUFFERS",
    "PROGRESS_BODY",
    "PROGRESS_COMPLETE",
    "PROGRESS_HEADERS",
    "PROGRESS_LINE",
    "PROGRESS_NONE",
    "AppLayer",
    "AppLayerSettings",
    "Transaction",
    "detect_protocol",
]

FAILED = "failed"
_IPPROTO_UDP = 17
_UDP_DETECT_DATAGRAMS = 4  # datagrams per direction inspected before giving up

Parser = (
    HttpParser
    | Http2Parser
    | DnsParser
    | TlsParser
    | SshParser
    | FtpParser
    | SmbParser
    | SnmpParser
    | SipParser
    | Krb5Parser
    | DcerpcParser
    | MqttParser
    | ModbusParser
)
_EVE = {
    "dns": eve_dns,
    "tls": eve_tls,
    "snmp": eve_snmp,
    "sip": eve_sip,
    "krb5": eve_krb5,
    "mqtt": eve_mqtt,
    "modbus": eve_modbus,
}


class AppLayer:
    """Application-layer state of one flow."""

    __slots__ = (
        "_dirty",
        "_dirty_ids",
        "_events",
        "_next_tx",
        "_parser",
        "_pending",
        "_seen",
        "_sniffed",
        "_undecided",
        "cfg",
        "client_ip",
        "dport",
        "ipproto",
        "last_ts",
        "proto_name",
        "sport",
    )

    def __init__(self, cfg: AppLayerSettings, proto: int, sport: int, dport: int,
                 client_ip: int | None = None) -> None:  # fmt: skip
        self.cfg = cfg
        self.client_ip = client_ip  # the flow initiator's IPv4 address (FTP bounce checks)
        self.ipproto = proto
        self.sport = sport
        self.dport = dport
        self.proto_name: str | None = None
        self._events: list[str] = []
        self._next_tx = 0
        self.last_ts = 0
        self._parser: Parser | None = None
        self._pending: list[tuple[bool, bytes]] = []  # data held back until detection decides
        self._seen = {True: bytearray(), False: bytearray()}  # TCP: first bytes per direction
        self._undecided = {True: True, False: True}  # direction may still match a pattern
        self._sniffed = False  # detection runs on arrival (sniff), parsing on feed
        self._dirty: list[Transaction] = []
        self._dirty_ids: set[int] = set()

    @property
    def events(self) -> list[str]:
        """Flow-level anomalies (Suricata event names) not tied to one transaction."""
        parser = self._parser
        return self._events + parser.events if parser is not None else list(self._events)

    @property
    def anomalous(self) -> bool:
        """True when any parser reported an anomaly for this flow."""
        return bool(self.events)

    # ---------------------------------------------------------------- input
    def feed(self, to_server: bool, data: bytes, ts_sec: int) -> None:
        """TCP: in-order stream bytes of one direction. UDP: one datagram."""
        self.last_ts = ts_sec
        if not data or self.proto_name == FAILED:
            return
        if self.proto_name is None:
            if self._sniffed:  # sniff() decides; hold the bytes for the parser meanwhile
                self._pending.append((to_server, data))
                self._bound_pending()
            else:
                self._detect(to_server, data)
            return
        if self._parser is not None:
            self._parser.feed(to_server, data)
            if isinstance(self._parser, HttpParser) and self._parser.h2c is not None:
                self._switch_h2c(self._parser)

    def _switch_h2c(self, http: HttpParser) -> None:
        """``Upgrade: h2c`` answered by 101: the flow is HTTP/2 from here on (Suricata
        changes the flow's app_proto to http2); the bytes after the switch are replayed."""
        method, target, ts_rest, tc_rest = http.h2c or (b"", b"", b"", b"")
        self._events.extend(http.events)
        h2 = Http2Parser(self.cfg, self._updated, first_id=http.next_id)
        h2.upgraded(method, target)
        self._parser = h2
        self.proto_name = "http2"
        h2.feed(False, tc_rest)
        h2.feed(True, ts_rest)

    def sniff(self, to_server: bool, data: bytes) -> None:
        """TCP: protocol detection on bytes as they arrive, ahead of :meth:`feed`, which the
        engine calls only once the peer acknowledged them (Suricata's IDS mode parses a
        direction on the other side's ACK). Once used, ``feed`` no longer detects."""
        self._sniffed = True
        if data and self.proto_name is None:
            self._detect(to_server, data, hold=False)

    def close(self) -> None:
        """The flow ended: finish messages delimited by connection close (HTTP bodies)."""
        if isinstance(self._parser, HttpParser | MqttParser):
            self._parser.close()

    def _detect(self, to_server: bool, data: bytes, hold: bool = True) -> None:
        if hold:
            self._pending.append((to_server, data))
        if self.ipproto == _IPPROTO_UDP:
            found = detect_protocol(data, to_server, self.ipproto, self.sport, self.dport)
            if (
                found is NO_MATCH
                and sum(1 for d, _ in self._pending if d == to_server) < _UDP_DETECT_DATAGRAMS
            ):
                found = NEED_MORE
        else:
            seen = self._seen[to_server]
            seen += data[: self.cfg.detect_max_bytes - len(seen)]
            found = detect_protocol(bytes(seen), to_server, self.ipproto, self.sport, self.dport)
            if found is NEED_MORE and len(seen) >= self.cfg.detect_max_bytes:
                found = NO_MATCH
        if found is NEED_MORE:
            self._bound_pending()
            return
        if found is NO_MATCH:
            self._undecided[to_server] = False
            if not any(self._undecided.values()):
                self._give_up()
            else:
                self._bound_pending()
            return
        self._start(found)

    def _bound_pending(self) -> None:
        held = sum(len(d) for _, d in self._pending)
        if held > 4 * self.cfg.detect_max_bytes:
            self._give_up()

    def _give_up(self) -> None:
        self.proto_name = FAILED
        self._pending.clear()
        self._seen.clear()

    def _start(self, name: str) -> None:
        self.proto_name = name
        cfg = self.cfg
        tcp = self.ipproto != _IPPROTO_UDP
        if name == "http" and cfg.http and tcp:
            self._parser = HttpParser(cfg, self._updated)
        elif name == "http2" and cfg.http and tcp:
            self._parser = Http2Parser(cfg, self._updated)
        elif name == "tls" and cfg.tls and tcp:
            self._parser = TlsParser(cfg, self._updated)
        elif name == "dns" and cfg.dns:
            self._parser = DnsParser(cfg, tcp, self._updated)
        elif name == "ssh" and cfg.ssh and tcp:
            self._parser = SshParser(cfg, self._updated)
        elif name == "ftp" and cfg.ftp and tcp:
            self._parser = FtpParser(cfg, self._updated, self.client_ip)
        elif name == "smb" and cfg.smb and tcp:
            self._parser = SmbParser(cfg, self._updated)
        elif name == "snmp" and cfg.snmp and not tcp:
            self._parser = SnmpParser(cfg, self._updated)
        elif name == "sip" and cfg.sip:
            self._parser = SipParser(cfg, tcp, self._updated)
        elif name == "krb5" and cfg.krb5:
            self._parser = Krb5Parser(cfg, tcp, self._updated)
        elif name == "dcerpc" and cfg.dcerpc and tcp:
            self._parser = DcerpcParser("dcerpc", self._new_tx, self._updated,
                                        cfg.dcerpc_max_stub)  # fmt: skip
        elif name == "mqtt" and cfg.mqtt and tcp:
            self._parser = MqttParser(cfg, self._updated)
        elif name == "modbus" and cfg.modbus and tcp:
            self._parser = ModbusParser(cfg, self._updated)
        pending, self._pending = self._pending, []
        self._seen.clear()
        if self._parser is not None:
            for direction, chunk in pending:
                self.feed(direction, chunk, self.last_ts)

    # ---------------------------------------------------------------- output
    def _new_tx(self) -> Transaction:
        """A transaction for a parser that numbers them through the flow (DCERPC)."""
        tx = Transaction(self._next_tx, self.proto_name or "")
        self._next_tx += 1
        return tx

    def _updated(self, tx: Transaction) -> None:
        if tx.tx_id not in self._dirty_ids:
            self._dirty_ids.add(tx.tx_id)
            self._dirty.append(tx)

    def pop_ready(self) -> list[Transaction]:
        """Transactions with new or grown buffers since the last call, oldest first."""
        ready, self._dirty = self._dirty, []
        self._dirty_ids.clear()
        for tx in ready:
            if isinstance(tx.state, HttpTxData):
                body_buffers(tx)
            elif isinstance(tx.state, Http2TxData):
                http2_body_buffers(tx)
            elif isinstance(tx.state, SmbFile):
                tx.state.refresh()
        return ready

    @property
    def encrypted(self) -> bool:
        """Both SSH sides switched to encrypted packets (Suricata then stops inspecting the
        flow's payload)."""
        parser = self._parser
        return isinstance(parser, SshParser) and parser.finished

    def flow_eve_fields(self) -> dict[str, object]:
        """The app-layer object Suricata adds to any alert on this flow, transaction rule or
        not: SSH's single transaction (``{"ssh": {...}}`` once a banner was seen)."""
        parser = self._parser
        if isinstance(parser, SshParser):
            ssh = eve_ssh(parser.tx)
            return {"ssh": ssh} if ssh else {}
        return {}

    def eve_fields(self, tx: Transaction) -> dict[str, object]:
        """``{"http": {...}}`` / ``{"dns": {...}}`` / ``{"tls": {...}}`` / ``{"ssh": {...}}``
        for an alert on ``tx``."""
        if tx.proto == "http":
            return {"http": eve_http(tx)}
        if tx.proto == "http2":
            return {"http": eve_http2(tx)}
        build = _EVE.get(tx.proto)
        if build is not None:  # dns, tls, snmp, sip, krb5
            return {tx.proto: build(tx)}
        if tx.proto == "ssh":
            ssh = eve_ssh(tx)
            return {"ssh": ssh} if ssh else {}
        return {}
