"""DCERPC (sensor/applayer/dcerpc.py, signatures/dcekw.py): the CO PDU parser, the dce_*
keywords and byte_test's dce option, over generated captures on TCP 135 and over an SMB2
named pipe. PDUs are built here with struct as C706 chapter 12 lays them out."""

from __future__ import annotations

import struct
import uuid
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pcapgen import TcpSession
from test_applayer_smb import (
    _alerts,
    create,
    create_resp,
    nbss,
    read,
    read_resp,
    smb2,
    tree_connect,
    tree_connect_resp,
    write,
)

from sensor.applayer import AppLayer, AppLayerSettings, Transaction
from sensor.applayer.common import LittleEndianData
from sensor.applayer.dcerpc import DcerpcParser, iface_candidates
from sensor.errors import RuleError
from sensor.pipeline import SENSOR_BUFFERS
from signatures.build import SignatureBuilder
from signatures.classification import Classifications
from signatures.parser import parse_rule
from signatures.rule import Signature
from signatures.variables import Variables

SRVSVC = "4b324fc8-1670-01d3-1278-5a47bf6ee188"
EPMAPPER = "e1af8308-5d1f-11c9-91a4-08002b14a0fa"
NDR = uuid.UUID("8a885d04-1ceb-11c9-9fe8-08002b104860")


def pdu(ptype: int, call_id: int, body: bytes, *, flags: int = 3, little: bool = True) -> bytes:
    e = "<" if little else ">"
    drep = b"\x10\x00\x00\x00" if little else b"\x00\x00\x00\x00"
    return struct.pack(e + "BBBB4sHHI", 5, 0, ptype, flags, drep, 16 + len(body), 0,
                       call_id) + body  # fmt: skip


def _uuid(text: str | uuid.UUID, little: bool) -> bytes:
    u = uuid.UUID(str(text))
    return u.bytes_le if little else u.bytes


def bind(call_id: int, contexts: list[tuple[int, str, int]], *, ptype: int = 11,
         little: bool = True) -> bytes:  # fmt: skip
    e = "<" if little else ">"
    body = struct.pack(e + "HHIB3x", 4280, 4280, 0, len(contexts))
    for ctxid, iface, version in contexts:
        body += struct.pack(e + "HBx", ctxid, 1) + _uuid(iface, little)
        body += struct.pack(e + "HH", version, 0) + _uuid(NDR, little) + struct.pack(e + "I", 2)
    return pdu(ptype, call_id, body, little=little)


def bind_ack(call_id: int, results: list[int], *, little: bool = True) -> bytes:
    e = "<" if little else ">"
    sec = b"\\PIPE\\srvsvc\x00"
    body = struct.pack(e + "HHIH", 4280, 4280, 0x1234, len(sec)) + sec
    body += b"\0" * (-(16 + len(body)) % 4) + struct.pack(e + "B3x", len(results))
    for result in results:
        body += struct.pack(e + "HH", result, 0) + _uuid(NDR, little) + struct.pack(e + "I", 2)
    return pdu(12, call_id, body, little=little)


def request(call_id: int, ctxid: int, opnum: int, stub: bytes, *, flags: int = 3,
            little: bool = True) -> bytes:  # fmt: skip
    e = "<" if little else ">"
    return pdu(0, call_id, struct.pack(e + "IHH", len(stub), ctxid, opnum) + stub,
               flags=flags, little=little)  # fmt: skip


def response(call_id: int, stub: bytes, *, little: bool = True) -> bytes:
    e = "<" if little else ">"
    return pdu(2, call_id, struct.pack(e + "IHBx", len(stub), 0, 0) + stub, little=little)


STUB = struct.pack("<I", 0x200) + b"\\\\TARGET\x00" + b"A" * 8


def _parser(match_ctxid: bool = True) -> tuple[DcerpcParser, list[Transaction]]:
    seen: list[Transaction] = []
    ids = iter(range(1000))

    def updated(tx: Transaction) -> None:
        if tx not in seen:
            seen.append(tx)

    p = DcerpcParser("dcerpc", lambda: Transaction(next(ids), "dcerpc"), updated, 1 << 20,
                     match_ctxid)  # fmt: skip
    return p, seen


def test_bind_ack_and_request_give_iface_opnum_and_stub() -> None:
    p, seen = _parser()
    p.feed(True, bind(1, [(0, EPMAPPER, 3), (1, SRVSVC, 3)]))
    p.feed(False, bind_ack(1, [2, 0]))  # the first context rejected
    data = request(2, 1, 15, STUB)
    p.feed(True, data[:7])  # any chunking
    p.feed(True, data[7:])
    p.feed(False, response(2, b"\x05\x00\x00\x00answer"))
    (tx,) = seen
    assert tx.values["dce.opnum"] == 15
    ifaces = iface_candidates(tx)
    assert ifaces is not None and [i.uuid for i in ifaces] == [uuid.UUID(SRVSVC).bytes]
    stub = tx.get("dce.stub_data", True)
    assert stub == STUB and isinstance(stub, LittleEndianData)
    assert tx.get("dce.stub_data", False) == b"\x05\x00\x00\x00answer"
    assert tx.to_server_done and tx.to_client_done and not p.events


def test_request_on_a_rejected_context_has_no_interface() -> None:
    p, seen = _parser()
    p.feed(True, bind(1, [(0, EPMAPPER, 3), (1, SRVSVC, 3)]))
    p.feed(False, bind_ack(1, [2, 0]))
    p.feed(True, request(2, 0, 3, b"x"))
    assert iface_candidates(seen[0]) == ()
    p2, seen2 = _parser(match_ctxid=False)  # SMB: Suricata ignores the context id
    p2.feed(True, bind(1, [(0, EPMAPPER, 3), (1, SRVSVC, 3)]))
    p2.feed(False, bind_ack(1, [2, 0]))
    p2.feed(True, request(2, 0, 3, b"x"))
    assert len(iface_candidates(seen2[0]) or ()) == 1


def test_fragmented_request_is_reassembled_and_big_endian_kept() -> None:
    p, seen = _parser()
    p.feed(True, bind(1, [(0, SRVSVC, 3)], little=False))
    p.feed(False, bind_ack(1, [0], little=False))
    p.feed(True, request(7, 0, 31, b"first-", flags=1, little=False))
    p.feed(True, request(7, 0, 31, b"middle-", flags=0, little=False))
    assert not seen[0].to_server_done
    p.feed(True, request(7, 0, 31, b"last", flags=2, little=False))
    (tx,) = seen
    stub = tx.get("dce.stub_data", True)
    assert stub == b"first-middle-last" and not isinstance(stub, LittleEndianData)
    assert tx.to_server_done and tx.values["dce.opnum"] == 31
    ifaces = iface_candidates(tx)
    assert ifaces is not None and ifaces[0].uuid == uuid.UUID(SRVSVC).bytes
    p.feed(True, request(7, 0, 32, b"again"))  # a new first fragment: a new call
    assert len(seen) == 2 and seen[1].get("dce.stub_data", True) == b"again"


def test_garbage_resynchronises_on_the_next_header() -> None:
    p, seen = _parser()
    p.feed(True, b"\x07junk\x05\x01zz" + request(1, 0, 4, b"ok"))
    assert p.events and seen and seen[0].values["dce.opnum"] == 4


def test_app_layer_detects_dcerpc_by_its_header() -> None:
    app = AppLayer(AppLayerSettings(), 6, 50000, 135)
    app.feed(True, bind(1, [(0, SRVSVC, 3)])[:10], 0)
    assert app.proto_name is None
    app.feed(True, bind(1, [(0, SRVSVC, 3)])[10:], 0)
    assert app.proto_name == "dcerpc"
    app.feed(True, request(2, 0, 1, b"abc"), 0)
    (tx,) = app.pop_ready()
    assert tx.proto == "dcerpc" and tx.get("dce.stub_data", True) == b"abc"


def _build(text: str) -> Signature:
    parsed = parse_rule(text, Variables.suricata_defaults())
    return SignatureBuilder(Classifications.load(None), SENSOR_BUFFERS).build(parsed)


def test_keywords_load_with_suricata_semantics() -> None:
    sig = _build(f"alert tcp any any -> any any (dce_iface:{SRVSVC},>2,any_frag; sid:1;)")
    assert sig.app_proto == "dcerpc"
    assert _build("alert smb any any -> any any (dce_opnum:1,5-7; sid:1;)").app_proto == "smb"
    sig = _build('alert tcp any any -> any any (content:"x"; byte_test:2,>,1,0,relative,dce; '
                 "sid:1;)")  # fmt: skip
    assert sig.app_proto == "dcerpc"  # dce on the payload makes a DCERPC rule, as in Suricata
    sig = _build('alert tcp any any -> any any (dce_stub_data; content:"x"; sid:1;)')
    assert sig.app_proto == "dcerpc" and sig.app_buffers == ("dce.stub_data",)
    for bad in (
        "dce_iface:1234; sid:1;",
        f"dce_iface:{SRVSVC},any_frag,>1; sid:1;",
        f"dce_iface:{SRVSVC},>65535; sid:1;",
        "dce_opnum:7-5; sid:1;",
        "dce_opnum:a; sid:1;",
        'content:"x"; byte_test:2,>,1,0,big,dce; sid:1;',
        'content:"x"; byte_jump:2,0,string,dce; sid:1;',
    ):
        with pytest.raises(RuleError):
            _build(f"alert tcp any any -> any any ({bad})")
    with pytest.raises(RuleError):  # Suricata refuses SMB buffers in a dcerpc rule
        _build('alert dcerpc any any -> any any (smb.named_pipe; content:"x"; sid:1;)')


RULES = [
    f"alert dcerpc any any -> any any (dce_iface:{SRVSVC}; sid:1;)",
    f"alert tcp any any -> any any (dce_iface:{SRVSVC},=3; dce_opnum:15; sid:2;)",
    f"alert tcp any any -> any any (dce_iface:{SRVSVC},>3; sid:3;)",
    f"alert tcp any any -> any any (dce_iface:{EPMAPPER}; sid:4;)",
    "alert tcp any any -> any any (dce_opnum:10-20; sid:5;)",
    "alert tcp any any -> any any (dce_opnum:1,2,3; sid:6;)",
    'alert tcp any any -> any any (dce_stub_data; content:"TARGET"; sid:7;)',
    "alert tcp any any -> any any (dce_stub_data; byte_test:4,=,0x200,0,dce; sid:8;)",
    "alert tcp any any -> any any (dce_stub_data; byte_test:4,=,0x200,0,big; sid:9;)",
    'alert tcp any any -> any any (flow:to_client; dce_stub_data; content:"answer"; sid:10;)',
    "alert dcerpc any any -> any any (dce_stub_data; byte_extract:4,0,n,dce; "
    "byte_test:1,=,0x5c,0,relative; sid:11;)",
    'alert dcerpc any any -> any any (dce_stub_data; byte_jump:4,0,dce; content:"x"; sid:12;)',
]
EXPECTED = [1, 2, 5, 7, 8, 10]


def test_rules_over_tcp_135(tmp_path: Path) -> None:
    s = TcpSession(client="10.0.0.1", server="10.0.0.2", cport=50000, sport=135).handshake()
    s.send(True, bind(1, [(0, EPMAPPER, 3), (1, SRVSVC, 3)]))
    s.send(False, bind_ack(1, [0, 0]))
    s.send(True, request(2, 1, 15, STUB))
    s.send(False, response(2, b"answer"))
    s.ack(True)
    alerts = _alerts(tmp_path, s.close().frames, "\n".join(RULES) + "\n")
    sids = sorted(a["alert"]["signature_id"] for a in alerts)
    # sid 4: epmapper is bound but the request names context 1 (srvsvc); sid 11: the stub's
    # first 4 bytes (0x200) read little-endian, then byte 4 is '\'
    assert sids == sorted([*EXPECTED, 11])
    assert all(a["app_proto"] == "dcerpc" for a in alerts)


def ioctl(mid: int, fid: bytes, data: bytes, *, response: bool = False) -> bytes:
    if response:
        body = struct.pack("<HHI16sIIIIII", 49, 0, 0x0011C017, fid, 112, 0, 112, len(data), 0, 0)
    else:
        body = struct.pack("<HHI16sIIIIIIII", 57, 0, 0x0011C017, fid, 120, len(data), 0, 120, 0,
                           4280, 1, 0)  # fmt: skip
    return smb2(0xB, mid, body + data, response=response)


def test_rules_over_an_smb2_named_pipe(tmp_path: Path) -> None:
    s = TcpSession(client="10.0.0.1", server="10.0.0.2", cport=50000, sport=445).handshake()
    fid = bytes(range(16))
    for req, resp in (
        (tree_connect(1, "\\\\srv\\IPC$"), tree_connect_resp(1, 2)),
        (create(2, "srvsvc"), create_resp(2, fid)),
        (write(3, bind(1, [(0, EPMAPPER, 3), (1, SRVSVC, 3)]), fid=fid),
         smb2(9, 3, struct.pack("<HHII", 17, 0, 0, 0) + b"\0" * 8, response=True)),
        (read(4, 0, 1024, fid), read_resp(4, bind_ack(1, [0, 0]))),
        (ioctl(5, fid, request(2, 1, 15, STUB)), ioctl(5, fid, response(2, b"answer"),
                                                      response=True)),
    ):  # fmt: skip
        s.send(True, nbss(req))
        s.send(False, nbss(resp))
    s.ack(True)
    rules = [r.replace("alert tcp", "alert smb") for r in RULES]
    alerts = _alerts(tmp_path, s.close().frames, "\n".join(rules) + "\n")
    sids = sorted(a["alert"]["signature_id"] for a in alerts)
    # over SMB every accepted interface matches (Suricata ignores the context id): sid 4 too
    assert sids == sorted([*EXPECTED, 4, 11])
    assert all(a["app_proto"] == "smb" for a in alerts)


_STREAM = [
    (True, bind(1, [(0, EPMAPPER, 3), (1, SRVSVC, 3)])),
    (False, bind_ack(1, [0, 2])),
    (True, request(2, 0, 4, b"abc" * 5, flags=1)),
    (True, request(2, 0, 4, b"def", flags=2)),
    (False, response(2, b"answer")),
]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_dcerpc_streams_never_raise(data: st.DataObject) -> None:
    p, seen = _parser()
    for to_server, msg in _STREAM:
        raw = bytearray(msg)
        for _ in range(data.draw(st.integers(0, 4))):
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] = data.draw(st.integers(0, 255))
        cut = data.draw(st.integers(0, len(raw)))
        p.feed(to_server, bytes(raw[:cut]))
        p.feed(to_server, bytes(raw[cut:]))
    for tx in seen:
        assert isinstance(tx.get("dce.stub_data", True) or b"", bytes)
        iface_candidates(tx)
    assert len(p._calls) <= 256 and len(p._buf[True]) < 1 << 16
