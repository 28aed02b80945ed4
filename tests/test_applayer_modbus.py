"""Modbus/TCP: MBAP framing, request decoding, the ``modbus`` keyword's forms and Suricata 7
semantics, rules on a generated capture, and a mutation property (never raises)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pcapgen import TcpSession
from test_rules_ssh_ftp import _alerts, _sids

from sensor.applayer import AppLayer, AppLayerSettings, Transaction, detect_protocol
from sensor.applayer.modbus import ModbusParser, ModbusRequest, eve_modbus
from sensor.errors import RuleError
from signatures.modbuskw import compile_modbus


def adu(tid: int, unit: int, pdu: bytes) -> bytes:
    return struct.pack("!HHHB", tid, 0, len(pdu) + 1, unit) + pdu


def read(tid: int, code: int, start: int, count: int, unit: int = 1) -> bytes:
    return adu(tid, unit, struct.pack("!BHH", code, start, count))


def write_single(tid: int, code: int, address: int, value: int, unit: int = 1) -> bytes:
    return adu(tid, unit, struct.pack("!BHH", code, address, value))


def write_regs(tid: int, start: int, values: list[int], unit: int = 1) -> bytes:
    body = struct.pack("!BHHB", 16, start, len(values), 2 * len(values))
    return adu(tid, unit, body + struct.pack(f"!{len(values)}H", *values))


def diagnostic(tid: int, sub: int, unit: int = 1) -> bytes:
    return adu(tid, unit, struct.pack("!BHH", 8, sub, 0))


def _requests(*adus: bytes) -> list[Transaction]:
    done: list[Transaction] = []
    p = ModbusParser(AppLayerSettings(), done.append)
    data = b"".join(adus)
    for i in range(0, len(data), 5):  # framing across chunks
        p.feed(True, data[i : i + 5])
    return done


def _req(raw: bytes) -> ModbusRequest:
    [tx] = _requests(raw)
    assert isinstance(tx.state, ModbusRequest)
    return tx.state


def test_framing_and_decoding() -> None:
    txs = _requests(read(1, 3, 100, 10), write_single(2, 6, 30, 500), write_regs(3, 40, [7, 8]))
    reqs = [t.state for t in txs]
    assert [r.function for r in reqs if isinstance(r, ModbusRequest)] == [3, 6, 16]
    r0, r1, r2 = (r for r in reqs if isinstance(r, ModbusRequest))
    assert r0.address == (100, 109) and r1.value_at(30) == 500 and r2.value_at(41) == 8
    assert r2.value_at(42) is None
    assert eve_modbus(txs[0])["request"] == {
        "transaction_id": 1, "protocol_id": 0, "unit_id": 1, "function_raw": 3,
        "function_code": "RdHoldRegs", "access_type": "READ|HOLDING"}  # fmt: skip


def test_detection_and_responses() -> None:
    assert detect_protocol(read(1, 3, 0, 1), True, 6, 40000, 502) == "modbus"
    assert detect_protocol(read(1, 3, 0, 1)[:6], True, 6, 40000, 502) is None
    assert detect_protocol(b"\x00\x01\x00\x07\x00\x06\x01\x03", True, 6, 40000, 502) == ""
    assert detect_protocol(read(1, 3, 0, 1), True, 6, 40000, 503) == ""
    al = AppLayer(AppLayerSettings(), 6, 40000, 502)
    al.feed(True, read(9, 3, 0, 1), 0)
    al.feed(False, adu(9, 1, b"\x03\x02\x00\x2a"), 0)
    assert al.proto_name == "modbus"
    [tx] = al.pop_ready()
    assert eve_modbus(tx)["response"] == {"function_raw": 3, "error_flags": "NONE"}


@pytest.mark.parametrize(("rule", "raw", "hit"), [
    ("function 3", read(1, 3, 0, 1), True),
    ("function 4", read(1, 3, 0, 1), False),
    ("function 8, subfunction 4", diagnostic(1, 4), True),
    ("function 8, subfunction 4", diagnostic(1, 1), False),
    ("function user", adu(1, 1, b"\x41\x00"), True),
    ("function !user", adu(1, 1, b"\x41\x00"), False),
    ("function reserved", adu(1, 1, b"\x09\x00"), True),
    ("function unassigned", adu(1, 1, b"\x1e\x00"), True),
    ("function public", read(1, 3, 0, 1), True),
    ("access read", read(1, 1, 0, 8), True),
    ("access read coils", read(1, 1, 0, 8), True),
    ("access read holding", read(1, 1, 0, 8), False),
    ("access write", read(1, 1, 0, 8), False),
    ("access read holding, address 105", read(1, 3, 100, 10), True),
    ("access read holding, address 110", read(1, 3, 100, 10), False),
    ("access read holding, address >108", read(1, 3, 100, 10), True),
    ("access read holding, address <101", read(1, 3, 100, 10), True),
    ("access read holding, address 90<>101", read(1, 3, 100, 10), True),
    ("access read holding, address 90<>100", read(1, 3, 100, 10), False),
    ("access write holding, address 30, value >200", write_single(1, 6, 30, 500), True),
    ("access write holding, address 30, value <200", write_single(1, 6, 30, 500), False),
    ('"access write holding, address 41, value 8"', write_regs(1, 40, [7, 8]), True),
    ("access write holding, address 41, value 7", write_regs(1, 40, [7, 8]), False),
    ("access write coils", write_single(1, 5, 3, 0xFF00), True),
    ("access read, address 5", read(1, 23, 0, 1), False),
    ("unit 1", read(1, 3, 0, 1), True),
    ("unit 2", read(1, 3, 0, 1), False),
    ("unit <5, function 3", read(1, 3, 0, 1, unit=4), True),
    ("unit >5, access read", read(1, 3, 0, 1, unit=4), False),
    ("unit 1<>9, access read holding, address 0", read(1, 3, 0, 1, unit=4), True),
])  # fmt: skip
def test_keyword_semantics(rule: str, raw: bytes, hit: bool) -> None:
    assert compile_modbus(rule)(_req(raw)) is hit


@pytest.mark.parametrize("rule", [
    "function 0", "function 256", "function bogus", "function 8, subfunction 70000",
    "access write discretes", "access write input", "access read, address 1, value 2",
    "access write, address 1<>5, value 2", "access execute", "unit 70000", "unit 1, foo",
    "address 5",
])  # fmt: skip
def test_invalid_values_are_refused(rule: str) -> None:
    with pytest.raises(RuleError):
        compile_modbus(rule)


def test_modbus_rules(tmp_path: Path) -> None:
    s = TcpSession(sport=502, cport=40000).handshake()
    s.send(True, read(1, 3, 100, 10)).send(False, adu(1, 1, b"\x03\x02\x00\x01"))
    s.send(True, write_single(2, 6, 30, 500) + diagnostic(3, 4, unit=7))
    other = TcpSession(sport=503, cport=40001).handshake().send(True, read(1, 3, 100, 10))
    rules = "\n".join([
        "alert modbus any any -> any any (modbus: function 3; sid:1;)",
        "alert modbus any any -> any any (modbus: access write holding, address 30, value 500; sid:2;)",
        "alert modbus any any -> any any (modbus: unit 7, function 8, subfunction 4; sid:3;)",
        "alert modbus any any -> any any (modbus: access read coils; sid:4;)",
        "alert tcp any any -> any any (modbus: function 3; sid:5;)",
    ])  # fmt: skip
    alerts = _alerts(tmp_path, s.close().frames + other.close().frames, rules + "\n")
    assert _sids(alerts) == [1, 2, 3, 5]
    first = next(a for a in alerts if a["alert"]["signature_id"] == 1)
    assert first["app_proto"] == "modbus" and first["modbus"]["request"]["function_raw"] == 3


_SAMPLE = (
    read(1, 3, 0, 5)
    + write_regs(2, 1, [1, 2, 3])
    + diagnostic(3, 1)
    + adu(4, 1, b"\x17" + bytes(13))
)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutations_never_raise(data: st.DataObject) -> None:
    raw = bytearray(_SAMPLE)
    for _ in range(data.draw(st.integers(0, 8))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    raw = raw[: data.draw(st.integers(0, len(raw)))]
    done: list[Transaction] = []
    p = ModbusParser(AppLayerSettings(), done.append)
    p.feed(True, bytes(raw))
    p.feed(False, bytes(raw))
    match = compile_modbus("access write holding, address 2, value >1")
    for tx in done:
        eve_modbus(tx)
        match(tx.state)
