"""Buffer transforms (to_lowercase, url_decode, xor, pcrexform ...): bytes and detection."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from pcapgen import TcpSession, write_pcap

from sensor.config import load_config
from sensor.errors import RuleError
from sensor.pipeline import SENSOR_BUFFERS, RunRequest, run
from signatures.build import SignatureBuilder
from signatures.classification import Classifications
from signatures.parser import parse_rule
from signatures.transforms import apply_chain, check_content, parse_transform
from signatures.variables import Variables


def _build(rule: str) -> object:
    builder = SignatureBuilder(Classifications.load(None), SENSOR_BUFFERS)
    return builder.build(parse_rule(rule, Variables.suricata_defaults()))


def _apply(*keywords: tuple[str, str | None]) -> Callable[[bytes], bytes]:
    chain = tuple(parse_transform(k, v, quoted=v is not None) for k, v in keywords)
    return lambda data: apply_chain(chain, data)


@pytest.mark.parametrize(
    ("keyword", "option", "data", "expected"),
    [
        ("to_lowercase", None, b"/AdMiN", b"/admin"),
        ("to_uppercase", None, b"/AdMiN", b"/ADMIN"),
        ("strip_whitespace", None, b"a (\t\r\n\v\fb ", b"a(b"),
        # the first whitespace byte of a run stays, whatever it is
        ("compress_whitespace", None, b" A \t B\r\n\r\nC  ", b" A B\rC "),
        # Suricata's own unit test string: %ZZ and a trailing %4 stay as they are
        ("url_decode", None, b"Suricata%20is+%27%61wesome%21%27%25%30%30%ZZ%4",
         b"Suricata is 'awesome!'%00%ZZ%4"),
        ("dotprefix", None, b"example.com", b".example.com"),
        ("xor", "0d0ac8ff", bytes([0x0D ^ 0x41, 0x0A ^ 0x42, 0xC8 ^ 0x43, 0xFF ^ 0x44, 0x0D ^ 0x45]),
         b"ABCDE"),
        ("pcrexform", "[a-zA-Z]+\\s+(.*)\\s+HTTP", b"GET /index.html HTTP/1.1", b"/index.html"),
        # no match: Suricata 7 keeps the buffer as it was
        ("pcrexform", "^POST (.*)", b"GET /x", b"GET /x"),
        ("header_lowercase", None, b"Host: A\r\nUser-Agent: B", b"host: A\r\nuser-agent: B"),
        ("strip_pseudo_headers", None, b":method: GET\r\nHost: a", b"Host: a"),
    ],
)  # fmt: skip
def test_transform_bytes(keyword: str, option: str | None, data: bytes, expected: bytes) -> None:
    assert _apply((keyword, option))(data) == expected


def test_hashes_and_chains_run_in_rule_order() -> None:
    assert _apply(("to_md5", None))(b"abc") == hashlib.md5(b"abc").digest()
    assert _apply(("to_sha1", None))(b"abc") == hashlib.sha1(b"abc").digest()
    chained = _apply(("compress_whitespace", None), ("to_sha256", None))
    assert chained(b"GET  /  HTTP/1.1") == hashlib.sha256(b"GET / HTTP/1.1").digest()
    assert _apply(("url_decode", None), ("to_lowercase", None))(b"/%41B") == b"/ab"


@pytest.mark.parametrize(
    ("keyword", "option", "quoted"),
    [
        ("xor", "0g", True),
        ("xor", "abc", True),
        ("pcrexform", "(a)(b)", True),
        ("pcrexform", "nocapture", True),
        ("pcrexform", "(a)", False),
        ("to_lowercase", "x", False),
    ],
)
def test_bad_transform_options(keyword: str, option: str, quoted: bool) -> None:
    with pytest.raises(RuleError):
        parse_transform(keyword, option, quoted)


def test_content_the_transform_cannot_produce_is_refused() -> None:
    lower = (parse_transform("to_lowercase", None),)
    check_content(lower, b"/admin")
    with pytest.raises(RuleError):
        check_content(lower, b"/Admin")
    with pytest.raises(RuleError):
        check_content((parse_transform("strip_whitespace", None),), b"a b")
    with pytest.raises(RuleError):
        check_content((parse_transform("compress_whitespace", None),), b"a  b")


RULES = """\
alert http any any -> any any (msg:"lower"; http.uri; to_lowercase; content:"/admin/login"; sid:1;)
alert http any any -> any any (msg:"plain"; http.uri; content:"/admin/login"; sid:2;)
alert http any any -> any any (msg:"decode"; http.request_body; url_decode; content:"/etc/passwd"; sid:3;)
alert http any any -> any any (msg:"raw body"; http.request_body; content:"/etc/passwd"; sid:4;)
alert http any any -> any any (msg:"pcrexform"; http.request_line; pcrexform:"^POST (\\S+)"; content:"/Admin/Login"; endswith; sid:5;)
alert http any any -> any any (msg:"after content"; http.uri; content:"/"; to_lowercase; sid:6;)
alert http any any -> any any (msg:"upper"; http.header; to_uppercase; content:"HOST: EXAMPLE"; sid:7;)
alert http any any -> any any (msg:"lower after"; http.uri; content:"/Admin"; to_lowercase; content:"/admin/login"; startswith; sid:10;)
alert http any any -> any any (msg:"lower after, plain before"; http.uri; content:"/admin"; to_lowercase; content:"/admin/login"; sid:11;)
"""


def test_transformed_buffers_in_http_rules(tmp_path: Path) -> None:
    body = b"f=%2Fetc%2Fpasswd"
    req = (b"POST /Admin/Login HTTP/1.1\r\nHost: example\r\nContent-Length: %d\r\n\r\n"
           % len(body)) + body  # fmt: skip
    s = TcpSession().handshake().send(True, req).send(False, b"HTTP/1.1 200 OK\r\n\r\n").close()
    pcap = write_pcap(tmp_path / "in.pcap", s.frames)
    rules = tmp_path / "t.rules"
    rules.write_text(RULES)
    eve = tmp_path / "eve.json"
    config, _ = load_config(None, env={}, sets=["detect.cache-dir=" + str(tmp_path / "cache")])
    run(config, RunRequest(pcap=str(pcap), iface=None, rule_files=(str(rules),), eve=str(eve)))
    records = [orjson.loads(line) for line in eve.read_bytes().splitlines()]
    sids = sorted(r["alert"]["signature_id"] for r in records if r["event_type"] == "alert")
    # As Suricata 7.0.10 on the same capture and rules: 2: the URI is not lower case; 4: the
    # body is encoded; 6 and 10: a transform after a content applies to the matches after
    # it, the content before it ran on the plain URI; 11: "/admin" is not in the plain URI.
    assert sids == [1, 3, 5, 6, 7, 10]


@pytest.mark.parametrize(
    "rule",
    [
        'alert tcp any any -> any any (content:"x"; to_lowercase; sid:8;)',  # no sticky buffer
        # matches ran on a transformed buffer: another transform is refused (Suricata too)
        'alert http any any -> any any (http.uri; to_uppercase; content:"/A"; to_lowercase; '
        'content:"/admin"; sid:9;)',
    ],
)
def test_transforms_suricata_refuses(rule: str) -> None:
    with pytest.raises(RuleError, match="transforms must directly follow"):
        _build(rule)


def test_dotprefix_after_content_as_in_et_open(tmp_path: Path) -> None:
    """ET Open's sid 2044076 puts dotprefix after content and pcre in dns.query; Suricata
    7.0.10 loads it and, on this capture (checked by hand), raises exactly these alerts."""
    import dpkt
    from pcapgen import alerts_of, udp

    names = ["rs-ny.rustdesk.com", "xrs-ny.rustdesk.com", "rustdesk.com", "a.b.com"]
    frames = [udp("10.0.0.1", "8.8.8.8", 40000 + i, 53,
                  bytes(dpkt.dns.DNS(id=100 + i, qd=[dpkt.dns.DNS.Q(name=n, type=1, cls=1)])))
              for i, n in enumerate(names)]  # fmt: skip
    rules = [
        'alert dns any any -> any any (msg:"et"; dns.query; content:"rs-"; startswith; '
        'fast_pattern; pcre:"/[a-z]{2}/Ri"; dotprefix; content:".rustdesk.com"; nocase; '
        "endswith; sid:1;)",
        'alert dns any any -> any any (dns.query; dotprefix; content:".rustdesk.com"; '
        "endswith; sid:2;)",
        'alert dns any any -> any any (dns.query; content:".rs-"; startswith; dotprefix; sid:3;)',
        'alert dns any any -> any any (dns.query; content:"rs-"; startswith; dotprefix; sid:4;)',
        'alert dns any any -> any any (dns.query; content:"b.com"; dotprefix; content:".a.b"; '
        "startswith; sid:5;)",
    ]
    got = sorted((a["alert"]["signature_id"], a["src_port"])
                 for a in alerts_of(tmp_path, frames, rules))  # fmt: skip
    assert got == [(1, 40000), (2, 40000), (2, 40001), (2, 40002), (4, 40000), (5, 40003)]
