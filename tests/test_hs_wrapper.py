"""signatures/hs.py: the only code that touches Hyperscan (block mode, own scratch)."""

from __future__ import annotations

import pytest

from signatures.hs import LiteralSet, compile_literals


def test_scan_reports_each_present_pattern_once() -> None:
    s = LiteralSet.compile([(b"abc", False), (b"DEF", True), (b"\x00|*", False)])
    assert s.scan(b"xxabcdefabc\x00|*") == {0, 1, 2}
    assert s.scan(b"ABC def") == {1}  # case-sensitive vs nocase
    assert s.scan(b"") == set()


def test_metacharacters_and_binary_are_literal() -> None:
    s = LiteralSet.compile([(b".*(a)[b]+", False), (b"\xff\xfe", False)])
    assert s.scan(b"zzz.*(a)[b]+zz") == {0}
    assert s.scan(b"aab") == set()
    assert s.scan(b"\x01\xff\xfe") == {1}


def test_serialised_database_round_trips() -> None:
    s = LiteralSet.compile([(b"needle", True), (b"hay", False)])
    loaded = LiteralSet.loads(s.dumps(), 2)
    assert loaded.scan(b"a NEEDLE in the hay") == {0, 1}
    assert loaded.count == 2


def test_empty_pattern_lists() -> None:
    assert compile_literals([]) is None
    with pytest.raises(ValueError):
        LiteralSet.compile([])


def test_result_set_is_reused_between_scans() -> None:
    s = LiteralSet.compile([(b"a", False), (b"b", False)])
    first = s.scan(b"a")
    assert first == {0}
    assert s.scan(b"b") == {1} and first is s.scan(b"b")  # copy it to keep it
