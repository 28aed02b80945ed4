"""``sekimori completion SHELL``: print the shell completion script (bash, zsh, fish).

Scope: click's own completion, driven by the ``_SEKIMORI_COMPLETE`` environment variable;
this command only prints the activation script so users need not remember that. Non-goals:
installing it into the user's shell files.
"""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

SHELLS = ("bash", "zsh", "fish")


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def command(ctx: click.Context, shell: str) -> int:
    """Print the completion script for SHELL.

    \b
    Examples:
      eval "$(sekimori completion bash)"               # in ~/.bashrc
      sekimori completion zsh > ~/.zfunc/_sekimori
      sekimori completion fish > ~/.config/fish/completions/sekimori.fish
    """
    cls = get_completion_class(shell)
    assert cls is not None  # every name in SHELLS is one click ships
    root = ctx.find_root().command
    script = cls(root, {}, "sekimori", "_SEKIMORI_COMPLETE").source()
    click.echo(script)
    return 0
