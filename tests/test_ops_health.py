"""Health alerts and status verdicts: thresholds, once-per-condition, real Redis heartbeats.

The responder heartbeats here are written by the test with ``publish_heartbeat`` (the
function responders/service.py calls), against a real redis-server with a real consumer
group, so the lag comes from Redis itself.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import redis

from cli.status_cmd import AMBER, GREEN, RED, collect, judge_sensor
from sensor.extensions import AlertEvent, Extensions
from sensor.health import SID_DROPS, SID_NO_PACKETS, SID_RESPONDER_LAG, HealthMonitor
from sensor.heartbeat import Heartbeat, publish_heartbeat, read_heartbeats
from sensor.opsconfig import OpsSettings

NOW = 1_800_000_000.0


class Collect:
    """An AlertSink keeping what it is given (the real sinks are EVE/Redis writers)."""

    def __init__(self) -> None:
        self.events: list[AlertEvent] = []

    def write(self, event: AlertEvent) -> None:
        self.events.append(event)

    def close(self) -> None:
        pass


def monitor(settings: OpsSettings, client: Any = None) -> tuple[HealthMonitor, Collect, list]:
    clock = [NOW]
    ext = Extensions()
    sink = Collect()
    ext.sinks.append(sink)
    return HealthMonitor(ext, settings, client, clock=lambda: clock[0]), sink, clock


def sids(sink: Collect) -> list[int]:
    return [e.signature.sid for e in sink.events]


def test_no_packets_fires_once_and_rearms() -> None:
    mon, sink, _ = monitor(OpsSettings(no_packets_s=10))
    for t in range(0, 30):  # silent link for 30 s
        mon.tick(NOW + t, {"capture.packets": 5})
    assert sids(sink) == [SID_NO_PACKETS]
    record = sink.events[0].record
    assert record["health"]["check"] == "no_packets" and "src_ip" not in record
    assert record["alert"]["signature_id"] == SID_NO_PACKETS and record["alert"]["severity"] == 1
    mon.tick(NOW + 31, {"capture.packets": 6})  # traffic is back
    for t in range(32, 45):
        mon.tick(NOW + t, {"capture.packets": 6})
    assert sids(sink) == [SID_NO_PACKETS, SID_NO_PACKETS]


def test_drops_over_the_window() -> None:
    mon, sink, _ = monitor(OpsSettings(drop_percent=1.0, drop_window_s=10))
    for t in range(0, 11):  # 0.5 % dropped: fine
        mon.tick(NOW + t, {"capture.packets": 1000 * t, "capture.kernel_drops": 5 * t})
    assert sids(sink) == []
    for t in range(11, 22):  # then 5 %
        mon.tick(NOW + t, {"capture.packets": 1000 * t, "capture.kernel_drops": 55 + 50 * (t - 10)})
    assert sids(sink) == [SID_DROPS]
    assert sink.events[0].record["health"]["percent"] > 1.0


def test_capture_files_get_no_health_alerts() -> None:
    mon, sink, _ = monitor(OpsSettings(no_packets_s=1))
    for t in range(0, 100):  # capture time of a 2023 file, far from the (fake) wall clock
        mon.tick(1_700_000_000.0 + t, {"capture.packets": 1})
    assert sids(sink) == []


def test_responder_lag_alert_and_status(redis_server: str) -> None:
    client = redis.Redis.from_url(redis_server, socket_timeout=5)
    client.xgroup_create("sekimori:alerts", "responders", id="0", mkstream=True)
    for i in range(30):
        client.xadd("sekimori:alerts", {"eve": b"{}", "seq": str(i)})
    beat = {"stream": "sekimori:alerts", "group": "responders", "handled": 0, "failures": 0,
            "consecutive_failures": 0, "interval": 1}  # fmt: skip
    publish_heartbeat(client, "responder", "reset-1", beat, now=NOW)
    mon, sink, _clock = monitor(OpsSettings(responder_lag=20), client)
    mon.tick(NOW, {"capture.packets": 1})
    assert sids(sink) == [SID_RESPONDER_LAG]
    assert sink.events[0].record["health"]["lag"] == 30

    # the same figures in `sekimori status`: amber for lag >= 20, red past 10x
    verdicts = collect(client, OpsSettings(responder_lag=20), NOW + 1)
    assert [(v.kind, v.id, v.colour) for v in verdicts] == [("responder", "reset-1", AMBER)]
    assert "lag 30" in verdicts[0].reasons
    verdicts = collect(client, OpsSettings(responder_lag=100), NOW + 1)
    assert verdicts[0].colour == GREEN
    verdicts = collect(client, OpsSettings(responder_lag=100), NOW + 30)  # stopped beating
    assert verdicts[0].colour == RED and "no heartbeat" in verdicts[0].reasons[0]


def test_live_responder_checks_read_redis_from_a_thread(redis_server: str) -> None:
    client = redis.Redis.from_url(redis_server, socket_timeout=5)
    client.xgroup_create("sekimori:alerts", "responders", id="0", mkstream=True)
    for i in range(30):
        client.xadd("sekimori:alerts", {"eve": b"{}", "seq": str(i)})
    beat = {"stream": "sekimori:alerts", "group": "responders", "consecutive_failures": 0}
    publish_heartbeat(client, "responder", "reset-1", beat, now=NOW)
    mon, sink, _clock = monitor(OpsSettings(responder_lag=20), client)
    mon.background()
    try:
        deadline = time.monotonic() + 10
        while not sink.events and time.monotonic() < deadline:
            mon.tick(NOW, {"capture.packets": 1})  # judges whatever the thread has read
            time.sleep(0.01)
    finally:
        mon.close()
    assert sids(sink) == [SID_RESPONDER_LAG]
    assert sink.events[0].record["health"]["lag"] == 30


def test_heartbeat_round_trip_and_expiry(redis_server: str) -> None:
    client = redis.Redis.from_url(redis_server, socket_timeout=5)
    publish_heartbeat(client, "sensor", "s1", {"iface": "eth1", "pps": 12.5, "up": True,
                                               "counters": {"capture.packets": 3}}, now=NOW)  # fmt: skip
    publish_heartbeat(client, "responder", "r1", {"group": "g"}, now=NOW, ttl_s=1)
    client.delete("sekimori:hb:responder:r1")  # as if its TTL ran out
    beats = read_heartbeats(client)
    assert [(b.kind, b.id, b.ts) for b in beats] == [("sensor", "s1", NOW)]
    assert beats[0].fields["iface"] == "eth1" and beats[0].num("pps") == 12.5
    assert beats[0].fields["counters"] == '{"capture.packets":3}'
    assert client.zrange("sekimori:hb", 0, -1) == [b"sensor:s1"]  # stale index entry gone


def test_sensor_verdicts() -> None:
    s = OpsSettings(no_packets_s=60, drop_percent=1.0)
    base = {"interval": "5", "state": "running", "uptime_s": "600", "iface": "eth1",
            "pps": "100", "drop_pct": "0.1", "last_packet": str(NOW - 1)}  # fmt: skip

    def verdict(**change: str) -> tuple[str, tuple[str, ...]]:
        v = judge_sensor(Heartbeat("sensor", "s", NOW, {**base, **change}), NOW + 2, s)
        return v.colour, v.reasons

    assert verdict() == (GREEN, ())
    assert verdict(drop_pct="2.5") == (AMBER, ("drops 2.50%",))
    assert verdict(drop_pct="9")[0] == RED
    assert verdict(last_packet=str(NOW - 300)) == (RED, ("no packets for 5m",))
    assert verdict(state="stopped")[0] == RED


def test_live_heartbeats_publish_from_their_thread_and_stopped_comes_last(
    redis_server: str,
) -> None:
    from sensor.heartbeat import SensorHeartbeat

    client = redis.Redis.from_url(redis_server, socket_timeout=5)
    published: list[str] = []

    beat = SensorHeartbeat(client, "live-1", 5.0, run_info=lambda: {"iface": "eth1"})
    publish = beat._publish

    def recording(wall: float, fields: Any) -> None:  # which thread published what
        published.append(f"{fields['state']}@{threading.current_thread().name}")
        publish(wall, fields)

    beat._publish = recording  # type: ignore[method-assign]
    beat.background()
    beat.tick(NOW, {"capture.packets": 10})
    deadline = time.monotonic() + 10
    while not read_heartbeats(client, "sensor") and time.monotonic() < deadline:
        time.sleep(0.01)
    (first,) = read_heartbeats(client, "sensor")
    assert first.fields["state"] == "running" and first.fields["packets"] == "10"
    beat.stopped({"capture.packets": 12})
    (last,) = read_heartbeats(client, "sensor")
    assert last.fields["state"] == "stopped" and last.fields["packets"] == "12"
    assert published == ["running@sensor-heartbeat", f"stopped@{threading.current_thread().name}"]
