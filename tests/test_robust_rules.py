"""Pathological rules are refused with a reason at load, or bounded while matching.

Python's ``re`` has no match limit, so exponential patterns (nested unbounded repeats) are
refused when the rule loads; one pcre call sees at most PCRE_MAX_SUBJECT bytes; keyword
chains longer than MAX_STEPS (each step is a level of recursion) are refused instead of
raising RecursionError on a packet; huge byte_jump/byte_extract values cannot move the
cursor outside the buffer. See docs/limits.md.
"""

from __future__ import annotations

from pathlib import Path

from sensor.config import DEFAULT_ADDRESS_GROUPS, DEFAULT_PORT_GROUPS
from signatures.buffers import APP_BUFFERS
from signatures.inspect import MAX_STEPS
from signatures.payload import MatchEnv, PayloadBuilder
from signatures.pcre import PCRE_MAX_SUBJECT
from signatures.ruleset import build_signatures
from signatures.variables import Variables

VARS = Variables(address_groups=dict(DEFAULT_ADDRESS_GROUPS), port_groups=dict(DEFAULT_PORT_GROUPS))


def load(tmp_path: Path, text: str) -> tuple[list[int], dict[str, int]]:
    path = tmp_path / "t.rules"
    path.write_text(text)
    sigs, report = build_signatures([str(path)], VARS)
    return [s.sid for s in sigs], report.skipped_by_reason


def test_catastrophic_pcre_refused_with_reason_others_load(tmp_path: Path) -> None:
    sids, skipped = load(tmp_path, "\n".join([
        'alert tcp any any -> any any (pcre:"/(a+)+$/"; sid:1;)',
        'alert tcp any any -> any any (content:"x"; pcre:"/^(\\w+\\/?)+\\.jsp/R"; sid:2;)',
        'alert tcp any any -> any any (pcre:"/^\\/(?:[^\\/]+\\/)*log/"; sid:3;)',
        'alert tcp any any -> any any (pcre:"/(a|b)+c/"; sid:4;)',
    ]))  # fmt: skip
    assert sids == [3, 4]
    assert skipped == {"pathological pcre": 2}


def test_overlong_keyword_chain_refused_not_recursion_error(tmp_path: Path) -> None:
    chain = ' content:"a"; distance:0;' * (MAX_STEPS + 5)
    ok_chain = ' content:"a"; distance:0;' * (MAX_STEPS - 5)
    sids, skipped = load(tmp_path, f"alert tcp any any -> any any (msg:\"x\";{chain} sid:1;)\n"
                                   f"alert tcp any any -> any any (msg:\"y\";{ok_chain} sid:2;)\n")  # fmt: skip
    assert sids == [2]
    assert skipped == {"pathological rule": 1}


def program(*opts: tuple[str, str | None]) -> PayloadBuilder:
    builder = PayloadBuilder(APP_BUFFERS)
    for name, value in opts:
        builder.add(name, value, False)
    return builder


def matches(builder: PayloadBuilder, buf: bytes) -> bool:
    env = MatchEnv()
    env.reset()
    return all(p.match(buf, env) for p in builder.finish().programs.values())


def test_longest_allowed_chain_matches_at_full_depth() -> None:
    opts = [("content", "a")] + [("content", "a"), ("distance", "0")] * (MAX_STEPS - 2)
    assert matches(program(*opts), b"a" * MAX_STEPS)
    assert not matches(program(*opts), b"a" * (MAX_STEPS - 10))


def test_huge_byte_jump_and_extract_stay_inside_the_buffer() -> None:
    jump = program(("content", "a"), ("byte_jump", "4,0,relative,multiplier 65535"),
                   ("content", "x"), ("distance", "0"))  # fmt: skip
    assert not matches(jump, b"a\xff\xff\xff\xff" + b"x" * 100)
    extract = program(("byte_extract", "4,0,n"), ("isdataat", "n"), ("content", "x"))
    assert not matches(extract, b"\xff\xff\xff\xff" + b"x" * 10)


def test_pcre_subject_is_bounded() -> None:
    near = b"." * (PCRE_MAX_SUBJECT - 10) + b"needle"
    far = b"." * PCRE_MAX_SUBJECT + b"needle"
    assert matches(program(("pcre", "/needle/")), near)
    assert not matches(program(("pcre", "/needle/")), far)  # documented bound
    # a polynomial pattern over a huge buffer finishes (bounded by the subject cap)
    assert not matches(program(("pcre", "/a.*b.*c.*d/s")), b"a" * (4 * PCRE_MAX_SUBJECT))
