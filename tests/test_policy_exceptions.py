"""Exceptions: suppressions by sid and CIDR, Suricata threshold.config entries (threshold,
limit, both, rate_filter), pass entries, owners and expiry."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from sensor.errors import ConfigError
from sensor.policy import PolicyDecider, RuleFacts, load_policy, parse_policy
from sensor.policy.thresholdconf import parse_threshold_config

TODAY = dt.date(2026, 6, 1)


def rec(src: str, dst: str, sid: int, proto: str = "TCP", dport: int = 80) -> dict:
    return {"event_type": "alert", "src_ip": src, "dest_ip": dst, "proto": proto,
            "dest_port": dport, "alert": {"gid": 1, "signature_id": sid, "severity": 2}}  # fmt: skip


def kept(decider: PolicyDecider, sids_and_times: list[tuple[int, float]],
         src: str = "10.0.0.1", dst: str = "203.0.113.9") -> list[bool]:  # fmt: skip
    return [decider.decide(rec(src, dst, sid), RuleFacts(sid=sid), t, TODAY).keep
            for sid, t in sids_and_times]  # fmt: skip


THRESHOLD_CONF = """\
# owner: alice; reason: backup server floods this rule; expires: 2027-01-01
suppress gen_id 1, sig_id 100, track by_src, ip 10.0.0.0/8
suppress gen_id 1, sig_id 101
# owner: bob; reason: one per minute is enough
threshold gen_id 1, sig_id 102, type limit, track by_src, count 2, seconds 60
threshold gen_id 1, sig_id 103, type threshold, track by_rule, count 3, seconds 60
event_filter gen_id 1, sig_id 104, type both, track by_dst, count 2, seconds 60
rate_filter gen_id 1, sig_id 105, track by_rule, count 2, seconds 60, new_action drop, timeout 30
suppress gen_id 1, sig_id 106, track by_either, ip [$LAB, 192.0.2.1]
"""


@pytest.fixture
def decider(tmp_path: Path) -> PolicyDecider:
    (tmp_path / "threshold.config").write_text(THRESHOLD_CONF)
    (tmp_path / "policy.toml").write_text("""
mode = "prevent"
threshold_files = ["threshold.config"]

[[suppress]]
sid = [200, 201]
dst = "203.0.113.0/24"
owner = "carol"
reason = "the partner's scanner"

[[suppress]]
sid = 202
owner = "carol"
reason = "retired"
expires = 2026-01-01

[[pass]]
src = "10.9.9.9"
proto = "tcp"
dst_port = [80, 443]
owner = "dave"
reason = "the monitoring probe"
""")
    return PolicyDecider(load_policy(str(tmp_path / "policy.toml"), {"LAB": "[172.16.5.0/24]"}))


def test_suppress_by_sid_and_cidr(decider: PolicyDecider) -> None:
    assert kept(decider, [(100, 1.0)]) == [False]  # src 10.0.0.1 in 10/8
    assert kept(decider, [(100, 1.0)], src="198.51.100.1") == [True]
    assert kept(decider, [(101, 1.0)], src="198.51.100.1") == [False]  # no track: all
    assert kept(decider, [(200, 1.0), (201, 1.0)]) == [False, False]  # dst in 203.0.113/24
    assert kept(decider, [(200, 1.0)], dst="203.0.114.1") == [True]
    assert kept(decider, [(106, 1.0)], dst="172.16.5.20") == [False]  # address variable
    assert kept(decider, [(106, 1.0)], src="192.0.2.1") == [False]
    assert kept(decider, [(202, 1.0)]) == [True]  # expired: applies no more


def test_thresholds_follow_suricata(decider: PolicyDecider) -> None:
    # limit 2 per 60 s by source; a new window after 60 s
    assert kept(decider, [(102, t) for t in (0, 1, 2, 3, 61, 62, 63)]) == [
        True, True, False, False, True, True, False]  # fmt: skip
    # threshold 3: every third match alerts
    assert kept(decider, [(103, t) for t in range(7)]) == [
        False, False, True, False, False, True, False]  # fmt: skip
    # both: once per window when the count is reached
    assert kept(decider, [(104, t) for t in (0, 1, 2, 3, 70, 71)]) == [
        False, True, False, False, False, True]  # fmt: skip


def test_rate_filter_turns_alerts_into_block_evidence(decider: PolicyDecider) -> None:
    anns = [decider.decide(rec("10.0.0.1", "203.0.113.9", 105), RuleFacts(sid=105), t, TODAY)
            for t in (0, 1, 2, 3, 40)]  # fmt: skip
    assert all(d.keep for d in anns)
    assert ["rate_filter" in d.annotation for d in anns] == [False, False, True, True, False]
    assert anns[2].annotation["would_block"] == "203.0.113.9"
    assert anns[2].annotation["rate_filter"]["new_action"] == "drop"


def test_pass_entries(decider: PolicyDecider) -> None:
    assert kept(decider, [(300, 1.0)], src="10.9.9.9") == [False]
    d = decider.decide(rec("10.9.9.9", "203.0.113.9", 300, dport=22), RuleFacts(sid=300), 1.0,
                       TODAY)  # fmt: skip
    assert d.keep


def test_hits_are_counted_per_exception(decider: PolicyDecider) -> None:
    kept(decider, [(100, 1.0), (100, 2.0), (101, 3.0)])
    hits = decider.exceptions.hits
    assert hits["suppress:1:100:by_src:10.0.0.0/8"].count == 2
    assert hits["suppress:1:101:all:"].count == 1


def test_threshold_config_owner_annotations_and_errors() -> None:
    entries = parse_threshold_config(THRESHOLD_CONF, "threshold.config", {"LAB": "10.1.0.0/16"})
    assert entries[0].meta.owner == "alice" and entries[0].meta.expires == dt.date(2027, 1, 1)
    assert entries[1].meta.owner == ""  # no comment above it: tune lists it
    assert entries[2].meta.reason == "one per minute is enough"
    with pytest.raises(ConfigError, match=r"t.config:1: missing 'count'"):
        parse_threshold_config("threshold gen_id 1, sig_id 5, type limit, track by_src, "
                               "seconds 5\n", "t.config")  # fmt: skip
    with pytest.raises(ConfigError, match=r"t.config:2: unknown entry"):
        parse_threshold_config("\nlimit sig_id 1\n", "t.config")
    with pytest.raises(ConfigError, match="negated"):
        parse_threshold_config("suppress gen_id 1, sig_id 1, track by_src, ip !1.2.3.4\n", "t")


def test_policy_warns_about_exceptions_without_owner(tmp_path: Path) -> None:
    (tmp_path / "t.config").write_text("suppress gen_id 1, sig_id 9\n")
    policy = parse_policy('threshold_files = ["t.config"]\n', str(tmp_path / "p.toml"))
    assert any("without owner/reason" in w for w in policy.warnings)
