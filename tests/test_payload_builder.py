"""PayloadBuilder: buffers, legacy modifiers, base64, bsize, fast pattern choice, max_reach.

Options are produced by the real rule-option splitter, so quoting reaches the builder
exactly as it will in production.
"""

from __future__ import annotations

import pytest

from sensor.errors import RuleError, UnsupportedKeyword
from signatures.buffers import ALIASES, APP_BUFFERS, HEADER_BUFFERS, LEGACY_MODIFIERS, PKT_DATA
from signatures.parser import split_options
from signatures.payload import MatchEnv, PayloadBuilder, PayloadSpec

ALL = APP_BUFFERS | HEADER_BUFFERS


def build(body: str, supported: frozenset[str] = ALL) -> PayloadSpec:
    b = PayloadBuilder(supported)
    for o in split_options(body):
        assert b.claims(o.name), o.name
        b.add(o.name, o.value, o.quoted)
    return b.finish()


def hits(spec: PayloadSpec, buf: bytes, buffer: str = PKT_DATA) -> bool:
    env = MatchEnv()
    env.reset()
    return spec.programs[buffer].match(buf, env)


def test_claims() -> None:
    b = PayloadBuilder(frozenset())
    for name in (
        "content",
        "nocase",
        "pcre",
        "byte_math",
        "bsize",
        "file_data",
        "http.uri",
        "http_uri",
        "tls.sni",
        "ja3_hash",
        "pkt_data",
        "base64_data",
        "ipv4.hdr",
        "fast_pattern",
    ):
        assert b.claims(name), name
    for name in ("dsize", "prefilter", "flow", "sid", "msg"):
        assert not b.claims(name), name


def test_registry_is_consistent() -> None:
    assert set(ALIASES.values()) <= APP_BUFFERS
    assert set(LEGACY_MODIFIERS.values()) <= APP_BUFFERS
    assert not set(ALIASES) & set(LEGACY_MODIFIERS)


def test_sticky_buffers_and_pkt_data_switch_back() -> None:
    spec = build('http.uri; content:"/a"; pkt_data; content:"zz"; file_data; content:"MZ";')
    assert list(spec.programs) == ["http.uri", PKT_DATA, "file.data"]
    assert hits(spec, b"/a/b", "http.uri")
    assert not hits(spec, b"/a/b", PKT_DATA)
    assert hits(spec, b"MZ..", "file.data")


def test_alias_spelling_selects_the_canonical_buffer() -> None:
    spec = build('tls_sni; content:"example.com"; dns_query; content:"evil";')
    assert list(spec.programs) == ["tls.sni", "dns.query"]


def test_unsupported_buffers_name_the_keyword_as_written() -> None:
    with pytest.raises(UnsupportedKeyword, match="'tls_sni'"):
        build('tls_sni; content:"x";', frozenset())
    with pytest.raises(UnsupportedKeyword, match="'http_uri'"):
        build('content:"x"; http_uri;', frozenset())
    spec = build('tcp.hdr; content:"|50 18|"; offset:12; depth:2;', frozenset({"tcp.hdr"}))
    assert list(spec.programs) == ["tcp.hdr"]


def test_legacy_modifier_moves_the_previous_content() -> None:
    spec = build('content:"GET"; http_method; content:"/x"; http_uri; content:"body";')
    assert list(spec.programs) == ["http.method", "http.uri", PKT_DATA]
    assert hits(spec, b"GET", "http.method")
    assert hits(spec, b"/x/y", "http.uri")


def test_legacy_modifier_keeps_relative_links_in_the_target_buffer() -> None:
    spec = build('content:"/a"; http_uri; content:"/b"; distance:0; within:2; http_uri;')
    assert list(spec.programs) == ["http.uri"]
    assert hits(spec, b"/a/a/b", "http.uri")  # "/a" retries thanks to within
    assert not hits(spec, b"/a..../b", "http.uri")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("http_uri;", "needs a preceding content"),
        ('http.uri; content:"a"; http_header;', "sticky buffer is active"),
        ('content:"a"; http_uri; http_header;', "already in http.uri"),
        ("base64_data;", "needs a preceding base64_decode"),
        ('base64_decode; content:"x";', "needs base64_data"),
        ("base64_decode; base64_decode;", "only one per rule"),
        ("base64_decode:bytes 0;", "out of range"),
        ("base64_decode:sideways;", "unknown option"),
        ('bsize:3; content:"x";', "needs a sticky buffer"),
        ('http.uri; content:"abcd"; bsize:3;', "can never fit"),
        ('http.uri; content:"abcd"; bsize:<4;', "can never fit"),
        ("http.uri; bsize:x;", "invalid value"),
        ("http.uri; bsize:5<>6;", "empty or reversed"),
    ],
)
def test_builder_errors(body: str, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        build(body)


@pytest.mark.parametrize(
    ("value", "sizes_ok", "sizes_bad"),
    [
        ("4", [4], [3, 5]),
        ("!4", [3, 5], [4]),
        ("<4", [3], [4]),
        (">4", [5], [4]),
        ("<=4", [4], [5]),
        (">=4", [4], [3]),
        ("2<>5", [3, 4], [2, 5]),
    ],
)
def test_bsize(value: str, sizes_ok: list[int], sizes_bad: list[int]) -> None:
    spec = build(f"http.uri; bsize:{value};")
    for n in sizes_ok:
        assert hits(spec, b"x" * n, "http.uri"), n
    for n in sizes_bad:
        assert not hits(spec, b"x" * n, "http.uri"), n


def test_base64_decode_and_data() -> None:
    spec = build('content:"auth="; base64_decode:relative; base64_data; content:"admin";')
    assert hits(spec, b"auth=YWRtaW46c2VjcmV0")  # admin:secret
    assert not hits(spec, b"auth=dXNlcjpzZWNyZXQ=")  # user:secret
    assert not hits(spec, b"YWRtaW46c2VjcmV0")


def test_base64_decode_follows_a_legacy_modifier_into_its_buffer() -> None:
    # Suricata attaches base64_decode to the list of the last payload keyword
    spec = build(
        'content:"arg"; http_uri; base64_decode:bytes 17, offset 1, relative; '
        'base64_data; content:"thisisatest";'
    )
    assert set(spec.programs) == {"http.uri"}
    assert hits(spec, b"/?arg=dGhpc2lzYXRlc3QK", "http.uri")


def test_base64_decode_bytes_and_offset() -> None:
    spec = build('base64_decode:bytes 8,offset 2; base64_data; content:"admin";')
    assert hits(spec, b"..YWRtaW46c2VjcmV0")  # first 8 chars decode to "admin:"
    assert not hits(spec, b".YWRtaW46c2VjcmV0")
    short = build('base64_decode:bytes 4; base64_data; content:"admin";')
    assert not hits(short, b"YWRtaW46")


def test_base64_short_last_group_is_decoded() -> None:
    spec = build('base64_decode; base64_data; content:"ab"; endswith;')
    assert hits(spec, b"YWI")  # "ab" without padding


# --- fast pattern -----------------------------------------------------------------------


def test_fast_pattern_prefers_the_longest_content() -> None:
    spec = build('content:"ab"; content:"abcdef"; content:"xyz";')
    assert spec.fast_pattern is not None and spec.fast_pattern.pattern == b"abcdef"
    assert spec.fast_pattern.only and not spec.fast_pattern.negated


def test_fast_pattern_ties_break_on_pattern_strength() -> None:
    spec = build('content:"aaaa"; content:"|00 01 02 03|";')
    assert spec.fast_pattern is not None and spec.fast_pattern.pattern == b"\x00\x01\x02\x03"


def test_explicit_fast_pattern_wins_and_chop() -> None:
    spec = build('content:"abcdefgh"; content:"xyz"; fast_pattern;')
    assert spec.fast_pattern is not None and spec.fast_pattern.pattern == b"xyz"
    spec = build('content:"abcdefgh"; fast_pattern:2,3; nocase;')
    fp = spec.fast_pattern
    assert fp is not None and fp.pattern == b"cde" and fp.nocase and not fp.only


def test_fast_pattern_only_and_positioned_contents() -> None:
    assert build('content:"abc"; fast_pattern:only;').fast_pattern.only  # type: ignore[union-attr]
    fp = build('content:"abc"; depth:5;').fast_pattern
    assert fp is not None and not fp.only


def test_negated_content_is_chosen_only_without_alternatives() -> None:
    fp = build('content:!"longer-one"; content:"ab";').fast_pattern
    assert fp is not None and fp.pattern == b"ab"
    fp = build('content:!"evil";').fast_pattern
    assert fp is not None and fp.negated and not fp.only


def test_app_buffer_fast_pattern() -> None:
    fp = build('http.uri; content:"/login.php";').fast_pattern
    assert fp is not None and fp.buffer == "http.uri"


def test_no_content_no_fast_pattern() -> None:
    assert build('pcre:"/a+b/";').fast_pattern is None


# --- max_reach --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reach"),
    [
        ('content:"abc";', 3),
        ('content:"abc"; depth:10;', 10),
        ('content:"abc"; offset:4; depth:6;', 10),
        ('content:"ab"; content:"cd"; distance:2; within:5;', 9),
        ('content:"ab"; content:"cd"; distance:-4; within:6;', 6),
        ('content:"ab"; content:!"x"; within:4; content:"z"; distance:0; within:3;', 6),
        ('content:"ab"; isdataat:10,relative;', 12),
        ('content:"ab"; byte_test:2,>,1,3,relative;', 7),
        ('content:"abc"; startswith; content:"d"; distance:0; within:5;', 8),
        ('content:"ab"; depth:4; content:"cd"; depth:8;', 8),
        ('content:"ab"; content:"cd"; distance:0;', None),
        ('content:"ab"; content:"cd";', None),
        ('content:"ab"; depth:2; content:"cd";', None),
        ('content:"ab"; pcre:"/x/R";', None),
        ('content:"ab"; byte_jump:1,0,relative;', None),
        ('content:!"ab";', None),
        ('content:"ab"; isdataat:!1,relative;', None),
        ('http.uri; content:"ab";', 0),
    ],
)
def test_max_reach(body: str, reach: int | None) -> None:
    assert build(body).max_reach == reach


def test_max_reach_is_an_upper_bound_of_a_real_match() -> None:
    spec = build('content:"ab"; content:"cd"; distance:2; within:5;')
    buf = b"ab...cd"
    assert hits(spec, buf) and spec.max_reach is not None and len(buf) <= spec.max_reach
