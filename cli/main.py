"""The ``sekimori`` command: global options and the registry of subcommands.

Scope: the click group, its global options (--config, --log-level, --log-format, -v) and
one import + one ``add_command`` line per command module; each module exposes ``command``.

Non-goals: any command's logic (see the cli/*.py modules), error formatting (cli/common).
"""

from __future__ import annotations

import importlib.metadata
import sys
from collections.abc import Sequence
from typing import NoReturn

import click

from cli import (
    alerts_cmd,
    blocks_cmd,
    completion_cmd,
    config_cmd,
    policy_cmd,
    respond_cmd,
    responders_cmd,
    rules_cmd,
    run,
    service_cmd,
    status_cmd,
    tune_cmd,
)
from cli.common import CliState, invoke

LOG_LEVELS = ("debug", "info", "notice", "warning", "error")


def _version() -> str:
    try:
        return importlib.metadata.version("sekimori")
    except importlib.metadata.PackageNotFoundError:  # running from a checkout, not installed
        return "(not installed)"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    metavar="FILE",
    envvar="SEKIMORI_CONFIG",
    help="TOML configuration file (env: SEKIMORI_CONFIG).",
)
@click.option("--log-level", type=click.Choice(LOG_LEVELS), help="Overrides logging.level.")
@click.option("--log-format", type=click.Choice(("text", "json")), help="Log lines on stderr.")
@click.option("-v", "--verbose", count=True, help="Debug logging and tracebacks on errors.")
@click.version_option(version=_version(), prog_name="sekimori", message="%(prog)s %(version)s")
@click.pass_obj
def sekimori(
    state: CliState,
    config_path: str | None,
    log_level: str | None,
    log_format: str | None,
    verbose: int,
) -> None:
    """sekimori: out-of-band network IDS with Suricata-syntax rules."""
    state.config_path = config_path
    state.log_level = log_level
    state.log_format = log_format
    state.verbose = verbose


sekimori.add_command(run.command)
sekimori.add_command(config_cmd.command)
sekimori.add_command(rules_cmd.command)
sekimori.add_command(alerts_cmd.command)
sekimori.add_command(status_cmd.command)
sekimori.add_command(service_cmd.command)
sekimori.add_command(completion_cmd.command)
sekimori.add_command(blocks_cmd.command)
sekimori.add_command(respond_cmd.command)
sekimori.add_command(policy_cmd.command)
sekimori.add_command(tune_cmd.command)
sekimori.add_command(responders_cmd.command)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    sys.exit(invoke(sekimori, argv))


if __name__ == "__main__":
    main()
