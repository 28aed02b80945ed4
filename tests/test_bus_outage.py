"""Redis outages: alerts spool locally, replay in order, exactly once, with honest counters."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pytest
from test_bus_helpers import RedisServer, make_alert, redis_proc

from sensor.output.redis_bus import AlertPublisher, BusConfig
from sensor.output.spool import Spool

__all__ = ["redis_proc"]


def config(server: RedisServer, tmp_path: Path, **kw: object) -> BusConfig:
    base: dict[str, object] = {
        "url": server.url, "spool_dir": str(tmp_path / "spool"), "sensor_id": "s1",
        "batch_size": 100, "retry_interval_s": 0.0, "connect_timeout_s": 0.5,
        "socket_timeout_s": 1.0,
    }  # fmt: skip
    base.update(kw)
    return BusConfig(**base)  # type: ignore[arg-type]


def alert_numbers(server: RedisServer) -> list[int]:
    entries = server.client().xrange("sekimori:alerts")
    return [orjson.loads(f[b"eve"])["sekimori"]["alert_no"] for _id, f in entries]


def test_kill_restart_replays_in_order_exactly_once(
    redis_proc: RedisServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    pub = AlertPublisher(config(redis_proc, tmp_path))
    for i in range(1000):
        pub.publish(make_alert(i))
    redis_proc.kill()
    for i in range(1000, 2500):  # the sensor keeps detecting through the outage
        pub.publish(make_alert(i))
    pub.flush()
    assert pub.stats.spooled > 0 and pub.stats.redis_errors > 0
    assert pub.spool_bytes > 0
    redis_proc.start()
    for i in range(2500, 3000):
        pub.publish(make_alert(i))
    pub.close()
    assert alert_numbers(redis_proc) == list(range(3000))
    stats = pub.stats
    assert stats.published + stats.replayed == 3000
    assert stats.replayed == stats.spooled
    assert stats.dropped == 0
    assert pub.spool_bytes == 0
    assert caplog.text.count("spooling alerts") == 1  # logged once per outage, not per batch
    assert "reachable again" in caplog.text


def test_batch_retried_after_lost_reply_is_not_added_twice(
    redis_proc: RedisServer, tmp_path: Path
) -> None:
    # Simulate "Redis applied the batch but the reply was lost": replay the same records.
    cfg = config(redis_proc, tmp_path)
    pub = AlertPublisher(cfg)
    for i in range(100):
        pub.publish(make_alert(i))
    pub.close()
    spool = Spool(tmp_path / "again", 1 << 20)
    for _id, fields in redis_proc.client().xrange("sekimori:alerts"):
        spool.append(int(fields[b"seq"]), fields[b"eve"])
    spool.close()
    pub2 = AlertPublisher(config(redis_proc, tmp_path, spool_dir=str(tmp_path / "again")))
    pub2.close()
    assert alert_numbers(redis_proc) == list(range(100))
    assert pub2.stats.deduplicated == 100 and pub2.stats.replayed == 100


def test_spool_bound_drops_are_counted_and_logged(
    redis_proc: RedisServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bound = 64 * 1024
    pub = AlertPublisher(config(redis_proc, tmp_path, spool_max_bytes=bound))
    redis_proc.kill()
    for i in range(500):
        pub.publish(make_alert(i))
    pub.flush()
    assert pub.stats.dropped > 0
    assert pub.stats.spooled + pub.stats.dropped == 500
    assert pub.spool_bytes <= bound
    assert "alert dropped" in caplog.text and "is full" in caplog.text
    redis_proc.start()
    pub.close()
    # What was kept is the oldest, gap-free prefix.
    assert alert_numbers(redis_proc) == list(range(pub.stats.spooled))


def test_restart_replays_spool_left_by_previous_run(
    redis_proc: RedisServer, tmp_path: Path
) -> None:
    cfg = config(redis_proc, tmp_path)
    redis_proc.kill()
    first = AlertPublisher(cfg)
    for i in range(300):
        first.publish(make_alert(i))
    first.close()  # Redis still down: everything stays in the spool
    assert first.stats.spooled == 300 and first.stats.published == 0
    redis_proc.start()
    second = AlertPublisher(cfg)
    for i in range(300, 350):
        second.publish(make_alert(i))
    second.close()
    assert alert_numbers(redis_proc) == list(range(350))
    assert second.stats.replayed == 300 and second.stats.published == 50
    assert not list((tmp_path / "spool").glob("*.seg"))


def test_close_replays_more_than_one_flush_worth(redis_proc: RedisServer, tmp_path: Path) -> None:
    cfg = config(redis_proc, tmp_path, batch_size=10, replay_batches_per_flush=2)
    redis_proc.kill()
    first = AlertPublisher(cfg)
    for i in range(105):
        first.publish(make_alert(i))
    first.close()
    redis_proc.start()
    second = AlertPublisher(cfg)
    second.close()
    assert second.stats.replayed == 105
    assert alert_numbers(redis_proc) == list(range(105))


def test_stats_are_dropped_not_spooled_during_outage(
    redis_proc: RedisServer, tmp_path: Path
) -> None:
    pub = AlertPublisher(config(redis_proc, tmp_path, retry_interval_s=60.0))
    redis_proc.kill()
    pub.publish_stats({"event_type": "stats"})
    pub.publish_stats({"event_type": "stats"})  # inside the retry interval: not even tried
    assert pub.stats.stats_dropped == 2 and pub.stats.redis_errors == 1
    pub.close()


def test_publish_does_not_block_during_outage(redis_proc: RedisServer, tmp_path: Path) -> None:
    # With a retry interval, an outage costs one timed-out attempt, not one per batch.
    pub = AlertPublisher(config(redis_proc, tmp_path, retry_interval_s=60.0))
    redis_proc.kill()
    for i in range(2000):
        pub.publish(make_alert(i))
    pub.flush()
    assert pub.stats.redis_errors == 1
    assert pub.stats.spooled == 2000
    redis_proc.start()
    pub.close()  # close still inside the retry interval: the spool waits for the next run
    assert pub.stats.replayed == 0
    again = AlertPublisher(config(redis_proc, tmp_path))
    again.close()
    assert alert_numbers(redis_proc) == list(range(2000))


def test_unwritable_spool_drops_with_log_not_traceback(
    redis_proc: RedisServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pub = AlertPublisher(config(redis_proc, tmp_path))
    spool_dir = tmp_path / "spool"
    spool_dir.rmdir()
    spool_dir.write_text("not a directory")  # segment files cannot be created any more
    redis_proc.kill()
    for i in range(3):
        pub.publish(make_alert(i))
    pub.flush()
    assert pub.stats.dropped == 3 and pub.stats.spooled == 0
    assert "cannot be written" in caplog.text
    pub.close()


def test_torn_spool_tail_is_skipped_and_reported(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20)
    for seq in range(1, 6):
        spool.append(seq, b'{"n":%d}' % seq)
    spool.close()
    (segment,) = tmp_path.glob("*.seg")
    data = segment.read_bytes()
    segment.write_bytes(data[:-3])  # crash in the middle of the last record
    reopened = Spool(tmp_path, 1 << 20)
    assert reopened.max_seq() == 4
    records = reopened.peek(10)
    assert [seq for seq, _ in records] == [1, 2, 3, 4]
    reopened.consume(len(records))
    assert reopened.is_empty()
    assert reopened.corrupt_records >= 1


def test_spool_spans_segments_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20, segment_bytes=4096)
    payload = b"x" * 1000
    for seq in range(1, 41):
        assert spool.append(seq, payload)
    assert len(list(tmp_path.glob("*.seg"))) > 5
    seen: list[int] = []
    while not spool.is_empty():
        chunk = spool.peek(7)
        seen.extend(seq for seq, _ in chunk)
        spool.consume(len(chunk))
    assert seen == list(range(1, 41))
    assert not list(tmp_path.glob("*.seg"))
