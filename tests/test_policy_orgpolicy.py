"""Organisation policy compiled into rules (own sid range) and run on a capture: only the
connections that break the policy alert, and the rules go through the same stages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from pcapgen import TcpSession, udp, write_pcap

from sensor.errors import ConfigError
from sensor.policy.orgpolicy import compile_org_policy_text

ORG = """
sid_base = 9100000

[zones]
internal = ["192.168.0.0/16", "10.0.0.0/8"]
public_web = "192.168.1.0/24"
servers = "10.1.0.0/16"

[[allow_only]]
id = 1
name = "public web accepts only web"
zone = "public_web"
services = ["tcp/80", "tcp/443"]

[[no_outbound]]
id = 2
name = "servers start no outbound"
zone = "servers"
except_to = ["10.0.0.53"]
except_services = ["tcp/443"]

[[deny]]
id = 3
name = "no telnet SMB RDP across the boundary"
services = ["tcp/23", "tcp/445", "tcp/3389"]
"""


def test_compiles_to_rules_in_the_policy_range() -> None:
    rules = compile_org_policy_text(ORG, "org.toml")
    assert [r.sid for r in rules] == [9100010, 9100011, 9100020, 9100021, 9100030, 9100031]
    assert rules[0].origin == "org.toml:9"
    assert "![192.168.0.0/16,10.0.0.0/8] any -> 192.168.1.0/24 ![80,443]" in rules[0].text
    with pytest.raises(ConfigError, match=r"org\.toml:15: id 1 already used at org\.toml:9"):
        compile_org_policy_text(ORG.replace("id = 2", "id = 1"), "org.toml")
    with pytest.raises(ConfigError, match="must define 'internal'"):
        compile_org_policy_text("[zones]\nweb = '10.0.0.0/8'\n", "org.toml")
    with pytest.raises(ConfigError, match="service 'tcp/http'"):
        compile_org_policy_text(ORG.replace('"tcp/80"', '"tcp/http"'), "org.toml")


def _sessions() -> list[bytes]:
    frames: list[bytes] = []
    flows = [
        ("203.0.113.9", "192.168.1.10", 80),  # allowed web
        ("203.0.113.9", "192.168.1.10", 8080),  # not allowed on the public web
        ("10.1.0.5", "198.51.100.1", 443),  # server outbound, allowed service
        ("10.1.0.5", "198.51.100.1", 25),  # server outbound, not allowed
        ("10.1.0.5", "10.1.0.6", 25),  # inside the zone: not outbound
        ("192.168.5.5", "203.0.113.9", 23),  # telnet out across the boundary
    ]
    for i, (client, server, port) in enumerate(flows):
        s = TcpSession(client=client, server=server, cport=50000 + i, sport=port).handshake()
        frames += s.send(True, b"hello").ack(False).close().frames
    frames += [udp("203.0.113.9", "192.168.1.10", 5353, 161, b"x") for _ in range(3)]
    return frames


def test_only_violations_alert(tmp_path: Path) -> None:
    org = tmp_path / "org.toml"
    org.write_text(ORG)
    policy = tmp_path / "policy.toml"
    policy.write_text('mode = "prevent"\n[[stage]]\nstage = "enforce"\nsid = "9100030-9100039"\n'
                      'owner = "ciso"\nreason = "boundary services are never allowed"\n')  # fmt: skip
    env = {**os.environ, "SEKIMORI_POLICY": str(policy), "XDG_CACHE_HOME": str(tmp_path)}

    def cli(*args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "cli.main", *args], env=env,
                             capture_output=True, text=True, timeout=120)  # fmt: skip
        assert out.returncode == 0, out.stderr
        return out.stdout

    rules = tmp_path / "org.rules"
    assert "6 rules written" in cli("policy", "org-rules", str(org), "-o", str(rules))
    pcap = write_pcap(tmp_path / "t.pcap", _sessions())
    eve = tmp_path / "eve.json"
    cli("run", "--pcap", str(pcap), "--rules", str(rules), "--eve", str(eve))
    alerts = [orjson.loads(x) for x in eve.read_bytes().splitlines() if b'"alert"' in x]
    seen = sorted((a["alert"]["signature_id"], a["dest_port"]) for a in alerts)
    assert seen == [(9100010, 8080), (9100011, 161), (9100020, 25), (9100030, 23)]
    stages = {a["alert"]["signature_id"]: a["sekimori"]["stage"] for a in alerts}
    assert stages == {9100010: "detect", 9100011: "detect", 9100020: "detect", 9100030: "enforce"}
