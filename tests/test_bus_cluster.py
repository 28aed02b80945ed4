"""The bus on a 3-node Redis Cluster the test starts itself: two sensors, two responders.

Each sensor publishes to its own hash-tagged stream (``sekimori:alerts:{sensor}``), so its
stream, high-water mark, dead-letter stream and consumer group live on one shard.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from redis.cluster import RedisCluster
from test_bus_helpers import RedisServer, free_port, make_alert

from responders.bus import AlertConsumer, ConsumerConfig
from responders.bus_message import BusMessage
from sensor.output.redis_bus import AlertPublisher, BusConfig
from sensor.output.redis_conn import RedisSettings, sensor_stream_key

REDIS_CLI = shutil.which("redis-cli")


def cluster_port() -> int:
    """A free port whose cluster-bus port (port + 10000) is valid and free too."""
    for _ in range(200):
        port = free_port()
        if port <= 55535 and _is_free(port + 10000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[RedisServer]]:
    if REDIS_CLI is None or shutil.which("redis-server") is None:
        if os.environ.get("SEKIMORI_REQUIRE_ALL") == "1":
            pytest.fail("redis-server/redis-cli are not installed")
        pytest.skip("redis-server/redis-cli are not installed")
    nodes = [
        RedisServer(tmp_path / f"node{i}", port=cluster_port(),
                    extra=("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"))
        for i in range(3)
    ]  # fmt: skip
    try:
        for node in nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in nodes]
        subprocess.run([REDIS_CLI, "--cluster", "create", *addresses, "--cluster-replicas", "0",
                        "--cluster-yes"], check=True, capture_output=True, timeout=60)  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            infos = [node.client().cluster("info") for node in nodes]
            if all(info.get("cluster_state") == "ok" for info in infos):
                break
            time.sleep(0.1)
        else:
            pytest.fail("cluster did not reach cluster_state:ok within 30 s")
        yield nodes
    finally:
        for node in nodes:
            node.stop()


def test_two_sensors_two_responders_nothing_lost(
    cluster: list[RedisServer], tmp_path: Path
) -> None:
    url = cluster[0].url
    streams = tuple(sensor_stream_key("sekimori:alerts", s) for s in ("sensor-a", "sensor-b"))
    for number, (sensor, stream) in enumerate(zip(("sensor-a", "sensor-b"), streams)):
        pub = AlertPublisher(BusConfig(url=url, cluster=True, stream=stream, sensor_id=sensor,
                                       spool_dir=str(tmp_path / sensor), batch_size=64))  # fmt: skip
        for i in range(500):
            pub.publish(make_alert(number * 1000 + i))
        pub.close()
        assert pub.stats.published == 500 and pub.stats.spooled == 0

    handled: list[tuple[str, int]] = []

    def recorder(name: str) -> Callable[[BusMessage], None]:
        def action(message: BusMessage) -> None:
            context = message.context
            assert context is not None
            handled.append((name, int(context["alert_no"])))

        return action

    responders = [
        AlertConsumer(
            ConsumerConfig(
                redis=RedisSettings(url=url, cluster=True),
                streams=streams,
                consumer=name,
                count=50,
                block_ms=50,
            )
        )
        for name in ("r1", "r2")
    ]
    deadline = time.monotonic() + 60
    while len(handled) < 1000 and time.monotonic() < deadline:
        for responder in responders:
            responder.run_once(recorder(responder.cfg.consumer))
    numbers = sorted(n for _name, n in handled)
    assert numbers == list(range(500)) + list(range(1000, 1500))
    assert {name for name, _n in handled} == {"r1", "r2"}

    client = RedisCluster.from_url(url)
    for stream in streams:
        assert client.xlen(stream) == 500
        assert client.xpending(stream, "sekimori-responders")["pending"] == 0
    client.close()
