"""End-to-end detection on captures built with dpkt: pipeline → EVE alerts.

Each test writes a capture and a rule file, runs the real pipeline (decoder, flow table,
stream reassembly, Hyperscan prefilter, verifier) and checks the alerts it wrote.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pcapgen import TcpSession, icmp_echo, run_capture, udp

from sensor.config import load_config
from sensor.pipeline import RunRequest, run


def _alerts(tmp_path: Path, frames: list[bytes], rules: str, *sets: str) -> list[dict]:
    records = run_capture(tmp_path, frames, rules, *sets)
    assert records[-1]["event_type"] == "stats"  # every run ends with its counters
    return [r for r in records if r["event_type"] == "alert"]


def _sids(alerts: list[dict]) -> list[int]:
    return [a["alert"]["signature_id"] for a in alerts]


def test_content_alert_has_suricata_fields(tmp_path: Path) -> None:
    s = TcpSession().handshake().send(True, b"GET /etc/passwd HTTP/1.0\r\n\r\n").close()
    alerts = _alerts(tmp_path, s.frames,
                     'alert tcp any any -> any 80 (msg:"passwd"; content:"/etc/passwd"; '
                     "classtype:attempted-recon; sid:10; rev:2;)\n")  # fmt: skip
    assert len(alerts) == 1
    a = alerts[0]
    assert a["event_type"] == "alert"
    assert (a["src_ip"], a["src_port"], a["dest_ip"], a["dest_port"]) == (
        "192.168.1.10", 40000, "203.0.113.5", 80)  # fmt: skip
    assert a["proto"] == "TCP" and a["pcap_cnt"] == 4
    assert a["alert"]["signature_id"] == 10 and a["alert"]["rev"] == 2
    assert a["alert"]["action"] == "allowed" and a["alert"]["severity"] == 2
    assert a["alert"]["category"] == "Attempted Information Leak"
    assert a["timestamp"].endswith(("+0000", "+0100")) or "T" in a["timestamp"]
    assert isinstance(a["flow_id"], int) and a["flow"]["pkts_toserver"] >= 3


def test_pattern_split_across_segments_alerts_on_the_completing_segment(tmp_path: Path) -> None:
    s = TcpSession().handshake().send(True, b"xxxxEVIL").send(True, b"PAYLOADyyyy").close()
    alerts = _alerts(
        tmp_path, s.frames, 'alert tcp any any -> any any (content:"EVILPAYLOAD"; sid:1;)\n'
    )
    assert _sids(alerts) == [1]
    assert alerts[0]["pcap_cnt"] == 5  # the segment that completed the pattern


def test_retransmission_is_not_inspected_twice(tmp_path: Path) -> None:
    s = TcpSession().handshake()
    seq = s.cseq
    s.send(True, b"attack-marker")
    s.send(True, b"attack-marker", seq=seq)  # retransmitted
    alerts = _alerts(
        tmp_path, s.frames, 'alert tcp any any -> any any (content:"attack-marker"; sid:1;)\n'
    )
    assert _sids(alerts) == [1]


def test_out_of_order_segments_are_reassembled(tmp_path: Path) -> None:
    s = TcpSession().handshake()
    seq = s.cseq
    s.send(True, b"PAYLOAD", seq=seq + 4, advance=False)  # second half first
    s.send(True, b"EVIL", seq=seq, advance=False)
    alerts = _alerts(
        tmp_path, s.frames, 'alert tcp any any -> any any (content:"EVILPAYLOAD"; sid:1;)\n'
    )
    assert _sids(alerts) == [1]
    assert alerts[0]["pcap_cnt"] == 5


def test_flowbits_order_setters_before_readers(tmp_path: Path) -> None:
    # The reader comes first in the file; Suricata orders flowbits setters first.
    s = TcpSession().handshake().send(True, b"login admin").close()
    rules = (
        'alert tcp any any -> any any (msg:"reader"; flowbits:isset,seen; content:"admin"; sid:2;)\n'
        'alert tcp any any -> any any (msg:"setter"; content:"login"; flowbits:set,seen; '
        "flowbits:noalert; sid:1;)\n"
    )
    assert _sids(_alerts(tmp_path, s.frames, rules)) == [2]


def test_pass_rule_stops_inspection_of_the_packet(tmp_path: Path) -> None:
    s = TcpSession().handshake().send(True, b"GET /ok HTTP/1.0").close()
    rules = (
        'alert tcp any any -> any any (content:"GET"; sid:1;)\n'
        'pass tcp any any -> any any (content:"/ok"; sid:2;)\n'
    )
    assert _sids(_alerts(tmp_path, s.frames, rules)) == []


def test_ip_only_rule_alerts_once_per_flow_direction(tmp_path: Path) -> None:
    s = TcpSession().handshake().send(True, b"a").send(False, b"b").close()
    alerts = _alerts(tmp_path, s.frames, "alert ip any any -> any any (sid:7;)\n")
    assert sorted(a["src_ip"] for a in alerts) == ["192.168.1.10", "203.0.113.5"]


def test_flow_established_and_direction(tmp_path: Path) -> None:
    s = TcpSession().handshake().send(True, b"hello").send(False, b"hello").close()
    rules = 'alert tcp any any -> any any (flow:established,to_client; content:"hello"; sid:3;)\n'
    alerts = _alerts(tmp_path, s.frames, rules)
    assert [(a["alert"]["signature_id"], a["src_ip"]) for a in alerts] == [(3, "203.0.113.5")]


def test_threshold_limit(tmp_path: Path) -> None:
    frames = [udp("10.0.0.1", "10.0.0.2", 5000 + i, 53, b"query-x") for i in range(5)]
    rules = ('alert udp any any -> any 53 (content:"query"; '
             "threshold: type limit, track by_src, count 2, seconds 60; sid:4;)\n")  # fmt: skip
    assert _sids(_alerts(tmp_path, frames, rules)) == [4, 4]


def test_icmp_keywords_and_no_ports(tmp_path: Path) -> None:
    frames = [icmp_echo("10.0.0.1", "10.0.0.2", ident=77, seq=3)]
    alerts = _alerts(
        tmp_path,
        frames,
        "alert icmp any any -> any any (itype:8; icode:0; icmp_id:77; icmp_seq:3; sid:5;)\n",
    )
    assert _sids(alerts) == [5]
    assert "src_port" not in alerts[0] and alerts[0]["proto"] == "ICMP"


def test_home_net_override_with_set(tmp_path: Path) -> None:
    frames = [udp("10.0.0.1", "10.0.0.2", 5000, 53, b"x")]
    rules = "alert udp $HOME_NET any -> any any (sid:6;)\n"
    assert _sids(_alerts(tmp_path, frames, rules)) == [6]
    assert (
        _sids(_alerts(tmp_path, frames, rules, "vars.address-groups.HOME_NET=[192.0.2.0/24]")) == []
    )


@pytest.mark.parametrize("bad", ['alert tcp any any -> any any (content:"x"; sid:1; nosuchkw;)\n'])
def test_bad_rule_is_skipped_not_fatal(tmp_path: Path, bad: str) -> None:
    s = TcpSession().handshake().send(True, b"hit").close()
    rules = bad + 'alert tcp any any -> any any (content:"hit"; sid:2;)\n'
    assert _sids(_alerts(tmp_path, s.frames, rules)) == [2]


def test_the_ruleset_is_frozen_out_of_the_gc_while_running_and_released_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full collection with ET Open loaded takes tens of ms: the run freezes its heap (the
    compiled ruleset) so the packet path never pauses for it, and unfreezes when it ends."""
    import gc

    import sensor.packet_loop as packet_loop

    counts: list[int] = []
    real = packet_loop.PacketLoop.finish

    def finish(self: packet_loop.PacketLoop) -> None:
        counts.append(gc.get_freeze_count())
        real(self)

    monkeypatch.setattr(packet_loop.PacketLoop, "finish", finish)
    rules = tmp_path / "r.rules"
    rules.write_text('alert tcp any any -> any any (content:"x"; sid:1;)\n')
    pcap = tmp_path / "empty.pcap"
    pcap.write_bytes(bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000"))
    config, _ = load_config(None, env={}, sets=["detect.cache-dir=" + str(tmp_path / "c")])
    run(config, RunRequest(pcap=str(pcap), iface=None, rule_files=(str(rules),), eve=None))
    assert counts and counts[0] > 0  # frozen while packets were processed
    assert gc.get_freeze_count() == 0  # released when the run returned
