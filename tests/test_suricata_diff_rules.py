"""Rule-loading behaviours found by differential testing against Suricata 7.0.10.

Each refused rule here is one Suricata 7.0.10 refuses ("error parsing signature", checked
with ``suricata -T``); the loaded ones it loads. sekimori must agree,
or it would alert where Suricata cannot.
"""

from __future__ import annotations

import struct
from pathlib import Path

import dpkt
import pytest
from pcapgen import TcpSession, alerts_of, udp

from sensor.errors import RuleError
from sensor.pipeline import SENSOR_BUFFERS
from signatures.build import SignatureBuilder
from signatures.classification import Classifications
from signatures.parser import parse_rule
from signatures.variables import Variables

C, S = "192.168.1.10", "203.0.113.5"


def _build(rule: str) -> object:
    builder = SignatureBuilder(Classifications.load(None), SENSOR_BUFFERS)
    return builder.build(parse_rule(rule, Variables.suricata_defaults()))


@pytest.mark.parametrize(
    "rule",
    [
        'alert dns any any -> any any (content:"www"; dns_query; sid:1;)',  # sticky, unused
        'alert http any any -> any any (http.uri; pkt_data; content:"x"; sid:1;)',
        "alert dns any any -> any any (dns.opcode:>2; sid:1;)",  # only [!]<number>
        'alert dns any any -> any any (flow:to_client; dns.query; content:"www"; sid:1;)',
        "alert tcp any any -> any any (app-layer-protocol:tls,final; sid:1;)",
        'alert tls any any -> any any (ja3.hash; content:"ada70206"; sid:1;)',  # not 32 long
        'alert tls any any -> any any (ja3s.hash; content:"ada70206e40642a3e4461f35503241d5";'
        " nocase; sid:1;)",
        'alert tls any any -> any any (tls.cert_fingerprint; content:"ab:cd"; sid:1;)',
    ],
)
def test_refused_like_suricata(rule: str) -> None:
    with pytest.raises(RuleError):
        _build(rule)


@pytest.mark.parametrize(
    "body",
    [
        'http.uri; content:"/"; to_lowercase;',
        "dns.opcode:!0;",
        'dns.query; content:"a";',
        'ja3.hash; content:"ADA70206E40642A3E4461F35503241D5";',  # lower-cased, as Suricata
    ],
)
def test_loaded_like_suricata(body: str) -> None:
    proto = "http" if "http" in body else "tls" if "ja3" in body else "dns"
    _build(f"alert {proto} any any -> any any ({body} sid:1;)")


def test_dns_message_is_checked_on_its_own_direction(tmp_path: Path) -> None:
    """A DNS query and its answer are two transactions; Suricata checks each only on its own
    direction's packets, so flow:to_client with dns.opcode alerts once per answer (UDP and
    TCP). Suricata 7.0.10 on this capture: sid 1 on 53->50000 and 53->50001, sid 2 on
    50001->53."""

    def msg(qr: int) -> bytes:
        d = dpkt.dns.DNS(id=7, qd=[dpkt.dns.DNS.Q(name="tcp.example.net", type=1, cls=1)])
        d.op = 0x8180 if qr else 0x0100
        return bytes(d)

    frames = [udp(C, S, 50000, 53, msg(0)), udp(S, C, 53, 50000, msg(1))]
    s = TcpSession(cport=50001, sport=53).handshake()
    s.send(True, struct.pack("!H", len(msg(0))) + msg(0))
    s.send(False, struct.pack("!H", len(msg(1))) + msg(1)).close()
    rules = [
        "alert dns any any -> any any (flow:to_client; dns.opcode:0; sid:1;)",
        'alert dns any any -> any 53 (flow:to_server; dns.query; content:"tcp.ex"; sid:2;)',
    ]
    alerts = alerts_of(tmp_path, frames + s.frames, rules)
    assert sorted((a["alert"]["signature_id"], a["src_port"]) for a in alerts) == [
        (1, 53), (1, 53), (2, 50000), (2, 50001),
    ]  # fmt: skip


def test_app_layer_protocol_alone_alerts_once_per_direction(tmp_path: Path) -> None:
    """app-layer-protocol alone (a protocol-detection-only rule) alerts once per flow
    direction, and the parsers run even when no other rule needs them. Suricata 7.0.10 on
    this capture: sid 1 once each way, sid 2 as listed."""
    s = TcpSession().handshake()
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    s.send(True, b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n").send(False, ok)
    s.send(True, b"GET /y HTTP/1.1\r\nHost: a\r\n\r\n").send(False, ok).close()
    rules = [
        "alert tcp any any -> any any (app-layer-protocol:http; sid:1;)",
        "alert tcp any any -> any any (app-layer-protocol:http; ttl:64; sid:2;)",
    ]
    alerts = alerts_of(tmp_path, s.frames, rules)
    # sid 2: on TCP a direction's protocol is known from the packet after its first data
    # (the client's packets 6, 8, 10 and the server's 7, 9)
    assert sorted((a["alert"]["signature_id"], a["src_port"]) for a in alerts) == [
        (1, 80), (1, 40000), (2, 80), (2, 80), (2, 40000), (2, 40000), (2, 40000),
    ]  # fmt: skip


def test_tls_version_is_per_direction(tmp_path: Path) -> None:
    """tls.version / ssl_version read the client's version (ClientHello, or its first
    supported_versions entry) on the client's packets and the server's on the server's; a
    TLS rule alerts once per direction. Suricata 7.0.10 on this capture (a TLS 1.0 client
    with a TLS 1.2 server, then a TLS 1.3 client and server): the keys below."""
    from test_applayer_tls import client_hello, ext, record, server_hello, u16, u16s, vec8

    def tls(cport: int, hello: bytes, server: bytes) -> list[bytes]:
        s = TcpSession(cport=cport, sport=443).handshake()
        s.send(True, record(22, hello, 0x0301)).send(False, record(22, server))
        return s.send(True, record(20, b"\x01")).close().frames

    frames = tls(41000, client_hello(0x0301, [47], []), server_hello(0x0303, 47, []))
    frames += tls(
        41001,
        client_hello(0x0303, [0x1301], [ext(43, vec8(u16s([0x0304, 0x0303])))]),
        server_hello(0x0303, 0x1301, [ext(43, u16(0x0304))]),
    )
    rules = [
        "alert tls any any -> any any (tls.version:1.0; sid:1;)",
        "alert tls any any -> any any (tls.version:1.2; sid:2;)",
        "alert tls any any -> any any (ssl_version:tls1.3; sid:3;)",
    ]
    alerts = alerts_of(tmp_path, frames, rules)
    assert sorted((a["alert"]["signature_id"], a["src_port"]) for a in alerts) == [
        (1, 41000), (2, 443), (3, 443), (3, 41001),
    ]  # fmt: skip
