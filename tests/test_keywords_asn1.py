"""asn1: option parsing, the BER walker's checks (Suricata's own examples) and a rule run."""

from __future__ import annotations

from pathlib import Path

import pytest
from pcapgen import TcpSession
from test_detect_engine import _alerts

from sensor.errors import RuleError
from signatures.asn1 import Asn1Options, asn1_matches, parse_asn1

# X.690 Appendix A.3 (the example Suricata's tests use)
A3 = (b"\x60\x81\x85\x61\x10\x1a\x04John\x1a\x01P\x1a\x05Smith\xa0\x0a\x1a\x08Director"
      b"\x42\x01\x33\xa1\x0a\x43\x0819710917\xa2\x12\x61\x10\x1a\x04Mary\x1a\x01T\x1a\x05"
      b"Smith\xa3\x42\x31\x1f\x61\x11\x1a\x05Ralph\x1a\x01T\x1a\x05Smith\xa0\x0a\x43\x08"
      b"19571111\x31\x1f\x61\x11\x1a\x05Susan\x1a\x01B\x1a\x05Jones\xa0\x0a\x43\x0819590717")  # fmt: skip


def test_parse_options() -> None:
    assert parse_asn1("double_overflow, oversize_length 1024 relative_offset 10,\n bitstring_overflow") \
        == Asn1Options(True, True, 1024, None, 10)  # fmt: skip
    assert parse_asn1("oversize_length 1024,relative_offset -1") == Asn1Options(
        oversize_length=1024, relative_offset=-1)  # fmt: skip


@pytest.mark.parametrize("value", ["", "oversize_length", "oversize_length -1",
                                   "absolute_offset 65536", "relative_offset -65536",
                                   "oversize_length 1024, some_other_param 360",
                                   "oversize_length 1024,,", "bitstring_overflowabsolute_offset"])  # fmt: skip
def test_bad_options(value: str) -> None:
    with pytest.raises(RuleError, match="asn1"):
        parse_asn1(value)


def test_checks() -> None:
    assert asn1_matches(A3, 0, parse_asn1("oversize_length 132 absolute_offset 0"))
    assert not asn1_matches(A3, 0, parse_asn1("oversize_length 133 absolute_offset 0"))
    assert asn1_matches(b"\x03\x01\xff", 0, parse_asn1("bitstring_overflow"))
    assert not asn1_matches(b"\x03\x01\x07", 0, parse_asn1("bitstring_overflow"))
    real = bytearray(b"\x05" * 261)
    real[0:4] = b"\x09\x82\x01\x01"  # REAL, 257 bytes, decimal encoding
    assert asn1_matches(bytes(real), 0, parse_asn1("double_overflow"))
    real[3] = 0  # 256 bytes
    assert not asn1_matches(bytes(real[:260]), 0, parse_asn1("double_overflow"))


def test_offsets_and_limits() -> None:
    data = b"XXXX\x03\x01\xff"
    assert not asn1_matches(data, 0, parse_asn1("bitstring_overflow"))  # "XX..." does not decode
    assert asn1_matches(data, 0, parse_asn1("bitstring_overflow, absolute_offset 4"))
    assert asn1_matches(data, 2, parse_asn1("bitstring_overflow, relative_offset 2"))
    assert not asn1_matches(data, 2, parse_asn1("bitstring_overflow, relative_offset 20"))
    # more than 30 top-level objects with data left: no match, even after a hit
    many = b"\x03\x01\xff" + b"\x05\x00" * 31
    assert not asn1_matches(many, 0, parse_asn1("bitstring_overflow"))
    assert asn1_matches(many[: 3 + 2 * 29], 0, parse_asn1("bitstring_overflow"))
    # nested and indefinite-length constructed objects are walked
    nested = b"\x30\x80\x30\x03\x03\x01\xff\x00\x00"
    assert asn1_matches(nested, 0, parse_asn1("bitstring_overflow"))


def test_rule_with_asn1(tmp_path: Path) -> None:
    s = TcpSession(sport=389).handshake().send(True, b"LDAP" + b"\x30\x05\x03\x01\xff\x05\x00")
    s.send(True, b"LDAP" + b"\x30\x05\x03\x01\x07\x05\x00")
    rules = ('alert tcp any any -> any 389 (msg:"asn1"; content:"LDAP"; '
             'asn1:bitstring_overflow, relative_offset 0; sid:1;)\n')  # fmt: skip
    alerts = _alerts(tmp_path, s.frames, rules)
    assert [a["pcap_cnt"] for a in alerts] == [4]
