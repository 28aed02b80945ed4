"""SNMP, SIP and Kerberos 5 parsing (sensor/applayer/snmp.py, sip.py, krb5.py, ber.py) on
hand-built messages: detection, buffers, values, events, EVE objects, and a property test
that mutated messages never raise."""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensor.applayer import AppLayer, AppLayerSettings
from sensor.applayer.common import Transaction
from sensor.applayer.detect import NO_MATCH, detect_protocol


# ------------------------------------------------------------------ a tiny DER encoder
def tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        head = bytes((n,))
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        head = bytes((0x80 | len(raw),)) + raw
    return bytes((tag,)) + head + content


def seq(*items: bytes) -> bytes:
    return tlv(0x30, b"".join(items))


def integer(v: int) -> bytes:
    return tlv(0x02, v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big", signed=True))


def octets(v: bytes) -> bytes:
    return tlv(0x04, v)


def ctx(n: int, content: bytes) -> bytes:  # [n] EXPLICIT
    return tlv(0xA0 | n, content)


OID_SYSDESCR = tlv(0x06, bytes((43, 6, 1, 2, 1, 1, 1, 0)))


def snmp_v2(community: bytes = b"public", pdu_tag: int = 0xA0, error: int = 0) -> bytes:
    varbind = seq(seq(OID_SYSDESCR, tlv(0x05, b"")))
    pdu = tlv(pdu_tag, integer(1234) + integer(error) + integer(0) + varbind)
    return seq(integer(1), octets(community), pdu)


def snmp_v3(user: bytes = b"admin", encrypted: bool = False) -> bytes:
    header = seq(integer(1), integer(65507), octets(b"\x04" if not encrypted else b"\x07"),
                 integer(3))  # fmt: skip
    usm = seq(octets(b"\x80\x00\x1f\x88"), integer(1), integer(2), octets(user),
              octets(b""), octets(b""))  # fmt: skip
    if encrypted:
        data = octets(b"\x8a" * 32)
    else:
        data = seq(octets(b""), octets(b""), tlv(0xA0, integer(1) + integer(0) + integer(0)
                                                   + seq()))  # fmt: skip
    return seq(integer(3), header, octets(usm), data)


def principal(*parts: bytes) -> bytes:
    return seq(ctx(0, integer(1)), ctx(1, seq(*(tlv(0x1B, p) for p in parts))))


def as_req(user: bytes = b"alice", realm: bytes = b"EXAMPLE.COM") -> bytes:
    body = seq(ctx(0, tlv(0x03, b"\x00\x40\x81\x00\x10")), ctx(1, principal(user)),
               ctx(2, tlv(0x1B, realm)), ctx(3, principal(b"krbtgt", realm)),
               ctx(7, integer(42)), ctx(8, seq(integer(18), integer(23))))  # fmt: skip
    return tlv(0x6A, seq(ctx(1, integer(5)), ctx(2, integer(10)), ctx(4, body)))


def enc_data(etype: int) -> bytes:
    return seq(ctx(0, integer(etype)), ctx(2, octets(b"\x11" * 16)))


def as_rep(etype: int = 23, ticket_etype: int = 18) -> bytes:
    ticket = tlv(0x61, seq(ctx(0, integer(5)), ctx(1, tlv(0x1B, b"EXAMPLE.COM")),
                           ctx(2, principal(b"krbtgt", b"EXAMPLE.COM")),
                           ctx(3, enc_data(ticket_etype))))  # fmt: skip
    return tlv(0x6B, seq(ctx(0, integer(5)), ctx(1, integer(11)), ctx(3, tlv(0x1B, b"EXAMPLE.COM")),
                         ctx(4, principal(b"alice")), ctx(5, ticket), ctx(6, enc_data(etype))))  # fmt: skip


def krb_error(code: int = 25) -> bytes:
    return tlv(0x7E, seq(ctx(0, integer(5)), ctx(1, integer(30)),
                         ctx(4, tlv(0x18, b"20240101000000Z")), ctx(5, integer(0)),
                         ctx(6, integer(code)), ctx(9, tlv(0x1B, b"EXAMPLE.COM")),
                         ctx(10, principal(b"krbtgt", b"EXAMPLE.COM"))))  # fmt: skip


SIP_INVITE = (b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
              b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
              b"To: Bob <sip:bob@biloxi.example.com>\r\nContent-Length: 4\r\n\r\nv=0\n")  # fmt: skip
SIP_OK = b"SIP/2.0 180 Ringing\r\nContent-Length: 0\r\n\r\n"


def run(
    proto: int, dport: int, msgs: list[tuple[bool, bytes]]
) -> tuple[AppLayer, list[Transaction]]:
    al = AppLayer(AppLayerSettings(), proto, 40000, dport)
    txs: list[Transaction] = []
    for to_server, data in msgs:
        al.feed(to_server, data, 0)
        txs += al.pop_ready()
    return al, txs


# ------------------------------------------------------------------ SNMP
def test_snmp_detection_follows_suricata_probe() -> None:
    assert detect_protocol(snmp_v2(), True, 17, 40000, 161) == "snmp"
    assert detect_protocol(snmp_v3(), False, 17, 162, 40000) == "snmp"
    assert detect_protocol(snmp_v2(), True, 17, 40000, 9999) == NO_MATCH  # port based
    assert detect_protocol(seq(integer(2), octets(b"x"), seq()), True, 17, 1, 161) == NO_MATCH


def test_snmp_v2c_community_pdu_type_and_eve() -> None:
    al, txs = run(
        17, 161, [(True, snmp_v2(b"private", 0xA3)), (False, snmp_v2(b"private", 0xA2, 2))]
    )
    assert al.proto_name == "snmp" and len(txs) == 2
    req, resp = txs
    assert req.values == {"snmp.version": 2, "snmp.pdu_type": 3}
    assert req.get("snmp.community", True) == b"private"
    assert resp.get("snmp.community", False) == b"private" and resp.values["snmp.pdu_type"] == 2
    assert al.eve_fields(resp) == {"snmp": {"version": 2, "pdu_type": "response",
                                            "error": "NoSuchName", "vars": ["1.3.6.1.2.1.1.1.0"],
                                            "community": "private"}}  # fmt: skip


def test_snmp_v3_usm_and_encrypted_pdu() -> None:
    al, txs = run(17, 161, [(True, snmp_v3(b"admin")), (True, snmp_v3(b"bob", encrypted=True))])
    plain, enc = txs
    assert plain.get("snmp.usm", True) == b"admin" and plain.values["snmp.pdu_type"] == 0
    assert "snmp.pdu_type" not in enc.values and enc.values["snmp.version"] == 3
    assert al.eve_fields(enc) == {"snmp": {"version": 3, "pdu_type": "encrypted"}}


def test_snmp_version_mismatch_and_malformed() -> None:
    al, txs = run(17, 161, [(True, snmp_v2()), (True, snmp_v3()), (True, snmp_v2()[:-3])])
    assert txs[1].events == ["snmp.version_mismatch"] and txs[1].values["snmp.version"] == 2
    assert "snmp.malformed_data" in al.events


# ------------------------------------------------------------------ SIP
def test_sip_detection_patterns() -> None:
    assert detect_protocol(SIP_INVITE, True, 17, 5060, 5060) == "sip"
    assert detect_protocol(SIP_OK, False, 17, 5060, 5060) == "sip"
    assert detect_protocol(SIP_INVITE, True, 6, 40000, 5060) == "sip"
    assert detect_protocol(b"OPTIONS sip:x SIP/2.0\r\n", True, 17, 1, 5060) == NO_MATCH
    assert detect_protocol(b"GET / HTTP/1.1\r\n", True, 6, 1, 80) == "http"


def test_sip_udp_buffers_and_eve() -> None:
    al, txs = run(17, 5060, [(True, SIP_INVITE), (False, SIP_OK)])
    req, resp = txs
    assert req.get("sip.method", True) == b"INVITE"
    assert req.get("sip.uri", True) == b"sip:bob@biloxi.example.com"
    assert req.get("sip.request_line", True) == b"INVITE sip:bob@biloxi.example.com SIP/2.0"
    assert req.get("sip.protocol", True) == b"SIP/2.0" and req.get("sip.protocol", False) is None
    assert (
        resp.get("sip.stat_code", False) == b"180" and resp.get("sip.stat_msg", False) == b"Ringing"
    )
    assert resp.get("sip.response_line", False) == b"SIP/2.0 180 Ringing"
    assert resp.get("sip.protocol", False) == b"SIP/2.0"
    assert al.eve_fields(req) == {"sip": {"method": "INVITE", "uri": "sip:bob@biloxi.example.com",
                                          "version": "SIP/2.0",
                                          "request_line": "INVITE sip:bob@biloxi.example.com SIP/2.0"}}  # fmt: skip
    assert al.eve_fields(resp)["sip"] == {"version": "SIP/2.0", "code": "180", "reason": "Ringing",
                                          "response_line": "SIP/2.0 180 Ringing"}  # fmt: skip


def test_sip_tcp_stream_split_and_pipelined() -> None:
    data = SIP_INVITE + SIP_INVITE.replace(b"INVITE", b"BYE", 1)
    _al, txs = run(6, 5060, [(True, data[i : i + 7]) for i in range(0, len(data), 7)])
    assert [t.get("sip.method", True) for t in txs] == [b"INVITE", b"BYE"]


def test_sip_uri_with_params_is_invalid_as_in_suricata_7() -> None:
    al, txs = run(17, 5060, [(True, b"REGISTER sip:x;transport=udp SIP/2.0\r\n\r\n")])
    assert txs == [] and al.events == ["sip.invalid_data"]
    al, txs = run(17, 5060, [(True, b"REGISTER sip:x SIP/2.0\r\nVia: x\r\n")])
    assert txs == [] and al.events == ["sip.incomplete_data"]


# ------------------------------------------------------------------ Kerberos 5
def test_krb5_detection_udp_and_tcp() -> None:
    assert detect_protocol(as_req(), True, 17, 40000, 88) == "krb5"
    assert (
        detect_protocol(struct.pack("!I", len(as_req())) + as_req(), True, 6, 40000, 88) == "krb5"
    )
    assert detect_protocol(krb_error(), False, 17, 88, 40000) == NO_MATCH  # tag 30: probe fails
    assert detect_protocol(as_req(), True, 17, 40000, 89) == NO_MATCH


def test_krb5_transactions_names_codes_and_eve() -> None:
    al, txs = run(
        17, 88, [(True, as_req()), (False, krb_error(25)), (True, as_req()), (False, as_rep())]
    )
    req, err, _req2, rep = txs
    assert req.values == {"krb5.msg_type": 10}
    assert req.get("krb5.cname", True) == [b"alice"]
    assert req.get("krb5.sname", True) == [b"krbtgt", b"EXAMPLE.COM"]
    assert err.values == {"krb5.msg_type": 30, "krb5.err_code": 25}
    krb5 = al.eve_fields(err)["krb5"]
    assert isinstance(krb5, dict) and krb5["failed_request"] == "KRB_AS_REQ"
    assert krb5["error_code"] == "KDC_ERR_PREAUTH_REQUIRED"
    assert rep.values == {"krb5.msg_type": 11} and rep.events == ["krb5.weak_encryption"]
    assert al.eve_fields(rep) == {"krb5": {
        "msg_type": "KRB_AS_REP", "cname": "alice", "realm": "EXAMPLE.COM",
        "sname": "krbtgt/EXAMPLE.COM", "encryption": "RC4_HMAC", "weak_encryption": True,
        "ticket_encryption": "AES256_CTS_HMAC_SHA1_96", "ticket_weak_encryption": False}}  # fmt: skip


def test_krb5_tcp_records_split() -> None:
    stream = b"".join(struct.pack("!I", len(m)) + m for m in (as_req(), as_req(b"bob")))
    _al, txs = run(6, 88, [(True, stream[i : i + 5]) for i in range(0, len(stream), 5)])
    assert [t.get("krb5.cname", True) for t in txs] == [[b"alice"], [b"bob"]]


# ------------------------------------------------------------------ robustness
SAMPLES = [(17, 161, snmp_v2()), (17, 161, snmp_v3()), (17, 5060, SIP_INVITE), (6, 5060, SIP_INVITE),
           (17, 88, as_req()), (17, 88, as_rep()), (6, 88, struct.pack("!I", len(as_rep())) + as_rep())]  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SAMPLES), st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=6),
       st.integers(1, 400), st.booleans())  # fmt: skip
def test_mutated_messages_never_raise(sample: tuple[int, int, bytes], flips: list[tuple[int, int]],
                                      cut: int, to_server: bool) -> None:  # fmt: skip
    proto, port, good = sample
    data = bytearray(good)
    for pos, value in flips:
        if pos < len(data):
            data[pos] = value
    al = AppLayer(AppLayerSettings(), proto, 40000, port)
    al.feed(True, good, 0)  # decide the protocol with the intact message first
    al.feed(to_server, bytes(data[:cut]), 0)
    al.feed(to_server, bytes(data[cut:]), 0)
    for tx in al.pop_ready():
        al.eve_fields(tx)
