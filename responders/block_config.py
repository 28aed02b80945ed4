"""The ``[blocks]`` table of sekimori's TOML file: what blocking does and where.

Scope: parse ``[blocks]`` (and its per-target sub-tables ``[blocks.nftables]``,
``[blocks.ipset]``, ...) into a frozen :class:`BlockConfig` with defaults that are safe
(safety rails on), validate every value with a message naming the key, and read the
durations people write (``30s``, ``10m``, ``1h``, ``7d`` or plain seconds).

Non-goals: the sensor's settings (sensor/config.py reads the rest of the file and only
warns about ``blocks.*`` keys it does not know); environment layering (the responder
service passes its own overrides through :func:`parse_blocks` if it wants them).
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from sensor.errors import ConfigError
from sensor.output.redis_conn import RedisSettings

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
DEFAULT_LADDER = (600.0, 3600.0, 86400.0, 7 * 86400.0)  # 10 min → 1 h → 24 h → 7 days
BLOCKING_ACTIONS = ("drop", "reject", "rejectsrc", "rejectboth")
REDIS_DOWN_MODES = ("queue", "enforce")
ADDRESS_MODES = ("attacker", "src", "dest")


def parse_duration(value: object, key: str = "duration") -> float:
    """Seconds in ``90``, ``30s``, ``10m``, ``1h``, ``7d`` or ``2w``."""
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a duration such as 10m, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ConfigError(
                f"{key}: expected a duration such as 30s, 10m, 1h or 7d, got {value!r}"
            )
        seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
    if seconds < 0:
        raise ConfigError(f"{key}: a duration cannot be negative")
    return seconds


def format_duration(seconds: float | None) -> str:
    """``1h``, ``10m``, ``7d``, ``45s``; ``forever`` for None."""
    if seconds is None:
        return "forever"
    for unit, size in (("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s" if seconds == int(seconds) else f"{seconds:.1f}s"


@dataclass(frozen=True)
class BlockConfig:
    """Every blocking setting. Defaults: safety rails on, nftables target, fail-open."""

    enabled: bool = True
    dry_run: bool = False
    redis: RedisSettings = field(default_factory=RedisSettings)
    key_prefix: str = "sekimori:{blocks}"  # hash tag: every ledger key in one cluster slot
    targets: tuple[str, ...] = ("nftables",)
    target_configs: Mapping[str, Mapping[str, Any]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    # Which alerts lead to a block, and which address is blocked.
    actions: tuple[str, ...] = BLOCKING_ACTIONS
    sids: tuple[int, ...] = ()  # these rules block whatever their action
    address: str = "attacker"  # attacker: alert.source when the rule names a target, else src
    v4_prefix: int = 32
    v6_prefix: int = 128
    # Ledger: the escalation ladder and how long an expired block counts toward it.
    ladder: tuple[float, ...] = DEFAULT_LADDER
    escalation_memory_s: float = 30 * 86400.0
    # Safety rails.
    protected: tuple[str, ...] = ()
    protect_self: bool = True
    require_handshake: bool = True
    allow_spoofable_sids: tuple[int, ...] = ()
    max_per_minute: int = 60  # new blocks per minute (0: no limit)
    max_per_subnet: int = 16  # new blocks per /24 (IPv4) or /64 (IPv6) per subnet window
    subnet_window_s: float = 600.0
    pause_s: float = 300.0  # blocking stays paused (detect-only) this long after a trip
    coalesce_s: float = 10.0  # repeated decisions for one address within this are merged
    # Reconciliation.
    reconcile_interval_s: float = 30.0
    lease_s: float = 3600.0  # longest timeout put on a firewall entry; re-asserted before
    jitter_s: float = 300.0  # random extra lease so a batch does not lapse in one second
    call_timeout_s: float = 10.0  # one responder call
    # Failure behaviour.
    on_redis_down: str = "queue"  # queue: fail-open; enforce: also push new blocks directly
    queue_max: int = 10_000
    alert_stream: str = "sekimori:alerts"  # where the "blocking paused" alert goes
    sensor_id: str = "blocks"

    def __post_init__(self) -> None:
        if not self.ladder or any(step <= 0 for step in self.ladder):
            raise ConfigError("blocks.ladder: needs at least one positive duration")
        if self.on_redis_down not in REDIS_DOWN_MODES:
            raise ConfigError(f"blocks.on-redis-down: one of {', '.join(REDIS_DOWN_MODES)}")
        if self.address not in ADDRESS_MODES:
            raise ConfigError(f"blocks.address: one of {', '.join(ADDRESS_MODES)}")
        if not 8 <= self.v4_prefix <= 32 or not 16 <= self.v6_prefix <= 128:
            raise ConfigError("blocks.v4-prefix must be 8..32 and blocks.v6-prefix 16..128")
        if self.max_per_minute < 0 or self.max_per_subnet < 0 or self.queue_max < 1:
            raise ConfigError("blocks: limits must be >= 0 and queue-max >= 1")
        if self.reconcile_interval_s <= 0 or self.call_timeout_s <= 0 or self.lease_s <= 0:
            raise ConfigError("blocks: reconcile-interval, call-timeout and lease must be > 0")
        for text in self.protected:
            try:
                ipaddress.ip_network(text, strict=False)
            except ValueError as exc:
                raise ConfigError(f"blocks.protected: {text!r} is not an address or CIDR") from exc

    def target_config(self, name: str) -> Mapping[str, Any]:
        return self.target_configs.get(name, MappingProxyType({}))


# TOML key → (field, parser). Durations are written as in the docs; lists as TOML arrays.
def _bool(key: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"blocks.{key}: expected true or false, got {value!r}")
    return value


def _int(key: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"blocks.{key}: expected an integer, got {value!r}")
    return value


def _str(key: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"blocks.{key}: expected a non-empty string, got {value!r}")
    return value


def _list(key: str, value: object) -> list[object]:
    if not isinstance(value, list):
        raise ConfigError(f"blocks.{key}: expected a list, got {value!r}")
    return value


_FIELDS: Mapping[str, tuple[str, Any]] = MappingProxyType(
    {
        "enabled": ("enabled", _bool),
        "dry-run": ("dry_run", _bool),
        "key-prefix": ("key_prefix", _str),
        "targets": ("targets", lambda k, v: tuple(_str(k, x) for x in _list(k, v))),
        "actions": ("actions", lambda k, v: tuple(_str(k, x) for x in _list(k, v))),
        "sids": ("sids", lambda k, v: tuple(_int(k, x) for x in _list(k, v))),
        "address": ("address", _str),
        "v4-prefix": ("v4_prefix", _int),
        "v6-prefix": ("v6_prefix", _int),
        "ladder": (
            "ladder",
            lambda k, v: tuple(parse_duration(x, f"blocks.{k}") for x in _list(k, v)),
        ),
        "escalation-memory": ("escalation_memory_s", None),
        "protected": ("protected", lambda k, v: tuple(_str(k, x) for x in _list(k, v))),
        "protect-self": ("protect_self", _bool),
        "require-handshake": ("require_handshake", _bool),
        "allow-spoofable-sids": (
            "allow_spoofable_sids",
            lambda k, v: tuple(_int(k, x) for x in _list(k, v)),
        ),
        "max-per-minute": ("max_per_minute", _int),
        "max-per-subnet": ("max_per_subnet", _int),
        "subnet-window": ("subnet_window_s", None),
        "pause": ("pause_s", None),
        "coalesce": ("coalesce_s", None),
        "reconcile-interval": ("reconcile_interval_s", None),
        "lease": ("lease_s", None),
        "jitter": ("jitter_s", None),
        "call-timeout": ("call_timeout_s", None),
        "on-redis-down": ("on_redis_down", _str),
        "queue-max": ("queue_max", _int),
        "alert-stream": ("alert_stream", _str),
        "sensor-name": ("sensor_id", _str),
    }
)
_REDIS_KEYS = ("redis-url", "redis-password-env", "redis-password-file", "redis-username")


def parse_blocks(table: Mapping[str, Any], *, default_redis_url: str | None = None) -> BlockConfig:
    """A :class:`BlockConfig` from the parsed ``[blocks]`` table (unknown keys: an error)."""
    values: dict[str, Any] = {}
    targets: dict[str, Mapping[str, Any]] = {}
    for key, value in table.items():
        if isinstance(value, dict):  # [blocks.<target>]
            targets[key] = MappingProxyType(dict(value))
            continue
        if key in _REDIS_KEYS:
            continue
        spec = _FIELDS.get(key)
        if spec is None:
            raise ConfigError(f"blocks.{key}: unknown setting (see docs/blocking.md)")
        name, parse = spec
        values[name] = (
            parse_duration(value, f"blocks.{key}") if parse is None else parse(key, value)
        )
    url = table.get("redis-url") or default_redis_url or RedisSettings().url
    values["redis"] = RedisSettings(
        url=_str("redis-url", url),
        username=table.get("redis-username"),
        password_env=table.get("redis-password-env"),
        password_file=table.get("redis-password-file"),
    )
    values["target_configs"] = MappingProxyType(targets)
    return BlockConfig(**values)


def load_block_config(path: str | None, *, redis_url: str | None = None) -> BlockConfig:
    """``[blocks]`` of the TOML file at ``path`` (defaults when None or absent).

    ``redis_url`` (a command-line option) wins over the file; the file's
    ``blocks.redis-url`` wins over its ``outputs.redis.url``.
    """
    document: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as fh:
                document = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    table = document.get("blocks", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [blocks] must be a table")
    outputs = document.get("outputs", {})
    output_redis = outputs.get("redis", {}) if isinstance(outputs, dict) else {}
    fallback = output_redis.get("url") if isinstance(output_redis, dict) else None
    if redis_url is not None:
        table = {**table, "redis-url": redis_url}
    try:
        return parse_blocks(table, default_redis_url=fallback)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}" if path else str(exc)) from exc
