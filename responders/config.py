"""The responders' own settings: the ``[respond]`` table of the sensor's TOML file.

Scope: read ``[respond]`` from the same file ``sekimori --config`` names (the sensor ignores
that table), layer ``--set respond.KEY=VALUE`` items over it, and build one frozen
:class:`RespondConfig`: the bus connection (``respond.redis.url``, else the sensor's
``outputs.redis.url``), the consumer group, the decisions stream, the mode, the policy, which
responders run with their per-call timeout and retries, and each responder's own table
(``[respond.tcp-reset]``, ``[respond.log]``) handed to it untouched. The top-level
``[blocks]`` table, when present, is kept for the BlockManager (responders/blocking.py).

Values given with ``--set`` are read as TOML literals (``3``, ``true``, ``["a","b"]``) and
fall back to plain strings. Non-goals: environment variables for responder settings (use a
file or ``--set``), validating a plugin's own table (the plugin does that in ``start``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from responders.bus import ConsumerConfig, default_consumer_name
from sensor.errors import ConfigError
from sensor.output.redis_conn import RedisSettings

MODES = ("detect", "prevent", "sensor")
RESET_ACTIONS = ("drop", "reject", "rejectsrc", "rejectdst", "rejectboth")
DEFAULT_URL = "redis://127.0.0.1:6379/0"
# Keys of [respond] that are settings of the service; any other table is a responder's.
_SERVICE_KEYS = frozenset({
    "mode", "responders", "streams", "group", "consumer", "count", "block_ms",
    "claim_idle_ms", "max_deliveries", "decisions_stream", "decisions_maxlen", "timeout_s",
    "retries", "retry_delay_s", "redis", "policy", "start_id", "fast_socket", "fast_socket_mode",
})  # fmt: skip


@dataclass(frozen=True)
class PolicyConfig:
    """Which alerts trigger a response: any one matching criterion is enough."""

    actions: tuple[str, ...] = RESET_ACTIONS  # rule actions (the rule's first word)
    sids: tuple[int, ...] = ()
    classtypes: tuple[str, ...] = ()  # EVE alert.category text (the classtype's description)
    max_severity: int = 0  # severity <= this triggers (1 = highest); 0 = not by severity


@dataclass(frozen=True)
class CallConfig:
    """How the service calls one responder."""

    timeout_s: float = 2.0
    retries: int = 1  # further attempts after a failed one
    retry_delay_s: float = 0.05


@dataclass(frozen=True)
class RespondConfig:
    mode: str = "sensor"  # detect | prevent | sensor (follow each alert's sekimori.mode)
    consumer: ConsumerConfig = field(default_factory=ConsumerConfig)
    decisions_stream: str = "sekimori:decisions"
    decisions_maxlen: int = 100_000
    responders: tuple[str, ...] = ("log",)
    calls: Mapping[str, CallConfig] = field(default_factory=dict)
    default_call: CallConfig = field(default_factory=CallConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    tables: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # per responder
    blocks: Mapping[str, Any] | None = None  # the file's top-level [blocks] table, if any
    fast_socket: str = ""  # Unix datagram socket for the sensor's fast path ("" = off)
    fast_socket_mode: int = 0o660

    def call(self, name: str) -> CallConfig:
        return self.calls.get(name, self.default_call)

    def table(self, name: str) -> Mapping[str, Any]:
        return self.tables.get(name, MappingProxyType({}))


def parse_literal(text: str) -> Any:
    """A ``--set`` value: a TOML literal when it is one, else the text itself."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _apply_set(table: dict[str, Any], item: str) -> None:
    key, sep, value = item.partition("=")
    parts = [p for p in key.strip().split(".") if p]
    if not sep or len(parts) < 2 or parts[0] != "respond":
        raise ConfigError(f"--set {item}: expected respond.KEY=VALUE")
    node = table
    for part in parts[1:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {item}: {part} is not a table")
        node = child
    node[parts[-1]] = parse_literal(value.strip())


def read_file(path: str | None) -> dict[str, Any]:
    """The whole TOML document at ``path`` ({} without a file)."""
    if path is None:
        return {}
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc


def _get(table: Mapping[str, Any], key: str, kind: type | tuple[type, ...], default: Any) -> Any:
    value = table.get(key, default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"respond.{key}: expected {getattr(kind, '__name__', kind)}, "
                          f"got {value!r}")  # fmt: skip
    return value


def _str_tuple(table: Mapping[str, Any], key: str, default: Sequence[str]) -> tuple[str, ...]:
    value = table.get(key, list(default))
    if isinstance(value, str):  # --set respond.responders=tcp-reset,log
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"respond.{key}: expected a list of strings, got {value!r}")
    return tuple(value)


def _int_tuple(table: Mapping[str, Any], key: str) -> tuple[int, ...]:
    value = table.get(key, [])
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, int) for v in value):
        raise ConfigError(f"respond.{key}: expected a list of integers, got {value!r}")
    return tuple(value)


def _call(table: Mapping[str, Any], base: CallConfig, where: str) -> CallConfig:
    try:
        cfg = CallConfig(
            timeout_s=float(table.get("timeout_s", base.timeout_s)),
            retries=int(table.get("retries", base.retries)),
            retry_delay_s=float(table.get("retry_delay_s", base.retry_delay_s)),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: timeout_s/retries/retry_delay_s must be numbers") from exc
    if cfg.timeout_s <= 0 or cfg.retries < 0 or cfg.retry_delay_s < 0:
        raise ConfigError(f"{where}: timeout_s > 0, retries >= 0, retry_delay_s >= 0")
    return cfg


def _policy(table: Mapping[str, Any]) -> PolicyConfig:
    actions = _str_tuple(table, "actions", RESET_ACTIONS)
    return PolicyConfig(
        actions=tuple(a.lower() for a in actions),
        sids=_int_tuple(table, "sids"),
        classtypes=_str_tuple(table, "classtypes", ()),
        max_severity=_get(table, "max_severity", int, 0),
    )


def build(document: Mapping[str, Any], sets: Sequence[str] = ()) -> RespondConfig:
    """:class:`RespondConfig` from a parsed TOML document and ``--set respond.*`` items."""
    raw = document.get("respond", {})
    if not isinstance(raw, dict):
        raise ConfigError("respond: expected a table")
    table: dict[str, Any] = _deep_copy(raw)
    for item in sets:
        _apply_set(table, item)
    mode = _get(table, "mode", str, "sensor")
    if mode not in MODES:
        raise ConfigError(f"respond.mode: expected one of {', '.join(MODES)}, got {mode!r}")
    redis_table = table.get("redis", {})
    if not isinstance(redis_table, dict):
        raise ConfigError("respond.redis: expected a table")
    outputs = document.get("outputs", {})
    sensor_url = outputs.get("redis", {}).get("url") if isinstance(outputs, dict) else None
    try:
        settings = RedisSettings(
            url=str(redis_table.get("url") or sensor_url or DEFAULT_URL),
            username=redis_table.get("username"),
            password_env=redis_table.get("password_env"),
            password_file=redis_table.get("password_file"),
            tls_ca=redis_table.get("tls_ca"), tls_cert=redis_table.get("tls_cert"),
            tls_key=redis_table.get("tls_key"),
            connect_timeout_s=float(redis_table.get("connect_timeout_s", 2.0)),
            socket_timeout_s=float(redis_table.get("socket_timeout_s", 5.0)),
        )  # fmt: skip
        consumer = ConsumerConfig(
            redis=settings,
            streams=_str_tuple(table, "streams", ("sekimori:alerts",)),
            group=_get(table, "group", str, "sekimori-responders"),
            consumer=_get(table, "consumer", str, "") or default_consumer_name(),
            count=_get(table, "count", int, 100),
            block_ms=_get(table, "block_ms", int, 1000),
            claim_idle_ms=_get(table, "claim_idle_ms", int, 30_000),
            max_deliveries=_get(table, "max_deliveries", int, 5),
            start_id=_get(table, "start_id", str, "$"),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"respond: {exc}") from exc
    default_call = _call(table, CallConfig(), "respond")
    tables = {k: v for k, v in table.items() if k not in _SERVICE_KEYS and isinstance(v, dict)}
    calls = {name: _call(t, default_call, f"respond.{name}") for name, t in tables.items()}
    responders = _str_tuple(table, "responders", ("log",))
    blocks = document.get("blocks")
    if blocks is not None and not isinstance(blocks, dict):
        raise ConfigError("blocks: expected a table")
    return RespondConfig(
        mode=mode,
        consumer=consumer,
        decisions_stream=_get(table, "decisions_stream", str, "sekimori:decisions"),
        decisions_maxlen=_get(table, "decisions_maxlen", int, 100_000),
        responders=responders,
        calls=MappingProxyType(calls),
        default_call=default_call,
        policy=_policy(_dict(table, "policy")),
        tables=MappingProxyType(tables),
        blocks=MappingProxyType(blocks) if blocks is not None else None,
        fast_socket=_get(table, "fast_socket", str, ""),
        fast_socket_mode=_get(table, "fast_socket_mode", int, 0o660),
    )


def load(path: str | None, sets: Sequence[str] = ()) -> RespondConfig:
    return build(read_file(path), sets)


def _dict(table: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = table.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"respond.{key}: expected a table")
    return value


def _deep_copy(table: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in table.items()}
