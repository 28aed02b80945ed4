"""``sekimori responders check``: can every configured block target be reached, and may
sekimori do there what it needs to?

Scope: build each target of ``blocks.targets`` from the ``[blocks]`` table of
``--config`` (a configuration error is that target's failure), start it, and ask it:
API targets (responders/plugins) run their ``probe`` (the listing call with the real
credentials plus vendor checks such as "the alias exists" or "the token is active";
``--write`` also blocks and unblocks a documentation address, 198.51.100.254, for at most
two minutes); other targets (nftables, ipset) list their entries. One line per target:
``ok`` with what was verified, or ``FAILED`` with exactly what is wrong. Every call runs
with ``blocks.call-timeout``. Exit 0 when all pass, 6 when any fails.

Non-goals: changing the ledger; reconciling (``sekimori blocks --apply`` does that).
"""

from __future__ import annotations

import json
from typing import Any

import click

from cli.common import CliState
from responders.block_config import BlockConfig, load_block_config
from responders.blocking import builtin_block_responders
from responders.plugin import BlockResponder, load_plugins
from responders.reconcile import Caller
from sensor.errors import ResponderError, SekimoriError


def _build(cfg: BlockConfig, name: str) -> BlockResponder:
    found = load_plugins(builtin_block_responders())
    cls = found.get(name)
    if cls is None or not issubclass(cls, BlockResponder):
        raise ResponderError(f"not a block responder (known: {', '.join(sorted(found))})")
    return cls({"lease": cfg.lease_s, "jitter": cfg.jitter_s, **cfg.target_config(name)})


def check_target(cfg: BlockConfig, name: str, write: bool, caller: Caller) -> list[str]:
    """What was verified on one target; raises SekimoriError saying what is wrong."""
    responder = _build(cfg, name)
    caller.call(f"{name}: start", responder.start)
    try:
        probe = getattr(responder, "probe", None)
        if callable(probe):
            return list(caller.call(f"{name}: check", probe, write))
        entries = caller.call(f"{name}: listing entries", responder.list_blocks)
        return [f"listed {len(entries)} entries (no write test for this target)"]
    finally:
        try:
            responder.stop()
        except Exception:  # stop must not hide the check's own result
            pass


@click.group("responders")
def command() -> None:
    """Block targets of [blocks] (firewall APIs, nftables, ipset): checks.

    \b
    Examples:
      sekimori --config /etc/sekimori/sekimori.toml responders check
      sekimori responders check --target panos --write
    """


@command.command("check")
@click.option("--target", "targets", multiple=True, metavar="NAME",
              help="Check only this target (repeatable); default: blocks.targets.")  # fmt: skip
@click.option("--write", is_flag=True,
              help="Also block and unblock 198.51.100.254 (documentation address, 2 min).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="One JSON object per target.")
@click.pass_obj
def check(state: CliState, targets: tuple[str, ...], write: bool, as_json: bool) -> None:
    """Test connectivity, credentials and permissions of every configured target.

    \b
    Example:
      sekimori --config sekimori.toml responders check --write
    """
    cfg = load_block_config(state.config_path)
    names = list(targets) or list(cfg.targets)
    if not names:
        raise ResponderError("blocks.targets is empty: nothing to check")
    caller = Caller(cfg.call_timeout_s)
    failed: list[str] = []
    try:
        for name in names:
            result: dict[str, Any] = {"target": name}
            try:
                result.update(ok=True, checked=check_target(cfg, name, write, caller))
            except SekimoriError as exc:
                failed.append(name)
                result.update(ok=False, error=" ".join(str(exc).split()))
            _print(result, as_json)
    finally:
        caller.close()
    if failed:
        raise ResponderError(f"{len(failed)} of {len(names)} target(s) failed: {', '.join(failed)}")


def _print(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result, sort_keys=True))
    elif result["ok"]:
        click.echo(f"{result['target']}: ok: " + "; ".join(result["checked"]))
    else:
        click.echo(f"{result['target']}: FAILED: {result['error']}")
