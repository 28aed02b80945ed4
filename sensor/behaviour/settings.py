"""Thresholds of the behavioural detectors: the ``[behaviour]`` table of the config file.

Scope: frozen dataclasses with documented defaults (docs/detectors.md) and
``load_behaviour_config(path)``, which reads only the ``[behaviour]`` table of the same TOML
file the sensor configuration comes from. Keys use dashes like the rest of the file
(``vertical-ports``); a wrong type or an unknown key is a ConfigError naming the key.

Non-goals: environment variables and ``--set`` layering (sensor/config.py owns those and
does not know this table yet), hot reload.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sensor.errors import ConfigError

# Authentication services watched for brute force: name -> TCP ports. Sessions are counted
# for the services in _SESSION_SERVICES only (a mail relay opens many honest SMTP sessions).
DEFAULT_SERVICES: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("ssh", (22,)),
    ("ftp", (21,)),
    ("rdp", (3389,)),
    ("telnet", (23,)),
    ("smtp", (25, 465, 587)),
    ("pop3", (110,)),
    ("imap", (143,)),
    ("vnc", (5900,)),
)
DEFAULT_LOGIN_PATHS = ("/login", "/wp-login.php", "/user/login", "/admin/login",
                       "/signin", "/auth/login", "/j_security_check")  # fmt: skip


@dataclass(frozen=True)
class ScanConfig:
    enabled: bool = True
    window: int = 60  # seconds: short window for vertical/horizontal scans
    vertical_ports: int = 20  # distinct unanswered ports on one host -> vertical scan
    horizontal_hosts: int = 20  # distinct unanswered hosts on one port -> horizontal scan
    half_open_ports: int = 5  # distinct ports whose SYN/ACK the client answered with RST
    slow_window: int = 3600  # seconds: long window for slow scans
    slow_targets: int = 150  # distinct unanswered (host, port) pairs in slow_window
    max_entries: int = 65536  # (source, target, probe kind) entries kept
    max_sources: int = 65536  # sources with a slow-scan sketch (64 bytes each)


@dataclass(frozen=True)
class BruteForceConfig:
    enabled: bool = True
    window: int = 120  # seconds
    sessions: int = 10  # new sessions from one client to one service in the window
    failures: int = 10  # failed-login replies seen (FTP 530, SMTP 535, POP3 -ERR, ...)
    http_attempts: int = 10  # POSTs to a login path
    services: tuple[tuple[str, tuple[int, ...]], ...] = DEFAULT_SERVICES
    session_services: tuple[str, ...] = ("ssh", "ftp", "rdp", "telnet", "vnc")
    http_ports: tuple[int, ...] = (80, 8000, 8080)
    http_login_paths: tuple[str, ...] = DEFAULT_LOGIN_PATHS
    max_entries: int = 65536


@dataclass(frozen=True)
class FloodConfig:
    enabled: bool = True
    window: int = 5  # seconds over which the rate is measured
    syn_rate: int = 1000  # SYNs (without ACK) per second toward one host
    udp_rate: int = 5000  # UDP datagrams per second toward one host
    icmp_rate: int = 500  # ICMP messages per second toward one host
    max_entries: int = 65536


@dataclass(frozen=True)
class AnomalyConfig:
    enabled: bool = True  # count TCP flag anomalies (always cheap)
    alert: bool = False  # also raise an alert (rules with decode-event can do it instead)
    cooldown: int = 60  # seconds between two alerts for one source and anomaly
    max_entries: int = 65536


@dataclass(frozen=True)
class BehaviourConfig:
    enabled: bool = True
    scan: ScanConfig = field(default_factory=ScanConfig)
    bruteforce: BruteForceConfig = field(default_factory=BruteForceConfig)
    flood: FloodConfig = field(default_factory=FloodConfig)
    anomaly: AnomalyConfig = field(default_factory=AnomalyConfig)


_SECTIONS: dict[str, type] = {
    "scan": ScanConfig,
    "bruteforce": BruteForceConfig,
    "flood": FloodConfig,
    "anomaly": AnomalyConfig,
}


def _convert(key: str, default: object, value: object) -> object:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{key}: expected a non-negative integer, got {value!r}")
        return value
    if isinstance(default, tuple) and isinstance(value, list):
        kind = type(default[0]) if default and not isinstance(default[0], tuple) else None
        if kind is not None and all(isinstance(v, kind) and not isinstance(v, bool)
                                    for v in value):  # fmt: skip
            return tuple(value)
    raise ConfigError(f"{key}: expected {type(default).__name__}, got {value!r}")


def _services(key: str, default: tuple, table: object) -> tuple:
    if not isinstance(table, dict):
        raise ConfigError(f"{key}: expected a table of name = [ports]")
    merged = dict(default)
    for name, ports in table.items():
        if not isinstance(ports, list) or not all(
            isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536 for p in ports
        ):
            raise ConfigError(f"{key}.{name}: expected a list of ports, got {ports!r}")
        merged[name] = tuple(ports)
    return tuple(merged.items())


def _section(cls: type, table: Mapping[str, Any], prefix: str) -> Any:
    defaults = cls()
    names = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, object] = {}
    for raw_key, value in table.items():
        name = raw_key.replace("-", "_")
        key = f"{prefix}.{raw_key}"
        if name not in names:
            raise ConfigError(f"{key}: unknown behaviour setting")
        if name == "services":
            values[name] = _services(key, defaults.services, value)
        else:
            values[name] = _convert(key, getattr(defaults, name), value)
    return cls(**values)


def behaviour_config_from_table(table: Mapping[str, Any]) -> BehaviourConfig:
    """Build the configuration from an already-parsed ``[behaviour]`` table."""
    values: dict[str, object] = {}
    for key, value in table.items():
        if key in _SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"behaviour.{key}: expected a table")
            values[key] = _section(_SECTIONS[key], value, f"behaviour.{key}")
        elif key == "enabled":
            values[key] = _convert("behaviour.enabled", True, value)
        else:
            raise ConfigError(f"behaviour.{key}: unknown behaviour setting")
    return BehaviourConfig(**values)  # type: ignore[arg-type]


def load_behaviour_config(path: str | None) -> BehaviourConfig:
    """The ``[behaviour]`` table of the TOML file at ``path``; defaults when None or absent."""
    if path is None:
        return BehaviourConfig()
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    table = document.get("behaviour", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: behaviour: expected a table")
    try:
        return behaviour_config_from_table(table)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
