"""``sekimori alerts tail/top`` against a real redis-server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson
from click.testing import CliRunner
from test_bus_helpers import RedisServer, make_alert, redis_proc

from cli.alerts_cmd import alerts, escape, format_alert
from responders.bus_message import from_plain_json
from sensor.errors import BusError, ConfigError
from sensor.output.redis_bus import AlertPublisher, BusConfig

__all__ = ["redis_proc"]

ROOT = Path(__file__).resolve().parent.parent


def publish(server: RedisServer, tmp_path: Path, alerts_: list[dict]) -> None:
    pub = AlertPublisher(BusConfig(url=server.url, spool_dir=str(tmp_path / "spool")))
    for alert in alerts_:
        pub.publish(alert)
    pub.close()


def run(server: RedisServer, *args: str) -> str:
    result = CliRunner().invoke(alerts, ["--redis", server.url, *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_tail_prints_newest_in_order(redis_proc: RedisServer, tmp_path: Path) -> None:
    publish(redis_proc, tmp_path, [make_alert(i, sid=100 + i) for i in range(30)])
    lines = run(redis_proc, "tail", "-n", "5").splitlines()
    assert [line.split()[2] for line in lines] == [f"[1:{100 + i}:1]" for i in range(25, 30)]
    assert "10.0.0.1:" in lines[0] and "sensor=sensor-1" in lines[0]
    assert "action=alert mode=detect" in lines[0]


def test_tail_filters(redis_proc: RedisServer, tmp_path: Path) -> None:
    alerts_ = [
        make_alert(0, sid=1, severity=1, src="192.168.1.5"),
        make_alert(1, sid=2, severity=3, src="10.9.9.9"),
        make_alert(2, sid=3, severity=2, src="10.0.0.7", dst="172.16.0.1"),
    ]
    publish(redis_proc, tmp_path, alerts_)
    assert "[1:1:1]" in run(redis_proc, "tail", "--severity", "1")
    assert "[1:3:1]" in run(redis_proc, "tail", "--priority", "2")
    assert "[1:2:1]" not in run(redis_proc, "tail", "--priority", "2")
    only_sid = run(redis_proc, "tail", "--sid", "2").splitlines()
    assert len(only_sid) == 1 and "[1:2:1]" in only_sid[0]
    by_net = run(redis_proc, "tail", "--addr", "172.16.0.0/12").splitlines()
    assert len(by_net) == 1 and "[1:3:1]" in by_net[0]
    by_src = run(redis_proc, "tail", "--addr", "192.168.1.5", "--addr", "10.9.9.9")
    assert len(by_src.splitlines()) == 2


def test_tail_escapes_control_characters(redis_proc: RedisServer, tmp_path: Path) -> None:
    hostile = make_alert(0, signature="evil\x1b[2J\x1b]0;pwned\x07 \u202eexe.txt\r\n")
    publish(redis_proc, tmp_path, [hostile])
    out = run(redis_proc, "tail")
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out and "\r" not in out
    assert "evil\\x1b[2J\\x1b]0;pwned\\x07 \\u202eexe.txt\\x0d\\x0a" in out
    assert out.count("\n") == 1
    message = from_plain_json("t", orjson.dumps(hostile))
    coloured = format_alert(message, colour=True)
    assert coloured.startswith("\x1b[")  # our colour, and only ours
    assert "\x1b[2J" not in coloured
    assert escape("a\x00b\x9bc") == "a\\x00b\\x9bc"


def test_tail_json(redis_proc: RedisServer, tmp_path: Path) -> None:
    publish(redis_proc, tmp_path, [make_alert(i) for i in range(3)])
    lines = run(redis_proc, "tail", "--json").splitlines()
    assert [orjson.loads(line)["sekimori"]["alert_no"] for line in lines] == [0, 1, 2]


def test_tail_follow_prints_new_alerts(redis_proc: RedisServer, tmp_path: Path) -> None:
    publish(redis_proc, tmp_path, [make_alert(0, sid=500)])
    code = "import sys; from cli.alerts_cmd import alerts; alerts(sys.argv[1:])"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "--redis", redis_proc.url, "tail", "-f", "-n", "1"],
        stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert "[1:500:1]" in proc.stdout.readline().decode()
        publish(redis_proc, tmp_path, [make_alert(1, sid=501), make_alert(2, sid=502)])
        assert "[1:501:1]" in proc.stdout.readline().decode()
        assert "[1:502:1]" in proc.stdout.readline().decode()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0  # Ctrl-C ends a follow quietly
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_top(redis_proc: RedisServer, tmp_path: Path) -> None:
    alerts_ = [make_alert(i, sid=7, src="10.1.1.1", signature="SCAN") for i in range(5)]
    alerts_ += [make_alert(i, sid=8, src="10.2.2.2", dst="10.3.3.3") for i in range(2)]
    publish(redis_proc, tmp_path, alerts_)
    out = run(redis_proc, "top", "--since", "1h", "--limit", "3")
    assert out.startswith("7 alerts in the last 1h")
    sigs = out.split("top signatures:")[1].split("top sources:")[0].split("\n")
    assert sigs[1].split() == ["5", "7", "SCAN"]
    assert "       5  10.1.1.1" in out and "       2  10.3.3.3" in out


def test_unreachable_redis_is_one_line_bus_error() -> None:
    result = CliRunner().invoke(alerts, ["--redis", "redis://127.0.0.1:1/0", "tail"])
    assert isinstance(result.exception, BusError)
    assert "127.0.0.1:1" in str(result.exception) and "\n" not in str(result.exception)


def test_bad_since_is_config_error(redis_proc: RedisServer) -> None:
    result = CliRunner().invoke(alerts, ["--redis", redis_proc.url, "top", "--since", "soon"])
    assert isinstance(result.exception, ConfigError)
