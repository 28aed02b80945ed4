"""TCP resets sent by the sensor itself (``respond.tcp-reset.in_sensor``).

Frames of a generated session go through the real packet loop with a compiled rule; the
reset sink writes its RSTs into one end of a veth pair the test creates (no addresses, IPv6
off, destination MACs that are not the peer's: nothing reaches a stack) and an AF_PACKET
socket on the other end reads what arrived. The responder's side is checked too: it adopts
the sensor's outcome instead of sending again, and sends itself when the sensor failed.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from pcapgen import TcpSession

from responders import config as respond_config
from responders.builtin.tcp_reset import TcpResetResponder
from responders.outcome import parse_tcp
from responders.plugin import DONE, SKIPPED
from sensor.config import load_config
from sensor.detect import Detector
from sensor.extensions import AlertEvent, build_extensions
from sensor.output.alert import response_context
from sensor.output.reset_sink import ResetSink, in_sensor
from sensor.packet import Packet
from sensor.packet_loop import PacketLoop, app_settings
from sensor.pipeline import RunRequest, _load_rules

DROP = 'drop tcp any any -> any 8080 (msg:"marker"; content:"EVIL"; sid:7001; rev:1;)\n'
ALERT = 'alert tcp any any -> any 8080 (msg:"marker"; content:"EVIL"; sid:7002; rev:1;)\n'


class _Collect:
    """The sink after the reset sink: keeps each alert record as the EVE file would get it."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.bus: list[dict[str, Any]] = []  # with the response context, as RedisSink adds it

    def write(self, event: AlertEvent) -> None:
        self.records.append(event.record)
        ctx = response_context(event.signature, event.packet, "prevent", "s1")
        self.bus.append(dict(event.record, sekimori={**ctx, **event.record.get("sekimori", {})}))

    def close(self) -> None:
        pass


def _respond_cfg(iface: str, mode: str = "sensor", **extra: Any) -> Any:
    table = {"interface": iface, "in_sensor": True, **extra}
    doc = {"respond": {"mode": mode, "responders": ["tcp-reset"], "tcp-reset": table}}
    return respond_config.build(doc)


def _loop(tmp_path: Path, rule: str, mode: str, respond: Any,
          *sets: str) -> tuple[PacketLoop, _Collect]:  # fmt: skip
    tmp_path.mkdir(exist_ok=True)
    rules = tmp_path / "t.rules"
    rules.write_text(rule)
    config, _ = load_config(None, env={}, sets=[f"detect.cache-dir={tmp_path / 'c'}",
                                                f"sensor.mode={mode}", *sets])  # fmt: skip
    ruleset, _ = _load_rules(config, RunRequest(pcap=None, iface="x", rule_files=(str(rules),),
                                                eve=None))  # fmt: skip
    ext = build_extensions(config)
    collect = _Collect()
    ext.sinks[:0] = [ResetSink(respond, config.mode, "s1"), collect]
    loop = PacketLoop(config, Detector(ruleset, app_settings(config)), ext)
    loop.live = True
    return loop, collect


def _session(loop: PacketLoop, cport: int, payloads: int = 1) -> TcpSession:
    s = TcpSession(client="10.0.0.1", server="10.0.0.2", cport=cport, sport=8080,
                   cisn=3_000_000_000, sisn=7000)  # fmt: skip
    s.handshake()
    for _ in range(payloads):
        s.send(True, b"GET /EVIL HTTP/1.0\r\n")
    now = time.time()  # live: the alert is fresh, as it would be on an interface
    for i, frame in enumerate(s.frames, 1):
        p = Packet(i, int(now), int(now % 1 * 1e6), 1, frame)
        p.wirelen, p.iface = len(frame), "x"
        loop.packet(p)
    return s


def _drain(sock: socket.socket, wait_s: float) -> list[tuple[int, int]]:
    """(flags, seq) of every TCP frame that arrives on the socket within ``wait_s``."""
    out = []
    end = time.time() + wait_s
    while time.time() < end:
        try:
            frame = sock.recv(65535)
        except TimeoutError:
            continue
        tcp = parse_tcp(frame)
        if tcp is not None:
            out.append((tcp[4], tcp[5]))
    sock.close()
    return out


def _listen(iface: str) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    sock.bind((iface, 0))
    sock.settimeout(0.05)
    return sock


def test_in_sensor_is_off_unless_asked() -> None:
    assert not in_sensor(respond_config.build({}))
    assert in_sensor(_respond_cfg("lo"))
    doc = {"respond": {"responders": ["log"], "tcp-reset": {"interface": "lo", "in_sensor": True}}}
    assert not in_sensor(respond_config.build(doc))  # tcp-reset is not a configured responder


def test_prevent_mode_sends_exact_rsts_from_the_sensor_and_records_them(
    tmp_path: Path, veth: tuple[str, str]
) -> None:
    a, b = veth
    loop, collect = _loop(tmp_path, DROP, "prevent", _respond_cfg(a))
    assert len(loop.first_actors) == 1  # no policy: it acts before the EVE record is built
    listener = _listen(b)
    s = _session(loop, 41000)
    frames = _drain(listener, 0.5)
    rsts = sorted(seq for flags, seq in frames if flags & 0x04)
    assert rsts == sorted([s.cseq % 2**32, s.sseq % 2**32])  # each receiver's RCV.NXT
    (record,) = collect.records
    reset = record["sekimori"]["reset"]
    assert reset["status"] == DONE and reset["details"]["decision"] == "reset"
    assert reset["details"]["to_server"] == [s.cseq % 2**32]
    assert reset["details"]["latency_us"] >= 0 and "rule action drop" in reset["details"]["policy"]
    assert loop.counters()["respond.sensor_resets"] == 1


def test_detect_mode_and_alert_rules_send_nothing(tmp_path: Path, veth: tuple[str, str]) -> None:
    a, b = veth
    for n, (rule, mode) in enumerate(((DROP, "detect"), (ALERT, "prevent"))):
        loop, collect = _loop(tmp_path / str(n), rule, mode, _respond_cfg(a))
        listener = _listen(b)
        _session(loop, 42000 + n)
        assert _drain(listener, 0.3) == []
        (record,) = collect.records
        assert "reset" not in record.get("sekimori", {})


def test_max_per_flow_is_kept_by_the_sensor(tmp_path: Path, veth: tuple[str, str]) -> None:
    a, _ = veth
    loop, collect = _loop(tmp_path, DROP, "prevent", _respond_cfg(a, max_per_flow=1))
    _session(loop, 43000, payloads=2)
    first, second = (r["sekimori"]["reset"] for r in collect.records)
    assert first["status"] == DONE
    assert second["status"] == SKIPPED and "max_per_flow" in second["reason"]


def _responder_on(alert: dict[str, Any], a: str, b: str) -> tuple[Any, list[tuple[int, int]]]:
    responder = TcpResetResponder({"interface": a, "watch": False})
    responder.start()
    listener = _listen(b)
    try:
        outcome = responder.respond(alert, enforce=True)
    finally:
        responder.stop()
    return outcome, _drain(listener, 0.3)


def test_responder_adopts_the_sensors_reset_and_sends_nothing(
    tmp_path: Path, veth: tuple[str, str]
) -> None:
    a, b = veth
    loop, collect = _loop(tmp_path, DROP, "prevent", _respond_cfg(a))
    _session(loop, 44000)
    (alert,) = collect.bus
    outcome, frames = _responder_on(alert, a, b)
    assert frames == []
    assert outcome.status == DONE and outcome.reason.startswith("sensor: ")
    assert outcome.details["path"] == "sensor"
    assert outcome.details["latency_us"] == alert["sekimori"]["reset"]["details"]["latency_us"]


def test_responder_sends_itself_when_the_sensor_failed(
    tmp_path: Path, veth: tuple[str, str]
) -> None:
    a, b = veth
    loop, collect = _loop(tmp_path, DROP, "prevent", _respond_cfg(a))
    s = _session(loop, 45000)
    (alert,) = collect.bus
    alert["sekimori"]["reset"] = {"status": "failed", "reason": "Network is down"}
    outcome, frames = _responder_on(alert, a, b)
    assert outcome.status == DONE and outcome.details["decision"] == "reset"
    assert sorted(seq for _, seq in frames) == sorted([s.cseq % 2**32, s.sseq % 2**32])


@pytest.mark.parametrize(
    ("stage", "response", "sent"),
    [("detect", "", False), ("shadow", "", False), ("enforce", 'response = ["block"]', False),
     ("enforce", "", True)],
)  # fmt: skip
def test_the_organisation_policys_stage_decides_as_for_the_responder(
    tmp_path: Path, veth: tuple[str, str], stage: str, response: str, sent: bool
) -> None:
    a, b = veth
    policy = tmp_path / "policy.toml"
    policy.write_text(f'mode = "prevent"\ndefault_stage = "detect"\n[[stage]]\n'
                      f'stage = "{stage}"\nsid = 7001\n{response}\n')  # fmt: skip
    loop, collect = _loop(tmp_path / "run", DROP, "prevent", _respond_cfg(a),
                          f"policy.file={policy}")  # fmt: skip
    assert loop.first_actors == ()  # the policy may veto: the reset waits for it
    listener = _listen(b)
    _session(loop, 46000)
    frames = _drain(listener, 0.3)
    (record,) = collect.records
    assert record["sekimori"]["stage"] == stage
    assert ("reset" in record["sekimori"]) is sent
    assert bool(frames) is sent
    if not sent and stage == "enforce":  # the responder says why it does not reset either
        outcome, _ = _responder_on(collect.bus[0], a, b)
        assert outcome.status == SKIPPED and "excludes reset" in outcome.reason


def test_a_bad_injection_interface_stops_the_sensor_with_its_name(tmp_path: Path) -> None:
    """In-sensor resets asked for with --set: the responders' keys are not 'unknown
    settings' to the sensor, and an interface that does not exist is one line, exit 6."""
    import os
    import sys

    rules = tmp_path / "r.rules"
    rules.write_text(DROP)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEKIMORI_")}
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "run", "--iface", "lo", "--rules", str(rules),
         "--set", f"detect.cache-dir={tmp_path / 'c'}", "--set", 'respond.responders=["tcp-reset"]',
         "--set", "respond.tcp-reset.interface=sknoexist0",
         "--set", "respond.tcp-reset.in_sensor=true"],
        cwd=Path(__file__).resolve().parent.parent, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 6, done.stderr
    assert "injection interface sknoexist0" in done.stderr
    assert "unknown setting" not in done.stderr and "Traceback" not in done.stderr
