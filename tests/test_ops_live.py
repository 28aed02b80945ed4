"""A real sensor on the loopback interface: status, SIGHUP rule reload, SIGTERM flush.

``sekimori run --iface lo`` runs as a subprocess with heartbeats to a real redis-server.
The responder is a small process the test starts that beats with ``publish_heartbeat``
(what responders/service.py calls) while it runs: ``sekimori respond`` is built in
parallel, so its own heartbeats are not exercised here. Traffic goes only to 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis

REPO = Path(__file__).resolve().parents[1]
SEKIMORI = [sys.executable, "-m", "cli.main"]
RESPONDER = """
import sys, time, redis
from sensor.heartbeat import publish_heartbeat
client = redis.Redis.from_url(sys.argv[1], socket_timeout=2)
client.xgroup_create("sekimori:alerts", "responders", id="$", mkstream=True)
while True:
    publish_heartbeat(client, "responder", "reset-1", {"stream": "sekimori:alerts",
        "group": "responders", "handled": 0, "failures": 0, "consecutive_failures": 0,
        "last_action": "", "interval": 1})
    time.sleep(1)
"""


def wait_for(what: str, check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


def status(url: str) -> dict[str, dict]:
    # Loopback capture of the test's own Redis chatter can drop a few packets under load on
    # 2 cores; drop shares are judged in test_ops_health.py, not here.
    env = {**os.environ, "SEKIMORI_HEALTH_DROP_PERCENT": "100", "PYTHONPATH": str(REPO)}
    out = subprocess.run([*SEKIMORI, "status", "--redis", url, "--json"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
    return {json.loads(line)["kind"]: json.loads(line) for line in out.stdout.splitlines()}


def bus_alerts(url: str) -> list[dict]:
    """Alerts on the Redis stream (pushed at once on a live interface; the EVE file is
    buffered until the sensor flushes it)."""
    client: Any = redis.Redis.from_url(url, socket_timeout=5)
    return [json.loads(fields[b"eve"]) for _id, fields in client.xrange("sekimori:alerts")]


def eve_alerts(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r.get("event_type") == "alert"]


@pytest.fixture
def sensor(require_root: None, redis_server: str, tmp_path: Path) -> Iterator[dict]:
    rules = tmp_path / "live.rules"
    rules.write_text('alert tcp any any -> any any (msg:"first"; content:"AAAA1"; sid:4300001;)\n')
    eve = tmp_path / "eve.json"
    env = {**os.environ, "SEKIMORI_HEARTBEAT_INTERVAL": "1", "SEKIMORI_HEALTH_ALERTS": "0",
           "SEKIMORI_SENSOR_NAME": "live-1", "PYTHONPATH": str(REPO)}  # fmt: skip
    argv = [*SEKIMORI, "run", "--iface", "lo", "--rules", str(rules), "--eve", str(eve),
            "--redis", redis_server, "--set", f"detect.cache-dir={tmp_path / 'cache'}",
            "--set", "sensor-name=live-1",
            # Not the test's own Redis traffic: capturing it on lo fed the sensor its own
            # publishes and, on a loaded machine, made the kernel drop the test's segments.
            "--set", f"capture.bpf=tcp and not port {urlsplit(redis_server).port}"]  # fmt: skip
    log = (tmp_path / "sensor.log").open("w")
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield {"proc": proc, "rules": rules, "eve": eve, "url": redis_server,
               "log": tmp_path / "sensor.log"}  # fmt: skip
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def test_status_sigup_sigterm(sensor: dict, tmp_path: Path) -> None:
    url, proc = sensor["url"], sensor["proc"]
    responder = subprocess.Popen([sys.executable, "-c", RESPONDER, url], cwd=REPO,
                                 env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    server = socket.create_server(("127.0.0.1", 0))
    try:
        wait_for("sensor heartbeat", lambda: "sensor" in status(url))
        client = socket.create_connection(server.getsockname(), timeout=5)
        conn, _ = server.accept()
        client.sendall(b"hello AAAA1")
        wait_for("first alert", lambda: len(bus_alerts(url)) == 1)

        # both green while traffic flows and the responder beats
        def both_green() -> bool:
            client.sendall(b"x")
            seen = status(url)
            return {k: v["colour"] for k, v in seen.items()} == {"sensor": "green",
                                                                 "responder": "green"}  # fmt: skip

        wait_for("both green", both_green)
        line = status(url)["sensor"]
        assert line["id"] == "live-1" and "pkt/s" in line["summary"]

        # responder stopped: its line turns red once its heartbeat is overdue
        responder.kill()
        responder.wait(timeout=10)
        wait_for("responder red", lambda: status(url)["responder"]["colour"] == "red")
        assert any("heartbeat" in r for r in status(url)["responder"]["reasons"])
        assert status(url)["sensor"]["colour"] == "green"

        # SIGHUP: new rules, same flow
        sensor["rules"].write_text(
            'alert tcp any any -> any any (msg:"second"; content:"BBBB2"; sid:4300002;)\n'
        )
        proc.send_signal(signal.SIGHUP)
        wait_for("reload", lambda: "rules reloaded" in sensor["log"].read_text())
        client.sendall(b" then BBBB2")
        wait_for("second alert", lambda: len(bus_alerts(url)) == 2)
        first, second = bus_alerts(url)
        assert (first["alert"]["signature_id"], second["alert"]["signature_id"]) == (
            4300001, 4300002)  # fmt: skip
        assert first["flow_id"] == second["flow_id"]  # the flow survived the reload

        # SIGTERM right after the last packet: its alert is written before exit
        client.sendall(b" and BBBB2 again")
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert len(eve_alerts(sensor["eve"])) == 3  # nothing left in a buffer
        assert len(bus_alerts(url)) == 3
        assert status(url)["sensor"]["colour"] == "red"  # "stopped"
        assert any("stopped" in r for r in status(url)["sensor"]["reasons"])
        conn.close()
        client.close()
    finally:
        server.close()
        if responder.poll() is None:
            responder.kill()
            responder.wait(timeout=10)
