"""``sekimori config check|dump``: validate a configuration file, show the effective one.

Scope: ``check`` reads one TOML file (no environment, no --set: it judges the file) and
reports each problem with file, line and key; ``dump`` prints the effective configuration
(defaults < file < environment < --set) as TOML that ``--config`` accepts back, secrets
masked.

Non-goals: editing configuration files.
"""

from __future__ import annotations

import json

import click

from cli.common import CliState, error_line, load
from sensor.config import config_items, load_config
from sensor.errors import ConfigError


@click.group("config")
def command() -> None:
    """Check and show the configuration.

    \b
    Examples:
      sekimori config check /etc/sekimori/sekimori.toml
      sekimori --config sekimori.toml config dump --set stream.midstream=true
    """


@command.command("check")
@click.argument("file", required=False, metavar="[FILE]")
@click.option("--strict", is_flag=True, help="Treat warnings (unknown settings) as errors.")
@click.pass_obj
def check(state: CliState, file: str | None, strict: bool) -> int:
    """Validate FILE (default: the --config file). Exit 1 when it has an error."""
    path = file or state.config_path
    if path is None:
        raise click.UsageError("no configuration file: give FILE or --config")
    try:
        _, warnings = load_config(path, env={}, sets=())
    except ConfigError as exc:
        click.echo(error_line(exc), err=True)
        return 1
    for warning in warnings:
        click.echo(f"sekimori: warning: {warning}", err=True)
    if strict and warnings:
        click.echo(error_line(f"{path}: {len(warnings)} warning(s) with --strict"), err=True)
        return 1
    click.echo(f"{path}: OK")
    return 0


@command.command("dump")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a setting.")
@click.pass_obj
def dump(state: CliState, sets: tuple[str, ...]) -> None:
    """Print the effective configuration as TOML (secrets masked)."""
    config = load(state, sets)
    click.echo(render_toml(config_items(config, masked=True)), nl=False)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def render_toml(items: list[tuple[str, object]]) -> str:
    """Dotted (key, value) pairs as TOML tables; unset values (None) as comments."""
    tables: dict[str, list[str]] = {}
    for key, value in items:
        table, _, leaf = key.rpartition(".")
        if "." in leaf or not leaf.replace("-", "").replace("_", "").isalnum():
            leaf = json.dumps(leaf)
        line = f"# {leaf} = (unset)" if value is None else f"{leaf} = {_toml_value(value)}"
        tables.setdefault(table, []).append(line)
    out = ["# sekimori effective configuration (defaults < file < environment < --set)"]
    out.extend(tables.pop("", []))  # top-level keys must come before any [table]
    for table, lines in tables.items():
        out.append(f"\n[{table}]")
        out.extend(lines)
    return "\n".join(out) + "\n"
