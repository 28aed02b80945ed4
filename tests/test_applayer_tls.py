"""TLS: hellos and certificates built here, JA3/JA4 against published values, record slicing."""

from __future__ import annotations

import hashlib
import struct

from sensor.applayer import PROGRESS_COMPLETE, AppLayer, AppLayerSettings
from sensor.applayer.common import Transaction
from sensor.applayer.tls_hello import is_grease
from sensor.applayer.x509 import parse_certificate

# ----------------------------------------------------------------------------- builders


def u16(v: int) -> bytes:
    return struct.pack("!H", v)


def vec8(b: bytes) -> bytes:
    return bytes([len(b)]) + b


def vec16(b: bytes) -> bytes:
    return u16(len(b)) + b


def u16s(values: list[int]) -> bytes:
    return b"".join(u16(v) for v in values)


def ext(etype: int, data: bytes) -> bytes:
    return u16(etype) + vec16(data)


def handshake(mtype: int, body: bytes) -> bytes:
    return bytes([mtype]) + len(body).to_bytes(3, "big") + body


def record(rtype: int, body: bytes, version: int = 0x0303) -> bytes:
    return bytes([rtype]) + u16(version) + vec16(body)


def client_hello(version: int, ciphers: list[int], extensions: list[bytes]) -> bytes:
    body = u16(version) + b"\x11" * 32 + vec8(b"") + vec16(u16s(ciphers)) + vec8(b"\x00")
    return handshake(1, body + vec16(b"".join(extensions)))


def server_hello(version: int, cipher: int, extensions: list[bytes]) -> bytes:
    body = u16(version) + b"\x22" * 32 + vec8(b"") + u16(cipher) + b"\x00"
    return handshake(2, body + vec16(b"".join(extensions)))


def der(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    out = bytearray([40 * parts[0] + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        p >>= 7
        while p:
            chunk.append(0x80 | (p & 0x7F))
            p >>= 7
        out += bytes(reversed(chunk))
    return der(0x06, bytes(out))


def name(*attrs: tuple[str, str]) -> bytes:
    return der(
        0x30, b"".join(der(0x31, der(0x30, oid(o) + der(0x0C, v.encode()))) for o, v in attrs)
    )


CN, C, ORG, ST = "2.5.4.3", "2.5.4.6", "2.5.4.10", "2.5.4.8"


def certificate(serial: bytes, subject: bytes, issuer: bytes, san: list[bytes]) -> bytes:
    alg = der(0x30, oid("1.2.840.113549.1.1.11") + b"\x05\x00")
    validity = der(0x30, der(0x17, b"240101000000Z") + der(0x18, b"20991231235959Z"))
    spki = der(0x30, der(0x30, oid("1.2.840.10045.2.1")) + der(0x03, b"\x00\x04" + b"\x01" * 64))
    san_ext = der(
        0x30, oid("2.5.29.17") + der(0x04, der(0x30, b"".join(der(0x82, n) for n in san)))
    )
    exts = der(0xA3, der(0x30, san_ext))
    tbs = der(
        0x30,
        der(0xA0, der(0x02, b"\x02"))
        + der(0x02, serial)
        + alg
        + issuer
        + validity
        + subject
        + spki
        + exts,
    )
    return der(0x30, tbs + alg + der(0x03, b"\x00" + b"\x55" * 32))


CERT = certificate(
    b"\x00\xe1\x02\x03",
    name((C, "AU"), (ST, "Some-State"), (ORG, "Internet Widgits Pty Ltd"), (CN, "bench.test")),
    name((C, "US"), (ORG, "Test CA")),
    [b"bench.test", b"www.bench.test"],
)

# JA3's published example (salesforce/ja3 README): string and MD5
JA3_STRING = "769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0"
JA3_HASH = "ada70206e40642a3e4461f35503241d5"
JA3_HELLO = client_hello(
    769,
    [0x0A0A, 47, 53, 5, 10, 49161, 49162, 49171, 49172, 50, 56, 19, 4],  # GREASE first
    [
        ext(0, vec16(b"\x00" + vec16(b"example.com"))),
        ext(0x1A1A, b""),
        ext(10, vec16(u16s([0x2A2A, 23, 24, 25]))),
        ext(11, vec8(b"\x00")),
    ],
)


def tls_session() -> tuple[bytes, bytes]:
    ts = record(22, JA3_HELLO, 0x0301) + record(20, b"\x01") + record(23, b"\xaa" * 40)
    flight = server_hello(0x0303, 0xC02F, [ext(0xFF01, b"\x00"), ext(11, vec8(b"\x00"))])
    certs = handshake(11, (len(CERT) + 3).to_bytes(3, "big") + len(CERT).to_bytes(3, "big") + CERT)
    flight += certs + handshake(14, b"")
    # the flight split over two records, the certificate message straddling them
    tc = record(22, flight[:60]) + record(22, flight[60:]) + record(20, b"\x01")
    return ts, tc


def run(ts: bytes, tc: bytes, step: int = 1 << 20) -> tuple[AppLayer, Transaction]:
    al = AppLayer(AppLayerSettings(), 6, 50000, 443)
    for i in range(0, len(ts), step):
        al.feed(True, ts[i : i + step], 0)
    for i in range(0, len(tc), step):
        al.feed(False, tc[i : i + step], 0)
    txs = al.pop_ready()
    assert [t.tx_id for t in txs] == [0]
    return al, txs[0]


# ----------------------------------------------------------------------------- tests


def test_grease_values() -> None:
    assert all(is_grease(v) for v in (0x0A0A, 0x1A1A, 0xFAFA))
    assert not any(is_grease(v) for v in (0x0A1A, 0x000A, 0x1301))


def test_ja3_matches_the_published_example_and_ignores_grease() -> None:
    al, tx = run(record(22, JA3_HELLO, 0x0301), b"")
    assert al.proto_name == "tls"
    assert tx.buffers["ja3.string"] == JA3_STRING.encode()
    assert tx.buffers["ja3.hash"] == JA3_HASH.encode()
    assert tx.buffers["tls.sni"] == b"example.com"


def test_ja4_matches_the_foxio_example() -> None:
    ciphers = [
        0x1301,
        0x1302,
        0x1303,
        0xC02B,
        0xC02F,
        0xC02C,
        0xC030,
        0xCCA9,
        0xCCA8,
        0xC013,
        0xC014,
        0x009C,
        0x009D,
        0x002F,
        0x0035,
    ]
    sigs = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]
    exts = [
        ext(0x3A3A, b""),
        ext(0, vec16(b"\x00" + vec16(b"a.example"))),
        ext(0x0017, b""),
        ext(0xFF01, b"\x00"),
        ext(0x000A, vec16(u16s([0x001D, 0x0017]))),
        ext(0x000B, vec8(b"\x00")),
        ext(0x0023, b""),
        ext(0x0010, vec16(vec8(b"h2") + vec8(b"http/1.1"))),
        ext(0x0005, b"\x01\x00\x00\x00\x00"),
        ext(0x000D, vec16(u16s(sigs))),
        ext(0x0012, b""),
        ext(0x0033, vec16(b"")),
        ext(0x002D, vec8(b"\x01")),
        ext(0x002B, vec8(u16s([0x5A5A, 0x0304, 0x0303]))),
        ext(0x001B, b"\x02\x00\x02"),
        ext(0x4469, b"\x00\x03\x02h2"),
        ext(0x0015, b"\x00" * 8),
    ]
    _, tx = run(record(22, client_hello(0x0303, [0x4A4A, *ciphers], exts), 0x0301), b"")
    assert tx.buffers["ja4.hash"] == b"t13d1516h2_8daaf6152771_e5627efa2ab1"


def test_full_handshake_buffers_and_eve() -> None:
    ts, tc = tls_session()
    al, tx = run(ts, tc)
    tc_buf = tx.buffers_tc
    assert (
        tc_buf["tls.cert_subject"]
        == b"C=AU, ST=Some-State, O=Internet Widgits Pty Ltd, CN=bench.test"
    )
    assert tc_buf["tls.cert_issuer"] == b"C=US, O=Test CA"
    assert tc_buf["tls.cert_serial"] == b"00:E1:02:03"
    sha1 = hashlib.sha1(CERT).hexdigest()
    assert (
        tc_buf["tls.cert_fingerprint"]
        == ":".join(sha1[i : i + 2] for i in range(0, 40, 2)).encode()
    )
    assert tc_buf["tls.certs"] == [CERT]
    assert tc_buf["tls.subjectaltname"] == [b"bench.test", b"www.bench.test"]
    assert tc_buf["ja3s.string"] == b"771,49199,65281-11"
    assert tc_buf["ja3s.hash"] == hashlib.md5(b"771,49199,65281-11").hexdigest().encode()
    assert tx.values["tls.version"] == 0x0303
    assert tx.progress_ts == PROGRESS_COMPLETE and tx.progress_tc == PROGRESS_COMPLETE
    eve = al.eve_fields(tx)["tls"]
    assert isinstance(eve, dict)
    assert eve["version"] == "TLS 1.2" and eve["sni"] == "example.com"
    assert eve["subject"] == tc_buf["tls.cert_subject"].decode()
    assert eve["issuerdn"] == "C=US, O=Test CA" and eve["serial"] == "00:E1:02:03"
    assert eve["notbefore"] == "2024-01-01T00:00:00" and eve["notafter"] == "2099-12-31T23:59:59"
    assert eve["ja3"] == {"hash": JA3_HASH, "string": JA3_STRING}


def test_every_slicing_of_the_records_gives_the_same_result() -> None:
    ts, tc = tls_session()
    _, whole = run(ts, tc)
    # tls.state (ssl_state) is what the last update carried, so it depends on the slicing
    stable = {k: v for k, v in whole.values.items() if k != "tls.state"}
    for step in (1, 2, 3, 7, 64):
        _, tx = run(ts, tc, step)
        values = {k: v for k, v in tx.values.items() if k != "tls.state"}
        assert (tx.buffers, tx.buffers_tc, values) == (whole.buffers, whole.buffers_tc, stable)


def test_tls13_server_hello_version_and_encrypted_rest() -> None:
    sh = server_hello(0x0303, 0x1301, [ext(43, u16(0x0304)), ext(51, b"\x00" * 4)])
    tc = record(22, sh) + record(20, b"\x01") + record(23, b"\x17" * 100)
    al, tx = run(record(22, JA3_HELLO, 0x0301), tc)
    assert tx.values["tls.version"] == 0x0304
    assert tx.to_client_done
    assert al.eve_fields(tx)["tls"]["version"] == "TLS 1.3"  # type: ignore[index]


def test_x509_reader_on_the_built_certificate() -> None:
    cert = parse_certificate(CERT)
    assert cert.subject.endswith("CN=bench.test") and cert.san == (b"bench.test", b"www.bench.test")


def test_malformed_records_are_events() -> None:
    al = AppLayer(AppLayerSettings(), 6, 50000, 443)
    al.feed(True, record(22, JA3_HELLO, 0x0301), 0)
    al.feed(False, b"\x16\x03\x03\x00\x05" + b"\x02\xff\xff\xff\x00", 0)
    al.feed(False, b"\x63garbage-not-a-record", 0)
    (tx,) = al.pop_ready()
    assert "tls.handshake_invalid_length" in tx.events
    bad_cert = record(22, handshake(11, b"\x00\x00\x08\x00\x00\x05\x30\x03\x02\x01\x01"))
    al2 = AppLayer(AppLayerSettings(), 6, 50000, 443)
    al2.feed(True, record(22, JA3_HELLO, 0x0301), 0)
    al2.feed(False, bad_cert, 0)
    (tx2,) = al2.pop_ready()
    assert "tls.invalid_certificate" in tx2.events


def test_client_certificate_fills_the_to_server_buffers() -> None:
    ts, tc = tls_session()
    client_cert = certificate(b"\x07", name((CN, "jane")), name((ORG, "Client CA")), [])
    body = (len(client_cert) + 3).to_bytes(3, "big") + len(client_cert).to_bytes(3, "big")
    client_flight = record(22, handshake(11, body + client_cert))
    hello_end = len(record(22, JA3_HELLO, 0x0301))
    ts = ts[:hello_end] + client_flight + ts[hello_end:]
    _, tx = run(ts, tc)
    assert tx.get("tls.cert_subject", True) == b"CN=jane"
    assert tx.get("tls.cert_issuer", True) == b"O=Client CA"
    assert tx.get("tls.cert_serial", True) == b"07"
    assert tx.get("tls.cert_subject", False) == (
        b"C=AU, ST=Some-State, O=Internet Widgits Pty Ltd, CN=bench.test"
    )


def test_hello_random_and_certificate_validity_values() -> None:
    ts, tc = tls_session()
    _, tx = run(ts, tc)
    assert tx.get("tls.random", True) == b"\x11" * 32
    assert tx.get("tls.random_time", True) == b"\x11" * 4
    assert tx.get("tls.random_bytes", False) == b"\x22" * 28
    assert tx.values["tls.cert_notbefore"] == 1704067200  # 2024-01-01T00:00:00Z
    assert tx.values["tls.cert_notafter"] == 4102444799  # 2099-12-31T23:59:59Z


def test_der_reader_is_the_ber_one_and_bad_oids_are_der_errors() -> None:
    import pytest

    from sensor.applayer.ber import BerError, decode_oid
    from sensor.applayer.x509 import DerError, read_tlv

    assert DerError is BerError  # one reader, one error for the TLS parser to catch
    assert decode_oid(bytes([0x2A, 0x86, 0x48])) == "1.2.840"
    assert decode_oid(bytes([0x2A, 0x86])) == "1.2"  # an unterminated last arc is dropped
    for raw in (b"", b"\x81\x82"):  # empty, or no arc ever terminated (was an IndexError)
        with pytest.raises(DerError):
            decode_oid(raw)
    assert read_tlv(b"\x30\x03\x02\x01\x05", 0) == (0x30, 2, 5)
    with pytest.raises(DerError, match="multi-byte tags"):
        read_tlv(b"\x1f\x81\x01\x00", 0)
