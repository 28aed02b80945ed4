"""MQTT control packets (v3.1, v3.1.1 and v5) decoded from whole frames, as Suricata 7 reads
them.

Scope: the fixed header (type, DUP, QoS, RETAIN, the variable-length remaining length) and the
variable headers and payloads the detection keywords and EVE need: CONNECT (protocol name and
level, connect flags, client id, will topic/message, user name, password), CONNACK (session
present, return/reason code), PUBLISH (topic, packet id, message), the PUBACK family and
DISCONNECT/AUTH (reason codes), SUBSCRIBE/UNSUBSCRIBE (topics) and their acknowledgements.
Strings are UTF-8 decoded leniently (invalid bytes become U+FFFD, as Suricata's lossy
conversion) and stored re-encoded; binary fields (password, will message, publish message) are
kept as they are.

Non-goals: MQTT v5 property values (their length is honoured and the bytes skipped), topic
filter validation, semantic checks beyond what the protocol's framing needs. Malformed input
raises :class:`MqttError` (a ``ValueError``); callers decide what that means for the flow.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import partial

# control packet types (MQTT 3.1.1 section 2.2.1, MQTT 5 section 2.1.2)
TYPE_NAMES = ("UNASSIGNED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL",
              "PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ",
              "PINGRESP", "DISCONNECT", "AUTH")  # fmt: skip
(UNASSIGNED, CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, SUBACK,
 UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH) = range(16)  # fmt: skip
_PUB_ACKS = frozenset({PUBACK, PUBREC, PUBREL, PUBCOMP})
MQTT_V5 = 5

_U16 = struct.Struct("!H")
_CONNECT_FIXED = struct.Struct("!BBH")  # protocol level, connect flags, keep alive


class MqttError(ValueError):
    """The bytes are not a well-formed MQTT control packet."""


@dataclass(frozen=True, slots=True)
class MqttConnect:
    protocol_string: bytes
    protocol_version: int  # 3 (v3.1), 4 (v3.1.1), 5
    flags: int  # the raw connect flags byte (mqtt.connect.flags)
    keepalive: int
    client_id: bytes
    will_topic: bytes | None = None
    will_message: bytes | None = None
    username: bytes | None = None
    password: bytes | None = None


@dataclass(frozen=True, slots=True)
class MqttMessage:
    """One control packet. Fields not carried by the packet's type stay at their default."""

    mtype: int
    dup: bool
    qos: int
    retain: bool
    to_server: bool
    length: int = 0  # remaining length (bytes after the fixed header)
    connect: MqttConnect | None = None
    session_present: bool | None = None  # CONNACK
    reason: int | None = None  # CONNACK return code; PUB*/DISCONNECT/AUTH reason code (v5)
    reasons: tuple[int, ...] = ()  # SUBACK granted QoS / reason codes, UNSUBACK reason codes
    message_id: int | None = None
    topic: bytes | None = None  # PUBLISH
    payload: bytes | None = None  # PUBLISH message
    topics: tuple[bytes, ...] = ()  # SUBSCRIBE / UNSUBSCRIBE topic filters
    topic_qos: tuple[int, ...] = ()  # SUBSCRIBE requested QoS per topic
    truncated: bool = False  # longer than the parser's message limit: only the header read

    @property
    def type_name(self) -> str:
        return TYPE_NAMES[self.mtype]


def fixed_header(data: bytes | bytearray) -> tuple[int, int, int] | None:
    """(first byte, remaining length, header size), None when more bytes are needed. The
    remaining length is a variable byte integer of at most four bytes."""
    value = 0
    for i in range(1, 5):
        if i >= len(data):
            return None
        byte = data[i]
        value |= (byte & 0x7F) << (7 * (i - 1))
        if not byte & 0x80:
            return data[0], value, i + 1
    raise MqttError("remaining length longer than four bytes")


def probe(data: bytes) -> bool | None:
    """Suricata's probing parser: a well-formed fixed header of an assigned type with a QoS of
    at most 2. None when the header is incomplete."""
    try:
        head = fixed_header(data)
    except MqttError:
        return False
    if head is None:
        return None
    first = head[0]
    return first >> 4 != UNASSIGNED and (first >> 1) & 3 <= 2


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def left(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise MqttError("packet shorter than its fields")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int(_U16.unpack(self.take(2))[0])

    def binary(self) -> bytes:
        return self.take(self.u16())

    def string(self) -> bytes:
        return self.binary().decode("utf-8", "replace").encode("utf-8")

    def rest(self) -> bytes:
        return self.take(self.left())

    def skip_properties(self) -> None:
        """An MQTT 5 property block: a variable byte integer length, then the properties."""
        length = 0
        for i in range(4):
            byte = self.u8()
            length |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                self.take(length)
                return
        raise MqttError("property length longer than four bytes")


def _connect(r: _Reader) -> MqttConnect:
    name = r.string()
    level, flags, keepalive = _CONNECT_FIXED.unpack(r.take(_CONNECT_FIXED.size))
    if level == MQTT_V5:
        r.skip_properties()
    client_id = r.string()
    will_topic = will_message = username = password = None
    if flags & 0x04:  # will flag
        if level == MQTT_V5:
            r.skip_properties()  # will properties
        will_topic = r.string()
        will_message = r.binary()
    if flags & 0x80:
        username = r.string()
    if flags & 0x40:
        password = r.binary()
    return MqttConnect(name, level, flags, keepalive, client_id, will_topic, will_message,
                       username, password)  # fmt: skip


def parse_body(first: int, body: bytes, version: int, to_server: bool) -> MqttMessage:
    """Decode one packet's variable header and payload. ``version`` is the flow's protocol
    level (from its CONNECT; 0 while unknown): v5 adds properties and reason codes."""
    mtype, qos = first >> 4, (first >> 1) & 3
    make = partial(MqttMessage, mtype, bool(first & 0x08), qos, bool(first & 1), to_server,
                   len(body))  # fmt: skip
    r = _Reader(body)
    v5 = version == MQTT_V5
    if mtype == CONNECT:
        return make(connect=_connect(r))
    if mtype == CONNACK:
        ack, return_code = r.u8(), r.u8()
        return make(session_present=bool(ack & 1), reason=return_code)
    if mtype == PUBLISH:
        topic = r.string()
        pub_id = r.u16() if qos > 0 else None
        if v5:
            r.skip_properties()
        return make(topic=topic, message_id=pub_id, payload=r.rest())
    if mtype in _PUB_ACKS:
        msg_id = r.u16()
        code = r.u8() if v5 and r.left() else None
        return make(message_id=msg_id, reason=code)
    if mtype in (SUBSCRIBE, UNSUBSCRIBE):
        msg_id = r.u16()
        if v5:
            r.skip_properties()
        topics: list[bytes] = []
        wanted: list[int] = []
        while r.left():
            topics.append(r.string())
            if mtype == SUBSCRIBE:
                wanted.append(r.u8() & 3)
        return make(message_id=msg_id, topics=tuple(topics),
                           topic_qos=tuple(wanted))  # fmt: skip
    if mtype in (SUBACK, UNSUBACK):
        msg_id = r.u16()
        if v5:
            r.skip_properties()
        codes = tuple(r.rest()) if mtype == SUBACK or v5 else ()
        return make(message_id=msg_id, reasons=codes)
    if mtype in (DISCONNECT, AUTH) and v5 and r.left():
        return make(reason=r.u8())
    return make()
