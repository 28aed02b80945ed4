"""Consumer groups on a real redis-server: sharing, reclaiming, dead-letter, idempotency."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from test_bus_helpers import RedisServer, make_alert, redis_proc

from responders.bus import AlertConsumer, ConsumerConfig
from responders.bus_idempotency import Outcome
from responders.bus_message import BusMessage
from sensor.errors import BusError
from sensor.output.redis_bus import AlertPublisher, BusConfig
from sensor.output.redis_conn import RedisSettings

__all__ = ["redis_proc"]

ROOT = Path(__file__).resolve().parent.parent


def publish(server: RedisServer, tmp_path: Path, count: int, start: int = 0) -> None:
    pub = AlertPublisher(BusConfig(url=server.url, spool_dir=str(tmp_path / "spool")))
    for i in range(start, start + count):
        pub.publish(make_alert(i))
    pub.close()
    assert pub.stats.published == count


def consumer(server: RedisServer, name: str, **kw: object) -> AlertConsumer:
    options: dict[str, object] = {"block_ms": 100, "count": 10}
    options.update(kw)
    cfg = ConsumerConfig(redis=RedisSettings(url=server.url), consumer=name, **options)  # type: ignore[arg-type]
    return AlertConsumer(cfg)


def alert_no(message: BusMessage) -> int:
    context = message.context
    assert context is not None
    return int(context["alert_no"])


def drain(consumers: list[AlertConsumer], handled: list[tuple[str, int]], until: int) -> None:
    """Run the consumers in turn until ``until`` alerts were handled (or 30 s pass)."""
    deadline = time.monotonic() + 30
    while len(handled) < until and time.monotonic() < deadline:
        for c in consumers:
            c.run_once(recorder(c.cfg.consumer, handled))


def recorder(name: str, handled: list[tuple[str, int]]) -> Callable[[BusMessage], None]:
    def action(message: BusMessage) -> None:
        handled.append((name, alert_no(message)))

    return action


def test_two_consumers_share_the_work(redis_proc: RedisServer, tmp_path: Path) -> None:
    publish(redis_proc, tmp_path, 200)
    a, b = consumer(redis_proc, "a"), consumer(redis_proc, "b")
    handled: list[tuple[str, int]] = []
    drain([a, b], handled, 200)
    numbers = sorted(n for _name, n in handled)
    assert numbers == list(range(200))  # every alert once
    assert {name for name, _n in handled} == {"a", "b"}  # both did some
    assert a.stats.handled + b.stats.handled == 200
    pending = redis_proc.client().xpending("sekimori:alerts", "sekimori-responders")
    assert pending["pending"] == 0


KILLED_CONSUMER = """
import os, signal, sys
from responders.bus import AlertConsumer, ConsumerConfig
from sensor.output.redis_conn import RedisSettings
cfg = ConsumerConfig(redis=RedisSettings(url=sys.argv[1]), consumer="doomed", count=1000,
                     block_ms=100)
messages = AlertConsumer(cfg).read()
print(len(messages), flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # dies after reading, before acting or acking
"""


def test_messages_of_a_killed_consumer_are_claimed_and_handled_once(
    redis_proc: RedisServer, tmp_path: Path
) -> None:
    publish(redis_proc, tmp_path, 50)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", KILLED_CONSUMER, redis_proc.url], env=env,
                          capture_output=True, timeout=60, check=False)  # fmt: skip
    assert proc.returncode == -9 and proc.stdout.strip() == b"50"
    publish(redis_proc, tmp_path, 10, start=50)
    survivor = consumer(redis_proc, "survivor", claim_idle_ms=200)
    handled: list[tuple[str, int]] = []
    drain([survivor], handled, 60)
    assert sorted(n for _name, n in handled) == list(range(60))
    assert survivor.stats.claimed == 50
    for _ in range(3):  # nothing more turns up: no second action
        survivor.run_once(lambda m: handled.append(("again", alert_no(m))))
    assert len(handled) == 60


def test_dead_letter_after_max_deliveries(redis_proc: RedisServer, tmp_path: Path) -> None:
    publish(redis_proc, tmp_path, 1)
    c = consumer(redis_proc, "c", claim_idle_ms=20, max_deliveries=3)
    attempts: list[int] = []

    def failing(message: BusMessage) -> None:
        attempts.append(message.deliveries)
        raise RuntimeError("firewall unreachable")

    client = redis_proc.client()
    deadline = time.monotonic() + 30
    while not client.xlen("{sekimori:alerts}:dead") and time.monotonic() < deadline:
        c.run_once(failing)
    assert attempts == [1, 2, 3]
    ((_id, fields),) = client.xrange("{sekimori:alerts}:dead")
    assert b"3 times" in fields[b"reason"] and fields[b"origin_stream"] == b"sekimori:alerts"
    assert orjson.loads(fields[b"eve"])["sekimori"]["alert_no"] == 0
    assert client.xpending("sekimori:alerts", "sekimori-responders")["pending"] == 0
    assert c.stats.failed == 3 and c.stats.dead_lettered == 1


def test_malformed_entry_is_dead_lettered(redis_proc: RedisServer) -> None:
    client = redis_proc.client()
    client.xadd("sekimori:alerts", {"eve": b"{not json"})
    client.xadd("sekimori:alerts", {"something": b"else"})
    c = consumer(redis_proc, "c")
    assert c.run_once(lambda m: None) == 0
    assert client.xlen("{sekimori:alerts}:dead") == 2
    assert c.stats.dead_lettered == 2


def test_replayed_duplicate_causes_no_second_action(
    redis_proc: RedisServer, tmp_path: Path
) -> None:
    publish(redis_proc, tmp_path, 5)
    client = redis_proc.client()
    # The same alert a second time under a new entry id (e.g. a replay by another path).
    (_id, fields) = client.xrange("sekimori:alerts")[2]
    client.xadd("sekimori:alerts", fields)
    a, b = consumer(redis_proc, "a"), consumer(redis_proc, "b")
    handled: list[tuple[str, int]] = []
    drain([a, b], handled, 5)
    for _ in range(2):
        a.run_once(lambda m: handled.append(("a", alert_no(m))))
    assert sorted(n for _name, n in handled) == [0, 1, 2, 3, 4]
    assert a.stats.duplicates + b.stats.duplicates == 1
    assert client.xpending("sekimori:alerts", "sekimori-responders")["pending"] == 0


def test_redelivery_after_acting_but_before_ack_is_only_acked(
    redis_proc: RedisServer, tmp_path: Path
) -> None:
    publish(redis_proc, tmp_path, 1)
    first = consumer(redis_proc, "first")
    (message,) = first.read()
    acted: list[int] = []
    assert first.guard.run(message, lambda m: acted.append(alert_no(m))) is Outcome.HANDLED
    # "first" dies here, before XACK. Another consumer claims the entry later.
    second = consumer(redis_proc, "second", claim_idle_ms=50)
    deadline = time.monotonic() + 30
    while not second.stats.claimed and time.monotonic() < deadline:
        second.run_once(lambda m: acted.append(alert_no(m)))
    assert acted == [0]
    assert second.stats.duplicates == 1


def test_busy_alert_is_left_pending(redis_proc: RedisServer, tmp_path: Path) -> None:
    publish(redis_proc, tmp_path, 1)
    c = consumer(redis_proc, "c")
    (message,) = c.read()
    redis_proc.client().set("sekimori:done:" + message.idempotency_key, "pending:other")
    assert c.handle(message, lambda m: None) is Outcome.BUSY
    pending = redis_proc.client().xpending("sekimori:alerts", "sekimori-responders")
    assert pending["pending"] == 1


def test_unreachable_redis_is_one_line_bus_error(tmp_path: Path) -> None:
    cfg = ConsumerConfig(redis=RedisSettings(url="redis://127.0.0.1:1/0", connect_timeout_s=0.5),
                         block_ms=100)  # fmt: skip
    with pytest.raises(BusError) as info:
        AlertConsumer(cfg).read()
    message = str(info.value)
    assert "127.0.0.1:1" in message and "\n" not in message
