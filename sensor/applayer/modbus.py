"""Modbus/TCP (MBAP framing, port 502): one transaction per request, as Suricata 7.

Scope: the 7-byte MBAP header (transaction id, protocol id 0, length, unit id) frames each
ADU; a request's function code, its category (public assigned, public unassigned, user
defined, reserved: the classes Suricata's ``modbus: function <category>`` names), the access
it makes (read/write of coils, discrete inputs, input or holding registers), the addresses it
touches and the values it writes are decoded for the ``modbus`` keyword
(``signatures/modbuskw.py``), which reads :class:`ModbusRequest` from ``tx.state``. Responses
are framed and matched to their request by transaction id for EVE only.

Non-goals: write values of multiple-coil writes (15), mask writes (22) and file records (no
``value`` match, only the address), Modbus RTU/ASCII, Modbus over UDP, EVE ``modbus`` records
beyond the alert decoration, Suricata's modbus app-layer events.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from sensor.applayer.common import PROGRESS_COMPLETE, AppLayerSettings, Transaction

_MBAP = struct.Struct("!HHHB")  # transaction id, protocol id, length, unit id
_MAX_LENGTH = 254  # unit id + PDU (a 260-byte ADU at most)
_PAIR = struct.Struct("!HH")

# categories, as bits (CodeCategory in Suricata's sawp-modbus)
PUBLIC_ASSIGNED, PUBLIC_UNASSIGNED, USER_DEFINED, RESERVED = 1, 2, 4, 8
_ASSIGNED = frozenset({1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 15, 16, 17, 20, 21, 22, 23, 24, 43})
_USER = frozenset({*range(65, 73), *range(100, 111)})
_RESERVED = frozenset({9, 10, 13, 14, 41, 42, 90, 91, 125, 126, 127})
# access bits
READ, WRITE, DISCRETES, COILS, INPUT, HOLDING = 1, 2, 4, 8, 16, 32
TABLE_MASK = DISCRETES | COILS | INPUT | HOLDING
_ACCESS = {1: READ | COILS, 2: READ | DISCRETES, 3: READ | HOLDING, 4: READ | INPUT,
           5: WRITE | COILS, 6: WRITE | HOLDING, 15: WRITE | COILS, 16: WRITE | HOLDING,
           22: WRITE | HOLDING, 23: READ | WRITE | HOLDING}  # fmt: skip
FUNCTION_NAMES = {1: "RdCoils", 2: "RdDiscreteInputs", 3: "RdHoldRegs", 4: "RdInputRegs",
                  5: "WrSingleCoil", 6: "WrSingleReg", 7: "RdExcStatus", 8: "Diagnostic",
                  11: "GetCommEventCtr", 12: "GetCommEventLog", 15: "WrMultCoils",
                  16: "WrMultRegs", 17: "ReportServerID", 20: "RdFileRec", 21: "WrFileRec",
                  22: "MaskWrReg", 23: "RdWrMultRegs", 24: "RdFIFOQueue",
                  43: "MEI"}  # fmt: skip
_MAX_WAITING = 256  # requests waiting for their response (EVE pairing only)


def category(code: int) -> int:
    if code in _ASSIGNED:
        return PUBLIC_ASSIGNED
    if code in _USER:
        return USER_DEFINED
    if code in _RESERVED or code == 0 or code > 127:
        return RESERVED
    return PUBLIC_UNASSIGNED


@dataclass(frozen=True, slots=True)
class ModbusRequest:
    transaction_id: int
    unit_id: int
    function: int  # the code (exception bit clear in requests)
    category: int
    access: int  # READ/WRITE | table bits, 0 when the function accesses no table
    subfunction: int | None = None  # Diagnostic (8): the sub-function code
    address: tuple[int, int] | None = None  # first and last address touched (inclusive)
    values: tuple[int, ...] = ()  # written register values from address[0] on (5, 6, 16, 23)

    def value_at(self, address: int) -> int | None:
        if self.address is None:
            return None
        offset = address - self.address[0]
        return self.values[offset] if 0 <= offset < len(self.values) else None


def probe(data: bytes) -> bool | None:
    """An MBAP header with protocol id 0 and a length that fits a Modbus ADU (None: need
    more bytes)."""
    if len(data) < _MBAP.size + 1:
        return None
    _tid, proto, length, _unit = _MBAP.unpack_from(data, 0)
    return proto == 0 and 2 <= length <= _MAX_LENGTH


def _span(start: int, count: int) -> tuple[int, int] | None:
    return (start, min(start + count - 1, 0xFFFF)) if count > 0 else None


def parse_request(tid: int, unit: int, pdu: bytes) -> ModbusRequest:
    """Decode a request PDU; fields a short PDU lacks stay unset (never raises)."""
    code = pdu[0]
    data = pdu[1:]
    make = lambda **kw: ModbusRequest(tid, unit, code, category(code), _ACCESS.get(code, 0), **kw)  # noqa: E731
    if code == 8 and len(data) >= 2:
        return make(subfunction=struct.unpack_from("!H", data, 0)[0])
    if code not in _ACCESS or len(data) < 4:
        return make()
    first, second = _PAIR.unpack_from(data, 0)
    if code in (1, 2, 3, 4):
        return make(address=_span(first, second))
    if code in (5, 6):
        return make(address=(first, first), values=(second,))
    if code == 22:
        return make(address=(first, first))
    if code == 15:
        return make(address=_span(first, second))
    if code == 16:
        words = data[5 : 5 + 2 * second]
        return make(address=_span(first, second),
                     values=struct.unpack(f"!{len(words) // 2}H", words[: len(words) // 2 * 2]))  # fmt: skip
    # 23: read start/quantity, write start/quantity, byte count, values (the write is what
    # address/value keywords check)
    if len(data) < 9:
        return make()
    wstart, wcount = _PAIR.unpack_from(data, 4)
    words = data[9 : 9 + 2 * wcount]
    return make(address=_span(wstart, wcount),
                values=struct.unpack(f"!{len(words) // 2}H", words[: len(words) // 2 * 2]))  # fmt: skip


class ModbusParser:
    """Both directions of one Modbus/TCP flow; ``on_update(tx)`` receives each request's
    transaction (and again when its response arrives)."""

    def __init__(self, cfg: AppLayerSettings, on_update: Callable[[Transaction], None]) -> None:
        self.cfg = cfg
        self._on_update = on_update
        self._bufs = {True: bytearray(), False: bytearray()}
        self._stopped = {True: False, False: False}
        self._waiting: dict[int, Transaction] = {}
        self._next_id = 0
        self.events: list[str] = []

    def feed(self, to_server: bool, data: bytes) -> None:
        if self._stopped[to_server]:
            return
        buf = self._bufs[to_server]
        buf += data
        while len(buf) >= _MBAP.size:
            tid, proto, length, unit = _MBAP.unpack_from(buf, 0)
            if proto != 0 or not 2 <= length <= _MAX_LENGTH:
                if "modbus.invalid_protocol_id" not in self.events and proto != 0:
                    self.events.append("modbus.invalid_protocol_id")
                if "modbus.invalid_length" not in self.events and proto == 0:
                    self.events.append("modbus.invalid_length")
                self._stopped[to_server] = True  # framing is lost
                buf.clear()
                return
            end = 6 + length
            if len(buf) < end:
                return
            pdu = bytes(buf[_MBAP.size : end])
            del buf[:end]
            if to_server:
                self._request(tid, unit, pdu)
            else:
                self._response(tid, pdu)

    def _request(self, tid: int, unit: int, pdu: bytes) -> None:
        tx = Transaction(self._next_id, "modbus")
        self._next_id += 1
        tx.state = parse_request(tid, unit, pdu)
        tx.progress_ts = PROGRESS_COMPLETE
        tx.to_server_done = True
        if len(self._waiting) >= _MAX_WAITING:
            self._waiting.pop(next(iter(self._waiting)))
        self._waiting[tid] = tx
        self._on_update(tx)

    def _response(self, tid: int, pdu: bytes) -> None:
        tx = self._waiting.pop(tid, None)
        if tx is None:
            return  # Suricata: unsolicited response (no request transaction to inspect)
        tx.values["modbus.response_function"] = pdu[0]
        tx.progress_tc = PROGRESS_COMPLETE
        tx.to_client_done = True
        self._on_update(tx)


def eve_modbus(tx: Transaction) -> dict[str, object]:
    """The ``modbus`` object for an alert: the request (and the response's function code)."""
    req = tx.state
    if not isinstance(req, ModbusRequest):
        return {}
    request: dict[str, object] = {"transaction_id": req.transaction_id, "protocol_id": 0,
                                  "unit_id": req.unit_id, "function_raw": req.function,
                                  "function_code": FUNCTION_NAMES.get(req.function,
                                                                      "Unknown")}  # fmt: skip
    if req.subfunction is not None:
        request["sub_function"] = req.subfunction
    if req.access:
        request["access_type"] = "|".join(
            n for bit, n in ((READ, "READ"), (WRITE, "WRITE"), (DISCRETES, "DISCRETES"),
                             (COILS, "COILS"), (INPUT, "INPUT"), (HOLDING, "HOLDING"))
            if req.access & bit
        )  # fmt: skip
    out: dict[str, object] = {"id": tx.tx_id, "request": request}
    response = tx.values.get("modbus.response_function")
    if response is not None:
        out["response"] = {"function_raw": response, "error_flags": "NONE"
                           if not response & 0x80 else "EXCEPTION_CODE"}  # fmt: skip
    return out
