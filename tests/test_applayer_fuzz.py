"""Property tests: mutated real messages never make a parser raise; results stay bounded."""

from __future__ import annotations

import gzip
import struct
import sys
from pathlib import Path

import dpkt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensor.applayer import AppLayer, AppLayerSettings

sys.path.insert(0, str(Path(__file__).parent / "fuzz"))
from targets import feed_both

HTTP_REQ = (
    b"POST /a/../b%2f%u0041?q=%41 HTTP/1.1\r\nHost: h:80\r\nTransfer-Encoding: chunked\r\n"
    b"Cookie: c\r\n folded\r\n\r\n4\r\nbody\r\n0\r\n\r\n"
)
GZ = gzip.compress(b"hello")
HTTP_RESP = (
    b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(GZ)
) + GZ
DNS_MSG = bytes(dpkt.dns.DNS(id=7, qd=[dpkt.dns.DNS.Q(name="a.example.org", type=1)]))


def _tls_hello() -> bytes:
    exts = (
        struct.pack("!HH", 0, 14)
        + struct.pack("!HBH", 12, 0, 9)
        + b"a.example"
        + struct.pack("!HHH", 10, 4, 2)
        + b"\x00\x17"
    )
    body = (
        b"\x03\x03"
        + b"\x00" * 32
        + b"\x00"
        + struct.pack("!H", 4)
        + b"\x13\x01\xc0\x2f"
        + b"\x01\x00"
        + struct.pack("!H", len(exts))
        + exts
    )
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


TLS_HELLO = _tls_hello()

mutation = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=4096),
        st.integers(min_value=0, max_value=255),
        st.sampled_from(["set", "insert", "delete"]),
    ),
    max_size=8,
)


def mutate(data: bytes, edits: list[tuple[int, int, str]]) -> bytes:
    buf = bytearray(data)
    for pos, value, kind in edits:
        i = pos % (len(buf) + 1)
        if kind == "insert":
            buf[i:i] = bytes([value])
        elif buf and i < len(buf):
            if kind == "set":
                buf[i] = value
            else:
                del buf[i]
    return bytes(buf)


def feed_all(proto: int, dport: int, ts: bytes, tc: bytes, step: int) -> AppLayer:
    return feed_both(proto, dport, ts, tc, step, field_limit=512)  # the fuzz target's loop


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(mutation, mutation, st.integers(min_value=1, max_value=64))
def test_http_mutations(
    req_edits: list[tuple[int, int, str]], resp_edits: list[tuple[int, int, str]], step: int
) -> None:
    feed_all(6, 80, mutate(HTTP_REQ * 2, req_edits), mutate(HTTP_RESP * 2, resp_edits), step)


@SETTINGS
@given(mutation, st.integers(min_value=1, max_value=64))
def test_tls_mutations(edits: list[tuple[int, int, str]], step: int) -> None:
    feed_all(6, 443, mutate(TLS_HELLO, edits), mutate(TLS_HELLO, edits[::-1]), step)


@SETTINGS
@given(mutation)
def test_dns_udp_mutations(edits: list[tuple[int, int, str]]) -> None:
    al = AppLayer(AppLayerSettings(), 17, 40000, 53)
    al.feed(True, DNS_MSG, 0)  # a good first message fixes the protocol
    al.feed(True, mutate(DNS_MSG, edits), 0)
    for tx in al.pop_ready():
        al.eve_fields(tx)


@SETTINGS
@given(st.binary(max_size=600), st.binary(max_size=600), st.sampled_from([53, 80, 443, 21]))
def test_random_bytes_on_any_port(ts: bytes, tc: bytes, port: int) -> None:
    for proto in (6, 17):
        feed_all(proto, port, ts, tc, 7)
        feed_all(proto, port, b"GET / HTTP/1.1\r\n" + ts, tc, 7)
        feed_all(proto, port, b"\x16\x03\x01" + ts, b"\x16\x03\x03" + tc, 7)
