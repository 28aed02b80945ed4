"""HTTP/2 in clear text: HPACK (RFC 7541 Appendix C), the frame parser, the h2c upgrade,
and rules (http.* buffers and http2.* keywords) on generated captures."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pcapgen import TcpSession, alerts_of

from sensor.applayer import AppLayer, AppLayerSettings
from sensor.applayer.common import Transaction
from sensor.applayer.hpack import HpackDecoder, huffman_codes, huffman_decode
from sensor.applayer.http2 import PREFACE
from sensor.applayer.http2_tx import Http2TxData

H = bytes.fromhex


# ------------------------------------------------------------------ a tiny encoder
def frame(ftype: int, flags: int, stream: int, payload: bytes) -> bytes:
    return (
        struct.pack("!I", len(payload))[1:]
        + bytes([ftype, flags])
        + struct.pack("!I", stream)
        + payload
    )


def hp_int(value: int, prefix: int, first: int) -> bytes:
    mask = (1 << prefix) - 1
    if value < mask:
        return bytes([first | value])
    out = bytearray([first | mask])
    value -= mask
    while value >= 128:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes(out + bytes([value]))


def lit(name: bytes, value: bytes, index: bool = False) -> bytes:
    """Literal field with a literal name (with or without incremental indexing)."""
    return (
        (b"\x40" if index else b"\x00")
        + hp_int(len(name), 7, 0)
        + name
        + hp_int(len(value), 7, 0)
        + value
    )


def request_block(path: bytes = b"/upload?id=7", host: bytes = b"Victim.Example:8080") -> bytes:
    return (b"\x83" + b"\x86" + lit(b":path", path) + lit(b":authority", host)
            + lit(b"user-agent", b"evil-h2/1.0") + lit(b"cookie", b"sid=1")
            + lit(b"x-custom", b"a:b"))  # fmt: skip


def settings_frame(*pairs: tuple[int, int]) -> bytes:
    return frame(4, 0, 0, b"".join(struct.pack("!HI", i, v) for i, v in pairs))


CLIENT = (PREFACE + settings_frame((1, 4096), (2, 0)) + frame(8, 0, 0, struct.pack("!I", 1000))
          + frame(1, 0x4 | 0x20, 1, struct.pack("!IB", 0, 41) + request_block())
          + frame(0, 1, 1, b"user=admin&pass=hunter2"))  # fmt: skip
SERVER = (settings_frame((3, 100)) + frame(1, 4, 1, b"\x88" + lit(b"server", b"h2srv")
          + lit(b"set-cookie", b"k=v")) + frame(0, 1, 1, b"<html>secret page</html>")
          + frame(7, 0, 0, struct.pack("!II", 1, 11)))  # fmt: skip


def h2(tx: Transaction) -> Http2TxData:
    assert isinstance(tx.state, Http2TxData)
    return tx.state


def one(tx: Transaction, name: str, to_server: bool) -> bytes:
    value = tx.get(name, to_server)
    assert isinstance(value, bytes)
    return value


def many(tx: Transaction, name: str, to_server: bool) -> list[bytes]:
    value = tx.get(name, to_server)
    assert isinstance(value, list)
    return value


def parse(chunks: list[tuple[bool, bytes]]) -> AppLayer:
    al = AppLayer(AppLayerSettings(), 6, 40000, 80)
    for to_server, data in chunks:
        al.feed(to_server, data, 0)
    return al


# ------------------------------------------------------------------ HPACK
def test_huffman_code_matches_rfc_samples() -> None:
    codes = huffman_codes()
    assert codes[0] == (0x1FF8, 13) and codes[ord("a")] == (0x3, 5)
    assert codes[255] == (0x3FFFFEE, 26) and codes[256] == (0x3FFFFFFF, 30)
    assert huffman_decode(H("f1e3c2e5f23a6ba0ab90f4ff")) == b"www.example.com"
    assert huffman_decode(H("a8eb10649cbf")) == b"no-cache"
    assert huffman_decode(H("ff")) is None  # 8 bits of padding
    assert huffman_decode(H("fffffffc")) is None  # EOS inside the string


def test_rfc7541_c3_requests_without_huffman() -> None:
    dec = HpackDecoder()
    b1 = dec.decode(H("828684410f7777772e6578616d706c652e636f6d"))
    assert b1.headers == ((b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"),
                          (b":authority", b"www.example.com"))  # fmt: skip
    assert dec.size == 57
    b2 = dec.decode(H("828684be58086e6f2d6361636865"))
    assert b2.headers[-1] == (b"cache-control", b"no-cache") and dec.size == 110
    b3 = dec.decode(H("828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565"))
    assert b3.headers[-1] == (b"custom-key", b"custom-value") and dec.size == 164
    assert b3.error is None


def test_rfc7541_c4_requests_with_huffman() -> None:
    dec = HpackDecoder()
    assert dec.decode(H("828684418cf1e3c2e5f23a6ba0ab90f4ff")).headers[3] == (
        b":authority", b"www.example.com")  # fmt: skip
    assert dec.decode(H("828684be5886a8eb10649cbf")).headers[4] == (b"cache-control", b"no-cache")
    b3 = dec.decode(H("828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf"))
    assert b3.headers[-1] == (b"custom-key", b"custom-value") and dec.size == 164


def test_rfc7541_c6_responses_with_eviction() -> None:
    dec = HpackDecoder()
    dec.max_size = 256
    r1 = dec.decode(H("488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff"
                      "6e919d29ad171863c78f0b97c8e9ae82ae43d3"))  # fmt: skip
    assert r1.headers[0] == (b":status", b"302") and dec.size == 222
    r2 = dec.decode(H("4883640effc1c0bf"))
    assert r2.headers[0] == (b":status", b"307") and dec.size == 222
    r3 = dec.decode(H("88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7"
                      "821dd7f2e6c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed"
                      "4ee5b1063d5007"))  # fmt: skip
    assert r3.headers[-1] == (
        b"set-cookie",
        b"foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
    )
    assert dec.size == 215


def test_size_update_bounded_by_settings() -> None:
    dec = HpackDecoder()
    block = dec.decode(b"\x3f\xe1\x1f" + b"\x82")  # size update to 4096, then :method GET
    assert block.size_updates == (4096,) and block.headers == ((b":method", b"GET"),)
    assert dec.decode(b"\x3f\xe2\x1f").error == "invalid_size_update"  # 4097 > settings


# ------------------------------------------------------------------ parser
def test_prior_knowledge_stream_buffers() -> None:
    al = parse([(True, CLIENT), (False, SERVER)])
    assert al.proto_name == "http2" and al.events == []
    txs = al.pop_ready()
    stream = next(t for t in txs if h2(t).stream_id == 1)
    assert stream.buffers["http.method"] == b"POST"
    assert stream.buffers["http.uri"] == b"/upload?id=7"
    assert stream.buffers["http.host"] == b"victim.example"
    assert stream.buffers["http.host.raw"] == b"Victim.Example:8080"
    assert stream.buffers["http.user_agent"] == b"evil-h2/1.0"
    assert stream.get("http.cookie", True) == b"sid=1"
    assert stream.get("http.cookie", False) == b"k=v"
    assert stream.buffers["http.request_body"] == b"user=admin&pass=hunter2"
    assert stream.get("file.data", False) == b"<html>secret page</html>"
    assert stream.get("http.stat_code", False) == b"200"
    assert b":method: POST\r\n" in one(stream, "http.header", True)
    assert b"cookie" not in one(stream, "http.header", True)
    assert many(stream, "http2.header", True)[-1] == b"x-custom: a:b"
    assert stream.get("http2.header_name", False) == [b":status", b"server", b"set-cookie"]
    assert stream.to_server_done and stream.to_client_done
    eve = al.eve_fields(stream)["http"]
    assert isinstance(eve, dict) and eve["http2"] == {"stream_id": 1}
    kinds = sorted(f.ftype for t in txs if h2(t).stream_id == 0
                   for f in h2(t).frames_ts + h2(t).frames_tc)  # fmt: skip
    assert kinds == [4, 4, 7, 8]  # a global transaction per stream-0 frame


def test_one_byte_slices_give_the_same_result() -> None:
    chunks = [(True, CLIENT[i : i + 1]) for i in range(len(CLIENT))]
    chunks += [(False, SERVER[i : i + 1]) for i in range(len(SERVER))]
    stream = next(t for t in parse(chunks).pop_ready() if h2(t).stream_id == 1)
    assert stream.buffers["http.uri"] == b"/upload?id=7"
    assert stream.get("file.data", False) == b"<html>secret page</html>"


def test_continuation_and_dynamic_table_across_streams() -> None:
    block = request_block() + lit(b"x-token", b"abc", index=True)
    client = (PREFACE + frame(1, 0x1, 1, block[:10]) + frame(9, 0x4, 1, block[10:])
              + frame(1, 0x5, 3, b"\x83\x86" + lit(b":path", b"/two") + b"\xbe"))  # fmt: skip
    txs = {h2(t).stream_id: t for t in parse([(True, client)]).pop_ready()}
    assert txs[1].buffers["http.uri"] == b"/upload?id=7" and txs[1].to_server_done
    assert b"x-token: abc" in many(txs[3], "http2.header", True)  # index 62: the dynamic entry


def test_h2c_upgrade_switches_the_flow() -> None:
    req = (b"GET /up HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\n"
           b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n")  # fmt: skip
    resp = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
    client = PREFACE + settings_frame() + frame(1, 5, 3, b"\x82\x86" + lit(b":path", b"/next"))
    server = settings_frame() + frame(1, 4, 1, b"\x88") + frame(0, 1, 1, b"upgraded body")
    al = parse([(True, req), (True, client), (False, resp + server)])
    assert al.proto_name == "http2"
    txs = al.pop_ready()
    up = next(t for t in txs if t.proto == "http2" and h2(t).stream_id == 1)
    assert up.buffers["http.uri"] == b"/up" and up.get("file.data", False) == b"upgraded body"
    three = next(t for t in txs if t.proto == "http2" and h2(t).stream_id == 3)
    assert three.buffers["http.uri"] == b"/next"
    assert len({t.tx_id for t in txs}) == len(txs)  # HTTP/1 and HTTP/2 ids do not collide


def test_upgrade_refused_keeps_http1() -> None:
    req = b"GET /a HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\n\r\n"
    al = parse([(True, req + b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n"),
                (False, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")])  # fmt: skip
    assert al.proto_name == "http"
    uris = [t.buffers.get("http.uri") for t in al.pop_ready()]
    assert b"/b" in uris


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 400), st.binary(max_size=8))
def test_mutated_streams_never_raise(noise: bytes, where: int, patch: bytes) -> None:
    data = bytearray(CLIENT)
    where %= len(data)
    data[where : where + len(patch)] = patch
    al = parse([(True, bytes(data)), (False, SERVER[:where] + noise), (True, noise)])
    for tx in al.pop_ready():
        al.eve_fields(tx)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200))
def test_hpack_never_raises(block: bytes) -> None:
    HpackDecoder().decode(block)


# ------------------------------------------------------------------ rules on a capture
def _alerts(tmp_path: Path, rules: str) -> list[dict]:
    s = TcpSession(sport=80).handshake()
    s.send(True, CLIENT)
    s.send(False, SERVER)
    s.ack(True)
    s.close()
    return alerts_of(tmp_path, s.frames, rules)


RULES = [
    'alert http any any -> any any (msg:"uri"; http.uri; content:"/upload"; sid:1;)',
    'alert http2 any any -> any any (msg:"host"; http.host; content:"victim.example"; sid:2;)',
    'alert http any any -> any any (msg:"body"; http.request_body; content:"hunter2"; sid:3;)',
    'alert http any any -> any any (msg:"file"; flow:to_client; file.data; content:"secret"; sid:4;)',
    'alert http2 any any -> any any (msg:"ft"; http2.frametype:GOAWAY; sid:5;)',
    'alert http2 any any -> any any (msg:"err"; http2.errorcode:ENHANCE_YOUR_CALM; sid:6;)',
    'alert http2 any any -> any any (msg:"prio"; http2.priority:>40; sid:7;)',
    'alert http2 any any -> any any (msg:"win"; http2.window:1000; sid:8;)',
    'alert http2 any any -> any any (msg:"set"; http2.settings:SETTINGS_ENABLE_PUSH=0; sid:9;)',
    'alert http2 any any -> any any (msg:"hn"; http2.header_name; content:"x-custom"; sid:10;)',
    'alert http2 any any -> any any (msg:"hv"; http2.header; content:"user-agent: evil"; sid:11;)',
    'alert http any any -> any any (msg:"stat"; http.stat_code; content:"200"; sid:12;)',
    'alert http2 any any -> any any (msg:"no"; http2.frametype:PUSH_PROMISE; sid:13;)',
    'alert http2 any any -> any any (msg:"no"; http2.settings:SETTINGS_MAX_CONCURRENT_STREAMS>100; sid:14;)',
    'alert http any any -> any any (msg:"rh"; http.request_header; content:"x-custom: a:b"; sid:15;)',
    'alert http1 any any -> any any (msg:"no"; http.uri; content:"/upload"; sid:16;)',
]


def test_rules_on_a_prior_knowledge_capture(tmp_path: Path) -> None:
    alerts = _alerts(tmp_path, "\n".join(RULES) + "\n")
    sids = {a["alert"]["signature_id"] for a in alerts}
    assert sids == {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 15}
    one = next(a for a in alerts if a["alert"]["signature_id"] == 1)
    assert one["app_proto"] == "http2" and one["http"]["url"] == "/upload?id=7"


@pytest.mark.parametrize("rule", [
    'alert http2 any any -> any any (http2.frametype:NOPE; sid:1;)',
    'alert http2 any any -> any any (http2.settings:SETTINGS_BOGUS; sid:1;)',
    'alert http2 any any -> any any (http2.priority:300; sid:1;)',
])  # fmt: skip
def test_invalid_http2_keywords_are_refused(tmp_path: Path, rule: str) -> None:
    assert _alerts(tmp_path, rule + "\n") == []
