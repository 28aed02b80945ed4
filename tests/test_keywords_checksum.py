"""Checksum keywords (ipv4-csum ... icmpv6-csum): parsing, per-packet verdicts, pipeline."""

from __future__ import annotations

import socket
from pathlib import Path

import dpkt
import pytest
from pcapgen import icmp_echo, udp
from test_detect_engine import _alerts
from test_events_keywords import _decode

from sensor.errors import RuleError
from signatures.checksums import CHECKSUM_KEYWORDS, ones_sum_is_valid


def _corrupt(frame: bytes, offset: int) -> bytes:
    """Flip one checksum byte at ``offset`` (from the Ethernet frame start)."""
    b = bytearray(frame)
    b[offset] ^= 0xFF
    return bytes(b)


def _eth6(l4: dpkt.Packet, nxt: int) -> bytes:
    ip6 = dpkt.ip6.IP6(src=socket.inet_pton(socket.AF_INET6, "2001:db8::1"),
                       dst=socket.inet_pton(socket.AF_INET6, "2001:db8::2"),
                       nxt=nxt, hlim=64, data=l4, plen=len(bytes(l4)))  # fmt: skip
    return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6,
                                        type=dpkt.ethernet.ETH_TYPE_IP6, data=ip6))  # fmt: skip


def test_ones_complement_sum() -> None:
    assert ones_sum_is_valid(b"\xff\xff")
    assert ones_sum_is_valid(b"\x12\x34\xed\xcb")
    assert not ones_sum_is_valid(b"\x12\x34\xed\xca")
    assert not ones_sum_is_valid(b"")


@pytest.mark.parametrize("value", ["bogus", "", None, "valid,invalid"])
def test_bad_values_are_rule_errors(value: str | None) -> None:
    with pytest.raises(RuleError, match="tcpv4-csum"):
        CHECKSUM_KEYWORDS["tcpv4-csum"](value)


def test_ipv4_udp_icmp_verdicts() -> None:
    good_udp = udp("10.0.0.1", "10.0.0.2", 1000, 53, b"query")
    bad_ip = _corrupt(good_udp, 14 + 10)  # IPv4 header checksum
    bad_udp = _corrupt(good_udp, 14 + 20 + 6)  # UDP checksum
    nosum = bytearray(good_udp)
    nosum[14 + 26 : 14 + 28] = b"\x00\x00"  # UDP/IPv4: "no checksum"
    good_icmp = icmp_echo("10.0.0.1", "10.0.0.2")
    bad_icmp = _corrupt(good_icmp, 14 + 20 + 2)
    pkts = _decode([good_udp, bad_ip, bad_udp, bytes(nosum), good_icmp, bad_icmp])
    verdicts = {k: ([CHECKSUM_KEYWORDS[k]("valid")(p) for p in pkts],
                    [CHECKSUM_KEYWORDS[k]("invalid")(p) for p in pkts])
                for k in ("ipv4-csum", "udpv4-csum", "icmpv4-csum", "tcpv4-csum")}  # fmt: skip
    assert verdicts["ipv4-csum"] == ([True, False, True, True, True, True],
                                     [False, True, False, False, False, False])  # fmt: skip
    assert verdicts["udpv4-csum"] == ([True, True, False, False, False, False],
                                      [False, False, True, False, False, False])  # fmt: skip
    assert verdicts["icmpv4-csum"] == ([False] * 4 + [True, False], [False] * 5 + [True])
    assert verdicts["tcpv4-csum"] == ([False] * 6, [False] * 6)


def test_ipv6_verdicts() -> None:
    tcp6 = _eth6(dpkt.tcp.TCP(sport=1, dport=80, flags=dpkt.tcp.TH_SYN, win=10), 6)
    udp6 = _eth6(dpkt.udp.UDP(sport=1, dport=53, ulen=13, data=b"hello"), 17)
    icmp6 = _eth6(dpkt.icmp6.ICMP6(type=128, code=0, data=b"\x00\x01\x00\x01ping"), 58)
    frames = [tcp6, _corrupt(tcp6, 14 + 40 + 16), udp6, _corrupt(udp6, 14 + 40 + 6),
              icmp6, _corrupt(icmp6, 14 + 40 + 2)]  # fmt: skip
    pkts = _decode(frames)
    for kw, idx in (("tcpv6-csum", 0), ("udpv6-csum", 2), ("icmpv6-csum", 4)):
        valid = [CHECKSUM_KEYWORDS[kw]("valid")(p) for p in pkts]
        invalid = [CHECKSUM_KEYWORDS[kw]("invalid")(p) for p in pkts]
        assert [i for i, v in enumerate(valid) if v] == [idx], kw
        assert [i for i, v in enumerate(invalid) if v] == [idx + 1], kw
    assert not any(CHECKSUM_KEYWORDS["ipv4-csum"]("invalid")(p) for p in pkts)


def test_rules_alert_on_bad_checksums(tmp_path: Path) -> None:
    good = udp("10.0.0.1", "10.0.0.2", 1000, 53, b"query")
    frames = [good, _corrupt(good, 14 + 20 + 6), _corrupt(good, 14 + 10)]
    rules = ('alert udp any any -> any any (msg:"bad udp"; udpv4-csum:invalid; sid:1;)\n'
             'alert ip any any -> any any (msg:"bad ip"; ipv4-csum:"INVALID"; sid:2;)\n'
             'alert udp any any -> any any (msg:"good"; udpv4-csum:valid; ipv4-csum:valid; '
             'sid:3;)\n')  # fmt: skip
    alerts = _alerts(tmp_path, frames, rules)
    assert sorted((a["pcap_cnt"], a["alert"]["signature_id"]) for a in alerts) == [
        (1, 3), (2, 1), (3, 2)]  # fmt: skip
