"""The responder service against a real redis-server: an alert is acknowledged only after
every responder finished (done, skipped, failed after retries, timed out); one failing or
hanging responder never stops the others; every outcome lands in ``sekimori:decisions``;
broken plugins (entry points that do not import, are not Responder classes, or fail to
start) are refused at start with a message naming them."""

from __future__ import annotations

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
from responders.plugin import DONE, FAILED, AlertResponder, Outcome, load_plugins
from responders.service import BUILTINS, RespondService, build_responders
from sensor.errors import ResponderError

STREAM = "sekimori:alerts"


class Slow(AlertResponder):
    name = "slow"

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.started = threading.Event()
        self.release = threading.Event()

    def respond(self, alert: Mapping[str, Any], *, enforce: bool) -> Outcome:
        self.started.set()
        self.release.wait(10)
        return Outcome(self.name, DONE, "finally", {"decision": "slow_done"})


class Boom(AlertResponder):
    name = "boom"
    calls = 0

    def respond(self, alert: Mapping[str, Any], *, enforce: bool) -> Outcome:
        type(self).calls += 1
        raise RuntimeError("plugin bug")


class Hang(AlertResponder):
    name = "hang"

    def respond(self, alert: Mapping[str, Any], *, enforce: bool) -> Outcome:
        time.sleep(3)
        return Outcome(self.name, DONE)


class BadStart(AlertResponder):
    name = "badstart"

    def start(self) -> None:
        raise OSError("no such device")

    def respond(self, alert: Mapping[str, Any], *, enforce: bool) -> Outcome:
        raise AssertionError("never called")


def _alert(seq: int, action: str = "drop") -> dict[Any, Any]:
    eve = {"timestamp": "2026-01-01T00:00:00.000000+0000", "event_type": "alert",
           "src_ip": "10.0.0.1", "src_port": 1, "dest_ip": "10.0.0.2", "dest_port": 2,
           "proto": "TCP", "alert": {"signature_id": 9, "severity": 1},
           "sekimori": {"rule_action": action, "mode": "prevent"}}  # fmt: skip
    return {b"eve": orjson.dumps(eve), b"sensor": b"s1", b"seq": str(seq).encode()}


@pytest.fixture
def client(redis_server: str) -> Iterator[Any]:
    c = redis.Redis.from_url(redis_server, socket_timeout=5)
    yield c
    c.close()


def _service(url: str, responders: dict[str, AlertResponder], **respond: Any) -> RespondService:
    table = {"mode": "sensor", "redis": {"url": url}, "block_ms": 100, "start_id": "0",
             "retries": 1, "retry_delay_s": 0.01, **respond}  # fmt: skip
    cfg = build({"respond": table})
    service = RespondService(cfg, responders=responders)
    service.start()
    return service


def _decisions(c: Any) -> list[dict[str, str]]:
    return [
        {k.decode(): v.decode() for k, v in f.items()} for _, f in c.xrange("sekimori:decisions")
    ]


def _pending(c: Any) -> int:
    return int(c.xpending(STREAM, "sekimori-responders")["pending"])


def test_ack_waits_for_every_responder(redis_server: str, client: Any) -> None:
    slow, log = Slow({}), LogResponder({})
    service = _service(redis_server, {"slow": slow, "log": log}, timeout_s=5)
    client.xadd(STREAM, _alert(1))
    worker = threading.Thread(target=service.consumer.run_once, args=(service.handle,))
    try:
        worker.start()
        assert slow.started.wait(5)
        time.sleep(0.2)
        assert _pending(client) == 1  # log is done, slow is not: not acknowledged yet
        assert len(log.records) == 1 and _decisions(client) == []
        slow.release.set()
        worker.join(5)
        assert _pending(client) == 0
        outcomes = sorted((d["responder"], d["outcome"]) for d in _decisions(client))
        assert outcomes == [("log", "logged"), ("slow", "slow_done")]
    finally:
        slow.release.set()
        service.stop()


def test_failing_and_hanging_responders_do_not_stop_the_others(
    redis_server: str, client: Any
) -> None:
    Boom.calls = 0
    log = LogResponder({})
    service = _service(redis_server, {"boom": Boom({}), "hang": Hang({}), "log": log},
                       timeout_s=0.3)  # fmt: skip
    client.xadd(STREAM, _alert(1))
    try:
        assert service.consumer.run_once(service.handle) == 1
        assert _pending(client) == 0  # failed after retries and timed out both count as finished
        by = {d["responder"]: d for d in _decisions(client)}
        assert by["log"]["status"] == DONE
        assert by["boom"]["status"] == FAILED and "after 2 attempt(s)" in by["boom"]["reason"]
        assert "plugin bug" in by["boom"]["reason"] and Boom.calls == 2
        assert by["hang"]["status"] == FAILED and "timed out" in by["hang"]["reason"]
    finally:
        service.stop()


def test_non_matching_alerts_get_one_no_action_record(redis_server: str,
                                                      client: Any) -> None:  # fmt: skip
    log = LogResponder({})
    service = _service(redis_server, {"log": log})
    client.xadd(STREAM, _alert(1, action="alert"))
    try:
        service.consumer.run_once(service.handle)
        decisions = _decisions(client)
        assert [(d["responder"], d["outcome"]) for d in decisions] == [("policy", "no_action")]
        assert not log.records and _pending(client) == 0
    finally:
        service.stop()


def test_a_redelivered_alert_is_not_acted_on_twice(redis_server: str, client: Any) -> None:
    log = LogResponder({})
    service = _service(redis_server, {"log": log})
    client.xadd(STREAM, _alert(7))
    client.xadd(STREAM, _alert(7))  # the same (sensor, seq): a replayed duplicate
    try:
        service.consumer.run_once(service.handle)
        assert len(log.records) == 1 and service.consumer.stats.duplicates == 1
    finally:
        service.stop()


def test_detect_mode_records_would_reset(redis_server: str, client: Any) -> None:
    cfg = build({"respond": {"mode": "detect", "redis": {"url": redis_server}, "start_id": "0",
                             "responders": ["tcp-reset"], "block_ms": 100,
                             "tcp-reset": {"interface": "lo", "watch": False}}})  # fmt: skip
    eve = orjson.loads(_alert(1)[b"eve"])
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000%z")
    eve.update({"timestamp": now, "flow": {"src_ip": "10.0.0.1", "src_port": 1,
                                           "dest_ip": "10.0.0.2", "dest_port": 2}})  # fmt: skip
    eve["sekimori"]["tcp"] = {
        "toserver": {"next_seq": 100, "last_ack": 5, "window": 1000, "ttl": 64, "mac": "02:00:00:00:00:01"},
        "toclient": {"next_seq": 5, "last_ack": 100, "window": 1000, "ttl": 64, "mac": "02:00:00:00:00:02"},
    }  # fmt: skip
    client.xadd(STREAM, {b"eve": orjson.dumps(eve), b"sensor": b"s1", b"seq": b"1"})
    service = RespondService(cfg)
    service.start()
    try:
        service.consumer.run_once(service.handle)
        (decision,) = _decisions(client)
        assert decision["outcome"] == "would_reset" and decision["enforce"] == "0"
        details = orjson.loads(decision["details"])
        assert details["to_server"] == [100] and details["to_client"] == [5]
    finally:
        service.stop()


# -- plugins -----------------------------------------------------------------------------------


def _entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    dist = tmp_path / "brokenplug-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenplug\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[sekimori.responders]\nbroken = {value}\n")
    (tmp_path / "brokenplug_mod.py").write_text("NOT_A_CLASS = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))


def test_builtins_are_registered_entry_points() -> None:
    found = load_plugins({})
    assert found["tcp-reset"] is BUILTINS["tcp-reset"] and found["log"] is BUILTINS["log"]


@pytest.mark.parametrize(("value", "message"), [
    ("brokenplug_missing_module:Thing", "fails to load: ModuleNotFoundError"),
    ("brokenplug_mod:NOT_A_CLASS", "is not a sekimori Responder class"),
])  # fmt: skip
def test_broken_plugins_are_refused_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            value: str, message: str) -> None:  # fmt: skip
    _entry_point(tmp_path, monkeypatch, value)
    with pytest.raises(ResponderError, match=f"'broken'.*{message}"):
        build_responders(build({"respond": {"responders": ["log"]}}))


def test_unknown_responder_and_failing_start_are_named(redis_server: str) -> None:
    with pytest.raises(ResponderError, match="unknown responder 'nope'"):
        build_responders(build({"respond": {"responders": ["nope"]}}))
    cfg = build({"respond": {"redis": {"url": redis_server}}})
    service = RespondService(cfg, responders={"badstart": BadStart({})})
    with pytest.raises(ResponderError, match=r"'badstart' failed to start: .*no such device"):
        service.start()


def test_block_manager_gets_every_alert_when_blocks_are_configured(
    redis_server: str, client: Any
) -> None:
    # The real BlockManager (responders/blocking.py) with its ledger and no firewall target.
    cfg = build({"respond": {"redis": {"url": redis_server}, "start_id": "0", "mode": "prevent",
                             "block_ms": 100},
                 "blocks": {"targets": [], "protect-self": False}})  # fmt: skip
    eve = orjson.loads(_alert(1)[b"eve"])
    eve["src_ip"] = "203.0.113.9"
    eve["sekimori"]["handshake_seen"] = True
    client.xadd(STREAM, {b"eve": orjson.dumps(eve), b"sensor": b"s1", b"seq": b"1"})
    service = RespondService(cfg)
    service.start()
    try:
        for message in service.consumer.read():
            service.process(message)
        by = {d["responder"]: d for d in _decisions(client)}
        assert by["log"]["outcome"] == "logged"
        assert by["blocks"]["status"] == DONE and "203.0.113.9/32" in by["blocks"]["reason"]
        assert _pending(client) == 0
    finally:
        service.stop()


def test_stats_publish_a_responder_heartbeat_for_status(redis_server: str, client: Any) -> None:
    from sensor.heartbeat import read_heartbeats

    service = _service(redis_server, {})
    service.publish_stats()
    beats = read_heartbeats(client, "responder")
    assert [b.id for b in beats] == [service.cfg.consumer.consumer]
    assert beats[0].fields["group"] == "sekimori-responders"
    assert beats[0].fields["failures"] == "0"


def test_metrics_endpoint_shows_decisions_and_latency(redis_server: str, client: Any) -> None:
    import socket
    import urllib.request

    from responders.metrics import serve_responder_metrics

    service = _service(redis_server, {})
    service.counts["tcp-reset:confirmed"] += 2
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = serve_responder_metrics(f"127.0.0.1:{port}", service)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    finally:
        server.shutdown()
    assert (
        'sekimori_responder_decisions_total{outcome="confirmed",responder="tcp-reset"} 2.0' in text
    )
