"""SMB parsing (sensor/applayer/smb*.py): files, shares, framing, and rules over generated
SMB2/SMB1 captures. Messages are built here with struct, as MS-SMB2 / MS-CIFS lay them out."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pcapgen import TcpSession, alerts_of

from sensor.applayer import AppLayer, AppLayerSettings, Transaction
from sensor.applayer.smb import SmbFile, SmbParser
from sensor.errors import RuleError
from sensor.pipeline import SENSOR_BUFFERS
from signatures.build import SignatureBuilder
from signatures.classification import Classifications
from signatures.parser import parse_rule
from signatures.rule import Signature
from signatures.variables import Variables

FID = bytes(range(16))
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def nbss(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def smb2(command: int, mid: int, body: bytes, *, response: bool = False, status: int = 0,
         tree: int = 1, next_command: int = 0) -> bytes:  # fmt: skip
    hdr = struct.pack("<4sHHIHHIIQIIQ16s", b"\xfeSMB", 64, 0, status, command, 1,
                      1 if response else 0, next_command, mid, 0, tree, 0x55, b"\0" * 16)  # fmt: skip
    return hdr + body


def utf16(text: str) -> bytes:
    return text.encode("utf-16-le")


def tree_connect(mid: int, path: str) -> bytes:
    name = utf16(path)
    return smb2(3, mid, struct.pack("<HHHH", 9, 0, 72, len(name)) + name)


def tree_connect_resp(mid: int, share_type: int) -> bytes:
    return smb2(3, mid, struct.pack("<HBBIII", 16, share_type, 0, 0, 0, 0x1F01FF), response=True)


def create(mid: int, name: str) -> bytes:
    raw = utf16(name)
    body = struct.pack("<HBBIQQIIIIIHHII", 57, 0, 0, 2, 0, 0, 0x12019F, 0x80, 7, 1, 0x40,
                       120, len(raw), 0, 0)  # fmt: skip
    return smb2(5, mid, body + raw)


def create_resp(mid: int, fid: bytes = FID) -> bytes:
    body = struct.pack("<HBBIQQQQQQII16s", 89, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x80, 0, fid)
    return smb2(5, mid, body + b"\0" * 8, response=True)


def write(mid: int, data: bytes, offset: int = 0, fid: bytes = FID) -> bytes:
    body = struct.pack("<HHIQ16sIIHHI", 49, 112, len(data), offset, fid, 0, 0, 0, 0, 0)
    return smb2(9, mid, body + data)


def read(mid: int, offset: int, length: int, fid: bytes = FID) -> bytes:
    body = struct.pack("<HBBIQ16sIIIHH", 49, 0, 0, length, offset, fid, 0, 0, 0, 0, 0)
    return smb2(8, mid, body + b"\0")


def read_resp(mid: int, data: bytes) -> bytes:
    return smb2(8, mid, struct.pack("<HBBII", 17, 80, 0, len(data), 0) + b"\0" * 4 + data,
                response=True)  # fmt: skip


def close(mid: int, fid: bytes = FID) -> bytes:
    return smb2(6, mid, struct.pack("<HHI16s", 24, 0, 0, fid))


def ok(command: int, mid: int) -> bytes:
    return smb2(command, mid, struct.pack("<H", 4) + b"\0\0", response=True)


def _parser(**kw: int) -> tuple[SmbParser, list[Transaction]]:
    seen: list[Transaction] = []
    p = SmbParser(AppLayerSettings(**kw), lambda tx: seen.append(tx) if tx not in seen else None)  # type: ignore[arg-type]
    return p, seen


def _files(seen: list[Transaction]) -> list[Transaction]:
    for tx in seen:
        if isinstance(tx.state, SmbFile):
            tx.state.refresh()
    return [tx for tx in seen if isinstance(tx.state, SmbFile)]


def test_written_file_is_a_to_server_file_sized_at_close() -> None:
    p, seen = _parser()
    p.feed(True, nbss(create(1, "docs\\report.txt")))
    p.feed(False, nbss(create_resp(1)))
    p.feed(True, nbss(write(2, b"hello ")) + nbss(write(3, b"world", offset=6)))
    (tx,) = _files(seen)
    assert tx.get("file.name", True) == b"docs\\report.txt"
    assert tx.get("file.name", False) is None  # the file's direction only
    assert tx.get("file.data", True) == b"hello world"
    assert "file.size" not in tx.values  # Suricata's filesize waits for the closed file
    p.feed(True, nbss(close(4)))
    _files(seen)
    assert tx.values["file.size"] == 11 and tx.to_server_done


def test_read_file_is_a_to_client_file_matched_by_message_id() -> None:
    p, seen = _parser()
    p.feed(True, nbss(create(1, "a.pdf")))
    p.feed(False, nbss(create_resp(1)))
    # pipelined reads answered out of order: each response lands at its request's offset
    p.feed(True, nbss(read(2, 0, 4)) + nbss(read(3, 4, 4)))
    p.feed(False, nbss(read_resp(3, b"5678")) + nbss(read_resp(2, b"1234")))
    p.feed(True, nbss(close(4)))
    (tx,) = _files(seen)
    assert tx.get("file.data", False) == b"12345678"
    assert tx.get("file.name", False) == b"a.pdf"
    assert tx.values["file.size"] == 8 and tx.to_client_done


def test_tree_connect_share_and_named_pipe() -> None:
    p, seen = _parser()
    p.feed(True, nbss(tree_connect(1, "\\\\srv\\public")))
    p.feed(False, nbss(tree_connect_resp(1, 1)))
    p.feed(True, nbss(tree_connect(2, "\\\\srv\\IPC$")))
    p.feed(False, nbss(tree_connect_resp(2, 2)))
    disk, pipe = seen
    # as Suricata keeps it: NUL bytes and the first byte dropped
    assert disk.get("smb.share", True) == b"\\srv\\public" and "smb.named_pipe" not in disk.buffers
    assert pipe.get("smb.named_pipe", True) == b"\\srv\\IPC$" and "smb.share" not in pipe.buffers


def test_compounded_request_and_split_segments() -> None:
    p, seen = _parser()
    first = create(1, "c.bin")
    first = first[:20] + struct.pack("<I", len(first)) + first[24:]  # NextCommand
    record = nbss(first + write(2, b"abc"))  # compounded CREATE + WRITE in one record
    p.feed(True, record[:7])
    p.feed(True, record[7:])
    p.feed(False, nbss(create_resp(1)))
    p.feed(True, nbss(close(3)))
    (tx,) = _files(seen)
    # the WRITE was decoded before the CREATE response gave its FileId a name
    assert tx.get("file.data", True) == b"abc" and tx.values["file.size"] == 3


def test_overlong_record_counts_its_size_but_keeps_the_head() -> None:
    p, seen = _parser(smb_max_record=70 * 1024)
    big = bytes(200 * 1024)
    p.feed(True, nbss(write(1, big)) + nbss(close(2)))
    (tx,) = _files(seen)
    assert tx.values["file.size"] == len(big)
    data = tx.get("file.data", True)
    assert isinstance(data, bytes) and 0 < len(data) < len(big)


def test_smb1_write_andx_like_the_conformance_capture() -> None:
    hdr = struct.pack("<4sBIBHH8sHHHHH", b"\xffSMB", 0x2F, 0, 0x18, 0xC843, 0, b"\0" * 8, 0,
                      8, 0x33F, 8, 6)  # fmt: skip
    words = struct.pack("<BBHHIIHHHHHI", 0xFF, 0, 0, 0x4000, 0, 0, 0, 0, 0, len(EICAR), 64, 0)
    msg = hdr + b"\x0e" + words + struct.pack("<H", len(EICAR) + 1) + b"\0" + EICAR
    closing = struct.pack("<4sBIBHH8sHHHHH", b"\xffSMB", 0x04, 0, 0x18, 0xC843, 0, b"\0" * 8,
                          0, 8, 0x33F, 8, 7) + b"\x03" + struct.pack("<HIH", 0x4000, 0, 0)  # fmt: skip
    p, seen = _parser()
    p.feed(True, nbss(msg) + nbss(closing))
    (tx,) = _files(seen)
    assert tx.get("file.data", True) == EICAR and tx.values["file.size"] == 68


def _session() -> TcpSession:
    return TcpSession(client="10.0.0.1", server="10.0.0.2", cport=50000, sport=445).handshake()


def _exchange(s: TcpSession, request: bytes, response: bytes) -> None:
    s.send(True, nbss(request))
    s.send(False, nbss(response))


def _alerts(tmp_path: Path, frames: list[bytes], rules: str) -> list[dict]:
    return alerts_of(tmp_path, frames, rules)


def test_rules_on_an_smb2_upload_and_download(tmp_path: Path) -> None:
    s = _session()
    _exchange(s, tree_connect(1, "\\\\srv\\public"), tree_connect_resp(1, 1))
    _exchange(s, create(2, "up\\eicar.com"), create_resp(2))
    _exchange(s, write(3, EICAR), ok(9, 3))
    _exchange(s, close(4), ok(6, 4))
    other = bytes(range(16, 32))
    _exchange(s, create(5, "down.txt"), create_resp(5, other))
    _exchange(s, read(6, 0, 100, other), read_resp(6, b"downloaded text"))
    _exchange(s, close(7, other), ok(6, 7))
    s.ack(True)
    rules = "\n".join([
        "alert tcp any any -> any any (filesize:<70; sid:1;)",
        "alert tcp any any -> any any (filesize:>60; sid:2;)",
        'alert smb any any -> any any (filename:"eicar"; fileext:"com"; sid:3;)',
        'alert tcp any any -> any any (file.data; content:"EICAR-STANDARD"; sid:4;)',
        'alert smb any any -> any any (smb.share; content:"public"; sid:5;)',
        'alert smb any any -> any any (smb.named_pipe; content:"public"; sid:6;)',
        'alert tcp any any -> any any (file.data; content:"downloaded"; sid:7;)',
        "alert smb any any -> any any (flow:to_server; sid:8;)",
        'alert http any any -> any any (file.data; content:"EICAR"; sid:9;)',
        'alert tcp any any -> any any (file.name; content:"eicar.com"; endswith; sid:10;)',
        'alert smb any any -> any any (file.name; content:"down.txt"; bsize:8; sid:11;)',
        'alert smb any any -> any any (file.name; content:"nothere"; sid:12;)',
    ])  # fmt: skip
    alerts = _alerts(tmp_path, s.close().frames, rules + "\n")
    by_sid: dict[int, list[dict]] = {}
    for a in alerts:
        by_sid.setdefault(a["alert"]["signature_id"], []).append(a)
    # sid 1 matches the 68-byte upload and the 15-byte download
    assert sorted(by_sid) == [1, 2, 3, 4, 5, 7, 8, 10, 11]
    assert [a["dest_port"] for a in by_sid[2]] == [445]  # the written file: towards the server
    assert [a["src_port"] for a in by_sid[7]] == [445]  # the read file: towards the client
    assert [a["dest_port"] for a in by_sid[10]] == [445]  # file.name of the written file
    assert [a["src_port"] for a in by_sid[11]] == [445]  # and of the read one
    assert len(by_sid[1]) == 2
    # a packet rule on the protocol: every to-server packet once SMB is known
    assert by_sid[8] and all(a["dest_port"] == 445 for a in by_sid[8])
    assert all(a["app_proto"] == "smb" for a in alerts)


def test_app_layer_detects_smb_and_hands_it_to_the_parser() -> None:
    app = AppLayer(AppLayerSettings(), 6, 50000, 445)
    app.feed(True, nbss(write(1, b"x")), 0)
    assert app.proto_name == "smb"
    (tx,) = app.pop_ready()
    assert tx.proto == "smb" and tx.get("file.data", True) == b"x"


_VALID = [
    (True, nbss(tree_connect(1, "\\\\srv\\IPC$"))),
    (False, nbss(tree_connect_resp(1, 2))),
    (True, nbss(create(2, "f.txt"))),
    (False, nbss(create_resp(2))),
    (True, nbss(write(3, b"data" * 10, offset=0))),
    (True, nbss(read(4, 0, 8))),
    (False, nbss(read_resp(4, b"dataDATA"))),
    (True, nbss(close(5))),
]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_smb_streams_never_raise(data: st.DataObject) -> None:
    p, seen = _parser(smb_max_record=4096)
    for to_server, msg in _VALID:
        raw = bytearray(msg)
        for _ in range(data.draw(st.integers(0, 4))):
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] = data.draw(st.integers(0, 255))
        cut = data.draw(st.integers(0, len(raw)))
        p.feed(to_server, bytes(raw[:cut]))
        p.feed(to_server, bytes(raw[cut:]))
    for tx in _files(seen):
        assert isinstance(tx.get("file.data", True) or b"", bytes)
    assert len(p._files) <= 64 and len(p._reads) <= 1024


def test_related_compound_create_write_close_names_the_file() -> None:
    related = 0x4
    msgs = [create(1, "r.txt"), write(2, b"one shot", fid=b"\xff" * 16),
            close(3, fid=b"\xff" * 16)]  # fmt: skip
    chain = b""
    for i, m in enumerate(msgs):
        flags = struct.unpack_from("<I", m, 16)[0] | (related if i else 0)
        nxt = len(m) if i < len(msgs) - 1 else 0
        chain += m[:16] + struct.pack("<II", flags, nxt) + m[24:]
    p, seen = _parser()
    p.feed(True, nbss(chain))
    (tx,) = _files(seen)
    assert tx.get("file.name", True) == b"r.txt" and tx.values["file.size"] == 8


def test_file_rules_belong_to_no_protocol_but_are_not_ip_only() -> None:
    builder = SignatureBuilder(Classifications.load(None), SENSOR_BUFFERS)

    def build(text: str) -> Signature:
        return builder.build(parse_rule(text, Variables.suricata_defaults()))

    sig = build("alert tcp any any -> any any (filesize:<70; sid:1;)")
    assert sig.app_proto is None and not sig.ip_only and sig.app_buffers == ("file.size",)
    assert build('alert smb any any -> any any (filename:"a"; sid:2;)').app_proto == "smb"
    share = build('alert tcp any any -> any any (smb.share; content:"C$"; sid:3;)')
    assert share.app_proto == "smb"
    with pytest.raises(RuleError, match="dns"):
        build('alert dns any any -> any any (file.data; content:"x"; sid:4;)')


def test_out_of_order_writes_fill_the_hole_without_recursion() -> None:
    p, seen = _parser()
    chunks = [bytes([65 + i % 26]) for i in range(300)]
    for i in range(1, len(chunks)):  # every chunk after a one-byte hole at offset 0
        p.feed(True, nbss(write(i, chunks[i], offset=i)))
    p.feed(True, nbss(write(0, chunks[0], offset=0)) + nbss(close(9999)))
    (tx,) = _files(seen)
    # 256 chunks after the hole were held (the rest dropped): they join once it fills
    assert tx.get("file.data", True) == b"".join(chunks[:257])
    assert tx.values["file.size"] == 257
