"""icmpv6.mtu and rpc: parsing, per-packet checks, and a rule-level run."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import dpkt
import pytest
from pcapgen import TcpSession, udp
from test_detect_engine import _alerts
from test_events_keywords import _decode

from sensor.errors import RuleError
from signatures.l4kw import icmpv6_mtu, rpc


def _icmp6(itype: int, code: int, body: bytes) -> bytes:
    icmp = dpkt.icmp6.ICMP6(type=itype, code=code, data=body)
    ip6 = dpkt.ip6.IP6(src=socket.inet_pton(socket.AF_INET6, "2001:db8::1"),
                       dst=socket.inet_pton(socket.AF_INET6, "2001:db8::2"),
                       nxt=58, hlim=64, data=icmp, plen=len(bytes(icmp)))  # fmt: skip
    return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6,
                                        type=dpkt.ethernet.ETH_TYPE_IP6, data=ip6))  # fmt: skip


def _call(prog: int, vers: int, proc: int, mtype: int = 0) -> bytes:
    return struct.pack("!6I", 0x1234, mtype, 2, prog, vers, proc) + b"\x00" * 16


def test_icmpv6_mtu() -> None:
    too_big = _icmp6(2, 0, struct.pack("!I", 1280) + b"\x60" + b"\x00" * 39)
    other_code = _icmp6(2, 1, struct.pack("!I", 1280) + b"\x00" * 40)
    echo = _icmp6(128, 0, b"\x00\x01\x00\x01ping")
    pkts = _decode([too_big, other_code, echo])
    assert [icmpv6_mtu("1280")(p) for p in pkts] == [True, False, False]
    assert [icmpv6_mtu(">1500")(p) for p in pkts] == [False, False, False]
    assert icmpv6_mtu("<=1280")(pkts[0]) and icmpv6_mtu("1000-1300")(pkts[0])
    with pytest.raises(RuleError, match=r"icmpv6\.mtu"):
        icmpv6_mtu("big")


@pytest.mark.parametrize("value", ["", "abc", "1,aaa,*", "1,2,3,4", "99999999999", ",2"])
def test_rpc_bad_values(value: str) -> None:
    with pytest.raises(RuleError, match="rpc"):
        rpc(value)


def test_rpc_calls_over_udp_and_tcp() -> None:
    frames = [udp("10.0.0.1", "10.0.0.2", 700, 111, _call(100000, 2, 3)),
              udp("10.0.0.1", "10.0.0.2", 700, 111, _call(100000, 2, 3, mtype=1)),
              udp("10.0.0.1", "10.0.0.2", 700, 111, _call(100000, 2, 3)[:20])]  # fmt: skip
    s = TcpSession(sport=111).handshake().send(True, b"\x80\x00\x00\x28" + _call(100003, 3, 1))
    pkts = _decode(frames + s.frames)
    verdict = {v: [rpc(v)(p) for p in pkts] for v in
               ("100000,2,3", "100000, *, 3", "100000,2", "100000,*,*", "123456,*,3", "100003,3,1")}  # fmt: skip
    assert verdict["100000,2,3"] == [True] + [False] * 6
    assert verdict["100000, *, 3"] == verdict["100000,2"] == verdict["100000,*,*"]
    assert verdict["100000,*,*"] == [True] + [False] * 6
    assert not any(verdict["123456,*,3"])
    assert verdict["100003,3,1"] == [False] * 6 + [True]


def test_rules_with_rpc_and_mtu(tmp_path: Path) -> None:
    frames = [udp("10.0.0.1", "10.0.0.2", 700, 111, _call(100000, 2, 3)),
              _icmp6(2, 0, struct.pack("!I", 1400) + b"\x00" * 40)]  # fmt: skip
    rules = ('alert udp any any -> any 111 (msg:"getport"; rpc:100000,*,3; sid:1;)\n'
             'alert icmp any any -> any any (msg:"ptb"; icmpv6.mtu:<1500; sid:2;)\n')  # fmt: skip
    alerts = _alerts(tmp_path, frames, rules)
    assert sorted((a["pcap_cnt"], a["alert"]["signature_id"]) for a in alerts) == [(1, 1), (2, 2)]
