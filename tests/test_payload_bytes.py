"""byte_test, byte_jump, byte_extract, byte_math: Suricata documentation examples and edges."""

from __future__ import annotations

import pytest

from sensor.errors import RuleError
from signatures.bytekw import strtoull
from signatures.payload import MatchEnv, PayloadBuilder, PayloadSpec

Opt = tuple[str, str | None, bool]


def c(text: str) -> Opt:
    return ("content", text, True)


def k(name: str, value: str | None = None) -> Opt:
    return (name, value, False)


def build(*opts: Opt) -> PayloadSpec:
    b = PayloadBuilder(frozenset())
    for name, value, quoted in opts:
        b.add(name, value, quoted)
    return b.finish()


def run(spec: PayloadSpec, buf: bytes) -> tuple[bool, MatchEnv]:
    env = MatchEnv()
    env.reset()
    return spec.programs["pkt_data"].match(buf, env), env


def hits(spec: PayloadSpec, buf: bytes) -> bool:
    return run(spec, buf)[0]


HDR = b"\x00\x01\x00\x02"


# --- byte_test: the examples from Suricata's payload-keywords documentation -------------


def test_doc_num_equals_value() -> None:
    spec = build(c("|00 01 00 02|"), k("byte_test", "2,=,0x01,0"))
    assert hits(spec, HDR)
    assert not hits(spec, b"\x00\x02\x00\x01\x00\x02")


def test_doc_num_equals_value_relative() -> None:
    spec = build(c("|00 01 00 02|"), k("byte_test", "2,=,0x03,2,relative"))
    assert hits(spec, HDR + b"..\x00\x03")
    assert not hits(spec, HDR + b"..\x00\x04")


def test_doc_num_not_equal() -> None:
    spec = build(c("|00 01 00 02|"), k("byte_test", "2,!=,0x06,0"))
    assert hits(spec, HDR)
    assert not hits(spec, b"\x00\x06" + HDR)


def test_doc_large_values() -> None:
    spec = build(c("|00 01 00 02|"), k("byte_test", "2,>,1000,1,relative"))
    assert hits(spec, HDR + b".\x03\xe9")  # 1001
    assert not hits(spec, HDR + b".\x03\xe8")  # 1000


def test_doc_lowest_bit_set() -> None:
    spec = build(c("|00 01 00 02|"), k("byte_test", "2,&,0x01,12,relative"))
    assert hits(spec, HDR + b"." * 12 + b"\x10\x01")
    assert not hits(spec, HDR + b"." * 12 + b"\x10\x02")


def test_doc_compare_to_string() -> None:
    spec = build(c("foobar"), k("byte_test", "4,=,1337,1,relative,string,dec"))
    assert hits(spec, b"foobar 1337")
    assert not hits(spec, b"foobar 1338")


def test_byte_test_operators_and_negation() -> None:
    def t(op: str, value: int, data: bytes) -> bool:
        return hits(build(k("byte_test", f"1,{op},{value},0")), data)

    assert t("<", 5, b"\x04") and not t("<", 5, b"\x05")
    assert t("<=", 5, b"\x05") and not t("<=", 5, b"\x06")
    assert t(">=", 5, b"\x05") and not t(">=", 5, b"\x04")
    assert t("^", 5, b"\x04") and not t("^", 5, b"\x05")
    assert t("!<", 5, b"\x05") and not t("!<", 5, b"\x04")
    assert t("!", 5, b"\x04") and not t("!", 5, b"\x05")


def test_byte_test_endianness_and_bitmask() -> None:
    assert hits(build(k("byte_test", "2,=,0x0201,0,little")), b"\x01\x02")
    assert hits(build(k("byte_test", "2,=,0x0102,0,big")), b"\x01\x02")
    # bitmask 0x0ff0 keeps the middle 8 bits and shifts them down by 4
    assert hits(build(k("byte_test", "2,=,0xab,0,bitmask 0x0ff0")), b"\x1a\xb2")


def test_byte_test_out_of_buffer_is_no_match() -> None:
    spec = build(k("byte_test", "4,>,0,2"))
    assert not hits(spec, b"\x01\x02\x03\x04\x05")
    assert hits(spec, b"\x01\x02\x03\x04\x05\x06")


def test_byte_test_string_hex_and_oct() -> None:
    assert hits(build(k("byte_test", "2,=,255,0,string,hex")), b"ff")
    assert hits(build(k("byte_test", "3,=,8,0,string,oct")), b"010")
    assert not hits(build(k("byte_test", "2,=,0,0,string,dec")), b"zz")  # no digits


def test_strtoull_reads_a_prefix_like_c() -> None:
    assert strtoull(b" 12ab", 10) == 12
    assert strtoull(b"0x1f", 16) == 31
    assert strtoull(b"-1", 10) == (1 << 64) - 1
    assert strtoull(b"x", 10) is None
    assert strtoull(b"99999999999999999999", 10) is None  # ERANGE


# --- byte_jump ------------------------------------------------------------------------


def test_doc_byte_jump_example() -> None:
    spec = build(c("Alice"), k("byte_jump", "2,0"), c("Bob"))
    assert hits(spec, b"\x00\x03Alice...Bob")


def test_doc_multiple_jumps() -> None:
    spec = build(
        k("byte_jump", "2,0"),
        k("byte_jump", "2,0,relative"),
        c("foobar"),
        k("distance", "0"),
        k("within", "6"),
    )
    # jump 1: skip the 2-byte length (2) -> offset 4; read 2 more -> skip 3 -> offset 9
    data = b"\x00\x02..\x00\x03...foobar"
    assert hits(spec, data)
    assert not hits(spec, b"\x00\x02..\x00\x03....foobar")


def test_byte_jump_options() -> None:
    base = b"\x03" + b"." * 10 + b"XY"
    assert hits(
        build(k("byte_jump", "1,0,multiplier 2,post_offset 4"), c("XY"), k("within", "2")), base
    )
    # align rounds 3 up to 4: jump lands at 1 + 4 = 5
    assert hits(build(k("byte_jump", "1,0,align"), c("..."), k("within", "3")), base)
    assert hits(
        build(k("byte_jump", "1,0,from_beginning,post_offset 8"), c("XY"), k("within", "2")), base
    )
    # from_end: 13 (length) + 3 (value) - 5 = 11, where "XY" starts
    spec = build(
        k("byte_jump", "1,0,from_end,post_offset -5"), c("XY"), k("distance", "0"), k("within", "2")
    )
    assert hits(spec, base)


def test_byte_jump_past_the_end_fails_and_before_the_start_clamps() -> None:
    assert not hits(build(k("byte_jump", "1,0")), b"\x09abc")
    spec = build(k("byte_jump", "1,0,post_offset -100"), c("\x05"), k("within", "1"))
    assert hits(spec, b"\x05abc")  # clamped to the buffer start


def test_byte_jump_string() -> None:
    spec = build(k("byte_jump", "2,0,string,dec"), c("Z"), k("within", "1"))
    assert hits(spec, b"03abcZ")
    assert not hits(spec, b"03abZc")


# --- byte_extract -----------------------------------------------------------------------


def test_doc_byte_extract_distance() -> None:
    spec = build(
        c("Alice"), k("byte_extract", "2,0,size"), c("Bob"), k("distance", "size"), k("within", "3")
    )
    # the extract moves the cursor to 2, so "Bob" must start at 2 + size
    assert hits(spec, b"\x00\x08Alice...Bob")
    assert not hits(spec, b"\x00\x07Alice...Bob")


def test_doc_byte_extract_within() -> None:
    spec = build(
        c("|00 FF|"),
        k("byte_extract", "1,0,len,relative"),
        c("|5c 00|"),
        k("distance", "2"),
        k("within", "len"),
    )
    assert hits(spec, b"\x00\xff\x04..\x5c\x00")  # window [5, 9)
    assert not hits(spec, b"\x00\xff\x01..\x5c\x00")  # window [5, 6) is too short
    assert not hits(spec, b"\x00\xff\x04.....\x5c\x00")


def test_doc_byte_extract_compare_bytes() -> None:
    spec = build(
        c("|00 FF|"),
        k("byte_extract", "2,0,cmp_ver,relative"),
        c("FooBar"),
        k("distance", "0"),
        k("byte_test", "2,=,cmp_ver,0"),
    )
    assert hits(spec, b"\x00\x05\x00\xff\x00\x05FooBar")
    assert not hits(spec, b"\x00\x06\x00\xff\x00\x05FooBar")


def test_byte_extract_sets_variable_and_cursor() -> None:
    spec = build(k("byte_extract", "1,1,v,multiplier 3,align 4"))
    matched, env = run(spec, b".\x03")
    assert matched and env.vars["v"] == 12 and env.offset == 2


# --- byte_math --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("oper", "rvalue", "expected"),
    [("+", 10, 30), ("-", 5, 15), ("*", 3, 60), ("/", 3, 6), ("<<", 2, 80), (">>", 2, 5)],
)
def test_byte_math_operations(oper: str, rvalue: int, expected: int) -> None:
    spec = build(k("byte_math", f"bytes 1, offset 0, oper {oper}, rvalue {rvalue}, result r"))
    matched, env = run(spec, b"\x14")
    assert matched and env.vars["r"] == expected


def test_byte_math_with_variables_and_relative() -> None:
    spec = build(
        c("L"),
        k("byte_extract", "1,0,n,relative"),
        k(
            "byte_math",
            "bytes 2, offset 0, oper +, rvalue n, result total, relative, endian little",
        ),
        k("byte_test", "2,=,total,4,relative"),
    )
    # "L" 0x05 | 0x10 0x00 -> 16 + 5 = 21; byte_math leaves the cursor at 2, byte_test reads 6..7
    assert hits(spec, b"L\x05\x10\x00..\x00\x15")


def test_byte_math_divide_by_zero_is_no_match() -> None:
    spec = build(k("byte_math", "bytes 1, offset 0, oper /, rvalue 0, result r"))
    assert not hits(spec, b"\x01")


def test_byte_math_bitmask_applies_to_the_result() -> None:
    spec = build(k("byte_math", "bytes 1, offset 0, oper +, rvalue 1, result r, bitmask 0xf0"))
    matched, env = run(spec, b"\x1f")
    assert matched and env.vars["r"] == 2  # (0x1f + 1) & 0xf0 = 0x20, shifted by 4


# --- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("opt", "message"),
    [
        (k("byte_test", "2,=,1"), "at least 4"),
        (k("byte_test", "9,=,1,0"), "binary bytes must be 0-8"),
        (k("byte_test", "21,=,1,0,string,dec"), "string bytes must be 0-20"),
        (k("byte_test", "2,~,1,0"), "invalid operator"),
        (k("byte_test", "2,=,1,0,sideways"), "unknown option"),
        (k("byte_test", "2,=,1,0,hex"), "need 'string'"),
        (k("byte_test", "2,=,1,0,string,little"), "exclude each other"),
        (k("byte_test", "2,=,1,0,big,little"), "endianness given twice"),
        (k("byte_test", "2,=,nope,0"), "unknown variable 'nope'"),
        (k("byte_jump", "2,0,from_beginning,from_end"), "exclude each other"),
        (k("byte_jump", "2,0,multiplier 0"), "multiplier must be 1-65535"),
        (k("byte_extract", "2,0"), "at least 3"),
        (k("byte_extract", "2,0,9bad"), "invalid variable name"),
        (k("byte_extract", "2,0,v,align 3"), "align must be 2 or 4"),
        (k("byte_math", "bytes 1, offset 0, oper +, rvalue 1"), "at least 5"),
        (k("byte_math", "bytes 1, offset 0, oper %, rvalue 1, result r"), "invalid oper"),
        (
            k("byte_math", "bytes 5, offset 0, oper +, rvalue 1, result r"),
            "binary bytes must be 1-4",
        ),
        (
            k("byte_math", "bytes 1, offset 0, oper +, rvalue 1, result r, rvalue 2"),
            "exactly one value",
        ),
    ],
)
def test_errors(opt: Opt, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        build(opt)


def test_dce_reads_the_buffers_byte_order() -> None:
    """dce: little-endian only on a buffer marked so (a DCERPC stub), big-endian otherwise."""
    from sensor.applayer.common import LittleEndianData

    spec = build(k("byte_test", "2,=,1,0,dce"))
    assert spec.dce_pkt  # on pkt_data: the rule builder makes it a dcerpc rule
    assert hits(spec, b"\x00\x01") and not hits(spec, b"\x01\x00")
    assert hits(spec, LittleEndianData(b"\x01\x00"))
    spec = build(k("byte_math", "bytes 2, offset 0, oper +, rvalue 1, result r, endian dce"))
    assert run(spec, LittleEndianData(b"\x01\x00"))[1].vars["r"] == 2
    with pytest.raises(RuleError, match="dce excludes"):
        build(k("byte_test", "2,=,1,0,little,dce"))


def test_variables_are_rule_wide() -> None:
    # Suricata 7 accepts a variable extracted in one buffer in a later buffer's keyword
    # (suricata-verify detect-bytemath-05: ipv4.hdr byte_math result used in tcp.hdr).
    b = PayloadBuilder(frozenset({"http.uri"}))
    b.add("byte_extract", "1,0,v", False)
    b.add("http.uri", None, False)
    b.add("byte_test", "1,=,v,0", False)
    with pytest.raises(RuleError, match="unknown variable 'w'"):
        b.add("byte_test", "1,=,w,0", False)


def test_byte_jump_of_zero_bytes_moves_only_by_offsets() -> None:
    b = PayloadBuilder(frozenset())
    b.add("content", "|01 02|", True)
    b.add("byte_jump", "0,0,relative,post_offset -2", False)
    b.add("content", "|01 02 03|", True)
    b.add("within", "3", False)
    b.add("distance", "0", False)
    prog = b.finish().programs["pkt_data"]
    assert prog.match(b"\x00\x01\x02\x03", MatchEnv())
