"""``sekimori respond``: run the responder service; ``sekimori respond stats``: how it went.

Scope: parse options, read the ``[respond]`` table of ``--config`` (plus ``--set
respond.KEY=VALUE``), run :class:`responders.service.RespondService` until SIGINT/SIGTERM
(or ``--duration``), then print its final stats as one JSON line. ``stats`` summarises the
decisions stream (outcomes per responder, reset confirmations, capture-to-send latency
p50/p99) and the live counters every instance writes to ``sekimori:respond:stats``.

Non-goals: the service's logic; daemonising (run it under systemd or a container).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any

import click
import orjson
import redis

from cli.common import CliState, load
from responders import config as respond_config
from responders.calls import percentile
from responders.config import MODES, RespondConfig
from responders.service import STATS_KEY, RespondService
from sensor.output.redis_conn import bus_error, connect

log = logging.getLogger(__name__)


def _setup(state: CliState, sets: Sequence[str]) -> RespondConfig:
    """Logging from the sensor's settings, then the responders' own configuration."""
    config = load(state, [s for s in sets if not s.strip().startswith("respond.")])
    document = respond_config.read_file(state.config_path)
    if config.output.redis_url and not document.get("outputs"):
        document["outputs"] = {"redis": {"url": config.output.redis_url}}
    own = [s for s in sets if s.strip().startswith("respond.")]
    return respond_config.build(document, own)


@click.group("respond", invoke_without_command=True)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override a setting (respond.mode=prevent, respond.tcp-reset.interface=eth2).")  # fmt: skip
@click.option("--mode", type=click.Choice(MODES), help="Shortcut for --set respond.mode=...")
@click.option("--redis", "redis_url", metavar="URL", help="Shortcut for respond.redis.url.")
@click.option("--duration", type=float, default=None, metavar="SECONDS",
              help="Stop after this many seconds (tests, smoke runs).")  # fmt: skip
@click.option("--metrics-listen", metavar="HOST:PORT", envvar="SEKIMORI_RESPOND_METRICS_LISTEN",
              help="Serve Prometheus metrics here (decisions, reset latency, block targets).")  # fmt: skip
@click.pass_context
def command(ctx: click.Context, sets: tuple[str, ...], mode: str | None,
            redis_url: str | None, duration: float | None,
            metrics_listen: str | None) -> int:  # fmt: skip
    """Act on alerts from the bus (consumer group) and record every decision."""
    items = list(sets)
    if mode:
        items.append(f"respond.mode={mode}")
    if redis_url:
        items.append(f'respond.redis.url="{redis_url}"')
    state = ctx.find_object(CliState)
    assert state is not None
    cfg = _setup(state, items)
    ctx.meta["respond_config"] = cfg
    if ctx.invoked_subcommand is not None:
        return 0
    service = RespondService(cfg)
    stop = threading.Event()
    restore = _stop_on_signals(stop)
    timer = threading.Timer(duration, stop.set) if duration else None
    metrics = None
    try:
        service.start()
        if metrics_listen:
            from responders.metrics import serve_responder_metrics

            metrics = serve_responder_metrics(metrics_listen, service)
        log.info("respond: %s in group %s, mode %s, responders %s", cfg.consumer.consumer,
                 cfg.consumer.group, cfg.mode, ", ".join(cfg.responders))  # fmt: skip
        if timer is not None:
            timer.start()
        service.run(stop)
    finally:
        if timer is not None:
            timer.cancel()
        restore()
        if metrics is not None:
            metrics.shutdown()
        service.stop()
    click.echo(orjson.dumps(service.stats()).decode())
    return 0


def _stop_on_signals(stop: threading.Event) -> Any:
    def handler(_signum: int, _frame: object) -> None:
        stop.set()

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, previous in old.items():
            signal.signal(sig, previous)

    return restore


def summarise(entries: list[tuple[Any, dict[bytes, bytes]]]) -> dict[str, Any]:
    """Outcome counts per responder and reset latency percentiles from decision entries."""
    counts: Counter[str] = Counter()
    latencies: list[float] = []
    for _id, fields in entries:
        responder = fields.get(b"responder", b"?").decode()
        outcome = fields.get(b"outcome", b"?").decode()
        counts[f"{responder}:{outcome}"] += 1
        if b"latency_us" in fields:
            try:
                latencies.append(float(fields[b"latency_us"]))
            except ValueError:
                continue
    return {
        "decisions": dict(sorted(counts.items())),
        "reset_latency_us": {
            "count": len(latencies),
            "p50": percentile(latencies, 50),
            "p99": percentile(latencies, 99),
        },
    }


@command.command("stats")
@click.option("--last", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="How many recent decisions to summarise.")  # fmt: skip
@click.pass_context
def stats(ctx: click.Context, last: int) -> None:
    """Outcomes, reset confirmations and capture-to-send latency (p50/p99), as JSON."""
    cfg: RespondConfig = ctx.meta["respond_config"]
    client = connect(cfg.consumer.redis, retries=1)
    try:
        entries = client.xrevrange(cfg.decisions_stream, count=last)
        live = client.hgetall(STATS_KEY)
    except redis.RedisError as exc:
        raise bus_error(cfg.consumer.redis, exc, f"reading {cfg.decisions_stream}") from exc
    out = summarise(entries)
    out["instances"] = {k.decode(): orjson.loads(v) for k, v in live.items()}
    click.echo(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())
