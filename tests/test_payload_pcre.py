"""pcre: PCRE2 -> Python translation (flags, rewritten constructs, rejected ones) and matching."""

from __future__ import annotations

from pathlib import Path

import pytest
from pcapgen import TcpSession, alerts_of

from sensor.errors import RuleError, UnsupportedKeyword
from signatures.payload import MatchEnv, PayloadBuilder, PayloadSpec
from signatures.pcre import compile_pcre, split_pcre, translate


def rx_hit(expression: str, flags: str, subject: bytes) -> bool:
    return compile_pcre(expression.encode(), flags).search(subject) is not None


def build(
    *opts: tuple[str, str | None, bool], supported: frozenset[str] = frozenset()
) -> PayloadSpec:
    b = PayloadBuilder(supported)
    for name, value, quoted in opts:
        b.add(name, value, quoted)
    return b.finish()


def hits(spec: PayloadSpec, buf: bytes, buffer: str = "pkt_data") -> bool:
    env = MatchEnv()
    env.reset()
    return spec.programs[buffer].match(buf, env)


def test_split() -> None:
    assert split_pcre("/a;b/smi", True) == (b"a;b", "smi", False)
    assert split_pcre('!"/x/R"', False) == (b"x", "R", True)
    assert split_pcre("/a/b/i", True) == (b"a/b", "i", False)
    with pytest.raises(RuleError, match="unknown flag 'k'"):
        split_pcre("/a/k", True)
    with pytest.raises(RuleError, match="expected /expression/flags"):
        split_pcre("abc", True)


# --- flags ------------------------------------------------------------------------------


def test_flag_i() -> None:
    assert rx_hit("abc", "i", b"xABCx")
    assert not rx_hit("abc", "", b"xABCx")


def test_flag_s() -> None:
    assert rx_hit("a.b", "s", b"a\nb")
    assert not rx_hit("a.b", "", b"a\nb")


def test_flag_m() -> None:
    assert rx_hit("^b$", "m", b"a\nb\nc")
    assert not rx_hit("^b$", "", b"a\nb\nc")
    # PCRE's multiline ^ does not match after a newline that ends the subject
    assert not rx_hit("\\n^", "m", b"a\n")


def test_flag_x() -> None:
    assert rx_hit("a b # comment\n c", "x", b"abc")
    assert rx_hit("[ ]", "x", b" ")  # whitespace inside a class stays significant
    assert not rx_hit("a b", "x", b"a b")


def test_flag_A_anchors_at_the_start() -> None:
    spec = build(("pcre", "/bc/A", True))
    assert hits(spec, b"bcd")
    assert not hits(spec, b"abc")


def test_flag_E_and_default_dollar() -> None:
    assert rx_hit("a$", "", b"a\n")  # $ also before a final newline
    assert not rx_hit("a$", "E", b"a\n")
    assert rx_hit("a$", "E", b"a")
    assert not rx_hit("a$", "", b"a\n\n")


def test_flag_G_swaps_greediness() -> None:
    m = compile_pcre(b"a+", "G").search(b"aaa")
    assert m is not None and m.group(0) == b"a"
    m = compile_pcre(b"a+?", "G").search(b"aaa")
    assert m is not None and m.group(0) == b"aaa"
    m = compile_pcre(b"a{1,3}", "G").search(b"aaa")
    assert m is not None and m.group(0) == b"a"


@pytest.mark.parametrize("flag", ["B", "O"])
def test_compatibility_flags_have_no_effect(flag: str) -> None:
    assert rx_hit("abc", flag, b"abc")


@pytest.mark.parametrize(
    ("flag", "buffer"),
    [
        ("U", "http.uri"),
        ("I", "http.uri.raw"),
        ("P", "http.request_body"),
        ("Q", "file.data"),
        ("H", "http.header"),
        ("D", "http.header.raw"),
        ("M", "http.method"),
        ("C", "http.cookie"),
        ("S", "http.stat_code"),
        ("Y", "http.stat_msg"),
        ("V", "http.user_agent"),
        ("W", "http.host"),
        ("Z", "http.host.raw"),
    ],
)
def test_buffer_flags(flag: str, buffer: str) -> None:
    spec = build(("pcre", f"/abc/{flag}", True), supported=frozenset({buffer}))
    assert list(spec.programs) == [buffer]
    assert hits(spec, b"xabc", buffer)
    with pytest.raises(UnsupportedKeyword, match=f"pcre /{flag}"):
        build(("pcre", f"/abc/{flag}", True))


def test_flag_R_continues_after_the_previous_match() -> None:
    spec = build(("content", "ab", True), ("pcre", "/^c/R", True))
    assert hits(spec, b"xxabc")
    assert not hits(spec, b"xxab c")
    assert hits(spec, b"ab abc")  # the content retries, the pcre is relative to it


def test_pcre_sets_the_cursor_to_its_match_end() -> None:
    spec = build(("pcre", "/a[0-9]+/", True), ("content", "z", True), ("within", "1", False))
    assert hits(spec, b"a123z")
    assert not hits(spec, b"a123.z")


def test_pcre_retries_its_next_occurrence_when_relative_follows() -> None:
    spec = build(
        ("pcre", "/a./", True),
        ("content", "q", True),
        ("distance", "0", False),
        ("within", "1", False),
    )
    assert hits(spec, b"ab.acq")


def test_negated_pcre() -> None:
    spec = build(("content", "GET", True), ("pcre", '!"/admin/R"', False))
    assert hits(spec, b"GET /index")
    assert not hits(spec, b"GET /admin")
    assert hits(spec, b"admin GET /")


# --- constructs rewritten --------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "subject", "expected"),
    [
        ("(?<word>ab)\\k<word>", b"abab", True),
        ("(?'w'ab)\\k{w}", b"abab", True),
        ("(?P<w>ab)(?P=w)", b"abab", True),
        ("(ab)\\g{1}", b"abab", True),
        ("(ab)\\g1", b"abab", True),
        ("a\\z", b"a\n", False),
        ("a\\z", b"a", True),
        ("a\\Z", b"a\n", True),
        ("a\\Z", b"a\nb", False),
        ("\\Aab", b"ab", True),
        ("x\\hy", b"x\ty", True),
        ("x\\hy", b"x\xa0y", True),
        ("x\\Hy", b"x y", False),
        ("x\\vy", b"x\ny", True),
        ("x\\vy", b"x\x85y", True),
        ("x\\Vy", b"x\ry", False),
        ("a\\Rb", b"a\r\nb", True),
        ("a\\Rb", b"a\x0bb", True),
        ("a\\Nb", b"a\nb", False),
        ("[[:alpha:]]+1", b"xY1", True),
        ("[[:^digit:]]", b"123", False),
        ("[\\h]", b"\xa0", True),
        ("\\x41\\x{42}\\x4", b"AB\x04", True),
        ("\\o{101}\\o{102}\\01", b"AB\x01", True),
        ("\\cA", b"\x01", True),
        ("\\e", b"\x1b", True),
        ("\\Qa.b\\E", b"a.b", True),
        ("\\Qa.b\\E", b"axb", False),
        ("a{,2}", b"a{,2}", True),  # PCRE2 reads {,n} literally
        ("a{2}", b"aa", True),
        ("(?i)abc", b"ABC", True),
        ("a(?i:b)c", b"aBc", True),
        ("a(?i:b)c", b"aBC", False),
        ("a(?#note)b", b"ab", True),
        ("(?>a+)b", b"aab", True),
        ("a++b", b"aab", True),
        ("(a)?(?(1)b|c)", b"c", True),
        ("[]a]", b"]", True),
        ("[a-]", b"-", True),
        ("\\d\\s\\w", b"1 x", True),
        ("[\\d-z]", b"-", True),
        ("a\\.b", b"a.b", True),
    ],
)
def test_translated_constructs(expression: str, subject: bytes, expected: bool) -> None:
    assert rx_hit(expression, "", subject) is expected


def test_dollar_multiline() -> None:
    assert rx_hit("a$", "m", b"a\nb")
    assert rx_hit("a$", "mE", b"a\nb")  # E is ignored under m, as in PCRE


def test_utf8_literal_bytes() -> None:
    assert rx_hit("é", "", "xé".encode())


def test_translation_is_plain_ascii() -> None:
    assert translate("é[ä]".encode(), "").isascii()


# --- constructs rejected ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "construct"),
    [
        ("(?R)", "group"),
        ("(?1)", "group"),
        ("(?&name)", "group"),
        ("(?P>name)", "group"),
        ("(?|a|b)", "group"),
        ("(*UTF)a", "verb"),
        ("\\K", "escape \\K"),
        ("\\G", "escape \\G"),
        ("\\X", "escape \\X"),
        ("\\C", "escape \\C"),
        ("\\p{L}", "escape \\p"),
        ("\\x{100}", "above 0xff"),
        ("\\12", "multi-digit"),
        ("(a)\\g{-1}", "relative backreference"),
        ("\\g<1>", "subroutine"),
        ("a(?i)b", "after the start"),
        ("(?x)a", "inline option x"),
        ("(?m:a)", "inline option m"),
        ("(?U)a", "inline option U"),
        ("(?(R)a|b)", "condition"),
        ("(?(?=a)a|b)", "assertion condition"),
        ("(?<=a+)d", "variable-length lookbehind"),  # PCRE refuses it too
        ("\\N{U+41}", "\\N{...}"),
    ],
)
def test_rejected_constructs(expression: str, construct: str) -> None:
    with pytest.raises(RuleError, match="has no exact Python equivalent") as info:
        compile_pcre(expression.encode(), "")
    assert construct in str(info.value)
    assert str(info.value).startswith("pcre: ")


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("(ab", "cannot compile"),
        ("[ab", "missing terminating ]"),
        ("a{3,1}", "out of order"),
        ("[z-a]", "out of order"),
        ("a\\", "at end of pattern"),
        ("[[:nope:]]", "unknown POSIX class"),
    ],
)
def test_invalid_patterns(expression: str, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        compile_pcre(expression.encode(), "")


def test_two_buffer_flags_are_an_error() -> None:
    with pytest.raises(RuleError, match="more than one buffer"):
        build(("pcre", "/a/UH", True), supported=frozenset({"http.uri", "http.header"}))


def test_buffer_flag_with_sticky_buffer_active_is_an_error() -> None:
    with pytest.raises(RuleError, match="sticky buffer"):
        build(
            ("http.uri", None, False),
            ("pcre", "/a/H", True),
            supported=frozenset({"http.uri", "http.header"}),
        )


def test_q_flag_after_http_response_body_is_that_buffer(tmp_path: Path) -> None:
    """Suricata 7 loads ET's sid 2038501 (http.response_body; ... pcre:"/.../Qi"): the
    response body is the file_data list there, which /Q names. Same capture, same rule,
    checked against Suricata 7.0.10 by hand: one alert."""
    body = b"var x = function _0x1a2b3c(){return 1};"
    s = TcpSession(client="10.0.0.1", server="192.0.2.8", sport=80).handshake()
    s.send(True, b"GET /a.js HTTP/1.1\r\nHost: h\r\n\r\n")
    s.send(False, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    s.ack(True).close()
    rule = ('alert http any any -> any any (msg:"q"; flow:to_client; http.response_body; '
            'content:"function"; pcre:"/function\\s_0x[0-9a-f]{6}\\(/Qi"; sid:1;)')  # fmt: skip
    assert [a["alert"]["signature_id"] for a in alerts_of(tmp_path, s.frames, rule)] == [1]


def test_lookbehind_branches_of_different_lengths_are_split() -> None:
    """PCRE allows each top-level branch of a lookbehind its own fixed length; Python one
    length per lookbehind. One lookbehind per branch says the same."""
    from signatures.pcre import split_lookbehinds

    assert split_lookbehinds(r"a(?<!x|yz)b") == r"a(?<!x)(?<!yz)b"
    assert split_lookbehinds(r"(?<=[|)]|\)\)|(?:ab))c") == r"(?:(?<=[|)])|(?<=\)\))|(?<=(?:ab)))c"
    assert split_lookbehinds(r"(?<=ab)c|d") == r"(?<=ab)c|d"  # one branch: unchanged
    r = compile_pcre(rb"(?<=ab|c)d", "")
    assert [bool(r.search(s)) for s in (b"abd", b"cd", b"bd")] == [True, True, False]


def test_et_utf8_validation_rule_with_variable_lookbehinds(tmp_path: Path) -> None:
    """ET Open sid 2030348 (AnyDesk CVE-2020-13160) loads in Suricata 7.0.10; on these four
    datagrams Suricata alerts on the 1st (lone continuation byte) and 3rd (truncated
    two-byte sequence), checked by hand; a valid "é" and a valid 3-byte sequence do not."""
    from pcapgen import udp

    rule = (
        'alert udp any any -> any 50001 (msg:"anydesk"; isdataat:16; content:"|3e d1|"; '
        "depth:2; byte_test:4,>,16,11,relative,big; "
        r'pcre:"/^.{11}([\xC0-\xC1]|[\xF5-\xFF]|\xE0[\x80-\x9F]|\xF0[\x80-\x8F]|'
        r"[\xC2-\xDF](?![\x80-\xBF])|[\xE0-\xEF](?![\x80-\xBF]{2})|[\xF0-\xF4](?![\x80-\xBF]{3})|"
        r"(?<=[\x00-\x7F\xF5-\xFF])[\x80-\xBF]|(?<![\xC2-\xDF]|[\xE0-\xEF]|[\xE0-\xEF][\x80-\xBF]|"
        r"[\xF0-\xF4]|[\xF0-\xF4][\x80-\xBF]|[\xF0-\xF4][\x80-\xBF]{2})[\x80-\xBF]|"
        r"(?<=[\xE0-\xEF])[\x80-\xBF](?![\x80-\xBF])|(?<=[\xF0-\xF4])[\x80-\xBF](?![\x80-\xBF]{2})|"
        r'(?<=[\xF0-\xF4][\x80-\xBF])[\x80-\xBF](?![\x80-\xBF]))/R"; sid:2030348;)'
    )
    payloads = [b"A" * 11 + b"\x80\x00\x00\x00", b"A" * 11 + b"\xc3\xa9\x00\x00",
                b"A" * 11 + b"\xc3\x41\x00\x00", b"A" * 10 + b"\xe1\x81\x80\x00"]  # fmt: skip
    frames = [udp("203.0.113.9", "192.168.1.5", 40000 + i, 50001, b"\x3e\xd1" + p + b"B" * 8)
              for i, p in enumerate(payloads)]  # fmt: skip
    assert sorted(a["src_port"] for a in alerts_of(tmp_path, frames, rule)) == [40000, 40002]
