"""``sekimori run``: inspect a capture file or an interface with a rule set.

Scope: parse the options, load the configuration once, hand a ``RunRequest`` to the
pipeline (``sensor.pipeline.run``), show a progress bar for capture files and a closing
summary on stderr. Alerts go where the pipeline writes them (EVE file/stdout, Redis).

Non-goals: the pipeline itself (sensor/pipeline.py), daemonising, rule management.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping, Sequence
from typing import IO, Any, Protocol

import click

from cli.common import CliState, load
from sensor.config import Config, known_keys
from sensor.errors import ConfigError, SekimoriError

log = logging.getLogger(__name__)


class SummaryLike(Protocol):
    """The fields of the pipeline's RunSummary that the closing summary shows."""

    @property
    def packets(self) -> int: ...
    @property
    def bytes(self) -> int: ...
    @property
    def flows(self) -> int: ...
    @property
    def alerts(self) -> int: ...
    @property
    def alerts_by_severity(self) -> Mapping[int, int]: ...
    @property
    def decode_events(self) -> Mapping[str, int]: ...
    @property
    def kernel_drops(self) -> int: ...
    @property
    def iface_drops(self) -> int: ...
    @property
    def elapsed(self) -> float: ...
    @property
    def truncated(self) -> str | None: ...
    @property
    def rules_loaded(self) -> int: ...
    @property
    def rules_skipped(self) -> Mapping[str, int]: ...


class ProgressBar:
    """An in-place bar on a terminal: ``[#####.....]  52%  12.1/23.4 MiB``, ≤10 updates/s."""

    WIDTH = 30
    INTERVAL = 0.1

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self._last = 0.0
        self._shown = False

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last < self.INTERVAL and done < total:
            return
        self._last = now
        fraction = min(done / total, 1.0) if total > 0 else 0.0
        filled = int(fraction * self.WIDTH)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self.stream.write(
            f"\r[{bar}] {fraction:4.0%}  {human_bytes(done)}/{human_bytes(total)}\x1b[K"
        )
        self.stream.flush()
        self._shown = True

    def finish(self) -> None:
        """Erase the bar so the summary starts on a clean line."""
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def _counts(mapping: Mapping[str, int] | Mapping[int, int], label: str = "") -> str:
    return ", ".join(f"{label}{key}: {value:,}" for key, value in sorted(mapping.items()))


def format_summary(summary: SummaryLike) -> str:
    """The closing summary printed on stderr after a run (several lines, no trailing \\n)."""
    rate = summary.packets / summary.elapsed if summary.elapsed > 0 else 0.0
    lines = [
        f"packets: {summary.packets:,} ({human_bytes(summary.bytes)}), flows: {summary.flows:,},"
        f" elapsed: {summary.elapsed:.2f} s ({rate:,.0f} packets/s)",
        f"alerts: {summary.alerts:,}"
        + (f" ({_counts(summary.alerts_by_severity, 'severity ')})" if summary.alerts else ""),
        f"rules: {summary.rules_loaded:,} loaded"
        + (
            f", {sum(summary.rules_skipped.values()):,} skipped ({_counts(summary.rules_skipped)})"
            if summary.rules_skipped
            else ""
        ),
    ]
    # stream_events is optional: anomalies the stream engine saw (overlaps, gaps, ...).
    anomalies = {**summary.decode_events, **getattr(summary, "stream_events", {})}
    if anomalies:
        lines.append(f"anomalies: {_counts(anomalies)}")
    if summary.kernel_drops or summary.iface_drops:
        lines.append(f"drops: kernel {summary.kernel_drops:,}, interface {summary.iface_drops:,}")
    if summary.truncated:
        lines.append(f"warning: capture truncated: {summary.truncated}")
    return "\n".join(lines)


def _rule_files(config: Config, given: Sequence[str]) -> tuple[str, ...]:
    files = tuple(given) or config.detect.rule_paths()
    if not files:
        raise ConfigError("no rules: give --rules FILE or set rule-files in the configuration")
    return files


def _in_sensor_reset(state: CliState, sets: tuple[str, ...]) -> Any:
    """The [respond] settings when ``respond.tcp-reset.in_sensor`` asks the sensor to send
    TCP resets itself (sensor/output/reset_sink.py), else None."""
    from responders import config as respond_config
    from sensor.output.reset_sink import in_sensor

    document = respond_config.read_file(state.config_path)
    own = [s for s in sets if s.strip().startswith("respond.")]
    cfg = respond_config.build(document, own)
    return cfg if in_sensor(cfg) else None


@click.command("run")
@click.option("--pcap", metavar="FILE", help="Read packets from a capture file.")
@click.option("--iface", metavar="IF", help="Capture live on an interface.")
@click.option("--rules", "rules", multiple=True, metavar="FILE", help="Rule file (repeatable).")
@click.option("--eve", metavar="OUT.json", help='EVE JSON output file ("-" for stdout).')
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a setting.")
@click.option("--strict", is_flag=True, help="Any rule that does not load is fatal.")
@click.option("--no-progress", is_flag=True, help="No progress bar for capture files.")
@click.option("--redis", "redis_url", metavar="URL", help="Publish alerts to this Redis.")
@click.option("--profile", is_flag=True, help="Report where the time went, per stage.")
@click.option("--profile-rules", is_flag=True, help="Also report the cost of each rule.")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Processes sharing the work (flows hashed to workers).",
)
@click.option("--pidfile", metavar="FILE", help="Write the pid here (for rule reloads).")
@click.pass_obj
def command(
    state: CliState,
    pcap: str | None,
    iface: str | None,
    rules: tuple[str, ...],
    eve: str | None,
    sets: tuple[str, ...],
    strict: bool,
    no_progress: bool,
    redis_url: str | None,
    profile: bool,
    profile_rules: bool,
    workers: int,
    pidfile: str | None,
) -> int:
    """Inspect a capture file (--pcap) or an interface (--iface) with the rules.

    \b
    Examples:
      sekimori run --pcap capture.pcap --rules my.rules --eve eve.json
      sekimori run --iface eth1 --rules my.rules --eve - --redis redis://127.0.0.1:6379/0
    """
    if (pcap is None) == (iface is None):
        raise click.UsageError("give exactly one of --pcap FILE or --iface IF")
    # respond.* items are the responders' (read below for in-sensor resets), except the
    # few the sensor itself knows (respond.fast_socket): no "unknown setting" warning.
    own = set(known_keys())
    overrides = [s for s in sets if not s.strip().startswith("respond.")
                 or s.partition("=")[0].strip() in own]  # fmt: skip
    if strict:
        overrides.append("detect.strict=true")
    if redis_url:
        overrides.append(f"outputs.redis.url={redis_url}")
    config = load(state, overrides)
    rule_files = _rule_files(config, rules)
    respond = _in_sensor_reset(state, sets) if iface else None
    try:
        import sensor.pipeline as pipeline
    except ModuleNotFoundError as exc:
        if exc.name != "sensor.pipeline":
            raise
        raise SekimoriError("this build has no detection pipeline (sensor.pipeline)") from exc

    bar = ProgressBar(sys.stderr) if pcap and not no_progress and sys.stderr.isatty() else None
    request = pipeline.RunRequest(
        pcap=pcap,
        iface=iface,
        rule_files=rule_files,
        eve=eve if eve is not None else config.output.eve_file,
        strict=config.detect.strict,
        redis_url=config.output.redis_url,
        profile=profile,
        progress=bar,
        profile_rules=profile_rules,
        pidfile=pidfile,
        respond=respond,
    )
    try:
        if workers > 1:
            from sensor.workers import run_parallel

            summary = run_parallel(config, request, workers)
        else:
            summary = pipeline.run(config, request)
    finally:
        if bar is not None:
            bar.finish()
    click.echo(format_summary(summary), err=True)
    if getattr(summary, "profile", None):
        click.echo(summary.profile, err=True)
    return 0
