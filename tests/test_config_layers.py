"""Configuration: defaults, layering (file < env < --set), every key, warnings, errors, masking."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from sensor.config import (
    DEFAULT_TIMEOUTS,
    Config,
    FlowTimeouts,
    config_items,
    env_name,
    find_key_line,
    known_keys,
    load_config,
    mask_secret,
    parse_size,
)
from sensor.errors import ConfigError

NO_ENV: dict[str, str] = {"HOME": "/home/tester"}


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "sekimori.toml"
    path.write_text(text)
    return str(path)


def test_defaults_are_suricatas_stock_values() -> None:
    config, warnings = load_config(env=NO_ENV)
    assert warnings == []
    assert config.stream.midstream is False and config.stream.reassembly_depth == 1048576
    assert config.flow.timeouts["tcp"] == FlowTimeouts(60, 600, 60)
    assert config.flow.timeouts["default"] == FlowTimeouts(30, 300, 0)
    assert config.vars.address_groups["HOME_NET"] == "[192.168.0.0/16,10.0.0.0/8,172.16.0.0/12]"
    assert config.vars.address_groups["EXTERNAL_NET"] == "!$HOME_NET"
    assert config.vars.address_groups["AIM_SERVERS"] == "$EXTERNAL_NET"
    assert config.vars.port_groups["FILE_DATA_PORTS"] == "[$HTTP_PORTS,110,143]"
    assert len(config.vars.address_groups) == 15 and len(config.vars.port_groups) == 11
    assert config.detect.cache_dir == "/home/tester/.cache/sekimori"
    assert config.output.redis_stream == "sekimori:alerts"
    assert config.sensor_id  # the hostname


def test_cache_dir_follows_xdg() -> None:
    config, _ = load_config(env={"XDG_CACHE_HOME": "/xdg"})
    assert config.detect.cache_dir == "/xdg/sekimori"


def test_file_then_env_then_set(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[stream]\nmidstream = true\nmemcap = '1mb'\n"
        "[flow]\nmemcap = 1000\nmax-flows = 10\nhash-size = 7\n",
    )
    env = {
        "SEKIMORI_FLOW__MEMCAP": "2kb",  # beats the file
        "SEKIMORI_FLOW__MAX_FLOWS": "20",  # beats the file, loses to --set
    }
    config, warnings = load_config(path, env=env, sets=["flow.max-flows=30"])
    assert warnings == []
    assert config.stream.midstream is True  # file only
    assert config.stream.memcap == 1024 * 1024
    assert config.flow.memcap == 2048  # env over file
    assert config.flow.max_flows == 30  # --set over env
    assert config.flow.hash_size == 7


def test_sections_nested_and_dotted_forms_are_equivalent(tmp_path: Path) -> None:
    nested = write(tmp_path, "[stream.reassembly]\ndepth = 5\n[flow-timeouts.tcp]\nnew = 9\n")
    a, _ = load_config(nested, env=NO_ENV)
    dotted = tmp_path / "b.toml"
    dotted.write_text('stream.reassembly.depth = 5\n"flow-timeouts" = { tcp = { new = 9 } }\n')
    b, _ = load_config(str(dotted), env=NO_ENV)
    assert a == b
    assert a.stream.reassembly_depth == 5
    assert a.flow.timeouts["tcp"] == FlowTimeouts(9, 600, 60)
    assert a.flow.timeouts["udp"] == DEFAULT_TIMEOUTS["udp"]


def test_vars_from_file_env_and_set(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[vars.address-groups]\nHOME_NET = "[10.0.0.0/8]"\n'
        "[vars.port-groups]\nORACLE_PORTS = 1522\n",
    )
    env = {"SEKIMORI_VARS__ADDRESS_GROUPS__LAB_NET": "192.0.2.0/24"}
    config, warnings = load_config(path, env=env, sets=["vars.port-groups.HTTP_PORTS=[80,8080]"])
    assert warnings == []
    assert config.vars.address_groups["HOME_NET"] == "[10.0.0.0/8]"
    assert config.vars.address_groups["LAB_NET"] == "192.0.2.0/24"
    assert config.vars.address_groups["EXTERNAL_NET"] == "!$HOME_NET"  # defaults kept
    assert config.vars.port_groups["ORACLE_PORTS"] == "1522"  # TOML ints become strings
    assert config.vars.port_groups["HTTP_PORTS"] == "[80,8080]"


def _sample(key: str, default: object) -> tuple[str, object]:
    """A valid --set text for ``key`` different from its default, and the parsed value."""
    special: dict[str, tuple[str, object]] = {
        "outputs.redis.url": ("redis://127.0.0.1:6390/1", "redis://127.0.0.1:6390/1"),
        "logging.level": ("debug", "debug"),
        "logging.format": ("json", "json"),
        "rule-files": ("a.rules, b.rules", ("a.rules", "b.rules")),
        "sensor.mode": ("prevent", "prevent"),
        "stream.inline": ("true", "yes"),
        "capture.rt-priority": ("10", 10),
        "packet-alert-max": ("20", 20),
    }
    if key in special:
        return special[key]
    if isinstance(default, bool):
        return ("no", False) if default else ("yes", True)
    if isinstance(default, int) or key == "capture.buffer-size":
        return ("3kb", 3072)
    return ("some-value", "some-value")


@pytest.mark.parametrize("key", known_keys())
def test_every_key_can_be_set(key: str) -> None:
    defaults = dict(config_items(load_config(env=NO_ENV)[0], masked=False))
    text, expected = _sample(key, defaults[key])
    assert expected != defaults[key]
    config, warnings = load_config(env=NO_ENV, sets=[f"{key}={text}"])
    assert warnings == []
    assert dict(config_items(config, masked=False))[key] == expected
    # The same value through the environment variable named after the key.
    via_env, _ = load_config(env={**NO_ENV, env_name(key): text})
    assert via_env == config


def test_env_names_follow_the_documented_mapping() -> None:
    assert env_name("stream.midstream") == "SEKIMORI_STREAM__MIDSTREAM"
    assert env_name("stream.async-oneside") == "SEKIMORI_STREAM__ASYNC_ONESIDE"
    assert env_name("flow-timeouts.tcp.new") == "SEKIMORI_FLOW_TIMEOUTS__TCP__NEW"


def test_aliases_and_suricata_spellings() -> None:
    config, warnings = load_config(
        env=NO_ENV,
        sets=["sensor-id=edge-1", "app-layer.protocols.http.enabled=detection-only"],
    )
    assert warnings == []
    assert config.sensor_id == "edge-1" and config.app_layer.http is True


def test_unknown_keys_warn_and_are_ignored(tmp_path: Path) -> None:
    path = write(tmp_path, "[stream]\nmidstream = true\n\n[foo]\nbar = 1\n")
    env = {"SEKIMORI_NOPE__X": "1", "SEKIMORI_REQUIRE_ALL": "1", "SEKIMORI_CONFIG": "x"}
    suricata_only = "app-layer.protocols.http.libhtp.default-config.personality=IDS"
    config, warnings = load_config(path, env=env, sets=[suricata_only])
    assert warnings == [
        f"{path}:5: unknown setting 'foo.bar' ignored",
        "unknown setting in environment variable SEKIMORI_NOPE__X ignored",
        "unknown setting 'app-layer.protocols.http.libhtp.default-config.personality' ignored",
    ]
    assert config.stream.midstream is True


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "# comment\n[stream]\nasync-oneside = false\nmidstream = 'maybe'\n",
            ":4: stream.midstream: expected a boolean (true/false/yes/no/1/0), got 'maybe'",
        ),
        (
            "[stream.reassembly]\ndepth = '10 tb'\n",
            ":2: stream.reassembly.depth: expected a non-negative integer or size like 64mb",
        ),
        ("[flow]\nmemcap = -1\n", ":2: flow.memcap: expected a non-negative integer"),
        ("[logging]\nlevel = 'loud'\n", ":2: logging.level: expected one of debug, info"),
        ("[outputs.redis]\nurl = 'http://x'\n", ":2: outputs.redis.url: expected a redis://"),
        ("rule-files = 'a.rules'\nx = 1\nrule-files2 = [1]\n", None),
        ("\n\nrule-files = [1, 2]\n", ":3: rule-files: expected a list of strings"),
    ],
)
def test_bad_file_values_name_file_line_and_key(
    tmp_path: Path, text: str, message: str | None
) -> None:
    path = write(tmp_path, text)
    if message is None:  # a string for a list is accepted (comma-separated), unknowns warn
        config, warnings = load_config(path, env=NO_ENV)
        assert config.detect.rule_files == ("a.rules",) and len(warnings) == 2
        return
    with pytest.raises(ConfigError) as info:
        load_config(path, env=NO_ENV)
    assert str(info.value).startswith(path + message)


def test_bad_env_and_set_values_name_their_source() -> None:
    with pytest.raises(
        ConfigError,
        match=r"^environment variable SEKIMORI_STREAM__MIDSTREAM: stream\.midstream: expected a boolean",
    ):
        load_config(env={"SEKIMORI_STREAM__MIDSTREAM": "perhaps"})
    with pytest.raises(ConfigError, match=r"^--set flow\.memcap=lots: flow\.memcap: expected"):
        load_config(env=NO_ENV, sets=["flow.memcap=lots"])
    with pytest.raises(ConfigError, match=r"^--set stream\.midstream: expected KEY=VALUE"):
        load_config(env=NO_ENV, sets=["stream.midstream"])


def test_file_problems_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nothere\.toml: cannot read config file: No such file"):
        load_config(str(tmp_path / "nothere.toml"), env=NO_ENV)
    broken = write(tmp_path, "[stream\nmidstream = true\n")
    with pytest.raises(ConfigError, match=r"sekimori\.toml: invalid TOML: .*line 1"):
        load_config(broken, env=NO_ENV)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(str(binary), env=NO_ENV)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("10", 10),
        ("10kb", 10240),
        ("10 KB", 10240),
        (" 2mb ", 2 << 20),
        ("1gb", 1 << 30),
        ("1.5kb", 1536),
        (4096, 4096),
    ],
)
def test_sizes_parse_as_suricata_does(text: object, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "kb", "10tb", "10k", "-1", "1e3", True, 1.5])
def test_bad_sizes_are_rejected(text: object) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


def test_secrets_are_masked() -> None:
    assert (
        mask_secret("outputs.redis.url", "redis://user:hunter2@db:6379/0")
        == "redis://user:***@db:6379/0"
    )
    assert (
        mask_secret("outputs.redis.url", "redis://:hunter2@db:6379/0") == "redis://:***@db:6379/0"
    )
    assert mask_secret("outputs.redis.url", "redis://db:6379/0") == "redis://db:6379/0"
    assert mask_secret("responders.api-token", "abc") == "***"
    assert mask_secret("x.password", "abc") == "***"
    assert mask_secret("webhook.secret", "abc") == "***"
    assert mask_secret("vendor.api_key", "abc") == "***"
    assert mask_secret("stream.midstream", True) is True
    config, _ = load_config(env=NO_ENV, sets=["outputs.redis.url=redis://u:s3cret@h:1/0"])
    shown = dict(config_items(config))
    assert shown["outputs.redis.url"] == "redis://u:***@h:1/0"
    assert "s3cret" not in repr(config_items(config))
    assert str(dict(config_items(config, masked=False))["outputs.redis.url"]).endswith(
        "s3cret@h:1/0"
    )


def test_find_key_line() -> None:
    text = '# c\nsensor-name = "a"\n[stream]\nmidstream = true\n[stream.reassembly]\ndepth = 1\n'
    assert find_key_line(text, "sensor-name") == 2
    assert find_key_line(text, "stream.midstream") == 4
    assert find_key_line(text, "stream.reassembly.depth") == 6
    assert find_key_line(text, "flow.memcap") is None


def test_config_is_frozen_and_self_contained() -> None:
    config, _ = load_config(env=NO_ENV)
    with pytest.raises(AttributeError):
        config.stream.midstream = True  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.flow.timeouts["tcp"] = FlowTimeouts(1, 1, 1)  # type: ignore[index]
    assert isinstance(Config().flow.timeouts["icmp"], FlowTimeouts)


def test_example_config_is_valid() -> None:
    example = Path(__file__).resolve().parent.parent / "sekimori.toml.example"
    if not example.exists():
        pytest.fail("sekimori.toml.example is missing")
    tomllib.loads(example.read_text())
    config, warnings = load_config(str(example), env=NO_ENV)
    assert warnings == []
    assert config == load_config(env=NO_ENV)[0]  # the example documents the defaults
