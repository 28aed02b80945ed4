"""``sekimori alerts ...``: look at the alert stream from a terminal.

Scope: ``alerts tail`` prints the newest alerts and, with ``--follow``, new ones as they
arrive, filtered by severity, signature id and address, one readable line each (coloured
on a terminal) or as JSON lines; ``alerts top --since 1h`` counts the top signatures,
sources and destinations. Reads sekimori's stream entries and Suricata's (``eve`` field).
Everything that came off the wire (signature text from rules, addresses, interface names,
any string) is printed with control characters escaped, so a crafted payload cannot drive
the terminal.

Redis trouble becomes one-line :class:`~sensor.errors.BusError` naming ``host:port``; the
CLI frame (``cli/main.py``) prints it. Non-goals: acknowledging or acting on alerts (that is
the responders' consumer group; tail and top only read, with plain XRANGE/XREAD).
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

import click
import orjson
import redis

from responders.bus_message import BusMessage, MalformedMessage, from_stream_entry
from sensor.errors import ConfigError
from sensor.output.redis_conn import RedisSettings, bus_error, connect

PASSWORD_ENV = "SEKIMORI_REDIS_PASSWORD"
# C0 and C1 controls, DEL, and the Unicode bidi overrides that reorder what is displayed.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SEVERITY_COLOUR = {1: ("red", True), 2: ("yellow", False), 3: ("cyan", False)}
SCAN_CHUNK = 1000
_PRIORITY_RANK = {"high": 1, "medium": 2, "low": 3}  # as sensor/policy/assets.py


def escape(value: object) -> str:
    """``value`` as text with every control character shown as an escape, never sent raw."""
    text = value if isinstance(value, str) else str(value)
    return _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                       else f"\\u{ord(m.group()):04x}", text)  # fmt: skip


def parse_duration(text: str) -> int:
    """Seconds in ``30s``, ``15m``, ``1h`` or ``2d``."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ConfigError(f"--since {text!r}: expected a number and s, m, h or d (e.g. 1h)")
    return int(match.group(1)) * _UNIT_S[match.group(2)]


class AlertFilter:
    """The tail filters: maximum severity, signature ids, addresses or networks."""

    def __init__(self, severity: int | None, sids: tuple[int, ...], addrs: tuple[str, ...],
                 priority: str | None = None):  # fmt: skip
        self.severity = severity
        # sensor/policy priority: "high" keeps high only, "medium" high and medium, ...
        self.priority_rank = _PRIORITY_RANK[priority] if priority else None
        self.sids = frozenset(sids)
        try:
            self.networks = tuple(ipaddress.ip_network(a, strict=False) for a in addrs)
        except ValueError as exc:
            raise ConfigError(f"--addr: {exc}") from exc

    def matches(self, eve: dict[str, Any]) -> bool:
        alert = eve.get("alert") if isinstance(eve.get("alert"), dict) else {}
        assert isinstance(alert, dict)
        if self.severity is not None:
            severity = alert.get("severity")
            if not isinstance(severity, int) or severity > self.severity:
                return False
        if self.sids and alert.get("signature_id") not in self.sids:
            return False
        if self.priority_rank is not None:
            ctx = eve.get("sekimori") if isinstance(eve.get("sekimori"), dict) else {}
            assert isinstance(ctx, dict)
            if _PRIORITY_RANK.get(str(ctx.get("priority")), 99) > self.priority_rank:
                return False
        return not self.networks or any(
            self._in_networks(eve.get(k)) for k in ("src_ip", "dest_ip")
        )

    def _in_networks(self, value: object) -> bool:
        try:
            address = ipaddress.ip_address(str(value))
        except ValueError:
            return False
        return any(address in net for net in self.networks)


def format_alert(message: BusMessage, colour: bool) -> str:
    """One readable line: time, severity, rule, flow, where it was seen."""
    eve = message.eve
    alert = eve.get("alert") if isinstance(eve.get("alert"), dict) else {}
    assert isinstance(alert, dict)
    severity = alert.get("severity")
    rule = f"[{alert.get('gid', 1)}:{alert.get('signature_id')}:{alert.get('rev', 0)}]"
    flow = (
        f"{{{eve.get('proto')}}} {eve.get('src_ip')}:{eve.get('src_port')} -> "
        f"{eve.get('dest_ip')}:{eve.get('dest_port')}"
    )
    where = f"iface={eve.get('in_iface')}"
    if message.sensor:
        where += f" sensor={message.sensor}"
    context = message.context
    if context:
        where += f" action={context.get('rule_action')} mode={context.get('mode')}"
    head = f"{eve.get('timestamp')} sev={severity} {rule}"
    line = f"{alert.get('signature')} [{alert.get('category')}] {flow} {where}"
    head, line = escape(head), escape(line)
    if colour and isinstance(severity, int) and severity in _SEVERITY_COLOUR:
        fg, bold = _SEVERITY_COLOUR[severity]
        head = click.style(head, fg=fg, bold=bold)
    return f"{head} {line}"


# -- the commands ------------------------------------------------------------------------


@click.group("alerts")
@click.option(
    "--redis",
    "url",
    envvar="SEKIMORI_REDIS_URL",
    default="redis://127.0.0.1:6379/0",
    show_default=True,
    help="redis://, rediss:// or unix:// URL of the bus.",
)
@click.option("--stream", default="sekimori:alerts", show_default=True, help="Alert stream key.")
@click.option("--username", default=None, help="Redis ACL user.")
@click.option(
    "--password-env",
    default=None,
    help=f"Variable holding the password (default ${PASSWORD_ENV} when set).",
)
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="File whose first line is the password.",
)
@click.option("--tls-ca", type=click.Path(dir_okay=False), default=None)
@click.option("--tls-cert", type=click.Path(dir_okay=False), default=None)
@click.option("--tls-key", type=click.Path(dir_okay=False), default=None)
@click.option("--cluster", is_flag=True, help="Talk to a Redis Cluster.")
@click.option(
    "--timeout",
    type=float,
    default=5.0,
    show_default=True,
    help="Seconds any one Redis call may take.",
)
@click.pass_context
def alerts(
    ctx: click.Context,
    url: str,
    stream: str,
    username: str | None,
    password_env: str | None,
    password_file: str | None,
    tls_ca: str | None,
    tls_cert: str | None,
    tls_key: str | None,
    cluster: bool,
    timeout: float,
) -> None:
    """Read the alert stream (sekimori's or Suricata's) on Redis.

    \b
    Examples:
      sekimori alerts --redis redis://127.0.0.1:6379/0 tail --follow
      sekimori alerts top --since 1h
    """
    if password_env is None and password_file is None and PASSWORD_ENV in os.environ:
        password_env = PASSWORD_ENV
    ctx.obj = {
        "stream": stream,
        "settings": RedisSettings(
            url=url, username=username, password_env=password_env,
            password_file=password_file, tls_ca=tls_ca, tls_cert=tls_cert, tls_key=tls_key,
            cluster=cluster, connect_timeout_s=min(timeout, 5.0),
            socket_timeout_s=max(timeout, 2.0),
        ),
    }  # fmt: skip


@alerts.command("tail")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new alerts as they arrive.")
@click.option(
    "-n",
    "--count",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="How many recent matching alerts to print first.",
)
@click.option(
    "--severity",
    "severity",
    type=int,
    default=None,
    help="Only alerts at least this severe (1 is the most severe).",
)
@click.option(
    "--priority",
    default=None,
    metavar="high|medium|low",
    help="Only alerts of at least this policy priority (severity x asset criticality); "
    "a number is taken as --severity, as before.",
)
@click.option("--sid", "sids", type=int, multiple=True, help="Only this signature id (repeatable).")
@click.option(
    "--addr",
    "addrs",
    multiple=True,
    help="Only alerts from or to this address or network (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the EVE JSON, one per line.")
@click.pass_obj
def tail(
    obj: dict[str, Any],
    follow: bool,
    count: int,
    severity: int | None,
    priority: str | None,
    sids: tuple[int, ...],
    addrs: tuple[str, ...],
    as_json: bool,
) -> None:
    """Print recent alerts; with --follow, keep printing new ones (Ctrl-C stops)."""
    settings: RedisSettings = obj["settings"]
    stream: str = obj["stream"]
    if priority is not None and priority.strip().isdigit():
        severity, priority = int(priority), None  # the old meaning: an alias of --severity
    if priority is not None and priority not in _PRIORITY_RANK:
        raise click.BadParameter("expected high, medium or low", param_hint="--priority")
    wanted = AlertFilter(severity, sids, addrs, priority)
    client = connect(settings, retries=1)
    colour = not as_json and sys.stdout.isatty()

    def show(message: BusMessage) -> None:
        if as_json:
            # orjson escapes control characters inside JSON strings itself.
            click.echo(orjson.dumps(message.eve).decode())
        else:
            click.echo(format_alert(message, colour), color=colour or None)

    last_id = "$"
    try:
        recent, last_id = _recent(client, stream, count, wanted)
        for message in recent:
            show(message)
        while follow:
            block_ms = int(max(0.1, settings.socket_timeout_s - 1.0) * 1000)
            reply = client.xread({stream: last_id}, count=SCAN_CHUNK, block=block_ms)
            for _stream, entries in reply or []:
                for entry_id, fields in entries:
                    last_id = _text(entry_id)
                    arrived = _decode(stream, last_id, fields)
                    if arrived is not None and wanted.matches(arrived.eve):
                        show(arrived)
    except redis.RedisError as exc:
        raise bus_error(settings, exc, f"reading {stream}") from exc
    except KeyboardInterrupt:
        pass


@alerts.command("top")
@click.option("--since", default="1h", show_default=True, help="Window: 30s, 15m, 1h, 2d.")
@click.option("--limit", type=click.IntRange(min=1), default=10, show_default=True)
@click.pass_obj
def top(obj: dict[str, Any], since: str, limit: int) -> None:
    """Top signatures, sources and destinations of the alerts in the last --since."""
    settings: RedisSettings = obj["settings"]
    stream: str = obj["stream"]
    window_s = parse_duration(since)
    client = connect(settings, retries=1)
    signatures: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    destinations: Counter[str] = Counter()
    total = 0
    try:
        seconds, micros = client.time()  # the server's clock stamps entry ids, not ours
        start_ms = int(seconds) * 1000 + int(micros) // 1000 - window_s * 1000
        for message in _scan_from(client, stream, f"{max(start_ms, 0)}-0"):
            total += 1
            alert = message.eve.get("alert")
            alert = alert if isinstance(alert, dict) else {}
            signatures[f"{alert.get('signature_id')} {alert.get('signature')}"] += 1
            sources[str(message.eve.get("src_ip"))] += 1
            destinations[str(message.eve.get("dest_ip"))] += 1
    except redis.RedisError as exc:
        raise bus_error(settings, exc, f"reading {stream}") from exc
    click.echo(f"{total} alerts in the last {escape(since)} on {escape(stream)}")
    for title, counter in (("signatures", signatures), ("sources", sources),
                           ("destinations", destinations)):  # fmt: skip
        click.echo(f"\ntop {title}:")
        for name, n in counter.most_common(limit):
            click.echo(f"  {n:>8}  {escape(name)}")


# -- reading helpers ---------------------------------------------------------------------


def _recent(client: Any, stream: str, count: int,
            wanted: AlertFilter) -> tuple[list[BusMessage], str]:  # fmt: skip
    """The newest ``count`` matching alerts (oldest first) and the id to follow from."""
    newest = client.xrevrange(stream, count=1)
    last_id = _text(newest[0][0]) if newest else "0-0"
    found: list[BusMessage] = []
    upper = "+"
    scanned = 0
    while count and len(found) < count and scanned < 100 * SCAN_CHUNK:
        entries = client.xrevrange(stream, max=upper, count=SCAN_CHUNK)
        if not entries:
            break
        scanned += len(entries)
        for entry_id, fields in entries:
            message = _decode(stream, _text(entry_id), fields)
            if message is not None and wanted.matches(message.eve):
                found.append(message)
                if len(found) == count:
                    break
        upper = "(" + _text(entries[-1][0])
    found.reverse()
    return found, last_id


def _scan_from(client: Any, stream: str, start: str) -> Iterator[BusMessage]:
    lower = start
    while True:
        entries = client.xrange(stream, min=lower, count=SCAN_CHUNK)
        if not entries:
            return
        for entry_id, fields in entries:
            message = _decode(stream, _text(entry_id), fields)
            if message is not None:
                yield message
        lower = "(" + _text(entries[-1][0])


def _decode(stream: str, entry_id: str, fields: dict) -> BusMessage | None:
    try:
        return from_stream_entry(stream, entry_id, fields)
    except MalformedMessage as exc:
        click.echo(f"skipped {escape(entry_id)}: {escape(exc)}", err=True)
        return None


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


command = alerts  # what cli/main.py registers, like every command module
