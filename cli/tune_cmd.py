"""``sekimori tune``: exceptions to revisit, a dry run of a policy change, the tuning report.

Scope: ``tune`` lists exceptions that expired, expire soon, lack an owner/reason, name a
sid the rule set no longer has, or never silenced anything (hits file); ``tune replay``
runs a capture (or reads an EVE file) and shows what a proposed policy would enforce,
per rule and internal host, before it is made; ``tune report --since 24h`` reads alerts
from an EVE file or the Redis stream and prints tables and writes an HTML page with
charts. Thin: the analyses are sensor/policy/report.py and report_html.py.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import click
import orjson

from cli.alerts_cmd import escape, parse_duration
from cli.common import CliState, load
from cli.policy_cmd import resolve_policy, rule_facts
from sensor.errors import ConfigError
from sensor.policy import POLICY_ENV, PolicyDecider, default_hits_file, load_policy, read_hits
from sensor.policy.report import build_report, replay
from sensor.policy.report_html import render_html


@contextlib.contextmanager
def _policy_off() -> Iterator[None]:
    """Run the pipeline without the configured policy: replay wants every raw alert."""
    saved = os.environ.get(POLICY_ENV)
    os.environ[POLICY_ENV] = ""
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(POLICY_ENV, None)
        else:
            os.environ[POLICY_ENV] = saved


def read_eve(path: str) -> list[dict[str, Any]]:
    out = []
    try:
        with open(path, "rb") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    rec = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise ConfigError(f"{path}:{number}: not a JSON line") from exc
                if isinstance(rec, dict) and rec.get("event_type") == "alert":
                    out.append(rec)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read EVE file: {exc.strerror or exc}") from exc
    return out


def read_redis(url: str, stream: str, since_s: int) -> tuple[list[dict[str, Any]], float]:
    """Alerts of the last ``since_s`` seconds (Redis server clock) and that clock's now."""
    import redis

    from responders.bus_message import MalformedMessage, from_stream_entry
    from sensor.output.redis_conn import RedisSettings, bus_error, connect

    settings = RedisSettings(url=url, connect_timeout_s=5.0, socket_timeout_s=10.0)
    client = connect(settings, retries=1)
    out: list[dict[str, Any]] = []
    try:
        seconds, micros = client.time()
        now = int(seconds) + int(micros) / 1e6
        lower = f"{max(int((now - since_s) * 1000), 0)}-0"
        while True:
            entries = client.xrange(stream, min=lower, count=1000)
            if not entries:
                break
            for entry_id, fields in entries:
                ident = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                with contextlib.suppress(MalformedMessage):
                    out.append(from_stream_entry(stream, ident, fields).eve)
            last = entries[-1][0]
            lower = "(" + (last.decode() if isinstance(last, bytes) else str(last))
    except redis.RedisError as exc:
        raise bus_error(settings, exc, f"reading {stream}") from exc
    return out, now


@click.group("tune", invoke_without_command=True)
@click.option("--policy", "policy_file", metavar="FILE", help="Policy file (TOML).")
@click.option("--rules", "rule_files", multiple=True, metavar="FILE",
              help="The active rule files: exceptions for sids not in them are listed.")  # fmt: skip
@click.option("--hits", "hits_file", metavar="FILE", help="Hits file (default: the sensor's).")
@click.option("--unused-days", type=click.IntRange(min=1), default=30, show_default=True)
@click.option("--expiring-days", type=click.IntRange(min=0), default=14, show_default=True)
@click.pass_context
def command(ctx: click.Context, policy_file: str | None, rule_files: tuple[str, ...],
            hits_file: str | None, unused_days: int, expiring_days: int) -> None:  # fmt: skip
    """Tuning: exceptions to revisit (this), `replay`, `report` (docs/tuning.md).

    \b
    Examples:
      sekimori tune --rules /var/lib/sekimori/rules/current/sekimori.rules
      sekimori tune replay --pcap last-hour.pcap --rules web.rules --policy proposed.toml
      sekimori tune report --since 24h --eve eve.json --html report.html
    """
    if ctx.invoked_subcommand is not None:
        return
    state: CliState = ctx.obj
    config = load(state)
    policy = load_policy(resolve_policy(state, policy_file), dict(config.vars.address_groups))
    hits = read_hits(
        hits_file or policy.hits_file or default_hits_file(config.detect.cache_dir) or ""
    )
    known = set(rule_facts(config, rule_files)) if rule_files else None
    today, now = dt.date.today(), dt.datetime.now(dt.UTC).timestamp()
    rows = []
    for exc in policy.exceptions:
        why = []
        if exc.meta.expired(today):
            why.append(f"expired {exc.meta.expires}")
        elif exc.meta.expires and (exc.meta.expires - today).days <= expiring_days:
            why.append(f"expires {exc.meta.expires}")
        if not exc.meta.owner or not exc.meta.reason:
            why.append("no owner/reason")
        sids = set(getattr(exc, "sids", ()) or ()) | ({getattr(exc, "sid", 0)} - {0})
        if known is not None and sids and not sids & known:
            why.append("sid not in the rule set")
        hit = hits.get(exc.key)
        if hit is None:
            why.append("never matched")
        elif now - float(hit.get("last_seen", 0)) > unused_days * 86400:
            why.append(f"no match in {unused_days} days")
        if why:
            rows.append((exc.meta.origin, exc.meta.kind, exc.meta.owner or "?", "; ".join(why)))
    for origin, kind, owner, reasons in rows:
        click.echo(f"{escape(origin):28} {kind:11} owner {escape(owner):12} {reasons}")
    click.echo(f"{len(rows)} of {len(policy.exceptions)} exceptions to revisit")


@command.command("replay")
@click.option("--pcap", type=click.Path(dir_okay=False), help="Capture to run the rules over.")
@click.option("--eve", "eve_file", type=click.Path(dir_okay=False), help="Or: recorded alerts.")
@click.option("--rules", "rule_files", multiple=True, metavar="FILE", help="Rule files.")
@click.option("--policy", "new_policy", required=True, metavar="FILE", help="Proposed policy.")
@click.option("--current", "current_policy", metavar="FILE", help="Running policy to compare.")
@click.pass_obj
def replay_cmd(state: CliState, pcap: str | None, eve_file: str | None,
               rule_files: tuple[str, ...], new_policy: str, current_policy: str | None) -> None:  # fmt: skip
    """What the proposed policy would enforce on recent traffic: rules, blocks, hosts."""
    if (pcap is None) == (eve_file is None):
        raise click.UsageError("give exactly one of --pcap and --eve")
    if pcap is not None and not rule_files:
        raise click.UsageError("--pcap needs --rules")
    config = load(state)
    groups = dict(config.vars.address_groups)
    new = PolicyDecider(load_policy(new_policy, groups))
    current_path = current_policy or _maybe_policy(state)
    current = PolicyDecider(load_policy(current_path, groups)) if current_path else None
    records = read_eve(eve_file) if eve_file else _run_capture(config, str(pcap), rule_files)
    rows = replay(records, rule_facts(config, rule_files), new, current)
    mode = new.policy.mode
    click.echo(f"{len(records)} alerts replayed; proposed policy mode {mode}"
               + ("" if mode == "prevent" else " (nothing is enforced until mode = prevent)"))  # fmt: skip
    click.echo(f"{'sid':>9} {'alerts':>6} {'stage now':>10} {'proposed':>9} {'blocks':>6} "
               f"{'resets':>6}  internal hosts / blocked addresses")  # fmt: skip
    for r in rows:
        hosts = ", ".join(f"{h}({n})" for h, n in r.internal_hosts.most_common(5))
        blocked = ", ".join(f"{h}({n})" for h, n in r.blocks.most_common(5))
        detail = f"{hosts} / {blocked}" if r.new_stage == "enforce" else ""
        if r.suppressed_new:
            detail += f" [{r.suppressed_new} suppressed]"
        click.echo(f"{r.sid:>9} {r.alerts:>6} {r.old_stage:>10} {r.new_stage:>9} "
                   f"{sum(r.blocks.values()):>6} {r.resets:>6}  {escape(detail)}")  # fmt: skip


def _maybe_policy(state: CliState) -> str | None:
    from sensor.policy import policy_path

    path = policy_path(state.config_path)
    return path if path and os.path.exists(path) else None


def _run_capture(config: Any, pcap: str, rule_files: tuple[str, ...]) -> list[dict[str, Any]]:
    from sensor.pipeline import RunRequest, run

    with tempfile.TemporaryDirectory(prefix="sekimori-replay-") as tmp, _policy_off():
        eve = os.path.join(tmp, "eve.json")
        run(config, RunRequest(pcap=pcap, iface=None, rule_files=rule_files, eve=eve))
        return read_eve(eve)


@command.command("report")
@click.option("--since", default="24h", show_default=True, help="Window: 30m, 24h, 7d.")
@click.option("--eve", "eve_file", type=click.Path(dir_okay=False), help="EVE file to read.")
@click.option("--redis", "redis_url", envvar="SEKIMORI_REDIS_URL", help="Or: the alert bus.")
@click.option("--stream", default="sekimori:alerts", show_default=True)
@click.option("--rules", "rule_files", multiple=True, metavar="FILE",
              help="Active rule files (for 'never fired' and rule facts).")  # fmt: skip
@click.option("--policy", "policy_file", metavar="FILE",
              help="Judge the alerts with this policy instead of their recorded annotations.")  # fmt: skip
@click.option("--html", "html_out", metavar="FILE", help="Write the HTML report here.")
@click.option("--noisy", type=click.IntRange(min=1), default=50, show_default=True,
              help="Alerts in the window that make a rule noisy.")  # fmt: skip
@click.option("--limit", type=click.IntRange(min=1), default=15, show_default=True)
@click.pass_obj
def report_cmd(state: CliState, since: str, eve_file: str | None, redis_url: str | None,
               stream: str, rule_files: tuple[str, ...], policy_file: str | None,
               html_out: str | None, noisy: int, limit: int) -> None:  # fmt: skip
    """Noisiest rules, talkers, would-block counts, silent rules, candidates; tables + HTML.

    The window ends now for Redis and at the newest alert for an EVE file.
    """
    config = load(state)
    window = parse_duration(since)
    end: float | None = None
    if eve_file:
        records = read_eve(eve_file)
    elif redis_url:
        records, end = read_redis(redis_url, stream, window)
    else:
        raise click.UsageError("give --eve FILE or --redis URL")
    decider = None
    if policy_file:
        decider = PolicyDecider(load_policy(policy_file, dict(config.vars.address_groups)))
    rep = build_report(records, since_s=window, end=end, facts=rule_facts(config, rule_files),
                       decider=decider, noisy=noisy)  # fmt: skip
    _print_report(rep, limit)
    if html_out:
        try:
            with open(html_out, "w", encoding="utf-8") as handle:
                handle.write(render_html(rep))
        except OSError as exc:
            raise ConfigError(f"{html_out}: cannot write: {exc.strerror or exc}") from exc
        click.echo(f"\nHTML report: {html_out}")


def _print_report(rep: Any, limit: int) -> None:
    stages = ", ".join(f"{k} {v}" for k, v in sorted(rep.by_stage.items())) or "none"
    click.echo(f"{rep.total} alerts in the window ({stages})")
    click.echo(
        f"\nnoisiest rules:\n{'sid':>9} {'alerts':>7} {'stage':>8} {'blocks':>6}  rule / top talkers"
    )
    for s in rep.rules[:limit]:
        talkers = ", ".join(f"{a}({n})" for a, n in s.sources.most_common(3))
        click.echo(f"{s.sid:>9} {s.count:>7} {s.stage:>8} {s.would_block:>6}  "
                   f"{escape(s.msg)} / {escape(talkers)}")  # fmt: skip
    click.echo("\nwould block, per asset:")
    for name, n in sorted(rep.would_block_by_asset.items(), key=lambda kv: -kv[1])[:limit]:
        click.echo(f"  {n:>7}  {escape(name)}")
    click.echo("\ncandidates for suppression:")
    for s, src, share in rep.suppress_candidates[:limit]:
        click.echo(f"  sid {s.sid}: {s.count} alerts, {share:.0%} from {escape(src)}")
    click.echo("\ncandidates for promotion:")
    for s, old, new in rep.promote_candidates[:limit]:
        click.echo(f"  sid {s.sid}: {old} -> {new} ({s.count} alerts, severity {s.severity})")
    if rep.never_fired:
        click.echo(f"\nrules that never fired: {len(rep.never_fired)}")
        for sid, msg in rep.never_fired[:limit]:
            click.echo(f"  {sid}  {escape(msg)}")
