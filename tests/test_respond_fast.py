"""The same-host fast path (responders/fast.py, sensor/output/fast_respond.py).

The sensor's datagram makes the ``fast_path`` responders act at once on the listener's
thread; the bus copy that follows is recorded with their outcome (``path: fast``) and runs
the other responders; nothing acts twice; detect mode and non-matching alerts never act
early; a datagram nobody listens to costs the sensor a counter, never an exception. The
service test uses a real redis-server and a real Unix socket.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from responders.builtin.log import LogResponder
from responders.config import build
from responders.fast import FastPath
from responders.plugin import DONE, AlertResponder, Outcome
from responders.service import RespondService
from sensor.config import load_config
from sensor.output.fast_respond import FastChannel

STREAM = "sekimori:alerts"


class Quick(AlertResponder):
    """A fast responder that records where and how often it was called."""

    name = "quick"
    fast_path = True

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.calls: list[tuple[int, bool, str]] = []

    def respond(self, alert: Mapping[str, Any], *, enforce: bool) -> Outcome:
        self.calls.append((int(alert["pcap_cnt"]), enforce, threading.current_thread().name))
        return Outcome(self.name, DONE, "acted", {"decision": "reset", "sent_at": time.time()})


def _eve(pcap_cnt: int = 4, action: str = "drop") -> dict[str, Any]:
    return {"timestamp": "2026-01-01T00:00:00.000100+0000", "flow_id": 77, "pcap_cnt": pcap_cnt,
            "event_type": "alert", "src_ip": "10.0.0.1", "src_port": 1, "dest_ip": "10.0.0.2",
            "dest_port": 2, "proto": "TCP", "alert": {"signature_id": 9, "severity": 1},
            "sekimori": {"sensor_id": "s1", "rule_action": action, "mode": "prevent",
                         "tcp": {"toserver": {}, "toclient": {}}}}  # fmt: skip


def _cfg(tmp_path: Path, mode: str = "prevent", **extra: Any) -> Any:
    return build({"respond": {"mode": mode, "fast_socket": str(tmp_path / "fast.sock"),
                              **extra}})  # fmt: skip


def test_channel_without_listener_counts_drops_and_never_raises(tmp_path: Path) -> None:
    channel = FastChannel(str(tmp_path / "nobody.sock"))
    channel.send(b"{}")
    channel.send(b"{}")
    assert channel.snapshot() == {"fast_sent": 0, "fast_dropped": 2}
    channel.close()


def test_channel_delivers_one_datagram_per_alert(tmp_path: Path) -> None:
    path = str(tmp_path / "l.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(path)
    listener.settimeout(2)
    channel = FastChannel(path)
    try:
        channel.send(b'{"a":1}')
        channel.send(b'{"a":2}')
        assert [listener.recv(100), listener.recv(100)] == [b'{"a":1}', b'{"a":2}']
        assert channel.snapshot() == {"fast_sent": 2, "fast_dropped": 0}
    finally:
        channel.close()
        listener.close()


def test_fast_path_acts_once_and_hands_the_outcome_to_the_bus_copy(tmp_path: Path) -> None:
    quick = Quick({})
    fast = FastPath(_cfg(tmp_path), {"quick": quick, "log": LogResponder({})})
    payload = orjson.dumps(_eve())
    fast.handle(payload, time.time())
    fast.handle(payload, time.time())  # the same alert again: not acted on twice
    assert [c[:2] for c in quick.calls] == [(4, True)]
    assert list(fast.fast) == ["quick"]  # log has no fast_path: only the bus path runs it
    claimed: list[Any] = []
    call = fast.take(_eve(), claimed.append)
    assert call is not None and claimed == [call]
    outcome = call.futures["quick"].result(timeout=1)
    assert outcome.details["path"] == "fast" and outcome.details["decision"] == "reset"
    assert fast.take(_eve(), claimed.append) is None  # handed out once
    assert fast.stats.snapshot()["claimed"] == 1


def test_detect_mode_non_matching_and_malformed_datagrams_do_not_act(tmp_path: Path) -> None:
    quick = Quick({})
    detect = FastPath(_cfg(tmp_path, mode="detect"), {"quick": quick})
    detect.handle(orjson.dumps(_eve()), time.time())
    prevent = FastPath(_cfg(tmp_path), {"quick": quick})
    prevent.handle(orjson.dumps(_eve(action="alert")), time.time())  # policy: not a reset
    prevent.handle(b"not json", time.time())
    prevent.handle(b'{"no": "alert"}', time.time())
    assert quick.calls == []
    assert detect.stats.not_triggered == 1 and prevent.stats.not_triggered == 1
    assert prevent.stats.malformed == 2


def test_calls_whose_bus_copy_never_comes_are_dropped_and_counted(tmp_path: Path) -> None:
    fast = FastPath(_cfg(tmp_path), {"quick": Quick({})}, pending_s=1.0)
    fast.handle(orjson.dumps(_eve(pcap_cnt=1)), 1000.0)
    fast.handle(orjson.dumps(_eve(pcap_cnt=2)), 1002.0)  # expires the first
    assert fast.stats.unmatched == 1
    assert fast.take(_eve(pcap_cnt=1), lambda c: None) is None
    assert fast.take(_eve(pcap_cnt=2), lambda c: None) is not None


def test_a_verdict_before_the_bus_copy_is_kept_for_it(tmp_path: Path) -> None:
    fast = FastPath(_cfg(tmp_path), {"quick": Quick({})})
    fast.handle(orjson.dumps(_eve()), time.time())
    (pending,) = fast._pending.values()
    verdict = Outcome("quick", DONE, "quiet", {"decision": "confirmed"})
    assert fast.verdict(pending.eve, verdict)
    assert not fast.verdict(_eve(), verdict)  # an equal dict is not the alert it acted on
    call = fast.take(_eve(), lambda c: None)
    assert call is not None and call.verdicts == [verdict]


@pytest.fixture
def client(redis_server: str) -> Iterator[Any]:
    c = redis.Redis.from_url(redis_server, socket_timeout=5)
    yield c
    c.close()


def test_service_acts_from_the_socket_and_records_from_the_bus(
    redis_server: str, client: Any, tmp_path: Path
) -> None:
    quick, log = Quick({}), LogResponder({})
    cfg = _cfg(tmp_path, redis={"url": redis_server}, block_ms=100, start_id="0")
    service = RespondService(cfg, responders={"quick": quick, "log": log})
    service.start()
    channel = FastChannel(cfg.fast_socket)
    try:
        payload = orjson.dumps(_eve())
        channel.send(payload)
        deadline = time.monotonic() + 5
        while not quick.calls and time.monotonic() < deadline:
            time.sleep(0.01)
        assert quick.calls and quick.calls[0][2] == "respond-fast"  # on the listener thread
        assert not log.records  # the bus copy has not arrived: nothing else acted yet
        client.xadd(STREAM, {b"eve": payload, b"sensor": b"s1", b"seq": b"1"})
        for message in service.consumer.read():
            service.process(message)
        assert len(quick.calls) == 1 and len(log.records) == 1
        decisions = {d[b"responder"].decode(): d for _, d in client.xrange("sekimori:decisions")}
        details = orjson.loads(decisions["quick"][b"details"])
        assert details["path"] == "fast" and "received_at" in details
        assert decisions["log"][b"outcome"] == b"logged"
        assert int(client.xpending(STREAM, "sekimori-responders")["pending"]) == 0
        assert service.stats()["fast_path"]["claimed"] == 1
    finally:
        channel.close()
        service.stop()
    assert not Path(cfg.fast_socket).exists()  # the socket file is removed on stop


def test_sensor_reads_the_same_fast_socket_setting(tmp_path: Path) -> None:
    conf = tmp_path / "sekimori.toml"
    conf.write_text('[respond]\nfast_socket = "/run/sekimori/fast.sock"\nmode = "prevent"\n')
    config, warnings = load_config(str(conf), env={}, sets=())
    assert config.output.fast_socket == "/run/sekimori/fast.sock"
    assert not warnings


def test_a_datagram_that_arrives_after_its_bus_copy_does_not_act(tmp_path: Path) -> None:
    quick = Quick({})
    fast = FastPath(_cfg(tmp_path), {"quick": quick})
    assert fast.take(_eve(), lambda c: None) is None  # the bus copy came first
    fast.handle(orjson.dumps(_eve()), time.time())
    assert quick.calls == [] and fast.stats.late == 1


def test_a_datagram_that_breaks_the_policy_is_dropped_not_the_listener(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import responders.fast as fast_module

    real = fast_module.decide

    def fragile(policy: Any, mode: str, eve: Mapping[str, Any]) -> Any:
        if eve.get("pcap_cnt") == 4:
            raise KeyError("a policy bug")
        return real(policy, mode, eve)

    monkeypatch.setattr(fast_module, "decide", fragile)
    quick = Quick({})
    cfg = _cfg(tmp_path)
    fast = FastPath(cfg, {"quick": quick})
    fast.start()
    sender = FastChannel(cfg.fast_socket)
    try:
        sender.send(orjson.dumps(_eve(pcap_cnt=4)))
        sender.send(orjson.dumps(_eve(pcap_cnt=5)))
        deadline = time.monotonic() + 5
        while not quick.calls and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [c[0] for c in quick.calls] == [5]  # the listener survived the first one
        assert fast.stats.malformed == 1
        assert any("alert datagram dropped" in r.getMessage() for r in caplog.records)
    finally:
        sender.close()
        fast.stop()
