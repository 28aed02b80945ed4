"""The whole staged-enforcement path on a capture: detect-only run → tuning report →
suppression added → rule promoted to shadow, then enforce → only the promoted rule's alerts
are enforced (responders following the sensor's mode act on exactly those); replay shows
what a promotion would block before it is made; `tune` lists exceptions to revisit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from pcapgen import TcpSession, write_pcap

from responders.config import PolicyConfig
from responders.policy import decide

WEB = "192.168.1.10"
ATTACKER = "203.0.113.5"
SCANNER = "198.51.100.66"
RULES = """\
alert tcp any any -> $HOME_NET 80 (msg:"TEST traversal"; flow:established,to_server; content:"../../"; classtype:web-application-attack; sid:5001; rev:1;)
alert tcp any any -> $HOME_NET 80 (msg:"TEST scanner UA"; flow:established,to_server; content:"User-Agent: scanbot"; classtype:web-application-activity; sid:5002; rev:1;)
alert tcp any any -> $HOME_NET 80 (msg:"TEST admin page"; flow:established,to_server; content:"/admin"; priority:1; sid:5003; rev:1;)
alert tcp any any -> $HOME_NET 80 (msg:"TEST never"; flow:established,to_server; content:"never-seen"; sid:5004; rev:1;)
"""
BASE = """\
mode = "prevent"
default_stage = "detect"

[[asset]]
cidr = "192.168.1.0/24"
name = "web-dmz"
criticality = "high"
owner = "web team"
role = "public web"
"""
SUPPRESS = """
[[suppress]]
sid = 5002
src = "198.51.100.66"
owner = "alice"
reason = "our own vulnerability scanner"
expires = 2099-01-01
"""


def stage(sid: int, name: str) -> str:
    return (f'\n[[stage]]\nstage = "{name}"\nsid = {sid}\nowner = "bob"\n'
            f'reason = "no false positive in the report"\n')  # fmt: skip


def capture(path: Path) -> Path:
    frames: list[bytes] = []
    for i in range(3):
        s = TcpSession(client=ATTACKER, server=WEB, cport=41000 + i).handshake()
        s.send(True, b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n").ack(False).close()
        frames += s.frames
    for i in range(60):
        s = TcpSession(client=SCANNER, server=WEB, cport=42000 + i).handshake()
        s.send(True, b"GET / HTTP/1.1\r\nUser-Agent: scanbot\r\n\r\n").ack(False).close()
        frames += s.frames
    s = TcpSession(client="192.168.1.77", server=WEB, cport=43000).handshake()
    s.send(True, b"GET /admin HTTP/1.1\r\n\r\n").ack(False).close()
    frames += s.frames
    return write_pcap(path, frames)


class Lab:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.pcap = capture(tmp / "traffic.pcap")
        self.rules = tmp / "web.rules"
        self.rules.write_text(RULES)
        self.policy = tmp / "policy.toml"
        self.env = {**os.environ, "SEKIMORI_POLICY": str(self.policy),
                    "XDG_CACHE_HOME": str(tmp / "cache")}  # fmt: skip
        self.env.pop("SEKIMORI_CONFIG", None)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        out = subprocess.run([sys.executable, "-m", "cli.main", *args], env=self.env,
                             capture_output=True, text=True, timeout=120)  # fmt: skip
        assert out.returncode == 0, out.stderr
        return out

    def run(self, name: str) -> list[dict]:
        eve = self.tmp / f"{name}.json"
        self.cli("run", "--pcap", str(self.pcap), "--rules", str(self.rules), "--eve", str(eve))
        return [orjson.loads(line) for line in eve.read_bytes().splitlines()
                if b'"event_type":"alert"' in line]  # fmt: skip


def by_sid(alerts: list[dict]) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for a in alerts:
        out.setdefault(a["alert"]["signature_id"], []).append(a)
    return out


def test_detect_report_suppress_promote_enforce(tmp_path: Path) -> None:
    lab = Lab(tmp_path)
    lab.policy.write_text(BASE)
    first = by_sid(lab.run("detect"))
    assert {sid: len(v) for sid, v in first.items()} == {5001: 3, 5002: 60, 5003: 1}
    assert all(a["sekimori"]["stage"] == "detect" and a["sekimori"]["mode"] == "detect"
               for v in first.values() for a in v)  # fmt: skip
    assert first[5001][0]["sekimori"]["priority"] == "high"
    assert first[5001][0]["sekimori"]["asset_names"] == ["web-dmz"]

    report = lab.cli("tune", "report", "--eve", str(tmp_path / "detect.json"), "--since", "1h",
                     "--rules", str(lab.rules), "--html", str(tmp_path / "r.html")).stdout  # fmt: skip
    assert f"sid 5002: 60 alerts, 100% from {SCANNER}" in report  # suppression candidate
    assert "sid 5001: detect -> shadow" in report  # promotion candidate
    assert "5004  TEST never" in report  # never fired
    assert 'id="chart-timeline"' in (tmp_path / "r.html").read_text()

    # The scanner becomes an exception; the traversal rule goes to shadow.
    lab.policy.write_text(BASE + SUPPRESS + stage(5001, "shadow"))
    second = by_sid(lab.run("shadow"))
    assert 5002 not in second
    shadow = second[5001][0]["sekimori"]
    assert (shadow["stage"], shadow["mode"]) == ("shadow", "detect")
    assert (shadow["would_reset"], shadow["would_block"]) == (True, ATTACKER)

    # Before enforcing: what would it block?
    enforce_policy = tmp_path / "enforce.toml"
    enforce_policy.write_text(BASE + SUPPRESS + stage(5001, "enforce"))
    replay = lab.cli("tune", "replay", "--pcap", str(lab.pcap), "--rules", str(lab.rules),
                     "--policy", str(enforce_policy), "--current", str(lab.policy)).stdout  # fmt: skip
    row = next(line for line in replay.splitlines() if line.strip().startswith("5001"))
    assert row.split()[:6] == ["5001", "3", "shadow", "enforce", "3", "3"]
    assert f"{WEB}(3) / {ATTACKER}(3)" in row

    lab.policy.write_text(enforce_policy.read_text())
    third = lab.run("enforce")
    responders = PolicyConfig(actions=(), max_severity=3)  # every alert triggers a response
    decisions = {(a["alert"]["signature_id"], decide(responders, "sensor", a).enforce)
                 for a in third}  # fmt: skip
    assert decisions == {(5001, True), (5003, False)}  # only the promoted rule is enforced

    # `tune` sees the suppression matched (hits file written by the sensor).
    listing = lab.cli("tune", "--rules", str(lab.rules)).stdout
    assert "0 of 1 exceptions to revisit" in listing


def test_tune_lists_exceptions_to_revisit(tmp_path: Path) -> None:
    lab = Lab(tmp_path)
    lab.policy.write_text(
        BASE
        + """
[[suppress]]
sid = 9999
owner = "alice"
reason = "rule removed long ago"

[[suppress]]
sid = 5002
owner = "alice"
reason = "temporary"
expires = 2020-01-01
"""
    )
    out = lab.cli("tune", "--rules", str(lab.rules)).stdout
    assert "sid not in the rule set; never matched" in out
    assert "expired 2020-01-01" in out
    assert "2 of 2 exceptions to revisit" in out


@pytest.mark.parametrize("bad", ["--since=soon"])
def test_report_bad_window_is_one_line(tmp_path: Path, bad: str) -> None:
    eve = tmp_path / "e.json"
    eve.write_text("")
    out = subprocess.run([sys.executable, "-m", "cli.main", "tune", "report", "--eve", str(eve),
                          bad], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 2 and out.stderr.count("\n") == 1
