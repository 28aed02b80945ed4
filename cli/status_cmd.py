"""``sekimori status``: every sensor and responder at a glance, from their Redis heartbeats.

Scope: read the heartbeats (sensor/heartbeat.py), judge each one green / amber / red with
the reasons, print one line per process (or JSON with ``--json``). Sensors: interface,
uptime, packets/s, drop share, last packet seen, ruleset version and mode. Responders: lag
of their consumer group (asked from Redis itself), failures, last action. Thresholds are the
health-alert settings (sensor/opsconfig.py), so status and the health alerts agree.

Exit status: 0; with ``--check``, 1 when any line is not green (for cron and monitoring
scripts). Non-goals: history, remote control of the processes.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import click
import orjson

from cli.common import CliState, load
from sensor.health import responder_figures
from sensor.heartbeat import Heartbeat, read_heartbeats
from sensor.opsconfig import OpsSettings, ops_settings
from sensor.output.redis_conn import RedisSettings, connect

GREEN, AMBER, RED = "green", "amber", "red"
_ORDER = {GREEN: 0, AMBER: 1, RED: 2}
_COLOUR = {GREEN: "green", AMBER: "yellow", RED: "red"}
LATE_FACTOR, DEAD_FACTOR = 2.0, 4.0  # heartbeat intervals before late (amber) / gone (red)


@dataclass(frozen=True)
class Verdict:
    kind: str
    id: str
    colour: str
    reasons: tuple[str, ...]
    summary: str


def _worst(found: list[tuple[str, str]]) -> tuple[str, tuple[str, ...]]:
    if not found:
        return GREEN, ()
    colour = max((c for c, _ in found), key=_ORDER.__getitem__)
    return colour, tuple(r for _, r in found)


def ago(seconds: float) -> str:
    s = int(seconds)
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 172800:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d"


def _liveness(hb: Heartbeat, now: float) -> list[tuple[str, str]]:
    if hb.text("state") == "stopped":
        return [(RED, f"stopped {ago(hb.age(now))} ago")]
    interval = hb.num("interval", 5.0) or 5.0
    age = hb.age(now)
    if age > DEAD_FACTOR * interval + 1:
        return [(RED, f"no heartbeat for {ago(age)}")]
    if age > LATE_FACTOR * interval + 1:
        return [(AMBER, f"heartbeat late ({ago(age)})")]
    return []


def judge_sensor(hb: Heartbeat, now: float, s: OpsSettings) -> Verdict:
    found = _liveness(hb, now)
    last = hb.num("last_packet")
    running = hb.text("state") != "stopped"
    quiet = (now - last) if last else hb.num("uptime_s") + hb.age(now)
    if running and quiet >= s.no_packets_s:
        found.append((RED, f"no packets for {ago(quiet)}"))
    drop = hb.num("drop_pct")
    if drop > s.drop_percent:
        found.append((RED if drop > 5 * s.drop_percent else AMBER, f"drops {drop:.2f}%"))
    colour, reasons = _worst(found)
    version = hb.text("ruleset_version", "?")[:12]
    rules = hb.text("rules_loaded")
    summary = (
        f"{hb.text('iface', '?')}  up {ago(hb.num('uptime_s'))}  {hb.num('pps'):,.0f} pkt/s  "
        f"drop {drop:.2f}%  last pkt {ago(quiet) + ' ago' if last else 'never'}  "
        f"rules {version}{f' ({rules})' if rules else ''}  {hb.text('mode', '?')}"
    )
    return Verdict("sensor", hb.id, colour, reasons, summary)


def judge_responder(hb: Heartbeat, lag: int | None, now: float, s: OpsSettings) -> Verdict:
    found = _liveness(hb, now)
    if lag is not None and s.responder_lag and lag >= s.responder_lag:
        found.append((RED if lag >= 10 * s.responder_lag else AMBER, f"lag {lag:,}"))
    in_a_row = int(hb.num("consecutive_failures"))
    if in_a_row:
        bad = s.responder_failures and in_a_row >= s.responder_failures
        found.append((RED if bad else AMBER, f"{in_a_row} failures in a row"))
    colour, reasons = _worst(found)
    last_ts = hb.num("last_action_ts")
    last = hb.text("last_action") or "none"
    if last_ts:
        last += f" {ago(now - last_ts)} ago"
    summary = (
        f"{hb.text('group', '?')}  lag {'?' if lag is None else f'{lag:,}'}  "
        f"handled {int(hb.num('handled')):,}  failures {int(hb.num('failures')):,}  "
        f"last action {last}"
    )
    return Verdict("responder", hb.id, colour, reasons, summary)


def collect(client: object, settings: OpsSettings, now: float) -> list[Verdict]:
    verdicts = []
    for hb in read_heartbeats(client):
        if hb.kind == "sensor":
            verdicts.append(judge_sensor(hb, now, settings))
        elif hb.kind == "responder":
            lag, _ = responder_figures(client, hb)
            verdicts.append(judge_responder(hb, lag, now, settings))
    return verdicts


def format_line(v: Verdict, colour: bool) -> str:
    tag = f"{v.colour.upper():5}"
    if colour:
        tag = click.style(tag, fg=_COLOUR[v.colour], bold=v.colour == RED)
    why = f"  ({'; '.join(v.reasons)})" if v.reasons else ""
    return f"{tag} {v.kind:9} {v.id:20} {v.summary}{why}"


@click.command("status")
@click.option("--redis", "redis_url", metavar="URL", help="Redis holding the heartbeats.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per process.")
@click.option("--check", is_flag=True, help="Exit 1 when anything is not green.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a setting.")
@click.pass_obj
def command(
    state: CliState, redis_url: str | None, as_json: bool, check: bool, sets: Sequence[str]
) -> int:
    """Show every sensor and responder green/amber/red, from their Redis heartbeats.

    \b
    Examples:
      sekimori status --redis redis://127.0.0.1:6379/0
      sekimori status --check || echo "something needs a look"
      SEKIMORI_HEALTH_DROP_PERCENT=5 sekimori status --json
    """
    config = load(state, sets)
    settings = RedisSettings(url=redis_url or config.output.redis_url or RedisSettings.url)
    client = connect(settings)
    ops = ops_settings()
    verdicts = collect(client, ops, time.time())  # Redis trouble: BusError, one line
    if as_json:
        for v in verdicts:
            click.echo(orjson.dumps(asdict(v)).decode())
    elif not verdicts:
        click.echo(f"no heartbeats in redis at {settings.where}", err=True)
    else:
        tty = sys.stdout.isatty()
        for v in verdicts:
            click.echo(format_line(v, tty))
    if check and any(v.colour != GREEN for v in verdicts):
        return 1
    return 0
