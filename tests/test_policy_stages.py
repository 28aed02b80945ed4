"""Policy stages: most specific entry wins, explain names the deciding line, reload without
restart, priorities from severity x asset criticality, and the annotation contract."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sensor.errors import ConfigError
from sensor.policy import PolicyDecider, PolicyEngine, RuleFacts, decide_stage, parse_policy
from sensor.policy.assets import priority
from sensor.policy.model import Asset

POLICY = """
mode = "prevent"
default_stage = "detect"

[[stage]]
stage = "shadow"
severity = 1

[[stage]]
stage = "shadow"
classtype = "trojan-activity"

[[stage]]
stage = "enforce"
metadata = { signature_severity = "Major", confidence = "High" }

[[stage]]
stage = "detect"
sid = "2000000-2999999"

[[stage]]
stage = "shadow"
sid = "2100000-2100999"

[[stage]]
stage = "enforce"
sid = [2100005, 42]
owner = "soc"
reason = "no false positive in 30 days"

[[stage]]
stage = "enforce"
file = "emerging-malware.rules"
classtype = "trojan-activity"
"""


def facts(sid: int, **kw: object) -> RuleFacts:
    return RuleFacts(sid=sid, **kw)  # type: ignore[arg-type]


@pytest.fixture
def policy():
    return parse_policy(POLICY, "/etc/sekimori/policy.toml")


def test_most_specific_entry_wins(policy) -> None:
    assert decide_stage(policy, facts(1)).stage == "detect"  # default
    assert decide_stage(policy, facts(1)).origin == "policy.toml: default_stage"
    assert decide_stage(policy, facts(1, severity=1)).stage == "shadow"
    # sid beats range beats everything else
    d = decide_stage(policy, facts(2100005, severity=1, classtype="trojan-activity"))
    assert (d.stage, d.origin) == ("enforce", "policy.toml:25")
    # the narrower range wins over the wider one
    assert decide_stage(policy, facts(2100001)).origin == "policy.toml:21"
    assert decide_stage(policy, facts(2500000)).origin == "policy.toml:17"
    # two metadata keys (80) beat classtype (30) and severity (10)
    meta = (("signature_severity", "Major"), ("confidence", "High"))
    d = decide_stage(policy, facts(7, severity=1, classtype="trojan-activity", metadata=meta))
    assert (d.stage, d.origin) == ("enforce", "policy.toml:13")
    # metadata values must all match
    half = (("signature_severity", "Major"), ("confidence", "Low"))
    assert decide_stage(policy, facts(7, metadata=half)).stage == "detect"
    # file + classtype (50) beat classtype alone (30)
    d = decide_stage(policy, facts(8, classtype="trojan-activity",
                                   file="/var/lib/rules/emerging-malware.rules"))  # fmt: skip
    assert (d.stage, d.origin) == ("enforce", "policy.toml:31")
    assert [e.origin for e, _ in d.candidates] == ["policy.toml:31", "policy.toml:9"]


def test_bad_policy_is_one_error_with_the_line() -> None:
    with pytest.raises(ConfigError, match=r"p.toml:3: stage: expected one of"):
        parse_policy('mode = "detect"\n\n[[stage]]\nstage = "block"\nsid = 1\n', "p.toml")
    with pytest.raises(ConfigError, match="needs at least one of"):
        parse_policy('[[stage]]\nstage = "shadow"\n', "p.toml")
    with pytest.raises(ConfigError, match="owner and a reason"):
        parse_policy("[[suppress]]\nsid = 5\n", "p.toml")
    with pytest.raises(ConfigError, match="invalid TOML"):
        parse_policy("[[stage]\n", "p.toml")


def test_priority_is_severity_times_criticality() -> None:
    import ipaddress

    high = Asset(ipaddress.ip_network("10.0.0.0/24"), "db", "high")
    low = Asset(ipaddress.ip_network("10.0.1.0/24"), "lab", "low")
    assert priority(1, None, None) == (3, "medium")
    assert priority(1, high, None) == (9, "high")
    assert priority(2, None, high) == (6, "high")
    assert priority(3, high, low) == (3, "medium")
    assert priority(3, low, None) == (1, "low")


def _record(src: str, dst: str, sid: int = 1, proto: str = "TCP") -> dict:
    return {"timestamp": "2024-01-01T00:00:00.000000+0000", "event_type": "alert",
            "src_ip": src, "dest_ip": dst, "proto": proto, "dest_port": 80,
            "alert": {"gid": 1, "signature_id": sid, "severity": 1}}  # fmt: skip


def test_annotation_contract() -> None:
    text = (
        POLICY
        + """
[[asset]]
cidr = "192.168.1.0/24"
name = "web-dmz"
criticality = "high"
owner = "web team"
role = "web"
"""
    )
    decider = PolicyDecider(parse_policy(text, "policy.toml"))
    d = decider.decide(_record("198.51.100.7", "192.168.1.10", 42), facts(42, severity=1), 1.0)
    ann = d.annotation
    assert d.keep
    assert (ann["stage"], ann["mode"], ann["policy_mode"]) == ("enforce", "prevent", "prevent")
    assert ann["stage_origin"] == "policy.toml:25"
    assert (ann["priority"], ann["asset_names"]) == ("high", ["web-dmz"])
    assert ann["would_reset"] is True
    assert ann["would_block"] == "198.51.100.7"  # the external end, not our web server
    # shadow: evidence, but the alert's mode says detect (responders only record)
    d = decider.decide(_record("198.51.100.7", "192.168.1.10", 2100001), facts(2100001), 1.0)
    assert (d.annotation["stage"], d.annotation["mode"]) == ("shadow", "detect")
    assert d.annotation["would_block"] == "198.51.100.7"
    # detect: what enforcing would do is in "response", nothing in would_*
    d = decider.decide(_record("192.168.1.10", "198.51.100.7", 5, "UDP"), facts(5), 1.0)
    assert d.annotation["stage"] == "detect"
    assert (d.annotation["would_reset"], d.annotation["would_block"]) == (False, None)
    assert d.annotation["response"] == {"reset": False, "block": "198.51.100.7"}


class _Sig:
    def __init__(self, sid: int) -> None:
        self.sid, self.gid, self.classtype, self.severity = sid, 1, None, 2
        self.file, self.metadata, self.action, self.msg = "x.rules", (), "alert", "m"


class _Pkt:
    ts_sec, ts_usec = 1_700_000_000, 0


class _Event:
    def __init__(self, sid: int) -> None:
        self.record = _record("198.51.100.7", "192.168.1.10", sid)
        self.signature, self.packet = _Sig(sid), _Pkt()


def test_stage_change_needs_no_restart(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('[[stage]]\nstage = "shadow"\nsid = 7\n')
    engine = PolicyEngine(str(path), hits_file=str(tmp_path / "hits.json"))
    event = _Event(7)
    assert engine.annotate(event) and event.record["sekimori"]["stage"] == "shadow"
    path.write_text('mode = "prevent"\n[[stage]]\nstage = "enforce"\nsid = 7\n')
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    engine.tick(0.0)  # the pipeline's once-a-second ticker (annotate also checks, ≤ 1/s)
    event = _Event(7)
    assert engine.annotate(event)
    assert (event.record["sekimori"]["stage"], event.record["sekimori"]["mode"]) == (
        "enforce", "prevent")  # fmt: skip
    # a broken edit keeps the running policy
    path.write_text('[[stage]]\nstage = "nonsense"\nsid = 7\n')
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 4_000_000_000))
    assert engine.reload_if_changed() is False
    event = _Event(7)
    engine.annotate(event)
    assert event.record["sekimori"]["stage"] == "enforce"


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "cli.main", *args], capture_output=True,
                          text=True, env=full, timeout=60)  # fmt: skip


def test_explain_names_the_deciding_line(tmp_path: Path) -> None:
    rules = tmp_path / "emerging-malware.rules"
    rules.write_text('alert tcp any any -> any any (msg:"M"; content:"x"; '
                     "classtype:trojan-activity; sid:8; rev:1;)\n")  # fmt: skip
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    out = _cli("policy", "explain", "8", "--policy", str(policy), "--rules", str(rules))
    assert out.returncode == 0, out.stderr
    first = out.stdout.splitlines()[0]
    assert first == "sid 8: stage enforce (mode prevent), decided by policy.toml:31"
    assert "policy.toml:9: shadow" in out.stdout  # the losing candidate is shown too
    out = _cli("policy", "explain", "2100005", env={"SEKIMORI_POLICY": str(policy)})
    assert "decided by policy.toml:25" in out.stdout
    bad = _cli("policy", "explain", "1", "--policy", str(tmp_path / "missing.toml"))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
