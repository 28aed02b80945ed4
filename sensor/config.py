"""Sensor configuration: one TOML file, layered and parsed once into frozen dataclasses.

Scope: the settings every stage reads (stream, flow, variables, capture, detection, app
layer, outputs, logging), their defaults, and the layering defaults → TOML file →
environment (``SEKIMORI_`` + dotted key, ``.``→``__``, ``-``→``_``) → ``--set KEY=VALUE``.
Keys are Suricata's dotted names wherever Suricata has the setting (``stream.midstream``,
``flow-timeouts.tcp.established``, ``vars.address-groups.HOME_NET``), so a conformance
run's ``--set`` lines work unchanged. The result is passed explicitly; nothing is global.

Non-goals: reading suricata.yaml, hot reload, per-interface settings. Unknown keys are
reported as warnings (Suricata has hundreds we do not implement), never silently used.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from sensor.config_types import (  # re-exported: the records live beside the loader
    DEFAULT_ADDRESS_GROUPS,
    DEFAULT_PORT_GROUPS,
    DEFAULT_TIMEOUTS,
    AppLayerConfig,
    CaptureConfig,
    Config,
    DefragConfig,
    DetectConfig,
    FlowConfig,
    FlowTimeouts,
    LogConfig,
    OutputConfig,
    StreamConfig,
    VarsConfig,
)
from sensor.config_values import (  # parse_bool/parse_size stay importable from here
    choice,
    parse_alert_max,
    parse_bool,
    parse_enabled,
    parse_inline,
    parse_mode,
    parse_opt_size,
    parse_opt_str,
    parse_redis_url,
    parse_rt_priority,
    parse_size,
    parse_str,
    parse_str_list,
)
from sensor.errors import ConfigError


@dataclass(frozen=True)
class _Setting:
    section: str  # attribute of Config ("" for a field of Config itself)
    name: str  # attribute within that section
    parse: Callable[[object], Any]


_S = _Setting
_LIBHTP = "app-layer.protocols.http.libhtp.default-config."
_SETTINGS: Mapping[str, _Setting] = MappingProxyType(
    {
        "stream.midstream": _S("stream", "midstream", parse_bool),
        "stream.async-oneside": _S("stream", "async_oneside", parse_bool),
        "stream.inline": _S("stream", "inline", parse_inline),
        "stream.memcap": _S("stream", "memcap", parse_size),
        "stream.reassembly.depth": _S("stream", "reassembly_depth", parse_size),
        "stream.reassembly.memcap": _S("stream", "reassembly_memcap", parse_size),
        "stream.reassembly.max-ooo-bytes": _S("stream", "max_ooo_bytes", parse_size),
        "stream.reassembly.max-ooo-segments": _S("stream", "max_ooo_segments", parse_size),
        "flow.memcap": _S("flow", "memcap", parse_size),
        "flow.max-flows": _S("flow", "max_flows", parse_size),
        "flow.hash-size": _S("flow", "hash_size", parse_size),
        **{
            f"flow-timeouts.{proto}.{state}": _S("flow-timeouts", f"{proto}.{state}", parse_size)
            for proto in DEFAULT_TIMEOUTS
            for state in ("new", "established", "closed")
        },
        "capture.snaplen": _S("capture", "snaplen", parse_size),
        "capture.promisc": _S("capture", "promisc", parse_bool),
        "capture.bpf": _S("capture", "bpf", parse_opt_str),
        "capture.immediate": _S("capture", "immediate", parse_bool),
        "capture.buffer-size": _S("capture", "buffer_size", parse_opt_size),
        "capture.rt-priority": _S("capture", "rt_priority", parse_rt_priority),
        "classification-file": _S("detect", "classification_file", parse_opt_str),
        "reference-config-file": _S("detect", "reference_file", parse_opt_str),
        "rule-files": _S("detect", "rule_files", parse_str_list),
        "default-rule-path": _S("detect", "default_rule_path", parse_opt_str),
        "detect.cache-dir": _S("detect", "cache_dir", parse_opt_str),
        "detect.strict": _S("detect", "strict", parse_bool),
        "packet-alert-max": _S("detect", "packet_alert_max", parse_alert_max),
        "app-layer.protocols.http.enabled": _S("app_layer", "http", parse_enabled),
        "app-layer.protocols.dns.enabled": _S("app_layer", "dns", parse_enabled),
        "sensor.mode": _S("", "mode", parse_mode),
        "defrag.trackers": _S("defrag", "trackers", parse_size),
        "defrag.max-frags": _S("defrag", "max_frags", parse_size),
        "defrag.timeout": _S("defrag", "timeout", parse_size),
        "defrag.memcap": _S("defrag", "memcap", parse_size),
        "behaviour.enabled": _S("", "behaviour_enabled", parse_bool),
        "policy.file": _S("", "policy_file", parse_opt_str),
        "pid-file": _S("", "pidfile", parse_opt_str),
        "outputs.redis.spool-dir": _S("output", "redis_spool_dir", parse_opt_str),
        "outputs.redis.maxlen": _S("output", "redis_maxlen", parse_size),
        # Read by the sensor (sender) and `sekimori respond` (listener) from the same file.
        "respond.fast_socket": _S("output", "fast_socket", parse_opt_str),
        _LIBHTP + "request-body-limit": _S("app_layer", "request_body_limit", parse_size),
        _LIBHTP + "response-body-limit": _S("app_layer", "response_body_limit", parse_size),
        _LIBHTP + "response-body-decompress-layer-limit": _S(
            "app_layer", "decompress_layer_limit", parse_size
        ),
        "app-layer.protocols.tls.enabled": _S("app_layer", "tls", parse_enabled),
        "outputs.eve.filename": _S("output", "eve_file", parse_opt_str),
        "outputs.redis.url": _S("output", "redis_url", parse_redis_url),
        "outputs.redis.stream": _S("output", "redis_stream", parse_str),
        "stats.interval": _S("output", "stats_interval", parse_size),
        "logging.level": _S("log", "level", choice("debug", "info", "notice", "warning", "error")),
        "logging.format": _S("log", "format", choice("text", "json")),
        "sensor-name": _S("", "sensor_id", parse_str),
    }
)
# Other spellings users reach for; mapped to the key above before lookup.
_ALIASES: Mapping[str, str] = MappingProxyType(
    {"sensor-id": "sensor-name", "logging.default-log-level": "logging.level"}
)
_VAR_PREFIXES = ("vars.address-groups.", "vars.port-groups.")
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ENV_PREFIX = "SEKIMORI_"


def _lookup(key: str) -> tuple[str, Callable[[object], Any]] | None:
    """The canonical key and its parser, or None when sekimori has no such setting."""
    key = _ALIASES.get(key, key)
    if key in _SETTINGS:
        return key, _SETTINGS[key].parse
    for prefix in _VAR_PREFIXES:
        if key.startswith(prefix) and _VAR_NAME.match(key[len(prefix) :]):
            return key, parse_str
    return None


def env_name(key: str) -> str:
    """The environment variable that sets a dotted key (stream.async-oneside → ..._ASYNC_ONESIDE)."""
    return ENV_PREFIX + key.upper().replace(".", "__").replace("-", "_")


def _env_key(name: str) -> str | None:
    """Map a SEKIMORI_* variable back to its dotted key (None when it is no setting)."""
    known = {env_name(k): k for k in (*_SETTINGS, *_ALIASES)}
    if name in known:
        return known[name]
    for prefix in _VAR_PREFIXES:
        env_prefix = env_name(prefix)
        if name.startswith(env_prefix):  # variable names keep their case and underscores
            return prefix + name[len(env_prefix) :]
    return None


# ---------------------------------------------------------------- layering


def _flatten(table: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, value in table.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", value


_HEADER_RE = re.compile(r"^\s*\[\s*([^\]]+?)\s*\]")
_KEY_RE = re.compile(r"^\s*([A-Za-z0-9_\-.\"' ]+?)\s*=")


def _split_key(text: str) -> list[str]:
    return [part.strip().strip("\"'") for part in text.split(".")]


def find_key_line(toml_text: str, key: str) -> int | None:
    """1-based line defining a flattened dotted key in TOML text (best effort, for messages)."""
    wanted = key.split(".")
    table: list[str] = []
    for lineno, line in enumerate(toml_text.splitlines(), 1):
        header = _HEADER_RE.match(line)
        if header:
            table = _split_key(header.group(1).strip("[]"))
            continue
        assignment = _KEY_RE.match(line)
        if assignment:
            full = table + _split_key(assignment.group(1))
            if full == wanted[: len(full)]:  # also finds keys set through inline tables
                return lineno
    return None


def _read_toml(path: str) -> tuple[str, dict[str, Any]]:
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8")
        return text, tomllib.loads(text)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: config file is not UTF-8 text") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc


def _parse_value(key: str, value: object, where: str) -> tuple[str, Any] | None:
    found = _lookup(key)
    if found is None:
        return None
    canonical, parse = found
    try:
        return canonical, parse(value)
    except ValueError as exc:
        raise ConfigError(f"{where}: {key}: {exc}") from exc


# Tables of the same file read by other processes or parts (responders, block ledger,
# detectors, policy, operations): the sensor's loader leaves them to their owners.
_FOREIGN_TABLES = ("respond.", "blocks.", "behaviour.", "policy.", "ops.")


def _file_layer(path: str, values: dict[str, Any], warnings: list[str]) -> None:
    text, table = _read_toml(path)
    for key, value in _flatten(table):
        line = find_key_line(text, key)
        where = f"{path}:{line}" if line else path
        parsed = _parse_value(key, value, where)
        if parsed is None and key.startswith(_FOREIGN_TABLES):
            continue
        if parsed is None:
            warnings.append(f"{where}: unknown setting '{key}' ignored")
        else:
            values[parsed[0]] = parsed[1]


def _env_layer(env: Mapping[str, str], values: dict[str, Any], warnings: list[str]) -> None:
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX):
            continue
        key = _env_key(name)
        if key is None:
            # Only dotted-looking names are settings; SEKIMORI_CONFIG, SEKIMORI_REQUIRE_ALL
            # and friends belong to the CLI and the test harness.
            if "__" in name:
                warnings.append(f"unknown setting in environment variable {name} ignored")
            continue
        parsed = _parse_value(key, env[name], f"environment variable {name}")
        if parsed is not None:
            values[parsed[0]] = parsed[1]


def _set_layer(sets: Sequence[str], values: dict[str, Any], warnings: list[str]) -> None:
    for item in sets:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {item}: expected KEY=VALUE")
        parsed = _parse_value(key, value.strip(), f"--set {item}")
        if parsed is None:
            warnings.append(f"unknown setting '{key}' ignored")
        else:
            values[parsed[0]] = parsed[1]


def default_cache_dir(env: Mapping[str, str]) -> str:
    base = env.get("XDG_CACHE_HOME") or os.path.join(
        env.get("HOME") or os.path.expanduser("~"), ".cache"
    )
    return os.path.join(base, "sekimori")


def _build(values: Mapping[str, Any], env: Mapping[str, str]) -> Config:
    sections: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        if key in _SETTINGS:
            setting = _SETTINGS[key]
            sections.setdefault(setting.section, {})[setting.name] = value
    timeouts = {
        proto: FlowTimeouts(
            **{
                state: sections.get("flow-timeouts", {}).get(f"{proto}.{state}", default)
                for state, default in vars(stock).items()
            }
        )
        for proto, stock in DEFAULT_TIMEOUTS.items()
    }

    def group(prefix: str, defaults: Mapping[str, str]) -> Mapping[str, str]:
        extra = {k[len(prefix) :]: v for k, v in values.items() if k.startswith(prefix)}
        return MappingProxyType({**defaults, **extra})

    detect = sections.get("detect", {})
    detect.setdefault("cache_dir", default_cache_dir(env))
    return Config(
        stream=StreamConfig(**sections.get("stream", {})),
        flow=FlowConfig(**sections.get("flow", {}), timeouts=MappingProxyType(timeouts)),
        vars=VarsConfig(
            address_groups=group(_VAR_PREFIXES[0], DEFAULT_ADDRESS_GROUPS),
            port_groups=group(_VAR_PREFIXES[1], DEFAULT_PORT_GROUPS),
        ),
        capture=CaptureConfig(**sections.get("capture", {})),
        detect=DetectConfig(**detect),
        app_layer=AppLayerConfig(**sections.get("app_layer", {})),
        defrag=DefragConfig(**sections.get("defrag", {})),
        output=OutputConfig(**sections.get("output", {})),
        log=LogConfig(**sections.get("log", {})),
        **sections.get("", {}),
    )


def load_config(
    path: str | None = None, env: Mapping[str, str] | None = None, sets: Sequence[str] = ()
) -> tuple[Config, list[str]]:
    """Defaults → TOML file at ``path`` → ``SEKIMORI_*`` environment → ``--set`` items.

    Returns the configuration and human-readable warnings (unknown keys). Raises
    ConfigError naming the key (and file line) for a value that does not parse.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    warnings: list[str] = []
    if path is not None:
        _file_layer(path, values, warnings)
    _env_layer(env, values, warnings)
    _set_layer(sets, values, warnings)
    config = _build(values, env)
    return (replace(config, path=path) if path else config), warnings


# ---------------------------------------------------------------- inspection / dumps

_SECRET_KEY_RE = re.compile(r"password|secret|token|key", re.IGNORECASE)
_URL_PASSWORD_RE = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+(?P<at>@)", re.I)
MASK = "***"


def mask_secret(key: str, value: object) -> object:
    """The value as it may be shown: secrets and passwords inside URLs replaced by ***."""
    if isinstance(value, str) and value and _SECRET_KEY_RE.search(key):
        return MASK
    if isinstance(value, str):
        return _URL_PASSWORD_RE.sub(rf"\g<head>{MASK}\g<at>", value)
    return value


def config_items(config: Config, *, masked: bool = True) -> list[tuple[str, object]]:
    """Every setting as (dotted key, value), in table order, secrets masked by default."""
    items: list[tuple[str, object]] = []
    for key, setting in _SETTINGS.items():
        if setting.section == "flow-timeouts":
            proto, state = setting.name.split(".")
            value: object = getattr(config.flow.timeouts[proto], state)
        elif setting.section:
            value = getattr(getattr(config, setting.section), setting.name)
        else:
            value = getattr(config, setting.name)
        items.append((key, value))
    for prefix, group in zip(
        _VAR_PREFIXES, (config.vars.address_groups, config.vars.port_groups), strict=True
    ):
        items.extend((prefix + name, value) for name, value in group.items())
    if masked:
        items = [(key, mask_secret(key, value)) for key, value in items]
    return items


def known_keys() -> tuple[str, ...]:
    """The fixed dotted keys (variables under vars.address-groups/port-groups come on top)."""
    return tuple(_SETTINGS)
