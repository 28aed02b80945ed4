"""What every command shares: the per-invocation state, config loading, error → exit code.

Scope: ``invoke()`` runs the click group and turns every failure into one line on stderr
and an exit code (SekimoriError → its ``exit_code``; Ctrl-C → 130; a bug → 70 with a hint
to rerun with ``-v``, which prints the traceback). ``load()`` reads the configuration
once, applies the global logging options and sets up logging.

Non-goals: command logic; printing results (commands echo their own output).
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Sequence

import click

from sensor.config import Config, load_config
from sensor.errors import SekimoriError
from sensor.logs import setup_logging

EXIT_INTERNAL = 70  # EX_SOFTWARE
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE

log = logging.getLogger(__name__)


class CliState:
    """Global options of one invocation, filled by the group callback (click's ctx.obj)."""

    __slots__ = ("config_path", "log_format", "log_level", "verbose")

    def __init__(self) -> None:
        self.config_path: str | None = None
        self.log_level: str | None = None
        self.log_format: str | None = None
        self.verbose = 0


def load(state: CliState, sets: Sequence[str] = ()) -> Config:
    """Load the configuration (file, environment, ``sets``) and set up logging from it.

    The global ``--log-level``/``--log-format``/``-v`` options win over the config file.
    """
    overrides = list(sets)
    if state.log_level:
        overrides.append(f"logging.level={state.log_level}")
    elif state.verbose:
        overrides.append("logging.level=debug")
    if state.log_format:
        overrides.append(f"logging.format={state.log_format}")
    config, warnings = load_config(state.config_path, sets=overrides)
    setup_logging(config.log.level, config.log.format)
    for warning in warnings:
        log.warning("%s", warning)
    return config


def error_line(message: object) -> str:
    """``sekimori: error: <msg>`` on one line, whatever the message held."""
    return "sekimori: error: " + " ".join(str(message).split("\n"))


def _silence_stdout() -> None:
    # The reader went away (e.g. `| head`): drop further output instead of a second error
    # when the interpreter flushes stdout at exit.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def invoke(group: click.Group, argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return the process exit code; never lets a traceback escape."""
    state = CliState()
    try:
        result = group.main(
            args=list(argv) if argv is not None else None,
            prog_name="sekimori",
            standalone_mode=False,
            obj=state,
        )
    except SekimoriError as exc:
        if state.verbose:
            traceback.print_exc(file=sys.stderr)
        click.echo(error_line(exc), err=True)
        return exc.exit_code
    except click.Abort as exc:  # click turns KeyboardInterrupt/EOFError into Abort
        if isinstance(exc.__cause__, KeyboardInterrupt) or exc.__cause__ is None:
            return EXIT_INTERRUPTED
        click.echo(error_line("aborted"), err=True)
        return 1
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except click.ClickException as exc:  # usage errors: click's own message, exit 2
        exc.show()
        return exc.exit_code
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except Exception as exc:
        if state.verbose:
            traceback.print_exc(file=sys.stderr)
            hint = ""
        else:
            hint = " (rerun with -v for the traceback)"
        message = " ".join(f"{type(exc).__name__}: {exc}".split("\n"))
        click.echo(f"sekimori: internal error: {message}{hint}", err=True)
        return EXIT_INTERNAL
    return result if isinstance(result, int) else 0
