"""``alerts tail --priority high``: "what to look at first" is a filter on the policy's
priority, read from a real redis-server."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from test_bus_helpers import RedisServer, make_alert, redis_proc

from cli.alerts_cmd import alerts
from sensor.output.redis_bus import AlertPublisher, BusConfig

__all__ = ["redis_proc"]


def test_tail_by_priority(redis_proc: RedisServer, tmp_path: Path) -> None:
    pub = AlertPublisher(BusConfig(url=redis_proc.url, spool_dir=str(tmp_path / "spool")))
    for i, prio in enumerate(("high", "low", "medium", "high", None)):
        alert = make_alert(i, sid=700 + i)
        if prio is not None:
            alert["sekimori"] = {"priority": prio, "stage": "detect", "mode": "detect"}
        pub.publish(alert)
    pub.close()

    def tail(*args: str) -> list[str]:
        result = CliRunner().invoke(alerts, ["--redis", redis_proc.url, "tail", *args],
                                    catch_exceptions=False)  # fmt: skip
        assert result.exit_code == 0, result.output
        return [line.split()[2] for line in result.output.splitlines()]

    assert tail("--priority", "high") == ["[1:700:1]", "[1:703:1]"]
    assert tail("--priority", "medium") == ["[1:700:1]", "[1:702:1]", "[1:703:1]"]
    assert len(tail()) == 5
    bad = CliRunner().invoke(alerts, ["--redis", redis_proc.url, "tail", "--priority", "urgent"])
    assert bad.exit_code == 2 and "expected high, medium or low" in bad.output
