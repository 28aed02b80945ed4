"""Settings of the operations parts: metrics endpoint, heartbeats, built-in health alerts.

Scope: one frozen ``OpsSettings`` read from ``SEKIMORI_*`` environment variables (flat
names without ``__``, so the main configuration loader leaves them alone) and validated
once, raising ``ConfigError`` naming the variable. Everything is opt-in or harmless by
default: no metrics listener unless ``SEKIMORI_METRICS_LISTEN`` is set; heartbeats and
responder checks only when a Redis URL is configured.

Non-goals: TOML keys. sensor/config.py belongs to the sensor core; once it grows an
``ops`` section these fields map one to one (see docs/metrics.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from sensor.errors import ConfigError

ENV = {
    "metrics_listen": "SEKIMORI_METRICS_LISTEN",
    "metrics_top_rules": "SEKIMORI_METRICS_TOP_RULES",
    "heartbeat_interval_s": "SEKIMORI_HEARTBEAT_INTERVAL",
    "no_packets_s": "SEKIMORI_HEALTH_NO_PACKETS",
    "drop_percent": "SEKIMORI_HEALTH_DROP_PERCENT",
    "drop_window_s": "SEKIMORI_HEALTH_DROP_WINDOW",
    "responder_lag": "SEKIMORI_HEALTH_RESPONDER_LAG",
    "responder_failures": "SEKIMORI_HEALTH_RESPONDER_FAILURES",
    "health_alerts": "SEKIMORI_HEALTH_ALERTS",
}


@dataclass(frozen=True)
class OpsSettings:
    metrics_listen: str | None = None  # "127.0.0.1:9101", "[::1]:9101", ":9101"
    metrics_top_rules: int = 20  # per-rule hit counters exported (the N busiest rules)
    heartbeat_interval_s: float = 5.0
    no_packets_s: float = 60.0  # health alert when no packet arrived for this long
    drop_percent: float = 1.0  # health alert when drops exceed this share of packets
    drop_window_s: float = 60.0  # the window the drop share is measured over
    responder_lag: int = 1000  # health alert when a responder group lags this many entries
    responder_failures: int = 5  # ... or failed this many actions in a row
    health_alerts: bool = True

    def __post_init__(self) -> None:
        if self.metrics_listen is not None:
            parse_listen(self.metrics_listen)
        positive = ("heartbeat_interval_s", "no_packets_s", "drop_window_s")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{ENV[name]}: must be a positive number of seconds")
        for name in ("metrics_top_rules", "responder_lag", "responder_failures"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{ENV[name]}: must not be negative")
        if not 0 <= self.drop_percent <= 100:
            raise ConfigError(f"{ENV['drop_percent']}: must be a percentage (0-100)")


def parse_listen(text: str) -> tuple[str, int]:
    """``host:port`` → (host, port); ``:port`` listens on localhost only (opt-in to expose)."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) < 65536:
        raise ConfigError(f"{ENV['metrics_listen']}: expected HOST:PORT, got {text!r}")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port_text)


def _number(env: Mapping[str, str], name: str, kind: type) -> object:
    raw = env[ENV[name]].strip()
    try:
        return kind(raw)
    except ValueError as exc:
        raise ConfigError(f"{ENV[name]}: expected a number, got {raw!r}") from exc


def ops_settings(env: Mapping[str, str] | None = None) -> OpsSettings:
    """The settings from the environment (defaults for what is unset)."""
    env = os.environ if env is None else env
    values: dict[str, object] = {}
    for name, var in ENV.items():
        if var not in env or env[var].strip() == "":
            continue
        if name == "metrics_listen":
            values[name] = env[var].strip()
        elif name == "health_alerts":
            values[name] = env[var].strip().lower() not in ("0", "false", "no", "off")
        elif name in ("metrics_top_rules", "responder_lag", "responder_failures"):
            values[name] = _number(env, name, int)
        else:
            values[name] = _number(env, name, float)
    return OpsSettings(**values)  # type: ignore[arg-type]
