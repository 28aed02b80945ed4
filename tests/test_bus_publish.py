"""Publishing alerts to a real redis-server: content, order, batching, trimming, settings."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from test_bus_helpers import RedisServer, make_alert, redis_proc

from sensor.errors import ConfigError
from sensor.output.eve import EveWriter
from sensor.output.redis_bus import AlertPublisher, BusConfig
from sensor.output.redis_conn import RedisSettings, bus_error, redact_url, same_slot_key

__all__ = ["redis_proc"]  # the fixture, re-exported so pytest finds it


def config(server: RedisServer, tmp_path: Path, **kw: object) -> BusConfig:
    return BusConfig(url=server.url, spool_dir=str(tmp_path / "spool"), sensor_id="s1", **kw)  # type: ignore[arg-type]


def stream_alerts(server: RedisServer, key: str = "sekimori:alerts") -> list[dict]:
    return [orjson.loads(f[b"eve"]) for _id, f in server.client().xrange(key)]


def test_stream_holds_exactly_the_alerts_in_order(redis_proc: RedisServer, tmp_path: Path) -> None:
    alerts = [make_alert(i) for i in range(1234)]
    pub = AlertPublisher(config(redis_proc, tmp_path, batch_size=100))
    for alert in alerts:
        pub.publish(alert)
    pub.close()
    assert stream_alerts(redis_proc) == alerts
    assert pub.stats.published == 1234
    assert pub.stats.spooled == pub.stats.dropped == pub.stats.redis_errors == 0


def test_entries_carry_sensor_and_increasing_seq(redis_proc: RedisServer, tmp_path: Path) -> None:
    pub = AlertPublisher(config(redis_proc, tmp_path))
    for i in range(10):
        pub.publish(make_alert(i))
    pub.close()
    entries = redis_proc.client().xrange("sekimori:alerts")
    assert {f[b"sensor"] for _id, f in entries} == {b"s1"}
    seqs = [int(f[b"seq"]) for _id, f in entries]
    assert seqs == sorted(seqs) and len(set(seqs)) == 10
    context = orjson.loads(entries[0][1][b"eve"])["sekimori"]
    assert context["tcp"]["toclient"]["next_seq"] == 5000


def test_alerts_go_in_batches_of_batch_size(redis_proc: RedisServer, tmp_path: Path) -> None:
    pub = AlertPublisher(config(redis_proc, tmp_path, batch_size=50, flush_interval_s=3600))
    for i in range(49):
        pub.publish(make_alert(i))
    assert redis_proc.client().xlen("sekimori:alerts") == 0  # still buffered
    pub.publish(make_alert(49))
    assert redis_proc.client().xlen("sekimori:alerts") == 50
    for i in range(50, 120):
        pub.publish(make_alert(i))
    pub.flush()
    assert pub.stats.batches == 3  # 50 + 50 + the 20 flushed explicitly
    assert redis_proc.client().xlen("sekimori:alerts") == 120
    pub.close()


def test_maxlen_trims_approximately(redis_proc: RedisServer, tmp_path: Path) -> None:
    pub = AlertPublisher(config(redis_proc, tmp_path, maxlen=1000))
    for i in range(5000):
        pub.publish(make_alert(i))
    pub.close()
    length = redis_proc.client().xlen("sekimori:alerts")
    assert 1000 <= length < 2000  # "~" trims whole macro nodes, never below the bound


def test_stats_stream(redis_proc: RedisServer, tmp_path: Path) -> None:
    pub = AlertPublisher(config(redis_proc, tmp_path, stats_stream="st"))
    pub.publish_stats({"event_type": "stats", "stats": {"uptime": 3}})
    pub.close()
    ((_id, fields),) = redis_proc.client().xrange("st")
    assert orjson.loads(fields[b"stats"])["stats"]["uptime"] == 3
    assert fields[b"sensor"] == b"s1"
    assert pub.stats.stats_published == 1


def test_close_twice_is_safe(redis_proc: RedisServer, tmp_path: Path) -> None:
    pub = AlertPublisher(config(redis_proc, tmp_path))
    pub.publish(make_alert(1))
    pub.close()
    pub.close()
    assert redis_proc.client().xlen("sekimori:alerts") == 1


def test_unserialisable_alert_is_counted_and_logged(
    redis_proc: RedisServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pub = AlertPublisher(config(redis_proc, tmp_path))
    pub.publish({"event_type": "alert", "bad": object()})
    pub.close()
    assert pub.stats.dropped == 1
    assert "alert dropped" in caplog.text


def test_password_from_file_and_never_shown(tmp_path: Path) -> None:
    secret = "s3cr3t-pw"
    server = RedisServer(tmp_path / "r", extra=("--requirepass", secret))
    server.start()
    try:
        pw_file = tmp_path / "pw"
        pw_file.write_text(secret + "\n")
        cfg = config(server, tmp_path, password_file=str(pw_file))
        pub = AlertPublisher(cfg)
        pub.publish(make_alert(1))
        pub.close()
        assert server.client(password=secret).xlen("sekimori:alerts") == 1
        shown = BusConfig(url=f"redis://u:{secret}@127.0.0.1:1/0", password=secret)
        assert secret not in repr(shown) and secret not in str(shown.dump())
        err = bus_error(shown.redis_settings(), RuntimeError(f"auth {secret} failed"), "x")
        assert secret not in str(err) and "127.0.0.1:1" in str(err)
    finally:
        server.stop()


def test_password_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEKIMORI_TEST_PW", "pw1")
    assert RedisSettings(password_env="SEKIMORI_TEST_PW").resolve_password() == "pw1"
    with pytest.raises(ConfigError, match="SEKIMORI_TEST_NOPE"):
        RedisSettings(password_env="SEKIMORI_TEST_NOPE").resolve_password()


def test_unix_socket(tmp_path: Path) -> None:
    sock = tmp_path / "redis.sock"
    server = RedisServer(tmp_path / "r", extra=("--unixsocket", str(sock)))
    server.start()
    try:
        pub = AlertPublisher(BusConfig(url=f"unix://{sock}", spool_dir=str(tmp_path / "sp")))
        pub.publish(make_alert(1))
        pub.close()
        assert pub.stats.published == 1
        assert RedisSettings(url=f"unix://{sock}").where == f"unix:{sock}"
    finally:
        server.stop()


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="scheme"):
        BusConfig(url="http://x")
    with pytest.raises(ConfigError):
        BusConfig(batch_size=0)
    assert redact_url("rediss://user:pw@h:6380/0") == "rediss://user:***@h:6380/0"


def test_hwm_key_shares_the_stream_slot() -> None:
    assert same_slot_key("sekimori:alerts", ":hwm") == "{sekimori:alerts}:hwm"
    assert same_slot_key("alerts:{s1}", ":hwm") == "alerts:{s1}:hwm"
    assert same_slot_key("a{}b", ":x") == "{a{}b}:x"


def test_stream_matches_the_eve_file_through_an_outage(
    redis_proc: RedisServer, tmp_path: Path
) -> None:
    # The sensor writes each alert to the EVE file and to the bus; after Redis was killed and
    # restarted mid-capture, the stream holds exactly the file's alerts, in order, once each.
    eve_path = tmp_path / "eve.json"
    writer = EveWriter(str(eve_path))
    pub = AlertPublisher(config(redis_proc, tmp_path, batch_size=64, retry_interval_s=0.0))
    for i in range(2000):
        if i == 700:
            redis_proc.kill()
        if i == 1400:
            redis_proc.start()
        alert = make_alert(i, sid=3000 + i % 7)
        writer.write(alert)
        pub.publish(alert)
    writer.close()
    pub.close()
    from_file = [orjson.loads(line) for line in eve_path.read_bytes().splitlines()]
    assert stream_alerts(redis_proc) == from_file
    assert pub.stats.spooled > 0 and pub.stats.replayed == pub.stats.spooled
