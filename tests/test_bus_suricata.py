"""Alerts written the way Suricata's EVE ``redis`` output writes them are read by the consumer.

Layouts (Suricata 7 docs, output ``eve-log`` with ``filetype: redis``; default key
``suricata``): ``mode: stream``/``xadd`` issues ``XADD <key> [MAXLEN ~ n] * eve <json>``;
``mode: list``/``lpush`` issues ``LPUSH <key> <json>``, ``rpush`` ``RPUSH <key> <json>``;
``mode: channel``/``publish`` issues ``PUBLISH <key> <json>``.
"""

from __future__ import annotations

import orjson
from test_bus_helpers import RedisServer, redis_proc

from responders.bus import AlertConsumer, ConsumerConfig
from responders.bus_idempotency import IdempotencyGuard, Outcome
from responders.bus_sources import ChannelSource, ListSource
from sensor.output.redis_conn import RedisSettings

__all__ = ["redis_proc"]


def suricata_alert(n: int) -> bytes:
    """An EVE alert in the layout of Suricata's documentation (no sekimori context)."""
    record = {
        "timestamp": f"2009-11-24T21:27:09.{534255 + n:06d}+0100",
        "flow_id": 1676750115612680 + n,
        "in_iface": "enp0s3",
        "event_type": "alert",
        "src_ip": "192.168.2.7",
        "src_port": 1041 + n,
        "dest_ip": "x.x.250.50",
        "dest_port": 80,
        "proto": "TCP",
        "pkt_src": "wire/pcap",
        "alert": {
            "action": "allowed",
            "gid": 1,
            "signature_id": 2001999,
            "rev": 9,
            "signature": "ET MALWARE BTGrab.com Spyware Downloading Ads",
            "category": "A Network Trojan was detected",
            "severity": 1,
        },
        "app_proto": "http",
        "flow": {
            "pkts_toserver": 3,
            "pkts_toclient": 1,
            "bytes_toserver": 254,
            "bytes_toclient": 66,
            "start": "2009-11-24T21:27:09.000000+0100",
        },
    }
    return orjson.dumps(record)


def test_stream_mode_with_consumer_group(redis_proc: RedisServer) -> None:
    client = redis_proc.client()
    for n in range(20):
        client.execute_command("XADD", "suricata", "MAXLEN", "~", 100000, "*", "eve",
                               suricata_alert(n))  # fmt: skip
    cfg = ConsumerConfig(redis=RedisSettings(url=redis_proc.url), streams=("suricata",),
                         consumer="r1", block_ms=100)  # fmt: skip
    c = AlertConsumer(cfg)
    seen: list[int] = []
    while c.run_once(lambda m: seen.append(m.eve["src_port"] - 1041)):
        pass
    assert seen == list(range(20))
    assert c.stats.handled == 20
    # Suricata entries have no (sensor, seq): their idempotency keys are content hashes.
    keys = client.keys("sekimori:done:h:*")
    assert len(keys) == 20


def test_list_mode_lpush_oldest_first_and_recovery(redis_proc: RedisServer) -> None:
    client = redis_proc.client()
    for n in range(10):
        client.lpush("suricata", suricata_alert(n))
    settings = RedisSettings(url=redis_proc.url)
    source = ListSource(client, settings, "suricata", consumer="r1", mode="list", count=4,
                        block_s=0.1)  # fmt: skip
    first = source.read()
    assert [m.eve["src_port"] - 1041 for m in first] == [0, 1, 2, 3]
    source.ack(first[0])
    # The responder dies with 1, 2, 3 taken but not acknowledged; a new run recovers them.
    again = ListSource(client, settings, "suricata", consumer="r1", mode="list", count=100,
                       block_s=0.1)  # fmt: skip
    assert again.recover() == 3
    rest = again.read()
    assert [m.eve["src_port"] - 1041 for m in rest] == list(range(1, 10))
    for m in rest:
        again.ack(m)
    assert client.llen("suricata:processing:r1") == 0


def test_list_mode_rpush(redis_proc: RedisServer) -> None:
    client = redis_proc.client()
    for n in range(5):
        client.rpush("suricata", suricata_alert(n))
    source = ListSource(client, RedisSettings(url=redis_proc.url), "suricata", consumer="r",
                        mode="rpush", block_s=0.1)  # fmt: skip
    assert [m.eve["src_port"] - 1041 for m in source.read()] == list(range(5))


def test_channel_mode_and_idempotency(redis_proc: RedisServer) -> None:
    client = redis_proc.client()
    source = ChannelSource(redis_proc.client(), RedisSettings(url=redis_proc.url), "suricata",
                           block_s=2.0)  # fmt: skip
    for n in (0, 1, 1):  # the same record published twice
        client.publish("suricata", suricata_alert(n))
    messages = source.read()
    while len(messages) < 3:
        more = source.read()
        assert more, "published messages did not arrive"
        messages.extend(more)
    source.close()
    guard = IdempotencyGuard(client, prefix="t:", owner="r", lease_ms=10000, ttl_s=60)
    acted: list[int] = []
    outcomes = [guard.run(m, lambda m: acted.append(m.eve["src_port"])) for m in messages]
    assert acted == [1041, 1042]
    assert outcomes == [Outcome.HANDLED, Outcome.HANDLED, Outcome.DUPLICATE]
