"""MQTT rules end to end: a capture built with dpkt → pipeline → EVE.

Covers ``alert mqtt`` (only flows detected as MQTT), each sticky buffer, each value keyword
with Suricata 7's syntax, the multi-buffer topics, rule validation and the EVE object.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pcapgen import TcpSession
from pcapgen import alerts_of as _alerts
from test_applayer_mqtt import ack, connack, connect, publish, suback, subscribe, unsubscribe
from test_rules_ssh_ftp import _sids

from sensor.errors import RuleError
from signatures.txvalues import compile_tx_value


def _session(port: int = 1883, cport: int = 40000) -> list[bytes]:
    s = TcpSession(sport=port, cport=cport).handshake()
    s.send(True, connect(will=(b"dev/status", b"gone"))).send(False, connack(0, session=True))
    s.send(True, publish(b"plant/temp", b"42C", qos=1, msg_id=5, retain=True))
    s.send(False, ack(4, 5))
    s.send(True, subscribe(6, b"plant/#", b"cmd/+")).send(False, suback(6, 1, 0x80))
    s.send(True, unsubscribe(7, b"cmd/+")).send(False, ack(11, 7))
    s.send(True, publish(b"other", b"payload", dup=True))
    return s.close().frames


RULES = [
    'alert mqtt any any -> any any (mqtt.connect.clientid; content:"sensor-1"; sid:1;)',
    'alert mqtt any any -> any any (mqtt.connect.username; content:"admin"; sid:2;)',
    'alert mqtt any any -> any any (mqtt.connect.password; content:"hunter2"; sid:3;)',
    'alert mqtt any any -> any any (mqtt.connect.willtopic; content:"dev/status"; sid:4;)',
    'alert mqtt any any -> any any (mqtt.connect.willmessage; content:"gone"; sid:5;)',
    'alert mqtt any any -> any any (mqtt.publish.topic; content:"plant/temp"; sid:6;)',
    'alert mqtt any any -> any any (mqtt.publish.message; content:"42C"; sid:7;)',
    'alert mqtt any any -> any any (mqtt.subscribe.topic; content:"cmd/+"; sid:8;)',
    'alert mqtt any any -> any any (mqtt.unsubscribe.topic; content:"cmd/+"; sid:9;)',
    "alert mqtt any any -> any any (mqtt.type:CONNECT; sid:10;)",
    "alert mqtt any any -> any any (mqtt.type:puback; mqtt.qos:1; sid:11;)",
    "alert mqtt any any -> any any (mqtt.flags:retain,!dup; sid:12;)",
    "alert mqtt any any -> any any (mqtt.flags:dup; sid:13;)",
    "alert mqtt any any -> any any (mqtt.protocol_version:4; mqtt.type:1; sid:14;)",
    "alert mqtt any any -> any any (mqtt.protocol_version:5; sid:15;)",
    "alert mqtt any any -> any any (mqtt.reason_code:>127; sid:16;)",
    "alert mqtt any any -> any any (mqtt.reason_code:128; sid:17;)",
    "alert mqtt any any -> any any (mqtt.connack.session_present:true; sid:18;)",
    "alert mqtt any any -> any any (mqtt.connect.flags:username,password,will,!will_retain; sid:19;)",
    "alert mqtt any any -> any any (mqtt.connect.flags:!clean_session; sid:20;)",
    "alert mqtt any any -> any any (mqtt.qos:2; sid:21;)",
    'alert tcp any any -> any 1884 (content:"sensor-1"; sid:22;)',
    "alert mqtt any any -> any any (app-layer-event:mqtt.missing_connect; sid:23;)",
]


def test_mqtt_rules(tmp_path: Path) -> None:
    alerts = _alerts(tmp_path, _session() + _session(port=1884, cport=40001), "\n".join(RULES))
    assert _sids(alerts) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 18, 19, 22]
    by_sid = {a["alert"]["signature_id"]: a for a in alerts}
    assert by_sid[1]["app_proto"] == "mqtt"
    assert by_sid[1]["mqtt"]["connect"]["client_id"] == "sensor-1"
    assert "password" not in by_sid[1]["mqtt"]["connect"]
    assert by_sid[6]["mqtt"]["publish"]["topic"] == "plant/temp"
    assert by_sid[6]["mqtt"]["puback"]["message_id"] == 5


@pytest.mark.parametrize(("keyword", "value"), [
    ("mqtt.qos", "3"), ("mqtt.qos", ">1"), ("mqtt.flags", "retain,retain"),
    ("mqtt.flags", "urgent"), ("mqtt.connect.flags", "username,!username"),
    ("mqtt.connack.session_present", "maybe"), ("mqtt.type", "CONNECTX"),
    ("mqtt.protocol_version", "256"), ("mqtt.reason_code", ""),
])  # fmt: skip
def test_invalid_values_are_refused(keyword: str, value: str) -> None:
    with pytest.raises(RuleError):
        compile_tx_value(keyword, value)
