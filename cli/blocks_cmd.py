"""``sekimori blocks``: read and change the block ledger by hand.

Scope: ``list``, ``add ADDR --ttl 1h --reason …``, ``remove ADDR --reason … [--pin]``,
``flush --reason … --yes`` and ``why ADDR`` (rule and packet evidence → ledger record →
firewall objects). Settings come from the ``[blocks]`` table of ``--config``; ``--redis``
overrides its Redis URL. Changes are written to the ledger, recorded with who and why, and
reach the firewalls on the responders' next reconcile pass (``--apply`` runs one here).

Non-goals: the alert-driven path (responders/blocking.py) and the service loop.
"""

from __future__ import annotations

import getpass
import ipaddress
import json
import time

import click

from cli.alerts_cmd import escape
from cli.common import CliState
from responders.block_config import BlockConfig, format_duration, load_block_config, parse_duration
from responders.blocking import BlockManager
from responders.ledger import Block
from sensor.errors import ConfigError


def _cidr(text: str) -> str:
    try:
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError as exc:
        raise ConfigError(f"{text!r} is not an IP address or CIDR") from exc


def _manager(ctx: click.Context, *, targets: bool = False) -> BlockManager:
    cfg: BlockConfig = ctx.obj["blocks"]
    return BlockManager(cfg, None if targets else {})


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _apply(ctx: click.Context) -> None:
    manager = _manager(ctx, targets=True)
    manager.start()
    for name, report in manager.reports.items():
        click.echo(
            f"{name}: +{report.added} -{report.removed} refreshed {report.refreshed}, "
            f"{report.failed} failed"
        )
        for error in report.errors[:3]:
            click.echo(f"  {escape(error)}", err=True)


def _remaining(expires: float | None, now: float) -> str:
    return "forever" if expires is None else format_duration(max(0, int(expires - now)))


@click.group("blocks")
@click.option(
    "--redis",
    "url",
    envvar="SEKIMORI_BLOCKS_REDIS_URL",
    default=None,
    help="Redis URL of the ledger (default: blocks.redis-url, outputs.redis.url).",
)
@click.pass_context
def blocks(ctx: click.Context, url: str | None) -> None:
    """The block ledger: list, add, remove, flush, why."""
    state: CliState = ctx.obj
    ctx.obj = {"state": state, "blocks": load_block_config(state.config_path, redis_url=url)}


@blocks.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON record per block.")
@click.pass_context
def list_cmd(ctx: click.Context, as_json: bool) -> None:
    """Active blocks, soonest expiry first, and whether blocking is paused."""
    manager = _manager(ctx)
    now = time.time()
    rows = sorted(manager.ledger.active_blocks(now), key=lambda b: b.expires or float("inf"))
    if as_json:
        for block in rows:
            click.echo(json.dumps(block.to_fields(), sort_keys=True))
        return
    paused = manager.ledger.pause_reason()
    if paused:
        click.echo(f"blocking is PAUSED (detect-only): {escape(paused)}")
    click.echo(f"{len(rows)} active block(s)")
    for b in rows:
        click.echo(
            f"{b.cidr:<20} {_remaining(b.expires, now):>8} left  level {b.level}  "
            f"hits {b.hits:<6} {b.origin:<9} {escape(b.reason)}"
        )


@blocks.command("add")
@click.argument("address")
@click.option("--ttl", default="1h", show_default=True, help="30m, 1h, 7d; 'forever' for none.")
@click.option("--reason", required=True, help="Why (kept in the ledger).")
@click.option("--apply", "apply_now", is_flag=True, help="Reconcile the firewalls now.")
@click.pass_context
def add(ctx: click.Context, address: str, ttl: str, reason: str, apply_now: bool) -> None:
    """Block ADDRESS (or CIDR) by hand; protected addresses are still refused."""
    ttl_s = None if ttl == "forever" else parse_duration(ttl, "--ttl")
    block = _manager(ctx).add(_cidr(address), ttl_s, reason, _user())
    click.echo(f"blocked {block.cidr} for {format_duration(ttl_s)} (block {block.block_id})")
    if apply_now:
        _apply(ctx)


@blocks.command("remove")
@click.argument("address")
@click.option("--reason", required=True, help="Why (kept in the ledger).")
@click.option("--pin", is_flag=True, help="Also pin an allow: nothing blocks it again.")
@click.option("--pin-for", default=None, help="How long the pin lasts (default: until removed).")
@click.option("--apply", "apply_now", is_flag=True, help="Reconcile the firewalls now.")
@click.pass_context
def remove(
    ctx: click.Context, address: str, reason: str, pin: bool, pin_for: str | None, apply_now: bool
) -> None:
    """Unblock ADDRESS (recorded), optionally pinning an allow."""
    pin_s = parse_duration(pin_for, "--pin-for") if pin_for else None
    cidr = _cidr(address)
    ended = _manager(ctx).remove(cidr, reason, _user(), pin_s, pin or pin_for is not None)
    click.echo(f"unblocked {cidr}" if ended else f"{cidr} was not blocked (recorded anyway)")
    if pin or pin_for:
        click.echo(f"allow pinned for {cidr} ({format_duration(pin_s)})")
    if apply_now:
        _apply(ctx)


@blocks.command("flush")
@click.option("--reason", required=True, help="Why (kept in the ledger for each block).")
@click.option("--yes", is_flag=True, help="Do it (without it, only say how many).")
@click.option("--apply", "apply_now", is_flag=True, help="Reconcile the firewalls now.")
@click.pass_context
def flush(ctx: click.Context, reason: str, yes: bool, apply_now: bool) -> None:
    """End every active block (each recorded); firewalls follow on reconcile."""
    manager = _manager(ctx)
    if not yes:
        count = len(manager.ledger.active(time.time()))
        click.echo(f"{count} active block(s) would be removed; add --yes to do it")
        return
    click.echo(f"removed {manager.flush(reason, _user())} block(s)")
    if apply_now:
        _apply(ctx)


@blocks.command("why")
@click.argument("address")
@click.option("--check", is_flag=True, help="Also ask every configured firewall (needs root).")
@click.pass_context
def why(ctx: click.Context, address: str, check: bool) -> None:
    """Why ADDRESS is (or is not) blocked: rule, evidence, ledger, firewall objects."""
    manager = _manager(ctx, targets=check)
    cidr = _cidr(address)
    now = time.time()
    protected = manager.protected.match(cidr)
    if protected:
        click.echo(f"{cidr}: PROTECTED ({protected}): nothing blocks it")
    pin = manager.ledger.allows(now).get(cidr)
    if pin:
        click.echo(f"{cidr}: allow pinned by {escape(pin.get('by'))}: {escape(pin.get('reason'))}")
    block = manager.ledger.get(cidr)
    if block is None:
        click.echo(f"{cidr}: no block in the ledger")
    else:
        _show_block(block, now)
    for past in manager.ledger.history(cidr)[:5]:
        click.echo(
            f"  earlier: {escape(past.get('reason'))} level {past.get('level')} "
            f"{past.get('state')} ({escape(past.get('end_reason'))})"
        )
    refused = manager.ledger.refusal(cidr)
    if refused:
        click.echo(f"refused {refused['count']} time(s), last: {escape(refused.get('reason'))}")
        click.echo(f"  evidence: {escape(json.dumps(refused.get('evidence'), sort_keys=True))}")
    if check:
        from responders.plugin import BlockRequest

        request = BlockRequest(cidr=cidr, expires_at=None, reason="", block_id="")
        for name, responder in manager.responders.items():
            state = "present" if responder.check(request) else "ABSENT"
            click.echo(f"  {name}: {state} on the firewall")


def _show_block(b: Block, now: float) -> None:
    active = b.state == "active" and (b.expires is None or b.expires > now)
    status = f"BLOCKED, {_remaining(b.expires, now)} left" if active else b.state.upper()
    click.echo(f"{b.cidr}: {status} (block {b.block_id}, {b.origin})")
    click.echo(
        f"  rule:     [{b.gid}:{b.sid}:{b.rev}] {escape(b.reason)}"
        f"{' ruleset ' + escape(b.ruleset) if b.ruleset else ''}"
    )
    click.echo(f"  created:  {_stamp(b.created)}; level {b.level} of the ladder; hits {b.hits}")
    if b.ended:
        click.echo(f"  ended:    {_stamp(b.ended)} ({escape(b.end_reason)})")
    click.echo(f"  flow:     {b.flow_id} seen by sensor {escape(b.sensor)}")
    click.echo(f"  first:    {escape(json.dumps(dict(b.first_evidence), sort_keys=True))}")
    click.echo(f"  last:     {escape(json.dumps(dict(b.last_evidence), sort_keys=True))}")
    for target, obj in b.targets.items():
        click.echo(f"  firewall: {target}: {escape(obj)}")
    if not b.targets:
        click.echo("  firewall: no target has confirmed it yet")


def _stamp(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


command = blocks  # what cli/main.py registers, like every command module
