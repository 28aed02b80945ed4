"""The reset planner: both entries (an alert's response context, the sensor's flow table)
give the same frames, exact RSTs first, and the frames are the ones build_rst makes."""

from __future__ import annotations

import ipaddress
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from responders.inject import RstSpec, build_rst
from responders.rst_plan import End, ends_from_alert, plan_frames
from sensor.config_values import parse_rt_priority
from sensor.errors import ResponderError

C_MAC, S_MAC = "02:00:00:00:00:0c", "02:00:00:00:00:05"


def _alert(cip: str, sip: str, c_next: int | None, s_next: int, **ctx: Any) -> dict[str, Any]:
    flow = {"src_ip": cip, "src_port": 40000, "dest_ip": sip, "dest_port": 80}
    c = {"next_seq": c_next, "window": 64000, "ttl": 63, "mac": C_MAC}
    s = {"next_seq": s_next, "window": 29000, "ttl": 58, "mac": S_MAC}
    return {"proto": "TCP", "direction": "to_server", "flow": flow, **flow,
            "sekimori": {"tcp": {"toserver": c, "toclient": s}, **ctx}}  # fmt: skip


@settings(max_examples=100, deadline=None)
@given(
    v6=st.booleans(),
    c_next=st.integers(0, 2**32 - 1),
    s_next=st.integers(0, 2**32 - 1),
    extra=st.integers(0, 3),
    vlan=st.lists(st.integers(0, 4095), max_size=2),
)
def test_planned_frames_are_build_rsts_frames_exact_first(
    v6: bool, c_next: int, s_next: int, extra: int, vlan: list[int]
) -> None:
    cip, sip = ("2001:db8::1", "2001:db8::2") if v6 else ("10.0.0.1", "10.0.0.2")
    ends = ends_from_alert(_alert(cip, sip, c_next, s_next, vlan=vlan))
    assert ends is not None
    frames, seqs = plan_frames(*ends, extra, 1460)
    assert ends[2] == tuple(vlan)
    exact = [
        build_rst(RstSpec(C_MAC, S_MAC, cip, sip, 40000, 80, c_next, s_next, 63, tuple(vlan))),
        build_rst(RstSpec(S_MAC, C_MAC, sip, cip, 80, 40000, s_next, c_next, 58, tuple(vlan))),
    ]
    assert frames[:2] == exact
    assert seqs["to_server"][0] == c_next and seqs["to_client"][0] == s_next
    # Both windows are wider than 3 x 1460: every extra asked for is planned, after the exact.
    assert seqs["to_server"] == [(c_next + k * 1460) % 2**32 for k in range(extra + 1)]
    assert len(frames) == len(seqs["to_server"]) + len(seqs["to_client"])


def test_a_side_never_seen_gets_no_rst_and_no_state_no_plan() -> None:
    ends = ends_from_alert(_alert("10.0.0.1", "10.0.0.2", None, 5000))
    assert ends is not None
    frames, seqs = plan_frames(*ends, 0, 1460)
    assert seqs == {"to_server": [], "to_client": [5000]} and len(frames) == 1
    nomac = End(b"\x0a\x00\x00\x01", 1, b"", 10, 0, 64)
    assert plan_frames(nomac, nomac, (), 0, 1460) == ([], {"to_server": [], "to_client": []})
    assert ends_from_alert({"proto": "UDP"}) is None


def test_bad_addresses_in_an_alert_are_a_responder_error() -> None:
    with pytest.raises(ResponderError, match="mixed IP versions"):
        ends_from_alert(_alert("10.0.0.1", "2001:db8::2", 1, 2))
    with pytest.raises(ResponderError, match="bad address"):
        ends_from_alert(_alert("10.0.0.999", "10.0.0.2", 1, 2))
    alert = _alert("10.0.0.1", "10.0.0.2", 1, 2)
    alert["sekimori"]["tcp"]["toserver"]["mac"] = "zz"
    with pytest.raises(ResponderError, match="bad MAC"):
        ends_from_alert(alert)


def test_rt_priority_setting() -> None:
    assert parse_rt_priority(0) == 0 and parse_rt_priority("10") == 10
    for bad in (-1, 100, "high", True, 1.5):
        with pytest.raises(ValueError, match="real-time priority"):
            parse_rt_priority(bad)


def test_realtime_scheduling_is_restored_after_the_live_loop(require_root: None) -> None:
    from sensor.pipeline import _realtime

    before = os.sched_getscheduler(0)
    with _realtime(7):
        assert os.sched_getscheduler(0) == os.SCHED_FIFO
        assert os.sched_getparam(0).sched_priority == 7
    assert os.sched_getscheduler(0) == before
    with _realtime(0):
        assert os.sched_getscheduler(0) == before


def test_addresses_round_trip() -> None:  # the planner's packed form is the address's own
    ends = ends_from_alert(_alert("192.0.2.7", "198.51.100.9", 1, 2))
    assert ends is not None
    assert ipaddress.ip_address(ends[0].addr) == ipaddress.ip_address("192.0.2.7")
    assert ends[1].port == 80 and ends[0].mac == bytes.fromhex(C_MAC.replace(":", ""))
