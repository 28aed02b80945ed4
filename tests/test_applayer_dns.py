"""DNS over UDP and TCP with messages built by dpkt; malformed messages become events."""

from __future__ import annotations

import struct

import dpkt

from sensor.applayer import AppLayer, AppLayerSettings
from sensor.applayer.common import Transaction


def query(name: str, qtype: int = dpkt.dns.DNS_A, ident: int = 0x1234) -> bytes:
    msg = dpkt.dns.DNS(id=ident, op=dpkt.dns.DNS_RD, qd=[dpkt.dns.DNS.Q(name=name, type=qtype)])
    return bytes(msg)


def answer(name: str, ip: bytes, ident: int = 0x1234) -> bytes:
    msg = dpkt.dns.DNS(
        id=ident,
        op=dpkt.dns.DNS_RD | dpkt.dns.DNS_RA,
        qr=dpkt.dns.DNS_R,
        qd=[dpkt.dns.DNS.Q(name=name, type=dpkt.dns.DNS_A)],
    )
    msg.an = [dpkt.dns.DNS.RR(name=name, type=dpkt.dns.DNS_A, ttl=300, rdata=ip)]
    return bytes(msg)


def run(items: list[tuple[bool, bytes]], ipproto: int = 17) -> tuple[AppLayer, list[Transaction]]:
    al = AppLayer(AppLayerSettings(), ipproto, 40000, 53)
    for to_server, data in items:
        al.feed(to_server, data, 0)
    return al, al.pop_ready()


def test_udp_query_and_answer_are_separate_transactions() -> None:
    al, txs = run(
        [
            (True, query("myhome.duckdns.org")),
            (False, answer("myhome.duckdns.org", b"\x0a\x4d\x00\x01")),
        ]
    )
    assert al.proto_name == "dns"
    q, a = txs
    assert q.buffers["dns.query"] == [b"myhome.duckdns.org"]
    assert q.values == {"dns.id": 0x1234, "dns.opcode": 0, "dns.rcode": 0, "dns.rrtype": 1}
    assert "dns.query" not in a.buffers  # Suricata 7 inspects dns.query in requests only
    assert al.eve_fields(q) == {
        "dns": {
            "query": [
                {
                    "type": "query",
                    "id": 0x1234,
                    "rrname": "myhome.duckdns.org",
                    "rrtype": "A",
                    "tx_id": 0,
                    "opcode": 0,
                }
            ]
        }
    }
    eve = al.eve_fields(a)["dns"]
    assert isinstance(eve, dict)
    assert eve["answer"]["rcode"] == "NOERROR"
    assert eve["answer"]["answers"] == [
        {"rrname": "myhome.duckdns.org", "rrtype": "A", "ttl": 300, "rdata": "10.77.0.1"}
    ]


def test_tcp_length_prefixed_messages_split_anywhere() -> None:
    msgs = [query("a.example", 252, 1), query("b.example", dpkt.dns.DNS_TXT, 2)]
    stream = b"".join(struct.pack("!H", len(m)) + m for m in msgs)
    for cut in range(1, len(stream)):
        al, txs = run([(True, stream[:cut]), (True, stream[cut:])], ipproto=6)
        assert al.proto_name == "dns", cut
        assert [t.buffers["dns.query"] for t in txs] == [[b"a.example"], [b"b.example"]]
        assert [t.values["dns.rrtype"] for t in txs] == [252, 16]


def test_compression_pointers_are_followed_and_loops_rejected() -> None:
    msg = answer("x.example.org", b"\x01\x02\x03\x04")
    al, (tx,) = run([(True, query("x.example.org"))])
    assert tx.buffers["dns.query"] == [b"x.example.org"]
    # a self-referencing pointer in the question name
    looped = msg[:12] + b"\xc0\x0c" + b"\x00\x01\x00\x01"
    looped = looped[:4] + b"\x00\x01" + b"\x00\x00" * 3 + looped[12:]
    al, (tx,) = run([(True, looped)])
    assert tx.events == ["dns.malformed_data"]
    assert al.anomalous


def test_truncated_and_wrong_direction_messages() -> None:
    _al, (tx,) = run([(True, query("a.b")[:15])])
    assert tx.events == ["dns.malformed_data"]
    _al, (tx,) = run([(True, answer("a.b", b"\x01\x01\x01\x01"))])
    assert "dns.not_a_request" in tx.events


def test_non_dns_on_port_53_udp_fails_detection() -> None:
    al, txs = run(
        [
            (True, b"hello"),
            (True, b"x" * 3),
            (False, b"zz"),
            (True, b"q"),
            (True, b"r"),
            (False, b"1"),
            (False, b"2"),
            (False, b"3"),
        ]
    )
    assert al.proto_name == "failed" and txs == []
