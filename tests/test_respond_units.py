"""Unit tests of the reset building blocks: sequence arithmetic, RST frames, the outcome
rule, the response policy and the ``[respond]`` configuration. No network, no Redis."""

from __future__ import annotations

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from responders import config as rconfig
from responders.builtin.tcp_reset import TcpResetResponder, capture_time
from responders.inject import RstSpec, build_rst
from responders.outcome import CONFIRMED, FAILED, ResetWatch, Seen, judge, parse_tcp, quiet_verdict
from responders.policy import decide
from responders.seq import (
    reset_burst,
    scaled_window,
    segment_end,
    seq_add,
    seq_diff,
    seq_in_window,
    seq_lt,
)
from sensor.errors import ConfigError, ResponderError

SEQS = st.integers(min_value=0, max_value=2**32 - 1)


# -- sequence numbers --------------------------------------------------------------------------


def test_addition_wraps_around() -> None:
    assert seq_add(2**32 - 1, 1) == 0
    assert seq_add(2**32 - 10, 20) == 10
    assert seq_add(5, -10) == 2**32 - 5


def test_distance_and_order_across_the_wrap() -> None:
    assert seq_diff(5, 2**32 - 5) == 10
    assert seq_diff(2**32 - 5, 5) == -10
    assert seq_lt(2**32 - 1, 0)
    assert not seq_lt(0, 2**32 - 1)


@given(SEQS, st.integers(min_value=-(2**31) + 1, max_value=2**31 - 1))
def test_diff_inverts_add(seq: int, n: int) -> None:
    assert seq_diff(seq_add(seq, n), seq) == n


def test_syn_and_fin_consume_one_sequence_number() -> None:
    assert segment_end(100, 0, syn=True) == 101
    assert segment_end(100, 10) == 110
    assert segment_end(100, 10, fin=True) == 111
    assert segment_end(2**32 - 1, 0, syn=True) == 0  # the SYN of an ISN at the top wraps


def test_window_scaling() -> None:
    assert scaled_window(65535, 0) == 65535
    assert scaled_window(512, 7) == 65536
    assert scaled_window(1, 20) == 1 << 14  # RFC 7323 caps the shift at 14
    assert scaled_window(100, -1) == 100  # unknown shift: unscaled


def test_window_acceptance_wraps() -> None:
    assert seq_in_window(2**32 - 1, 2**32 - 10, 100)
    assert seq_in_window(5, 2**32 - 10, 100)
    assert not seq_in_window(2**32 - 11, 2**32 - 10, 100)
    assert not seq_in_window(90, 2**32 - 10, 100)


def test_reset_burst_exact_first_then_extras_inside_the_window() -> None:
    assert reset_burst(1000, 0, 1460, 65535) == [1000]
    assert reset_burst(1000, 3, 1460, 65535) == [1000, 2460, 3920, 5380]
    assert reset_burst(1000, 3, 1460, 2500) == [1000, 2460]  # 3920 is beyond the window
    assert reset_burst(2**32 - 100, 1, 1460, 0) == [2**32 - 100, 1360]  # wraps; window unknown


# -- frames ------------------------------------------------------------------------------------


def test_ipv4_rst_frame_has_valid_checksums_macs_vlan_and_ttl() -> None:
    spec = RstSpec("02:00:00:00:00:01", "02:00:00:00:00:02", "10.0.0.1", "10.0.0.2", 40000, 80,
                   seq=2**32 - 1, ack=77, ttl=61, vlan=(10,))  # fmt: skip
    eth = dpkt.ethernet.Ethernet(build_rst(spec))
    assert eth.src == bytes.fromhex("020000000001") and eth.dst == bytes.fromhex("020000000002")
    assert [tag.id for tag in eth.vlan_tags] == [10]
    ip = eth.data
    assert isinstance(ip, dpkt.ip.IP) and ip.ttl == 61
    tcp = ip.data
    assert (tcp.sport, tcp.dport, tcp.seq, tcp.ack) == (40000, 80, 2**32 - 1, 77)
    assert tcp.flags == dpkt.tcp.TH_RST | dpkt.tcp.TH_ACK and tcp.win == 0
    raw = bytes(ip)
    again = dpkt.ip.IP(raw)
    again.sum = 0
    again.data.sum = 0
    assert bytes(again) == raw  # dpkt recomputes both checksums to the same values
    assert parse_tcp(build_rst(spec)) == (bytes([10, 0, 0, 1]), 40000, bytes([10, 0, 0, 2]), 80,
                                          0x14, 2**32 - 1, 77, 0)  # fmt: skip


def test_ipv6_rst_frame() -> None:
    spec = RstSpec("02:00:00:00:00:01", "02:00:00:00:00:02",
                   "2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::2", 1, 2, 5, 6, 64)  # fmt: skip
    eth = dpkt.ethernet.Ethernet(build_rst(spec))
    assert isinstance(eth.data, dpkt.ip6.IP6) and eth.data.hlim == 64
    assert eth.data.data.seq == 5


@pytest.mark.parametrize("mac", ["zz:00:00:00:00:01", "02:00:00:00:01", ""])
def test_bad_mac_is_a_responder_error(mac: str) -> None:
    with pytest.raises(ResponderError):
        build_rst(RstSpec(mac, "02:00:00:00:00:02", "10.0.0.1", "10.0.0.2", 1, 2, 3, 4, 64))


def test_mixed_ip_versions_are_refused() -> None:
    with pytest.raises(ResponderError, match="mixed"):
        build_rst(RstSpec("02:00:00:00:00:01", "02:00:00:00:00:02", "10.0.0.1", "::1", 1, 2,
                          3, 4, 64))  # fmt: skip


# -- outcome -----------------------------------------------------------------------------------

WATCH = ResetWatch(client=(b"\x0a\0\0\1", 40000), server=(b"\x0a\0\0\2", 80),
                   to_server_seq=1000, to_client_seq=5000, sent_at=100.0, window_s=0.5,
                   grace_s=0.001, on_verdict=lambda v: None)  # fmt: skip


def test_in_flight_packets_are_not_evidence() -> None:
    assert judge(WATCH, Seen(100.0005, False, 0x18, 5000, 1000, 100)) is None


def test_data_after_the_reset_fails() -> None:
    verdict = judge(WATCH, Seen(100.2, False, 0x18, 5000, 1000, 100))
    assert verdict is not None and verdict.status == FAILED and "server" in verdict.reason


def test_challenge_ack_fails() -> None:
    verdict = judge(WATCH, Seen(100.01, False, 0x10, 5000, 1200, 0))
    assert verdict is not None and verdict.status == FAILED
    assert "challenge ACK" in verdict.reason


def test_rsts_are_not_failure() -> None:
    assert judge(WATCH, Seen(100.01, True, 0x14, 1000, 5000, 0)) is None
    assert quiet_verdict(WATCH, 2, 2).status == CONFIRMED
    assert quiet_verdict(WATCH, 0, 0).reason == "quiet for 500 ms after the reset"


# -- policy ------------------------------------------------------------------------------------


def _eve(action: str = "drop", sid: int = 1, severity: int = 3, mode: str = "detect") -> dict:
    return {"event_type": "alert", "alert": {"signature_id": sid, "severity": severity,
            "category": "Attempted Administrator Privilege Gain", "action": "allowed"},
            "sekimori": {"rule_action": action, "mode": mode}}  # fmt: skip


def test_policy_triggers_on_drop_and_reject_actions_only_by_default() -> None:
    policy = rconfig.PolicyConfig()
    for action in ("drop", "reject", "rejectsrc", "rejectdst", "rejectboth"):
        assert decide(policy, "prevent", _eve(action)).triggered
    assert not decide(policy, "prevent", _eve("alert")).triggered


def test_policy_by_sid_classtype_and_severity() -> None:
    assert decide(rconfig.PolicyConfig(sids=(7,)), "prevent", _eve("alert", sid=7)).triggered
    by_class = rconfig.PolicyConfig(classtypes=("Attempted Administrator Privilege Gain",))
    assert decide(by_class, "prevent", _eve("alert")).triggered
    by_severity = rconfig.PolicyConfig(max_severity=1)
    assert decide(by_severity, "prevent", _eve("alert", severity=1)).triggered
    assert not decide(by_severity, "prevent", _eve("alert", severity=2)).triggered


def test_detect_mode_never_enforces() -> None:
    policy = rconfig.PolicyConfig()
    assert not decide(policy, "detect", _eve(mode="prevent")).enforce
    assert decide(policy, "prevent", _eve(mode="detect")).enforce
    assert not decide(policy, "sensor", _eve(mode="detect")).enforce
    assert decide(policy, "sensor", _eve(mode="prevent")).enforce
    suricata = {"event_type": "alert", "alert": {"action": "blocked", "signature_id": 1}}
    assert decide(policy, "sensor", suricata).triggered
    assert not decide(policy, "sensor", suricata).enforce


# -- configuration -----------------------------------------------------------------------------


def test_config_layers_file_and_set() -> None:
    doc = {"outputs": {"redis": {"url": "redis://10.0.0.9:6380/0"}},
           "respond": {"mode": "detect", "responders": ["tcp-reset", "log"],
                       "tcp-reset": {"interface": "eth2", "timeout_s": 0.5}}}  # fmt: skip
    cfg = rconfig.build(doc, ["respond.mode=prevent", "respond.tcp-reset.extra=2",
                              "respond.policy.sids=[1,2]"])  # fmt: skip
    assert cfg.mode == "prevent"
    assert cfg.consumer.redis.url == "redis://10.0.0.9:6380/0"
    assert cfg.table("tcp-reset")["extra"] == 2 and cfg.table("tcp-reset")["interface"] == "eth2"
    assert cfg.call("tcp-reset").timeout_s == 0.5 and cfg.call("log").timeout_s == 2.0
    assert cfg.policy.sids == (1, 2)
    assert cfg.responders == ("tcp-reset", "log")


@pytest.mark.parametrize(("doc", "sets", "message"), [
    ({"respond": {"mode": "block"}}, [], "respond.mode"),
    ({"respond": {"responders": "x", "timeout_s": -1}}, [], "timeout_s"),
    ({}, ["mode=prevent"], "respond.KEY=VALUE"),
    ({"respond": {"redis": {"url": "http://x"}}}, [], "scheme"),
    ({"respond": {"policy": {"sids": ["a"]}}}, [], "respond.sids"),
])  # fmt: skip
def test_config_errors_name_the_key(doc: dict, sets: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        rconfig.build(doc, sets)


def test_tcp_reset_needs_an_interface_and_skips_without_flow_state() -> None:
    with pytest.raises(ResponderError, match="interface"):
        TcpResetResponder({})
    responder = TcpResetResponder({"interface": "lo", "watch": False})
    outcome = responder.respond({"proto": "UDP"}, enforce=True)
    assert outcome.status == "skipped" and outcome.details["decision"] == "not_applicable"


def test_capture_time_reads_eve_timestamps() -> None:
    assert capture_time({"timestamp": "2023-11-14T22:13:20.000123+0000"}) == 1700000000.000123
    assert capture_time({"timestamp": "garbage"}) is None


def _dpkt_rst(spec: RstSpec) -> bytes:
    """The same reset built with dpkt's classes: the reference for the hand-packed frame."""
    import ipaddress
    import struct

    tcp = dpkt.tcp.TCP(sport=spec.sport, dport=spec.dport, seq=spec.seq, ack=spec.ack,
                       flags=dpkt.tcp.TH_RST | dpkt.tcp.TH_ACK, win=0)  # fmt: skip
    src, dst = ipaddress.ip_address(spec.src_ip), ipaddress.ip_address(spec.dst_ip)
    ip: dpkt.Packet
    if src.version == 4:
        ip = dpkt.ip.IP(src=src.packed, dst=dst.packed, p=6, ttl=spec.ttl, data=tcp, len=40)
        ethertype = 0x0800
    else:
        ip = dpkt.ip6.IP6(src=src.packed, dst=dst.packed, nxt=6, hlim=spec.ttl, data=tcp, plen=20)
        ethertype = 0x86DD
    head = bytes.fromhex(spec.dst_mac.replace(":", "")) + bytes.fromhex(
        spec.src_mac.replace(":", "")
    )
    for vid in spec.vlan:
        head += struct.pack("!HH", 0x8100, vid)
    return head + struct.pack("!H", ethertype) + bytes(ip)


@settings(max_examples=300, deadline=None)
@given(
    v6=st.booleans(),
    addrs=st.tuples(st.integers(0, 2**128 - 1), st.integers(0, 2**128 - 1)),
    ports=st.tuples(st.integers(0, 65535), st.integers(0, 65535)),
    seq=st.integers(0, 2**32 - 1),
    ack=st.integers(0, 2**32 - 1),
    ttl=st.integers(1, 255),
    vlan=st.lists(st.integers(0, 4095), max_size=2),
)
def test_hand_packed_rst_equals_the_dpkt_built_frame(
    v6: bool, addrs: tuple[int, int], ports: tuple[int, int], seq: int, ack: int, ttl: int,
    vlan: list[int],
) -> None:  # fmt: skip
    import ipaddress

    make = ipaddress.IPv6Address if v6 else ipaddress.IPv4Address
    src, dst = (str(make(a % (2**128 if v6 else 2**32))) for a in addrs)
    spec = RstSpec("02:00:00:00:00:01", "0a:bb:cc:dd:ee:ff", src, dst, ports[0], ports[1],
                   seq, ack, ttl, tuple(vlan))  # fmt: skip
    assert build_rst(spec) == _dpkt_rst(spec)
