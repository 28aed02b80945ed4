"""MQTT parser: framing, Suricata 7's transaction grouping, buffers, events, EVE, detection,
and a mutation property (malformed input never raises)."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.applayer import AppLayer, AppLayerSettings, Transaction, detect_protocol
from sensor.applayer.mqtt import MqttParser, MqttTxData, eve_mqtt
from sensor.applayer.mqtt_message import MqttError, fixed_header, parse_body


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _s(text: bytes) -> bytes:
    return struct.pack("!H", len(text)) + text


def packet(mtype: int, flags: int, body: bytes) -> bytes:
    return bytes([mtype << 4 | flags]) + _varint(len(body)) + body


def connect(client: bytes = b"sensor-1", user: bytes | None = b"admin",
            password: bytes | None = b"hunter2", will: tuple[bytes, bytes] | None = None,
            level: int = 4, clean: bool = True) -> bytes:  # fmt: skip
    flags = (0x02 if clean else 0) | (0x80 if user is not None else 0)
    flags |= 0x40 if password is not None else 0
    flags |= 0x04 if will is not None else 0
    props = b"\x00" if level == 5 else b""
    body = _s(b"MQTT" if level >= 4 else b"MQIsdp") + bytes([level, flags]) + b"\x00\x3c"
    body += props + _s(client)
    if will is not None:
        body += props + _s(will[0]) + _s(will[1])
    if user is not None:
        body += _s(user)
    if password is not None:
        body += _s(password)
    return packet(1, 0, body)


def connack(code: int = 0, session: bool = False, v5: bool = False) -> bytes:
    return packet(2, 0, bytes([int(session), code]) + (b"\x00" if v5 else b""))


def publish(topic: bytes, message: bytes, qos: int = 0, msg_id: int = 1,
            retain: bool = False, dup: bool = False, v5: bool = False) -> bytes:  # fmt: skip
    body = _s(topic) + (struct.pack("!H", msg_id) if qos else b"") + (b"\x00" if v5 else b"")
    flags = qos << 1 | int(retain) | (0x08 if dup else 0)
    return packet(3, flags, body + message)


def ack(mtype: int, msg_id: int, reason: bytes = b"") -> bytes:
    return packet(mtype, 0x02 if mtype == 6 else 0, struct.pack("!H", msg_id) + reason)


def subscribe(msg_id: int, *topics: bytes) -> bytes:
    return packet(8, 0x02, struct.pack("!H", msg_id) + b"".join(_s(t) + b"\x01" for t in topics))


def unsubscribe(msg_id: int, *topics: bytes) -> bytes:
    return packet(10, 0x02, struct.pack("!H", msg_id) + b"".join(_s(t) for t in topics))


def suback(msg_id: int, *codes: int) -> bytes:
    return packet(9, 0, struct.pack("!H", msg_id) + bytes(codes))


def _parser() -> tuple[MqttParser, list[Transaction]]:
    done: list[Transaction] = []
    return MqttParser(AppLayerSettings(), done.append), done


def _types(tx: Transaction) -> list[int]:
    data = tx.state
    assert isinstance(data, MqttTxData)
    return [m.mtype for m in data.messages]


def test_fixed_header_remaining_length() -> None:
    assert fixed_header(b"\x30") is None
    assert fixed_header(b"\x30\x80") is None
    assert fixed_header(b"\x30\xc1\x02") == (0x30, 321, 3)
    assert fixed_header(b"\x30\xff\xff\xff\x7f") == (0x30, 268435455, 5)
    try:
        fixed_header(b"\x30\xff\xff\xff\xff\x01")
    except MqttError:
        pass
    else:
        raise AssertionError("a five-byte remaining length is malformed")


def test_connect_connack_one_transaction_split_anywhere() -> None:
    p, done = _parser()
    data = connect(will=(b"status", b"offline"))
    for i in range(len(data)):  # byte by byte: framing across chunks
        p.feed(True, data[i : i + 1])
    assert done == []  # waits for its CONNACK (Suricata: progress 1 only when complete)
    p.feed(False, connack(0, session=True))
    [tx] = done
    assert _types(tx) == [1, 2] and tx.events == []
    assert tx.get("mqtt.connect.clientid", True) == b"sensor-1"
    assert tx.get("mqtt.connect.username", True) == b"admin"
    assert tx.get("mqtt.connect.password", True) == b"hunter2"
    assert tx.get("mqtt.connect.willtopic", True) == b"status"
    assert tx.get("mqtt.connect.willmessage", True) == b"offline"
    assert tx.values["mqtt.protocol_version"] == 4
    eve = eve_mqtt(tx)
    assert eve["connect"] == {
        "qos": 0, "retain": False, "dup": False, "protocol_string": "MQTT",
        "protocol_version": 4, "client_id": "sensor-1", "username": "admin",
        "flags": {"username": True, "password": True, "will_retain": False, "will": True,
                  "clean_session": True},
        "will": {"topic": "status", "message": "offline"},
    }  # fmt: skip
    assert eve["connack"] == {"qos": 0, "retain": False, "dup": False,
                              "session_present": True, "return_code": 0}  # fmt: skip


def test_publish_qos_flows_and_subscriptions() -> None:
    p, done = _parser()
    p.feed(True, connect())
    p.feed(False, connack())
    p.feed(True, publish(b"a/b", b"hello") + publish(b"c/d", b"world", qos=1, msg_id=7))
    assert [_types(t) for t in done[1:]] == [[3]]
    p.feed(False, ack(4, 7))  # PUBACK completes the QoS 1 publish
    assert _types(done[-1]) == [3, 4]
    assert done[-1].get("mqtt.publish.topic", True) == b"c/d"
    p.feed(True, publish(b"e", b"x", qos=2, msg_id=9))
    p.feed(False, ack(5, 9))
    p.feed(True, ack(6, 9))
    assert len(done) == 3
    p.feed(False, ack(7, 9))  # PUBREC, PUBREL, PUBCOMP: one transaction
    assert _types(done[-1]) == [3, 5, 6, 7]
    p.feed(True, subscribe(3, b"x/#", b"y/+") + unsubscribe(4, b"x/#"))
    p.feed(False, suback(3, 1, 0x80) + ack(11, 4))
    sub, unsub = done[-2:]
    assert sub.get("mqtt.subscribe.topic", True) == [b"x/#", b"y/+"]
    assert unsub.get("mqtt.unsubscribe.topic", True) == [b"x/#"]
    assert eve_mqtt(sub)["suback"] == {"qos": 0, "retain": False, "dup": False,
                                       "message_id": 3, "qos_granted": [1, 0x80]}  # fmt: skip
    p.feed(False, publish(b"srv", b"to-client"))  # the server's publish: its own transaction
    assert done[-1].get("mqtt.publish.message", True) == b"to-client"


def test_events_and_flow_end() -> None:
    p, done = _parser()
    p.feed(True, publish(b"t", b"m"))  # before any CONNECT
    p.feed(False, connack() + ack(4, 42))
    assert done[0].events == ["mqtt.unintroduced_message"]
    assert done[1].events == ["mqtt.missing_connect"]
    assert done[2].events == ["mqtt.missing_publish", "mqtt.unintroduced_message"]
    p.feed(True, connect())
    p.feed(False, connack())  # answers the CONNECT: the flow is connected
    assert done[-1].events == [] and _types(done[-1]) == [1, 2]
    p.feed(True, connect() + subscribe(5, b"never/answered"))
    before = len(done)
    p.close()  # Suricata's EOF: everything left counts as complete
    assert len(done) == before + 2
    assert done[-2].events == ["mqtt.double_connect"]
    assert "mqtt.double_connect" in p.events and "mqtt.missing_connect" in p.events
    assert done[-1].get("mqtt.subscribe.topic", True) == [b"never/answered"]


def test_v5_properties_and_reason_codes() -> None:
    p, done = _parser()
    p.feed(True, connect(level=5, client=b"v5"))
    p.feed(False, connack(0x86, v5=True))
    p.feed(True, publish(b"t5", b"m5", qos=1, msg_id=2, v5=True))
    p.feed(False, ack(4, 2, b"\x10\x00"))
    assert done[0].values["mqtt.protocol_version"] == 5
    assert eve_mqtt(done[0])["connack"]["return_code"] == 0x86  # type: ignore[index]
    assert done[1].get("mqtt.publish.message", True) == b"m5"
    data = done[1].state
    assert isinstance(data, MqttTxData) and data.messages[1].reason == 0x10


def test_malformed_stops_direction_and_oversized_is_skipped() -> None:
    p, done = _parser()
    p.feed(True, packet(1, 0, b"\x00"))  # CONNECT shorter than its fields
    assert p.events == ["mqtt.malformed_traffic"]
    p.feed(True, publish(b"t", b"m"))
    assert done == [] and p.events == ["mqtt.malformed_traffic"]  # that direction stopped
    cfg = AppLayerSettings(mqtt_max_msg_len=16)
    small: list[Transaction] = []
    q = MqttParser(cfg, small.append)
    big = publish(b"topic", b"x" * 100)
    q.feed(False, big[:30])
    q.feed(False, big[30:] + publish(b"t", b"after"))
    assert len(small) == 2 and eve_mqtt(small[0])["publish"]["truncated"] is True  # type: ignore[index]
    assert small[1].get("mqtt.publish.message", True) == b"after"


def test_detection_port_and_probe() -> None:
    assert detect_protocol(connect(), True, 6, 40000, 1883) == "mqtt"
    assert detect_protocol(b"\x10", True, 6, 40000, 1883) is None  # header incomplete
    assert detect_protocol(b"\x00\x02ab", True, 6, 40000, 1883) == ""  # unassigned type
    assert detect_protocol(b"\x36\x02ab", True, 6, 40000, 1883) == ""  # QoS 3
    assert detect_protocol(connect(), True, 6, 40000, 1884) == ""
    al = AppLayer(AppLayerSettings(), 6, 40000, 1883)
    al.feed(True, connect(), 0)
    al.feed(False, connack(), 0)
    assert al.proto_name == "mqtt"
    [tx] = al.pop_ready()
    eve = al.eve_fields(tx)["mqtt"]
    assert isinstance(eve, dict) and set(eve) == {"connect", "connack"}


_SAMPLE = (connect(will=(b"w", b"m")) + publish(b"a", b"b", qos=1) + subscribe(2, b"x")
           + unsubscribe(3, b"y") + packet(12, 0, b"") + packet(14, 0, b""))  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutations_never_raise(data: st.DataObject) -> None:
    raw = bytearray(_SAMPLE)
    for _ in range(data.draw(st.integers(0, 8))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    raw = raw[:cut]
    for version in (0, 4, 5):
        try:
            parse_body(raw[0] if raw else 0x10, bytes(raw[2:]), version, True)
        except MqttError:
            pass
    p, done = _parser()
    p.feed(True, bytes(raw))
    p.feed(False, bytes(raw[::-1]))
    p.close()
    for tx in done:
        eve_mqtt(tx)
