"""The sensor's main loop: capture → decode → flow/stream → detect → policies → sinks.

Scope: ``run(config, request)`` wires the stages for one capture file or live interface,
runs until the source ends (or SIGTERM/SIGINT on a live interface), and returns a
``RunSummary``. Everything per packet happens in ``PacketLoop.packet``; keep it lean.

Failure behaviour: a corrupt or truncated capture is processed up to the damage and the
summary says where it stopped; a packet that cannot be decoded is counted by anomaly and
skipped; an EVE write error stops the run with a clear message (alerts already written
stay written); Redis trouble never stops detection (the publisher spools). SIGHUP reloads
the rules between packets (a failed reload keeps the running rules), SIGUSR1 logs the
counters, SIGTERM stops after flushing every output.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sensor.applayer.magic import libmagic_missing
from sensor.capture import LiveCapture, open_capture
from sensor.config import Config
from sensor.detect import Detector
from sensor.detect_app import APP_LAYER_BUFFERS
from sensor.errors import SekimoriError
from sensor.extensions import build_extensions
from sensor.output.eve import EveWriter
from sensor.output.fast_respond import FastChannel
from sensor.output.sinks import EveSink, RedisSink
from sensor.packet import Packet
from sensor.packet_loop import PacketLoop, app_settings, capture_drops
from sensor.runcontrol import Pidfile, RunControl
from signatures.compiler import CompiledRuleset
from signatures.datasets import datasets_of, save_datasets
from signatures.ruleset import SUPPORTED_BUFFERS, RulesetReport, load_ruleset
from signatures.variables import Variables

log = logging.getLogger("sekimori.sensor")

# Buffers this sensor can produce: packet/stream data, headers, and the app-layer buffers.
SENSOR_BUFFERS = SUPPORTED_BUFFERS | APP_LAYER_BUFFERS


def sensor_buffers() -> frozenset[str]:
    """SENSOR_BUFFERS as this process can produce them: ``file.magic`` only when libmagic
    loads, otherwise its rules are skipped with that reason (not a failure at run time)."""
    missing = libmagic_missing()
    if missing is None:
        return SENSOR_BUFFERS
    log.warning("filemagic/file.magic rules will be skipped: %s", missing)
    return SENSOR_BUFFERS - {"file.magic"}


@dataclass(frozen=True)
class RunRequest:
    pcap: str | None
    iface: str | None
    rule_files: tuple[str, ...]
    eve: str | None  # "-" = stdout
    strict: bool = False
    redis_url: str | None = None
    profile: bool = False
    progress: Callable[[int, int], None] | None = None
    profile_rules: bool = False
    pidfile: str | None = None
    # The [respond] settings when the sensor sends TCP resets itself (in_sensor), else None.
    respond: Any = None


@dataclass(frozen=True)
class RunSummary:
    packets: int
    bytes: int
    flows: int
    alerts: int
    alerts_by_severity: dict[int, int]
    decode_events: dict[str, int]
    kernel_drops: int
    iface_drops: int
    elapsed: float
    truncated: str | None
    rules_loaded: int
    rules_skipped: dict[str, int]
    ruleset_version: str = ""
    stream_events: dict[str, int] = field(default_factory=dict)
    suppressed: int = 0
    flow_stats: dict[str, int] = field(default_factory=dict)
    profile: str | None = None  # the per-stage / per-rule report of --profile


def default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(base) / "sekimori")


def _log_ruleset(report: RulesetReport) -> None:
    for issue in report.issues:
        if issue.severity == "error" and not issue.category.startswith("unsupported"):
            log.warning("rule skipped: %s:%d: %s", issue.file, issue.line, issue.reason)
    log.info(
        "rules: %d loaded, %d skipped, %d disabled (parse %.2fs, compile %.2fs)",
        report.loaded, report.skipped, report.disabled, report.parse_seconds,
        report.compile_seconds,
    )  # fmt: skip
    for reason, n in sorted(report.skipped_by_reason.items(), key=lambda kv: -kv[1]):
        log.info("  skipped %6d  %s", n, reason)


def run(config: Config, request: RunRequest,
        rules: tuple[CompiledRuleset, RulesetReport] | None = None) -> RunSummary:  # fmt: skip
    """Run one capture or interface; ``rules`` lets a caller reuse an already loaded set
    (parallel workers, test suites); by default they come from ``request.rule_files``."""
    started = time.monotonic()
    ruleset, report = rules if rules is not None else _load_rules(config, request)
    _log_ruleset(report)
    ext = build_extensions(config)
    ext.run_info.update(
        iface=request.iface, pcap=request.pcap, mode=config.mode,
        ruleset_version=ruleset.version, rules_loaded=report.loaded, rules_skipped=report.skipped,
    )  # fmt: skip
    if request.iface is not None and request.respond is not None:
        from sensor.output.reset_sink import ResetSink

        # First of all sinks: the RSTs leave before the alert is serialised anywhere.
        ext.sinks.insert(0, ResetSink(request.respond, config.mode, config.sensor_id))
    publisher = _publisher(config, request)
    if publisher is not None:
        # Before the EVE file on a live interface: a reset waits for this sink, not that one.
        fast = FastChannel(config.output.fast_socket) if (
            request.iface is not None and config.output.fast_socket) else None  # fmt: skip
        ext.sinks.append(RedisSink(publisher, config.sensor_id, immediate=request.iface is not None,
                                   mode=config.mode, ruleset_version=ruleset.version,
                                   fast=fast))  # fmt: skip
    if request.eve is not None:
        ext.sinks.append(EveSink(EveWriter(request.eve)))
    loop = PacketLoop(config, Detector(ruleset, app_settings(config)), ext)
    loop.live = request.iface is not None
    loop.run_info = ext.run_info
    profiler = _profiler(request, loop)
    control = RunControl()
    pidfile = Pidfile(request.pidfile or config.pidfile)
    try:
        _freeze_heap()
        pidfile.write()
        if request.pcap is not None:
            source: Any = open_capture(request.pcap)
            loop.source = source
            control.install()
            frames = profiler.frames(source) if profiler is not None else source
            _drive_file(loop, source, frames, request, control, config)
        else:
            assert request.iface is not None
            c = config.capture
            source = LiveCapture(request.iface, snaplen=c.snaplen, promisc=c.promisc, bpf=c.bpf,
                                 immediate=c.immediate, buffer_size=c.buffer_size)  # fmt: skip
            loop.source = source
            control.install(on_stop=source.stop)
            for ticker in ext.tickers:  # Redis round trips off the packet loop (heartbeat)
                background = getattr(ticker, "background", None)
                if background is not None:
                    background()
            with _realtime(c.rt_priority):
                _drive_live(loop, source, control, config, request)
        loop.finish()
        end = time.time() if request.iface else loop.last_sec + loop.last_usec / 1e6
        loop.tick(end)
        loop.write_stats(end)
        _save_datasets(loop)
    finally:
        gc.unfreeze()  # the run is over: its ruleset may be collected like anything else
        control.restore()
        ext.close()
        pidfile.remove()
    profile_text = None
    if profiler is not None:
        from sensor.profile import format_report

        profiler.stop()
        profile_text = format_report(profiler.report())
    kernel, iface = capture_drops(loop.source)
    return RunSummary(
        packets=loop.packets, bytes=loop.bytes, flows=loop.flows.stats.flows_created,
        alerts=loop.alerts, alerts_by_severity=dict(loop.by_severity),
        decode_events={k: v for k, v in loop.decoder.stats.items() if "." in k},
        kernel_drops=kernel, iface_drops=iface, elapsed=time.monotonic() - started,
        truncated=getattr(loop.source, "truncated", None), rules_loaded=report.loaded,
        rules_skipped=dict(report.skipped_by_reason), ruleset_version=ruleset.version,
        stream_events=dict(loop.flows.events), suppressed=loop.suppressed,
        flow_stats=loop.flows.stats.as_dict(), profile=profile_text,
    )  # fmt: skip


def _profiler(request: RunRequest, loop: PacketLoop) -> Any:
    if not (request.profile or request.profile_rules):
        return None
    from sensor.profile import Profiler

    profiler = Profiler(rules=request.profile_rules)
    profiler.instrument(loop)
    return profiler


def _load_rules(config: Config, request: RunRequest) -> tuple[CompiledRuleset, RulesetReport]:
    variables = Variables(
        address_groups=dict(config.vars.address_groups), port_groups=dict(config.vars.port_groups)
    )
    return load_ruleset(
        request.rule_files, variables,
        classification_file=config.detect.classification_file,
        cache_dir=config.detect.cache_dir or default_cache_dir(),
        strict=request.strict,
        supported_buffers=sensor_buffers(),
        default_rule_path=config.detect.default_rule_path,
    )  # fmt: skip


def _save_datasets(loop: PacketLoop) -> None:
    """Write the dataset save/state files at exit (Suricata writes them at shutdown)."""
    ruleset = loop.detector.ruleset
    programs = (p for s in ruleset.signatures if s.payload is not None
                for p in s.payload.programs.values())  # fmt: skip
    try:
        save_datasets(datasets_of(programs))
    except OSError as exc:
        log.error("dataset save failed: %s", exc)


def _freeze_heap(after_reload: bool = False) -> None:
    """Take the compiled ruleset out of the cyclic garbage collector's sight.

    With ET Open loaded a full collection walks ~100k long-lived objects (40-65 ms on the
    bench VM), and allocation on the packet path triggers one now and then: a pause on the
    live path that costs latency and, on a busy link, ring drops. Frozen objects are never
    scanned. After a reload the previous ruleset's cycles are collected once, then the new
    heap is frozen again. :func:`run` unfreezes when it returns (callers such as the test
    suite or ``tune replay`` run many times in one process)."""
    if after_reload:
        gc.unfreeze()
        gc.collect()
    gc.freeze()


def _service(loop: PacketLoop, control: RunControl, config: Config, request: RunRequest) -> None:
    """Act on SIGHUP / SIGUSR1 between packets."""
    if control.reload:
        control.reload = False
        try:
            ruleset, report = _load_rules(config, request)
        except SekimoriError as exc:
            log.error("rule reload failed, keeping the running rules: %s", exc)
        else:
            _log_ruleset(report)
            loop.swap_ruleset(ruleset)
            _freeze_heap(after_reload=True)
            loop.run_info.update(ruleset_version=ruleset.version, rules_loaded=report.loaded)
            for sink in loop.sinks:
                if isinstance(sink, RedisSink):
                    sink.ruleset_version = ruleset.version
            log.info("rules reloaded: version %s", ruleset.version)
    if control.dump:
        control.dump = False
        for name, value in sorted(loop.counters().items()):
            log.info("stats %s = %d", name, value)


def _drive_file(loop: PacketLoop, source: Any, frames: Any, request: RunRequest,
                control: RunControl, config: Config) -> None:  # fmt: skip
    progress = request.progress
    total = getattr(source, "size", 0) or 0
    next_tick = 0.0
    last_sec = -1
    for cnt, (ts_sec, ts_usec, linktype, data, wirelen) in enumerate(frames, 1):
        p = Packet(cnt, ts_sec, ts_usec, linktype, data)
        p.wirelen = wirelen
        loop.packet(p)
        if ts_sec != last_sec:
            last_sec = ts_sec
            loop.tick(float(ts_sec))
        if control.stop:
            log.warning("stopped by signal after %d packets", cnt)
            break
        if control.pending:
            _service(loop, control, config, request)
        if progress is not None and cnt & 1023 == 0:
            now = time.monotonic()
            if now >= next_tick:
                progress(getattr(source, "position", 0), total)
                next_tick = now + 0.1
    if progress is not None:
        progress(total, total)


def _drive_live(loop: PacketLoop, source: Any, control: RunControl, config: Config,
                request: RunRequest) -> None:  # fmt: skip
    cnt = 0
    next_tick = 0.0
    iface = request.iface
    pollers = [s for s in loop.sinks if isinstance(s, RedisSink)]
    wait: float | None = None
    while not control.stop:
        for ts_sec, ts_usec, linktype, data, wirelen in source.next_batch(wait):
            cnt += 1
            p = Packet(cnt, ts_sec, ts_usec, linktype, data)
            p.wirelen = wirelen
            p.iface = iface
            loop.packet(p)
        wait = None
        for sink in pollers:  # deferred bus copies of fast-path alerts
            due = sink.poll(time.monotonic())
            if due is not None:
                wait = due if wait is None else min(wait, due)
        if control.pending:
            _service(loop, control, config, request)
        now = time.time()
        if now >= next_tick:
            loop.tick(now)
            next_tick = now + 1.0
    # Stopping: what the kernel captured before the signal is still inspected (its alerts
    # are written by the flush that follows), then the handle is released.
    drain = getattr(source, "drain", None)
    for ts_sec, ts_usec, linktype, data, wirelen in drain() if drain is not None else ():
        cnt += 1
        p = Packet(cnt, ts_sec, ts_usec, linktype, data)
        p.wirelen = wirelen
        p.iface = iface
        loop.packet(p)
    source.close()


@contextmanager
def _realtime(priority: int) -> Iterator[None]:
    """Run the live loop under SCHED_FIFO (``capture.rt-priority``), then restore.

    Why: on a shared host a packet's wake-up waits behind whatever else is runnable, and a
    TCP reset is a race (docs/performance.md). Risk, stated in docs/deploy.md: a saturated
    sensor at real-time priority takes its CPU from normal processes up to the kernel's
    real-time throttle (kernel.sched_rt_runtime_us, 95% by default)."""
    if priority <= 0:
        yield
        return
    before = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except OSError as exc:
        log.warning("capture.rt-priority %d not applied (%s; needs root or CAP_SYS_NICE): "
                    "capturing with normal scheduling", priority, exc.strerror or exc)  # fmt: skip
        yield
        return
    log.info("capture loop at real-time priority %d (SCHED_FIFO)", priority)
    try:
        yield
    finally:
        os.sched_setscheduler(0, *before)


def _publisher(config: Config, request: RunRequest) -> Any:
    url = request.redis_url or config.output.redis_url
    if not url:
        return None
    from sensor.output.redis_bus import AlertPublisher, BusConfig

    spool = config.output.redis_spool_dir or os.path.join(
        config.detect.cache_dir or default_cache_dir(), "spool", config.sensor_id
    )
    return AlertPublisher(BusConfig(url=url, stream=config.output.redis_stream,
                                    sensor_id=config.sensor_id, spool_dir=spool,
                                    maxlen=config.output.redis_maxlen))  # fmt: skip
