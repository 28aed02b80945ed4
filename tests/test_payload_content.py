"""content and its modifiers: pattern parsing, validation errors and Suricata 7 matching."""

from __future__ import annotations

import pytest

from sensor.errors import RuleError
from signatures.content import parse_pattern
from signatures.payload import MatchEnv, PayloadBuilder, PayloadSpec

try:
    from signatures.parser import RuleOption
except ImportError:  # pragma: no cover - stand-in until the parser lands
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class RuleOption:  # type: ignore[no-redef]
        name: str
        value: str | None
        quoted: bool


def opt(name: str, value: str | None = None) -> RuleOption:
    """Option as the rule parser hands it over: one pair of surrounding quotes removed."""
    if value is not None and len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return RuleOption(name, value[1:-1], True)
    return RuleOption(name, value, False)


def build(*opts: RuleOption, supported: frozenset[str] = frozenset()) -> PayloadSpec:
    b = PayloadBuilder(supported)
    for o in opts:
        assert b.claims(o.name)
        b.add(o.name, o.value, o.quoted)
    return b.finish()


def hits(spec: PayloadSpec, buf: bytes, buffer: str = "pkt_data") -> bool:
    env = MatchEnv()
    env.reset()
    return spec.programs[buffer].match(buf, env)


# --- pattern text ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "quoted", "expected"),
    [
        ("abc", True, (b"abc", False)),
        ("|41 42|C", True, (b"ABC", False)),
        ("a|0d0a|b", True, (b"a\r\nb", False)),
        ('x\\;y\\"z\\\\w\\:', True, (b'x;y"z\\w:', False)),
        ('!"abc"', False, (b"abc", True)),
        ('! "a|00|"', False, (b"a\x00", True)),
        ("é", True, ("é".encode(), False)),
    ],
)
def test_pattern_parsing(value: str, quoted: bool, expected: tuple[bytes, bool]) -> None:
    assert parse_pattern(value, quoted) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("|4G|", "invalid hex character 'G'"),
        ("|414|", "odd number of hex digits"),
        ("|41", "unterminated hex section"),
        ("", "empty pattern"),
        ("||", "empty pattern"),
        ("a\\nb", "invalid escape"),
        ('a"b', "unescaped '\"'"),
    ],
)
def test_pattern_errors(value: str, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        parse_pattern(value, True)


# --- modifier validation ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        ([opt("nocase")], "nocase: needs a preceding content"),
        ([opt("content", '"abc"'), opt("depth", "2")], "smaller than the content length 3"),
        ([opt("content", '"abc"'), opt("within", "2")], "less than the content length 3"),
        ([opt("content", '"a"'), opt("depth", "4"), opt("distance", "1")], "relative keyword"),
        ([opt("content", '"a"'), opt("within", "4"), opt("offset", "1")], "relative keyword"),
        ([opt("content", '"a"'), opt("offset", "1"), opt("offset", "2")], "multiple offsets"),
        ([opt("content", '"a"'), opt("nocase"), opt("nocase")], "multiple nocase"),
        ([opt("content", '"a"'), opt("startswith"), opt("depth", "3")], "startswith"),
        ([opt("content", '"a"'), opt("offset", "2"), opt("startswith")], "can't mix startswith"),
        ([opt("content", '"a"'), opt("depth", "x")], "unknown variable 'x'"),
        ([opt("content", '"a"'), opt("distance", "2000000")], "out of range"),
        ([opt("content", '"abc"'), opt("fast_pattern", "2,2")], "does not fit"),
        ([opt("content", '"abc"'), opt("fast_pattern", "sometimes")], "expected 'only'"),
        (
            [
                opt("content", '"a"'),
                opt("fast_pattern"),
                opt("content", '"b"'),
                opt("fast_pattern"),
            ],
            "only one content",
        ),
        (
            [opt("content", '"a"'), opt("fast_pattern", "only"), opt("depth", "3")],
            "fast_pattern:only",
        ),
        (
            [
                opt("content", '"a"'),
                opt("fast_pattern", "only"),
                opt("content", '"b"'),
                opt("distance", "0"),
            ],
            "fast_pattern:only content cannot be followed",
        ),
        ([opt("content", '!"a"'), opt("fast_pattern"), opt("depth", "3")], "negated content"),
    ],
)
def test_modifier_errors(opts: list[RuleOption], message: str) -> None:
    with pytest.raises(RuleError, match=message):
        build(*opts)


# --- matching ---------------------------------------------------------------------------


def test_offset_and_depth_bound_the_match() -> None:
    spec = build(opt("content", '"abc"'), opt("offset", "2"), opt("depth", "4"))
    assert hits(spec, b"..abc")
    assert hits(spec, b"...abc")  # offset 2 + depth 4 = window [2, 6)
    assert not hits(spec, b"....abc")
    assert not hits(spec, b"abc...")


def test_depth_before_offset_is_the_same_window() -> None:
    spec = build(opt("content", '"abc"'), opt("depth", "4"), opt("offset", "2"))
    assert hits(spec, b"...abc")
    assert not hits(spec, b"....abc")


def test_nocase() -> None:
    spec = build(opt("content", '"AbC"'), opt("nocase"))
    assert hits(spec, b"xxabcxx")
    assert hits(spec, b"ABC")
    assert not hits(build(opt("content", '"AbC"')), b"abc")


def test_distance_within_backtracks_to_a_later_occurrence() -> None:
    spec = build(
        opt("content", '"ab"'), opt("content", '"cd"'), opt("distance", "1"), opt("within", "3")
    )
    assert hits(spec, b"ab....ab.cd")  # first "ab" has no "cd" in its window; the second has
    assert not hits(spec, b"abcd")  # distance 1 skips the byte right after "ab"


def test_negative_distance_looks_back() -> None:
    spec = build(
        opt("content", '"cd"'), opt("content", '"ab"'), opt("distance", "-4"), opt("within", "4")
    )
    assert hits(spec, b"abcd")
    assert not hits(spec, b"ab..cd")


def test_distance_without_within_gives_up_after_the_first_occurrence() -> None:
    # Suricata: the next content is not within-relative, so the first "a" decides.
    spec = build(opt("content", '"a"'), opt("content", '"b"'), opt("distance", "0"))
    assert hits(spec, b"a..b")
    assert not hits(spec, b"b..a")


def test_negated_distance_only_does_not_backtrack() -> None:
    # Documented Suricata behaviour: "x" after the first "a" fails the rule even though the
    # second "a" has no "x" after it.
    spec = build(opt("content", '"a"'), opt("content", '!"x"'), opt("distance", "0"))
    assert not hits(spec, b"a.x.a")
    assert hits(spec, b"x.a..")


def test_negated_within_window() -> None:
    spec = build(
        opt("content", '"a"'), opt("content", '!"x"'), opt("distance", "0"), opt("within", "2")
    )
    assert hits(spec, b"a..x")
    assert not hits(spec, b"a.x")
    assert hits(spec, b"a.x.a..")  # the second "a" has no "x" in its window


def test_negated_plain_content() -> None:
    spec = build(opt("content", '"a"'), opt("content", '!"zz"'))
    assert hits(spec, b"a z z")
    assert not hits(spec, b"a zz")


def test_startswith_and_endswith() -> None:
    starts = build(opt("content", '"GET "'), opt("startswith"))
    assert hits(starts, b"GET /")
    assert not hits(starts, b" GET /")
    ends = build(opt("content", '".exe"'), opt("endswith"))
    assert hits(ends, b"a.exe.exe")
    assert not hits(ends, b"a.exe ")
    both = build(opt("content", '"abc"'), opt("startswith"), opt("endswith"))
    assert hits(both, b"abc")
    assert not hits(both, b"abcabc")


def test_relative_first_content_counts_from_the_buffer_start() -> None:
    spec = build(opt("content", '"ab"'), opt("distance", "2"), opt("within", "4"))
    assert hits(spec, b"..ab")
    assert not hits(spec, b".ab.")


def test_empty_buffer() -> None:
    assert not hits(build(opt("content", '"a"')), b"")
    assert hits(build(opt("content", '!"a"')), b"")


def test_isdataat() -> None:
    spec = build(opt("content", '"ab"'), opt("isdataat", "2,relative"))
    assert hits(spec, b"ab12")
    assert not hits(spec, b"ab1")
    assert hits(spec, b"ab1ab12")  # relative isdataat makes "ab" retry
    neg = build(opt("content", '"ab"'), opt("isdataat", "!1,relative"))
    assert hits(neg, b"xxab")
    assert not hits(neg, b"xxabc")
    absolute = build(opt("isdataat", "4"))
    assert hits(absolute, b"01234")
    assert not hits(absolute, b"0123")


def test_isdataat_errors() -> None:
    with pytest.raises(RuleError, match="unknown option 'sideways'"):
        build(opt("isdataat", "1,sideways"))
    with pytest.raises(RuleError, match="out of range"):
        build(opt("isdataat", "70000"))


def test_rawbytes_is_accepted_without_effect() -> None:
    spec = build(opt("content", '"a"'), opt("rawbytes"))
    assert hits(spec, b"a")


def test_offset_depth_from_byte_extract_variables() -> None:
    spec = build(
        opt("byte_extract", "1,0,off"),
        opt("byte_extract", "1,1,dep"),
        opt("content", '"x"'),
        opt("offset", "off"),
        opt("depth", "dep"),
    )
    assert hits(spec, b"\x04\x02..x.")  # window [4, 6)
    assert hits(spec, b"\x04\x02...x")
    assert not hits(spec, b"\x04\x02....x")
    assert not hits(spec, b"\x04\x02.x...")


def test_within_distance_from_variables() -> None:
    spec = build(
        opt("content", '"L"'),
        opt("byte_extract", "1,0,n,relative"),
        opt("content", '"z"'),
        opt("distance", "0"),
        opt("within", "n"),
    )
    assert hits(spec, b"L\x03..z")
    assert not hits(spec, b"L\x02..z")
