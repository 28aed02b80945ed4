"""MQTT over TCP (v3.1, v3.1.1, v5): framing, Suricata 7's transactions, buffers and EVE.

Scope: each direction's stream is cut into control packets (``mqtt_message.py`` decodes
them); packets are grouped into transactions as Suricata 7's MQTT state does: CONNECT waits for
its CONNACK, a QoS 1/2 PUBLISH for its PUBACK / PUBREC+PUBREL+PUBCOMP (by packet id),
SUBSCRIBE/UNSUBSCRIBE for their acknowledgement; every other packet (QoS 0 PUBLISH, PINGREQ,
DISCONNECT, an acknowledgement nobody asked for ...) is a transaction of its own. The flow's
protocol version is the last CONNECT's.

A transaction is handed to detection only once complete (Suricata 7 registers every MQTT
keyword at progress 1, and an MQTT transaction reaches it when complete; at flow end every
transaction counts as complete, :meth:`MqttParser.close`). All MQTT keywords are to-server
ones in 7.0, so the buffers are stored for that direction whatever direction the packets
travelled: ``mqtt.connect.clientid|username|password|willtopic|willmessage`` (the CONNECT's,
when not empty), ``mqtt.publish.topic|message`` (the transaction's first PUBLISH, when not
empty), ``mqtt.subscribe.topic`` / ``mqtt.unsubscribe.topic`` (multi-buffers, one entry per
topic). The value keywords read :class:`MqttTxData` (its messages) and
``tx.values["mqtt.protocol_version"]``.

Events (Suricata's names, on the transaction): ``mqtt.missing_connect``,
``mqtt.missing_publish``, ``mqtt.missing_subscribe``, ``mqtt.missing_unsubscribe``,
``mqtt.double_connect``, ``mqtt.unintroduced_message``, ``mqtt.invalid_qos_level``,
``mqtt.missing_msg_id``, ``mqtt.unassigned_msg_type``, ``mqtt.too_many_transactions``; on the
flow: ``mqtt.malformed_traffic`` (a packet that does not decode: that direction stops). Every
transaction event is also recorded once on the flow (``events``), where ``app-layer-event``
looks.

Bounds: a packet longer than ``mqtt_max_msg_len`` (1 MiB, Suricata's ``max-msg-length``) is
not buffered: its header makes a truncated message and its body is skipped. At most
``max_transactions`` transactions wait for an answer; beyond that the oldest is completed with
``mqtt.too_many_transactions``. A transaction keeps at most 8 packets.

Non-goals: v5 properties, EVE ``properties``, logging passwords.
"""

from __future__ import annotations

from collections.abc import Callable

from sensor.applayer.common import AppLayerSettings, Transaction
from sensor.applayer.mqtt_message import (
    CONNACK,
    CONNECT,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    SUBACK,
    SUBSCRIBE,
    UNASSIGNED,
    UNSUBACK,
    UNSUBSCRIBE,
    MqttError,
    MqttMessage,
    fixed_header,
    parse_body,
)

_CONNECT_ID = -1  # the pseudo packet id a CONNECT waits under (real ids are 16-bit)
_MAX_MESSAGES = 8  # packets kept per transaction
# acknowledgement type -> (completes the transaction, event when nothing waits for it)
_ACKS = {CONNACK: (True, "mqtt.missing_connect"), PUBACK: (True, "mqtt.missing_publish"),
         PUBCOMP: (True, "mqtt.missing_publish"), PUBREC: (False, "mqtt.missing_publish"),
         PUBREL: (False, "mqtt.missing_publish"), SUBACK: (True, "mqtt.missing_subscribe"),
         UNSUBACK: (True, "mqtt.missing_unsubscribe")}  # fmt: skip
_BUFFERS = (("mqtt.connect.clientid", "client_id"), ("mqtt.connect.username", "username"),
            ("mqtt.connect.password", "password"), ("mqtt.connect.willtopic", "will_topic"),
            ("mqtt.connect.willmessage", "will_message"))  # fmt: skip


class MqttTxData:
    """The packets of one MQTT transaction, in arrival order (bounded)."""

    __slots__ = ("complete", "messages", "pkt_id")

    def __init__(self, first: MqttMessage) -> None:
        self.messages: list[MqttMessage] = [first]
        self.pkt_id: int | None = None
        self.complete = False

    def add(self, msg: MqttMessage) -> None:
        if len(self.messages) < _MAX_MESSAGES:
            self.messages.append(msg)


class MqttParser:
    """Both directions of one MQTT flow; ``on_update(tx)`` receives completed transactions."""

    def __init__(self, cfg: AppLayerSettings, on_update: Callable[[Transaction], None]) -> None:
        self.cfg = cfg
        self._on_update = on_update
        self._bufs = {True: bytearray(), False: bytearray()}
        self._skip = {True: 0, False: 0}
        self._stopped = {True: False, False: False}
        self._open: list[Transaction] = []  # waiting for an answer, oldest first
        self._next_id = 0
        self.protocol_version = 0
        self.connected = False
        self.events: list[str] = []

    # ------------------------------------------------------------------ framing
    def feed(self, to_server: bool, data: bytes) -> None:
        if self._stopped[to_server] or not data:
            return
        skip = self._skip[to_server]
        if skip:
            self._skip[to_server] = max(0, skip - len(data))
            data = data[skip:]
        buf = self._bufs[to_server]
        buf += data
        limit = self.cfg.mqtt_max_msg_len
        while buf:
            try:
                head = fixed_header(buf)
                if head is None:
                    break
                first, length, size = head
                if length > limit:  # too long to hold: the header only, the body skipped
                    self._skip[to_server] = max(0, size + length - len(buf))
                    del buf[: size + length]
                    self._handle(self._truncated(first, length, to_server))
                    continue
                if len(buf) < size + length:
                    break
                body = bytes(buf[size : size + length])
                del buf[: size + length]
                self._handle(parse_body(first, body, self.protocol_version, to_server))
            except MqttError:
                if "mqtt.malformed_traffic" not in self.events:
                    self.events.append("mqtt.malformed_traffic")
                self._stopped[to_server] = True
                buf.clear()
                return

    @staticmethod
    def _truncated(first: int, length: int, to_server: bool) -> MqttMessage:
        return MqttMessage(first >> 4, bool(first & 8), (first >> 1) & 3, bool(first & 1),
                           to_server, length, truncated=True)  # fmt: skip

    def close(self) -> None:
        """Flow end: Suricata then treats every transaction as complete (EOF progress)."""
        for tx in self._open:
            self._complete(tx)
        self._open.clear()

    # ------------------------------------------------------------------ transactions
    def _new(self, msg: MqttMessage) -> Transaction:
        tx = Transaction(self._next_id, "mqtt")
        self._next_id += 1
        tx.state = MqttTxData(msg)
        return tx

    def _wait(self, tx: Transaction, pkt_id: int) -> None:
        data = tx.state
        assert isinstance(data, MqttTxData)
        data.pkt_id = pkt_id
        self._open.append(tx)
        if len(self._open) > self.cfg.max_transactions:
            oldest = self._open.pop(0)
            oldest.events.append("mqtt.too_many_transactions")
            self._complete(oldest)

    def _handle(self, msg: MqttMessage) -> None:
        mtype = msg.mtype
        if msg.truncated:
            self._complete(self._new(msg))
            return
        if mtype in _ACKS:
            self._answer(msg)
            return
        tx = self._new(msg)
        if mtype == CONNECT and msg.connect is not None:
            self.protocol_version = msg.connect.protocol_version
            if self.connected:
                tx.events.append("mqtt.double_connect")
            self._wait(tx, _CONNECT_ID)
            return
        if not self.connected:
            tx.events.append("mqtt.unintroduced_message")
        if mtype == UNASSIGNED:
            tx.events.append("mqtt.unassigned_msg_type")
        if mtype in (PUBLISH, SUBSCRIBE, UNSUBSCRIBE) and msg.qos > 0:
            if msg.qos > 2:
                tx.events.append("mqtt.invalid_qos_level")
            elif msg.message_id is None:
                tx.events.append("mqtt.missing_msg_id")
            else:
                self._wait(tx, msg.message_id)
                return
        self._complete(tx)

    def _answer(self, msg: MqttMessage) -> None:
        completes, missing = _ACKS[msg.mtype]
        wanted = _CONNECT_ID if msg.mtype == CONNACK else msg.message_id
        for tx in self._open:
            data = tx.state
            if isinstance(data, MqttTxData) and data.pkt_id == wanted:
                data.add(msg)
                if msg.mtype == CONNACK:
                    self.connected = True
                if completes:
                    self._open.remove(tx)
                    self._complete(tx)
                return
        tx = self._new(msg)
        tx.events.append(missing)
        if not self.connected and msg.mtype != CONNACK:
            tx.events.append("mqtt.unintroduced_message")
        self._complete(tx)

    def _complete(self, tx: Transaction) -> None:
        data = tx.state
        assert isinstance(data, MqttTxData)
        data.complete = True
        tx.values["mqtt.protocol_version"] = self.protocol_version
        for msg in data.messages:
            connect = msg.connect
            if connect is not None:
                for name, attr in _BUFFERS:
                    value = getattr(connect, attr)
                    if value and tx.get(name, True) is None:
                        tx.set_buffer(name, value, True)
            if msg.mtype == PUBLISH and tx.get("mqtt.publish.topic", True) is None:
                if msg.topic:
                    tx.set_buffer("mqtt.publish.topic", msg.topic, True)
                if msg.payload:
                    tx.set_buffer("mqtt.publish.message", msg.payload, True)
        for kind, name in ((SUBSCRIBE, "mqtt.subscribe.topic"),
                           (UNSUBSCRIBE, "mqtt.unsubscribe.topic")):  # fmt: skip
            topics = [t for m in data.messages if m.mtype == kind for t in m.topics]
            if topics:
                tx.set_buffer(name, topics, True)
        for event in tx.events:  # also flow-level, where app-layer-event looks (once each)
            if event not in self.events:
                self.events.append(event)
        tx.complete()
        self._on_update(tx)


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace")


def _eve_message(msg: MqttMessage) -> dict[str, object]:
    out: dict[str, object] = {"qos": msg.qos, "retain": msg.retain, "dup": msg.dup}
    if msg.truncated:
        out["truncated"] = True
        out["skipped_length"] = msg.length
        return out
    if msg.message_id is not None:
        out["message_id"] = msg.message_id
    c = msg.connect
    if c is not None:
        out["protocol_string"] = _text(c.protocol_string)
        out["protocol_version"] = c.protocol_version
        out["flags"] = {"username": bool(c.flags & 0x80), "password": bool(c.flags & 0x40),
                        "will_retain": bool(c.flags & 0x20), "will": bool(c.flags & 0x04),
                        "clean_session": bool(c.flags & 0x02)}  # fmt: skip
        out["client_id"] = _text(c.client_id)
        if c.username is not None:
            out["username"] = _text(c.username)
        if c.will_topic is not None:
            out["will"] = {"topic": _text(c.will_topic),
                           "message": _text(c.will_message or b"")}  # fmt: skip
    if msg.session_present is not None:
        out["session_present"] = msg.session_present
    if msg.mtype == CONNACK:
        out["return_code"] = msg.reason
    elif msg.reason is not None:
        out["reason_code"] = msg.reason
    if msg.topic is not None:
        out["topic"] = _text(msg.topic)
        out["message"] = _text(msg.payload or b"")
    if msg.topics:
        if msg.mtype == SUBSCRIBE:
            out["topics"] = [{"topic": _text(t), "qos": q}
                             for t, q in zip(msg.topics, msg.topic_qos, strict=False)]  # fmt: skip
        else:
            out["topics"] = [_text(t) for t in msg.topics]
    if msg.mtype == SUBACK:
        out["qos_granted"] = list(msg.reasons)
    elif msg.mtype == UNSUBACK and msg.reasons:
        out["reason_codes"] = list(msg.reasons)
    return out


def eve_mqtt(tx: Transaction) -> dict[str, object]:
    """The ``mqtt`` object Suricata 7 adds to an alert: one entry per packet type the
    transaction holds (``connect``, ``connack``, ``publish`` ...). Passwords are left out."""
    data = tx.state
    if not isinstance(data, MqttTxData):
        return {}
    out: dict[str, object] = {}
    for msg in data.messages:
        key = msg.type_name.lower()
        if key not in out:
            out[key] = _eve_message(msg)
    return out
