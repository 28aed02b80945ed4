"""Connection-oriented DCERPC (MS-RPCE / C706 chapter 12): PDU framing, binds, calls.

Scope: what Suricata 7's ``dcerpc.iface``/``dce_iface``, ``dcerpc.opnum``/``dce_opnum`` and
``dcerpc.stub_data``/``dce_stub_data`` keywords and the ``dce`` option of the byte keywords
need, from a stream of CO PDUs (TCP, e.g. port 135, or the bytes written to / read from an
SMB named pipe, which ``smb.py`` hands over):

* every PDU starts with the 16-byte common header (version 5.0 or 5.1); its data
  representation's first byte says the byte order of every integer after it;
* BIND / ALTER_CONTEXT list presentation contexts (context id -> interface UUID and
  version); the BIND_ACK / ALTER_CONTEXT_RESP result list accepts or rejects them by
  position. As in Suricata, the latest bind and its ack replace the previous ones.
* REQUEST (context id, opnum, stub) and RESPONSE (stub) PDUs of one call id form one
  transaction. A fragmented call's stub is reassembled: the first fragment
  (``PFC_FIRST_FRAG``) starts it anew, later ones append (bounded by ``max_stub``).

The transaction carries ``dce.stub_data`` (request stub to server, response stub to client,
as a :class:`LittleEndianData` when the PDU was little-endian so ``byte_test ..., dce``
reads it that way), ``dce.opnum`` in ``values`` and a :class:`DceCall` in ``state`` with the
interfaces ``dce_iface`` may match: over TCP the accepted context whose id the request
names (Suricata's ``match_backuuid``), over SMB every accepted one (Suricata's SMB variant
does not compare context ids).

Non-goals: connectionless DCERPC (UDP), authentication verifiers (their bytes stay in the
stub, as Suricata keeps them), EVE ``dcerpc`` records, NDR decoding. Malformed PDUs never
raise: they add ``dcerpc.malformed_data`` to ``events`` and the parser looks for the next
``05 00`` version pair, as Suricata's record search does.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from sensor.applayer.common import (
    PROGRESS_COMPLETE,
    LittleEndianData,
    Transaction,
)

HEADER_LEN = 16
_HEAD = struct.Struct("<BBBB4s")  # version, minor version, type, pfc flags, data repr.
_REST = {True: struct.Struct("<HHI"), False: struct.Struct(">HHI")}  # frag/auth len, call id
_U16 = {True: struct.Struct("<H"), False: struct.Struct(">H")}
_REQUEST_FIELDS = {True: struct.Struct("<IHH"), False: struct.Struct(">IHH")}  # hint, ctx, op
_RESPONSE_HEAD = 8  # alloc hint, context id, cancel count, reserved
_BIND_HEAD = 12  # max xmit/recv frag, assoc group, context count + 3 pad
_SYNTAX_LEN = 20  # a transfer syntax: UUID + version

REQUEST, RESPONSE, FAULT = 0, 2, 3
BIND, BIND_ACK, BIND_NAK, ALTER_CONTEXT, ALTER_CONTEXT_RESP = 11, 12, 13, 14, 15
PFC_FIRST_FRAG, PFC_LAST_FRAG, PFC_OBJECT_UUID = 0x01, 0x02, 0x80

_MAX_CALLS = 256  # call ids waiting for more fragments or their response
_MAX_CONTEXTS = 64  # presentation contexts kept from one bind
_MAX_EVENTS = 16
_MALFORMED = "dcerpc.malformed_data"


@dataclass(frozen=True)
class DceIface:
    """An accepted presentation context: the interface as ``dce_iface`` compares it."""

    ctxid: int
    uuid: bytes  # 16 bytes in the order the UUID's text form reads
    version: int  # major version
    first_frag: bool  # the BIND carrying it had PFC_FIRST_FRAG (any_frag looks past this)


class DceCall:
    """Per-call state kept on the transaction (``tx.state``)."""

    __slots__ = ("ifaces", "request_seen", "stub")

    def __init__(self) -> None:
        self.ifaces: tuple[DceIface, ...] = ()  # what dce_iface may match for this request
        self.request_seen = False
        self.stub = {True: bytearray(), False: bytearray()}


def uuid_bytes(raw: bytes, little: bool) -> bytes:
    """A wire UUID in its text order: the first three fields follow the PDU's byte order."""
    if not little:
        return bytes(raw[:16])
    return raw[3::-1] + raw[5:3:-1] + raw[7:5:-1] + raw[8:16]


class DcerpcParser:
    """Both directions of one DCERPC byte stream (a TCP flow or one SMB pipe)."""

    def __init__(self, proto: str, new_tx: Callable[[], Transaction],
                 updated: Callable[[Transaction], None], max_stub: int,
                 match_ctxid: bool = True) -> None:  # fmt: skip
        self.proto = proto  # "dcerpc" (TCP) or "smb" (its transactions are SMB's)
        self._new_tx = new_tx
        self._updated = updated
        self._max_stub = max_stub
        self._match_ctxid = match_ctxid  # SMB: Suricata ignores the request's context id
        self._buf = {True: bytearray(), False: bytearray()}
        self._bind: list[tuple[int, bytes, int, bool]] = []  # (ctxid, uuid, version, ff)
        self._accepted: tuple[DceIface, ...] = ()
        self._calls: dict[int, Transaction] = {}  # call id -> transaction
        self.events: list[str] = []

    def feed(self, to_server: bool, data: bytes) -> None:
        buf = self._buf[to_server]
        buf += data
        while len(buf) >= HEADER_LEN:
            version, minor, _ptype, _flags, drep = _HEAD.unpack_from(buf)
            little = bool(drep[0] & 0x10)
            frag_len = _REST[little].unpack_from(buf, 8)[0]
            if version != 5 or minor > 1 or frag_len < HEADER_LEN:
                self._malformed()
                self._resync(buf)
                continue
            if len(buf) < frag_len:
                return
            pdu = bytes(buf[:frag_len])
            del buf[:frag_len]
            try:
                self._pdu(to_server, pdu, little)
            except (struct.error, IndexError, ValueError):
                self._malformed()

    @staticmethod
    def _resync(buf: bytearray) -> None:
        """Drop bytes up to the next ``05 00`` pair (Suricata's search_dcerpc_record)."""
        nxt = buf.find(b"\x05\x00", 1)
        del buf[: nxt if nxt > 0 else max(len(buf) - 1, 0)]

    def _malformed(self) -> None:
        if len(self.events) < _MAX_EVENTS:
            self.events.append(_MALFORMED)

    # ------------------------------------------------------------------ PDUs
    def _pdu(self, to_server: bool, pdu: bytes, little: bool) -> None:
        ptype, flags = pdu[2], pdu[3]
        _frag_len, _auth_len, call_id = _REST[little].unpack_from(pdu, 8)
        if ptype in (BIND, ALTER_CONTEXT) and to_server:
            self._bind_pdu(pdu, little, flags)
        elif ptype in (BIND_ACK, ALTER_CONTEXT_RESP) and not to_server:
            self._bind_ack(pdu, little)
        elif ptype == REQUEST and to_server:
            hint_ctx_op = _REQUEST_FIELDS[little].unpack_from(pdu, HEADER_LEN)
            body = HEADER_LEN + _REQUEST_FIELDS[little].size
            if flags & PFC_OBJECT_UUID:
                body += 16
            self._stub(call_id, True, pdu[body:], little, flags, hint_ctx_op[1:])
        elif ptype == RESPONSE and not to_server:
            self._stub(call_id, False, pdu[HEADER_LEN + _RESPONSE_HEAD :], little, flags, None)

    def _bind_pdu(self, pdu: bytes, little: bool, flags: int) -> None:
        count = pdu[HEADER_LEN + 8]
        pos = HEADER_LEN + _BIND_HEAD
        u16 = _U16[little]
        items: list[tuple[int, bytes, int, bool]] = []
        for _ in range(min(count, _MAX_CONTEXTS)):
            ctxid = u16.unpack_from(pdu, pos)[0]
            n_syntaxes = pdu[pos + 2]
            if len(pdu) < pos + 24:
                raise ValueError("truncated context")
            uuid = uuid_bytes(pdu[pos + 4 : pos + 20], little)
            version = u16.unpack_from(pdu, pos + 20)[0]
            items.append((ctxid, uuid, version, bool(flags & PFC_FIRST_FRAG)))
            pos += 24 + _SYNTAX_LEN * n_syntaxes
        self._bind = items

    def _bind_ack(self, pdu: bytes, little: bool) -> None:
        u16 = _U16[little]
        sec_len = u16.unpack_from(pdu, HEADER_LEN + 8)[0]
        pos = HEADER_LEN + 10 + sec_len
        pos += -pos % 4  # the result list is 4-byte aligned
        count = pdu[pos]
        pos += 4
        accepted: list[DceIface] = []
        for index in range(min(count, _MAX_CONTEXTS)):
            result = u16.unpack_from(pdu, pos)[0]
            pos += 4 + _SYNTAX_LEN
            if result == 0 and index < len(self._bind):
                ctxid, uuid, version, ff = self._bind[index]
                accepted.append(DceIface(ctxid, uuid, version, ff))
        self._accepted = tuple(accepted)

    def _stub(self, call_id: int, to_server: bool, stub: bytes, little: bool, flags: int,
              request: tuple[int, int] | None) -> None:  # fmt: skip
        tx = self._calls.get(call_id)
        call = tx.state if tx is not None else None
        if not isinstance(call, DceCall) or (
            request is not None and flags & PFC_FIRST_FRAG and call.request_seen
        ):  # unknown call id, or a new request reusing one
            tx = self._new_call(call_id)
            call = tx.state
        assert isinstance(call, DceCall) and tx is not None
        if request is not None:
            ctxid, opnum = request
            call.request_seen = True
            tx.values["dce.opnum"] = opnum
            tx.values["dce.ctxid"] = ctxid
            call.ifaces = tuple(
                i for i in self._accepted if not self._match_ctxid or i.ctxid == ctxid
            )
        data = call.stub[to_server]
        if flags & PFC_FIRST_FRAG:
            del data[:]
        data += stub[: self._max_stub - len(data)]
        value = LittleEndianData(data) if little else bytes(data)
        tx.set_buffer("dce.stub_data", value, to_server)
        last = bool(flags & PFC_LAST_FRAG)
        if to_server:
            tx.progress_ts = PROGRESS_COMPLETE
            tx.to_server_done = last
        else:
            tx.progress_tc = PROGRESS_COMPLETE
            tx.to_client_done = last
            if last:  # the call is over: its id may be reused
                self._calls.pop(call_id, None)
        self._updated(tx)

    def _new_call(self, call_id: int) -> Transaction:
        tx = self._new_tx()
        tx.state = DceCall()
        tx.proto = self.proto
        if len(self._calls) >= _MAX_CALLS:
            self._calls.pop(next(iter(self._calls)))  # its response never came
        self._calls.pop(call_id, None)
        self._calls[call_id] = tx
        return tx


def iface_candidates(tx: Transaction) -> tuple[DceIface, ...] | None:
    """The interfaces ``dce_iface`` may match on ``tx`` (None: not a DCERPC request)."""
    call = tx.state
    if isinstance(call, DceCall) and call.request_seen:
        return call.ifaces
    return None


def looks_like_dcerpc(data: bytes) -> bool | None:
    """A CO PDU header as Suricata's TCP probe accepts it (version 5.0, a data
    representation with only the defined bits set); None while fewer than 16 bytes."""
    if len(data) < 2:
        return None if data[:1] in (b"", b"\x05") else False
    if data[0] != 5 or data[1] != 0:
        return False
    if len(data) < HEADER_LEN:
        return None
    little = bool(data[4] & 0x10)
    frag_len = _REST[little].unpack_from(data, 8)[0]
    return data[4] & 0xEE == 0 and data[5] <= 3 and data[2] <= 19 and frag_len >= HEADER_LEN


__all__ = ["DceCall", "DceIface", "DcerpcParser", "iface_candidates", "looks_like_dcerpc"]
