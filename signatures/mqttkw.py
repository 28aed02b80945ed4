"""The MQTT value keywords of Suricata 7: mqtt.type, mqtt.flags, mqtt.qos, mqtt.reason_code,
mqtt.connack.session_present, mqtt.connect.flags and mqtt.protocol_version.

Scope: parse a keyword's value into a predicate. All but ``mqtt.protocol_version`` read the
packets of one MQTT transaction (``sensor.applayer.mqtt_message.MqttMessage`` records) and
match when any packet matches, as Suricata loops over ``tx.msg``:

* ``mqtt.type``: a packet type by name (any case) or number (``N``, ``>N`` ... as u8);
* ``mqtt.flags``: ``dup``/``retain`` with ``!`` negation (``retain,!dup``): the fixed header's
  bits under the named mask equal the wanted ones; a number compares the bits (dup 8, retain 1);
* ``mqtt.qos``: 0, 1 or 2 exactly;
* ``mqtt.reason_code``: the first reason code among
  CONNACK, PUBACK/PUBREC/PUBREL/PUBCOMP, AUTH, DISCONNECT, or any SUBACK/UNSUBACK code;
* ``mqtt.connack.session_present``: ``yes``/``true`` or ``no``/``false``;
* ``mqtt.connect.flags``: ``username``, ``password``, ``will``, ``will_retain``,
  ``clean_session`` with ``!`` negation, on the CONNECT's flags byte.

``mqtt.protocol_version`` compares (u8 operators) the flow's version, a number in
``Transaction.values``.

Non-goals: the sticky buffers (``mqtt.connect.clientid`` ..., see signatures/buffers.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from sensor.applayer.mqtt_message import (
    AUTH,
    CONNACK,
    CONNECT,
    DISCONNECT,
    PUBACK,
    PUBCOMP,
    PUBREC,
    PUBREL,
    SUBACK,
    TYPE_NAMES,
    UNSUBACK,
    MqttMessage,
)
from sensor.errors import RuleError
from signatures.numeric import parse_uint

MQTT_KEYWORDS = frozenset({"mqtt.type", "mqtt.flags", "mqtt.qos", "mqtt.reason_code",
                           "mqtt.connack.session_present", "mqtt.connect.flags"})  # fmt: skip
_HEADER_FLAGS = {"dup": 0x08, "retain": 0x01}
_CONNECT_FLAGS = {"username": 0x80, "password": 0x40, "will_retain": 0x20, "will": 0x04,
                  "clean_session": 0x02}  # fmt: skip
_SINGLE_CODE = frozenset({CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, AUTH, DISCONNECT})
_FLAG_ITEM = re.compile(r"\s*(!?)\s*([a-z_]+)\s*")

Messages = Sequence[MqttMessage]


def _flag_test(keyword: str, text: str, names: dict[str, int]) -> Callable[[int], bool]:
    """A comma-separated flag list (``!`` negates) as Suricata's bitmask mode: the bits under
    the mask of every named flag equal the non-negated ones. A number compares the byte."""
    if re.fullmatch(r"\s*[<>=!]*\s*\d+\s*(?:(?:<>|-)\s*\d+\s*)?", text):
        return parse_uint(keyword, text, 255).test
    mask = wanted = 0
    for item in text.split(","):
        m = _FLAG_ITEM.fullmatch(item)
        if m is None or m.group(2) not in names:
            raise RuleError(f"{keyword}: unknown flag '{item.strip()}'")
        bit = names[m.group(2)]
        if mask & bit:
            raise RuleError(f"{keyword}: flag '{m.group(2)}' repeated")
        mask |= bit
        if not m.group(1):
            wanted |= bit
    return lambda v: v & mask == wanted


def _type_test(text: str) -> Callable[[int], bool]:
    name = text.strip().strip('"').strip().upper()
    if name in TYPE_NAMES:
        number = TYPE_NAMES.index(name)
        return lambda v: v == number
    return parse_uint("mqtt.type", text, 255).test


def _reason_codes(msgs: Messages) -> list[int]:
    first = next((m.reason for m in msgs if m.mtype in _SINGLE_CODE and m.reason is not None),
                 None)  # fmt: skip
    codes = [first] if first is not None else []
    codes.extend(c for m in msgs if m.mtype in (SUBACK, UNSUBACK) for c in m.reasons)
    return codes


def _header_flags(msg: MqttMessage) -> int:
    return (0x08 if msg.dup else 0) | (0x01 if msg.retain else 0)


def compile_mqtt(keyword: str, text: str) -> Callable[[Any], bool]:
    """Predicate over a transaction's packets (``mqtt.protocol_version``: over the version);
    RuleError when the value is invalid."""
    if not text.strip():
        raise RuleError(f"{keyword}: needs a value")
    if keyword == "mqtt.protocol_version":
        return parse_uint(keyword, text, 255).test
    if keyword == "mqtt.type":
        is_type = _type_test(text)
        return lambda msgs: any(is_type(m.mtype) for m in msgs)
    if keyword == "mqtt.qos":
        if not re.fullmatch(r"\s*[012]\s*", text):
            raise RuleError(f"mqtt.qos: invalid value '{text}' (0, 1 or 2)")
        qos = int(text)
        return lambda msgs: any(m.qos == qos for m in msgs)
    if keyword == "mqtt.flags":
        flags = _flag_test(keyword, text, _HEADER_FLAGS)
        return lambda msgs: any(flags(_header_flags(m)) for m in msgs)
    if keyword == "mqtt.connect.flags":
        conn = _flag_test(keyword, text, _CONNECT_FLAGS)
        return lambda msgs: any(
            conn(m.connect.flags) for m in msgs if m.mtype == CONNECT and m.connect is not None
        )
    if keyword == "mqtt.reason_code":
        code = parse_uint(keyword, text, 255).test
        return lambda msgs: any(code(c) for c in _reason_codes(msgs))
    if keyword == "mqtt.connack.session_present":
        word = text.strip().lower()
        if word not in ("yes", "true", "no", "false"):
            raise RuleError(f"mqtt.connack.session_present: invalid value '{text}'")
        present = word in ("yes", "true")
        return lambda msgs: any(m.session_present == present for m in msgs if m.mtype == CONNACK)
    raise RuleError(f"unknown keyword '{keyword}'")
