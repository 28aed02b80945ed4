"""replace, bypass and config: keywords Suricata 7 loads in IDS mode; bypass ends inspection."""

from __future__ import annotations

from pathlib import Path

from pcapgen import TcpSession
from test_detect_engine import _alerts, _sids

from signatures.ruleset import load_ruleset
from signatures.variables import Variables


def _load(tmp_path: Path, text: str) -> tuple[int, list[str]]:
    from sensor.pipeline import SENSOR_BUFFERS

    rules = tmp_path / "t.rules"
    rules.write_text(text)
    _ruleset, report = load_ruleset([str(rules)], Variables({}, {}),
                                    supported_buffers=SENSOR_BUFFERS)  # fmt: skip
    return report.loaded, sorted(f"{i.line}: {i.reason}" for i in report.issues)


def test_which_values_load(tmp_path: Path) -> None:
    loaded, issues = _load(tmp_path, "\n".join([
        'alert tcp any any -> any any (content:"abc"; replace:"xyz"; sid:1;)',
        'alert tcp any any -> any any (content:"abc"; replace:!"xyz"; sid:2;)',
        "alert tcp any any -> any any (content:\"abc\"; replace:xyz; sid:3;)",
        "alert tcp any any -> any any (bypass; sid:4;)",
        "alert tcp any any -> any any (bypass:1; sid:5;)",
        "alert http any any -> any any (filestore; bypass; sid:6;)",
        "alert dns any any -> any any (dns.query; content:\"a.b\"; "
        "config:logging disable, type tx, scope tx; sid:7;)",
        "alert dns any any -> any any (config:logging enable, type tx, scope tx; sid:8;)",
        "alert dns any any -> any any (config:logging disable, type tx, scope pkt; sid:9;)",
        "alert dns any any -> any any (config:logging disable; sid:10;)",
    ]) + "\n")  # fmt: skip
    assert loaded == 3
    assert [i.split(":")[0] for i in issues] == ["10", "2", "3", "5", "6", "8", "9"]
    assert any("negate" in i for i in issues) and any("filestore" in i for i in issues)


def test_bypass_stops_inspection_of_the_flow(tmp_path: Path) -> None:
    s = TcpSession().handshake().send(True, b"hello one").send(True, b"hello two")
    other = TcpSession(cport=40001).handshake().send(True, b"hello three")
    rules = ('alert tcp any any -> any any (msg:"bypass"; content:"one"; bypass; sid:1;)\n'
             'alert tcp any any -> any any (msg:"hello"; content:"hello"; sid:2;)\n')  # fmt: skip
    alerts = _alerts(tmp_path, s.frames + other.frames, rules)
    # the bypassing packet is still inspected by every rule; later packets of its flow are not
    assert sorted(_sids(alerts)) == [1, 2, 2]
    assert sorted(a["pcap_cnt"] for a in alerts) == [4, 4, 9]
