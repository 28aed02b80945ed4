"""Transaction rules: signatures over application buffers (http.uri, file.data, dns.query...).

Scope: feed a flow's in-order data to its application layer (sensor/applayer), and for every
transaction with new buffers select candidate rules (the protocol's rules without an app
fast pattern, plus Hyperscan prefilter hits on the transaction's buffers) and check them.
As in Suricata, a rule alerts at most once per transaction; a rule whose buffers belong to
the response is checked on packets towards the client, one on request buffers on packets
towards the server, and one on buffers both sides fill (``file.data``, ``http.header``...)
in either direction with that direction's version.

File keywords read the HTTP response's file (its body) and SMB files (written: to server;
read: to client): filename/fileext/filesize through ``Transaction.values``/``file.name``,
filemagic/``file.magic`` through libmagic (sensor/applayer/magic.py), computed lazily only
when a rule needs it. Rules on file buffers alone (``alert tcp ... (filesize:>50;)``) are
checked on both protocols' transactions, as Suricata's file inspection is.

DCERPC rules (``alert dcerpc``, dce_iface/dce_opnum/dce_stub_data) are checked on DCERPC
transactions over TCP and on SMB's named-pipe calls, as Suricata lets a dcerpc signature
match an SMB flow. HTTP/2 transactions are checked against the ``http2`` rules and the
``http`` ones (Suricata 7 fills the http.* buffers for HTTP/2); the http2.* frame keywords
read the frames of the packet's direction.

Non-goals: file extraction (filestore stores nothing), HTTP/1 request-side files.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from typing import Any

from sensor import detect_raw
from sensor.applayer import AppLayer
from sensor.applayer.common import AppLayerSettings, Transaction
from sensor.applayer.dcerpc import iface_candidates
from sensor.applayer.http2_tx import Http2TxData
from sensor.applayer.magic import LibMagic, MagicUnavailable, magic_input
from sensor.applayer.modbus import ModbusRequest
from sensor.applayer.mqtt import MqttTxData
from sensor.detect_match import ALSO_MATCHED_BY
from sensor.detect_state import FlowDetectState
from sensor.packet import TH_ACK, TH_RST, Packet
from sensor.stream import seq_diff
from signatures.buffers import APP_BUFFERS, TRANSFORM_SEPARATOR, buffer_direction
from signatures.compiler import FILE_GROUP, AppGroup, CompiledRuleset
from signatures.http2kw import HTTP2_KEYWORDS
from signatures.mqttkw import MQTT_KEYWORDS
from signatures.rule import Signature
from signatures.transforms import apply_chain, split_name
from signatures.txvalues import NUMERIC_VALUES

# Buffers the application layer fills: every registered application buffer (file.magic
# needs libmagic: see sensor.pipeline.sensor_buffers()).
APP_LAYER_BUFFERS = APP_BUFFERS

log = logging.getLogger("sekimori.detect")

# Parsed on arrival, not on the ACK: their state is read on packets, and packet rules run on
# arrival (SSH: encrypted data is no longer inspected, every alert carries the ssh object;
# FTP: ftpbounce checks the PORT command of the packet carrying it).
_PARSED_ON_ARRIVAL = frozenset({"ssh", "ftp"})

# Buffers derived from another one on demand: one entry per header line, "Name: value".
_PER_HEADER = {"http.request_header": True, "http.response_header": False}


def _header_lines(block: Any) -> list[bytes] | None:
    if not isinstance(block, bytes):
        return None
    return [line for line in block.split(b"\r\n") if line]


# Protocols whose transactions carry files, checked by rules on file buffers alone
_FILE_PROTOCOLS = frozenset({"http", "http2", "smb"})

TS, TC, ANY = 1, 2, 3  # which packet directions a transaction rule is checked on


def rule_direction(sig: Signature) -> int:
    dirs = {buffer_direction(b) for b in sig.app_buffers}
    if "tc" in dirs:
        return TC
    if "ts" in dirs:
        return TS
    return ANY


def tx_value(tx: Transaction, name: str, to_server: bool) -> Any:
    if name == "tls.cert_validity":  # tls_cert_expired/valid: (notBefore, notAfter)
        not_after = tx.values.get("tls.cert_notafter")
        return None if not_after is None else (tx.values.get("tls.cert_notbefore"), not_after)
    if name == "dce.iface":  # the accepted interfaces a DCERPC request may use
        return iface_candidates(tx)
    if name == "file.size" and tx.proto == "smb":  # an SMB file has one direction (write:
        # to server, read: to client), which its file.name marks
        return tx.values.get(name) if tx.get("file.name", to_server) is not None else None
    if name in HTTP2_KEYWORDS:  # http2.frametype ...: the frames of the packet's direction
        data = tx.state
        return data.frames(to_server) if isinstance(data, Http2TxData) else None
    if name in MQTT_KEYWORDS:  # mqtt.type ...: every packet of the transaction
        mqtt = tx.state
        return mqtt.messages if isinstance(mqtt, MqttTxData) else None
    if name == "modbus":  # the modbus keyword reads the request
        return tx.state if isinstance(tx.state, ModbusRequest) else None
    if name == "file.size" and tx.proto == "http" and to_server:
        return None  # the HTTP file here is the response's: Suricata inspects it to client
    if name == "tls.version":  # Suricata: the ClientHello's version to the server, the
        # server's (negotiated) one to the client
        return tx.values.get("tls.version.ts" if to_server else "tls.version.tc")
    if name in NUMERIC_VALUES:  # numeric values (tls.version, dns.opcode, file.size ...)
        return tx.values.get(name)
    if TRANSFORM_SEPARATOR in name:  # a transformed buffer: "http.uri#to_lowercase"
        base, chain = split_name(name)
        value = tx_value(tx, base, to_server)
        if isinstance(value, list):
            return [apply_chain(chain, v) for v in value]
        return None if value is None else apply_chain(chain, value)
    if name in _PER_HEADER:
        return _header_lines(tx.get("http.header", _PER_HEADER[name]))
    d = buffer_direction(name)
    if d == "ts":
        return tx.get(name, True)
    if d == "tc":
        return tx.get(name, False)
    return tx.get(name, to_server)


class TxSource:
    """Owns the app-layer feeding and candidate selection for one ruleset."""

    def __init__(self, ruleset: CompiledRuleset, settings: AppLayerSettings) -> None:
        self._groups: dict[str, AppGroup] = ruleset.app_groups
        # HASSH costs an MD5 per KEXINIT: computed only when a rule reads it (as Suricata
        # switches app-layer.protocols.ssh.hassh on for such rules).
        if any(b.startswith("ssh.hassh") for s in ruleset.signatures for b in s.app_buffers):
            settings = dataclasses.replace(settings, ssh_hassh=True)
        self._settings = settings
        self._direction = {s.order: rule_direction(s) for s in ruleset.signatures if s.app_buffers}
        # Protocol detection runs only when some rule depends on it.
        # app-layer-protocol alone also needs the parsers: they detect the flow's protocol
        self.enabled = bool(self._groups) or any(
            s.app_proto or any(k == "app-layer-protocol" for k, _ in s.check_specs)
            for s in ruleset.signatures
        )
        # one libmagic cookie for the engine's lifetime, only if a rule reads file.magic
        self._magic: LibMagic | None = None
        if any("file.magic" in s.app_buffers for s in ruleset.signatures):
            try:
                self._magic = LibMagic()
            except MagicUnavailable as exc:  # the loader skips such rules; this is a backstop
                log.warning("file.magic will not match: %s", exc)

    def app_of(self, flow: Any) -> AppLayer:
        app = flow.app
        if app is None:
            app = flow.app = AppLayer(self._settings, flow.proto, flow.sport, flow.dport,
                                      flow.src if flow.ipver == 4 else None)  # fmt: skip
        return app

    def feed(self, flow: Any, to_server: bool, data: bytes, ts_sec: int) -> list[Transaction]:
        app = self.app_of(flow)
        app.feed(to_server, data, ts_sec)
        return app.pop_ready()

    def feed_tcp(self, p: Packet, flow: Any, fs: FlowDetectState,
                 new_data: bytes) -> list[Transaction]:  # fmt: skip
        """Feed the app layer as Suricata's IDS mode does: a direction's data is detected on
        arrival (packet rules see the protocol at once) but parsed only when the other side
        acknowledges it, so transaction rules see it on the acknowledging packet and, through
        Detector._with_deferred, on the sender's next packet. A flow whose peer was never seen
        (Suricata's async stream), a RST's own data, SSH and FTP are parsed at once, and all
        data in inline mode (``stream.inline``, on in prevent mode); data never acknowledged
        is parsed at flow end (flow_end)."""
        if new_data:
            first = flow.app is None
            app = self.app_of(flow)
            known = app.proto_name
            if first and p.to_server and new_data[:5] == b"HTTP/":
                # Picked up midstream with the server's response first: the app layer
                # sees the flow the right way round, as Suricata reverses it.
                fs.app_reversed = True
            app.sniff(p.to_server ^ fs.app_reversed, new_data)
            if known is None and app.proto_name is not None:
                fs.app_pending = p.to_server
            d = flow.toserver if p.to_server else flow.toclient
            (fs.unparsed_ts if p.to_server else fs.unparsed_tc).append(
                (d.new_data_offset, new_data)
            )
        txs: list[Transaction] = []
        one_sided = (flow.pkts_toclient if p.to_server else flow.pkts_toserver) == 0
        at_once = (self._settings.inline or one_sided or p.tcp_flags & TH_RST
                   or p.pcap_cnt == 0)  # 0: pseudo packet  # fmt: skip
        if at_once or (flow.app is not None and flow.app.proto_name in _PARSED_ON_ARRIVAL):
            txs += self.parse_upto(flow, fs, p.to_server, None, p.ts_sec)
        if p.tcp_flags & TH_ACK:
            peer = flow.toclient if p.to_server else flow.toserver
            if peer is not None and (fs.unparsed_tc if p.to_server else fs.unparsed_ts):
                acked = peer.delivered + seq_diff(p.ack, peer.next_seq)
                txs += self.parse_upto(flow, fs, not p.to_server, acked, p.ts_sec)
        return txs

    def parse_upto(self, flow: Any, fs: FlowDetectState, to_server: bool, upto: int | None,
                   ts_sec: int) -> list[Transaction]:  # fmt: skip
        """Feed the app layer one sender's unparsed data up to stream offset ``upto`` (all
        of it when None); the transactions that grew."""
        queue = fs.unparsed_ts if to_server else fs.unparsed_tc
        chunks: list[bytes] = []
        while queue:
            off, data = queue[0]
            if upto is not None and off + len(data) > upto:
                if upto > off:  # a partly acknowledged segment: its acknowledged head
                    chunks.append(data[: upto - off])
                    queue[0] = (upto, data[upto - off :])
                break
            chunks.append(data)
            queue.pop(0)
        if not chunks:
            return []
        data = b"".join(chunks)
        if to_server:
            fs.parsed_ts = data
        else:
            fs.parsed_tc = data
        txs = self.feed(flow, to_server ^ fs.app_reversed, data, ts_sec)
        if txs:  # HTTP/DNS ask for raw stream reassembly of what they just parsed
            detect_raw.trigger(fs, to_server, flow.app.proto_name)
        return txs

    def close(self, flow: Any) -> list[Transaction]:
        app = flow.app
        if app is None:
            return []
        app.close()
        return app.pop_ready()

    def candidates(self, proto: str | None, tx: Transaction, to_server: bool) -> list[int]:
        # its own group, and the rule protocols that also match it (an http rule on HTTP/2...)
        names = (proto or "", *ALSO_MATCHED_BY.get(proto or "", ()))
        groups = [g for g in (self._groups.get(n) for n in names) if g is not None]
        if proto in _FILE_PROTOCOLS and FILE_GROUP in self._groups:
            groups.append(self._groups[FILE_GROUP])
        if not groups:
            return []
        if self._magic is not None:
            self._file_magic(tx, self._magic, to_server)
        want = TS if to_server else TC
        cand: set[int] = set()
        for group in groups:
            cand.update(group.always)
            for name, (db, users) in group.prefilters.items():
                value = tx_value(tx, name, to_server)
                if value is None:
                    continue
                for item in value if isinstance(value, list) else (value,):
                    for pid in db.scan(item):
                        cand.update(users[pid])
        direction = self._direction
        return sorted(o for o in cand if direction.get(o, ANY) & want)

    @staticmethod
    def _file_magic(tx: Transaction, magic: LibMagic, to_server: bool) -> None:
        """Describe the file of the packet's direction once (Suricata: at 512 bytes or when
        complete, over all bytes it holds then): the HTTP response body, an SMB file written
        (to server) or read (to client). HTTP request bodies are not files here: Suricata
        makes files of multipart parts and PUT bodies, which sekimori does not extract."""
        if tx.proto == "http" and to_server:
            return
        if tx.proto not in _FILE_PROTOCOLS or tx.get("file.magic", to_server) is not None:
            return
        body = tx.get("file.data", to_server)
        done = tx.to_server_done if to_server else tx.to_client_done
        data = magic_input(body, done) if isinstance(body, bytes) else None
        description = magic.describe(data) if data is not None else None
        if description is not None:
            tx.set_buffer("file.magic", description, to_server)


def iter_values(value: Any) -> Iterable[bytes]:
    return value if isinstance(value, list) else (value,)
