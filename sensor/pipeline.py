"""The sensor's main loop: capture → decode → flow/stream → detect → EVE (and Redis).

Scope: ``run(config, request)`` wires the stages for one capture file or live interface,
runs until the source ends (or SIGINT/SIGTERM for a live interface), and returns a
``RunSummary``. Everything per packet happens in ``_Loop.packet``; keep it lean.

Failure behaviour: a corrupt or truncated capture is processed up to the damage and the
summary says where it stopped; a packet that cannot be decoded is counted by anomaly and
skipped; an EVE write error stops the run with a clear message (alerts already written
stay written). Redis trouble never stops detection (the publisher spools).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sensor.capture import LiveCapture, open_capture
from sensor.config import Config
from sensor.decode import Decoder
from sensor.detect import Detector
from sensor.extensions import AlertEvent, Extensions, build_extensions
from sensor.flow import FlowTable
from sensor.output.alert import alert_record, response_context
from sensor.output.eve import EveWriter
from sensor.packet import Packet
from signatures.rule import Signature
from signatures.ruleset import RulesetReport, load_ruleset
from signatures.variables import Variables

log = logging.getLogger("sekimori.sensor")


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


class _Loop:
    """The per-packet path and its counters."""

    def __init__(self, config: Config, detector: Detector, ext: Extensions) -> None:
        self.decoder = Decoder()
        self.flows = FlowTable(config.flow, config.stream)
        self.detector = detector
        self.observers = tuple(ext.observers)
        self.policies = tuple(ext.policies)
        self.sinks = tuple(ext.sinks)
        self.mode = "detect"
        self.packets = 0
        self.bytes = 0
        self.alerts = 0
        self.suppressed = 0
        self.by_severity: Counter[int] = Counter()
        self.next_expire = 0
        self.last_sec = self.last_usec = 0

    def packet(self, p: Packet) -> None:
        self.packets += 1
        self.last_sec, self.last_usec = p.ts_sec, p.ts_usec
        self.bytes += p.wirelen
        extra = self.decoder.decode(p)
        if not p.bad:
            self._inspect(p)
        if extra is not None and not extra.bad:
            self._inspect(extra)
        if p.ts_sec >= self.next_expire:
            self.end_flows(self.flows.expire(p.ts_sec), p.ts_sec, p.ts_usec)
            self.next_expire = p.ts_sec + 1

    def end_flows(self, flows: list, ts_sec: int, ts_usec: int) -> None:
        for f in flows:
            for sig, pseudo in self.detector.flow_end(f, ts_sec, ts_usec):
                self._emit([sig], pseudo)

    def finish(self) -> None:
        """End of input: every flow ends now (at the last packet's time)."""
        self.end_flows(self.flows.flush_all(), self.last_sec, self.last_usec)

    def _inspect(self, p: Packet) -> None:
        if p.ipver and (p.l4_off >= 0 or p.proto not in (6, 17, 1, 58)) and not p.frag:
            self.flows.process(p)
        hits = self.detector.inspect(p)
        for obs in self.observers:
            more = obs.observe(p)
            if more:
                hits = [*hits, *more]
        if hits:
            self._emit(hits, p)

    def _emit(self, hits: list[Signature], p: Packet) -> None:
        for sig in hits:
            event = AlertEvent(alert_record(sig, p, self.mode), sig, p)
            if not all(policy.annotate(event) for policy in self.policies):
                self.suppressed += 1
                continue
            self.alerts += 1
            self.by_severity[sig.severity] += 1
            for sink in self.sinks:
                sink.write(event)


class EveSink:
    """Alerts to an EVE file or stdout, exactly as built (Suricata's layout)."""

    def __init__(self, writer: EveWriter) -> None:
        self._writer = writer

    def write(self, event: AlertEvent) -> None:
        self._writer.write(event.record)

    def close(self) -> None:
        self._writer.close()


class RedisSink:
    """Alerts to the Redis bus, with the response context responders need."""

    def __init__(self, publisher: Any, sensor_id: str) -> None:
        self._publisher = publisher
        self._sensor_id = sensor_id

    def write(self, event: AlertEvent) -> None:
        record = dict(event.record)
        ctx = response_context(event.signature, event.packet, "detect", self._sensor_id)
        ctx.update(record.get("sekimori") or {})
        record["sekimori"] = ctx
        self._publisher.publish(record)

    def close(self) -> None:
        self._publisher.close()


def _frames(request: RunRequest, config: Config) -> tuple[Iterator, Any]:
    if request.pcap is not None:
        cap = open_capture(request.pcap)
        return iter(cap), cap
    assert request.iface is not None
    c = config.capture
    live = LiveCapture(request.iface, snaplen=c.snaplen, promisc=c.promisc, bpf=c.bpf,
                       immediate=c.immediate, buffer_size=c.buffer_size)  # fmt: skip
    return iter(live), live


def run(config: Config, request: RunRequest) -> RunSummary:
    started = time.monotonic()
    variables = Variables(
        address_groups=dict(config.vars.address_groups), port_groups=dict(config.vars.port_groups)
    )
    ruleset, report = load_ruleset(
        request.rule_files, variables,
        classification_file=config.detect.classification_file,
        cache_dir=config.detect.cache_dir or default_cache_dir(),
        strict=request.strict,
    )  # fmt: skip
    _log_ruleset(report)
    detector = Detector(ruleset)
    ext = build_extensions(config)
    if request.eve is not None:
        ext.sinks.append(EveSink(EveWriter(request.eve)))
    publisher = _publisher(config, request)
    if publisher is not None:
        ext.sinks.append(RedisSink(publisher, config.sensor_id))
    frames, source = _frames(request, config)
    loop = _Loop(config, detector, ext)
    restore = _install_stop_handlers(source) if request.iface else None
    try:
        _drive(loop, frames, source, request)
    finally:
        if restore is not None:
            restore()
        ext.close()
    kernel, iface = _drops(source)
    return RunSummary(
        packets=loop.packets, bytes=loop.bytes, flows=loop.flows.stats.flows_created,
        alerts=loop.alerts, alerts_by_severity=dict(loop.by_severity),
        decode_events={k: v for k, v in loop.decoder.stats.items() if "." in k},
        kernel_drops=kernel, iface_drops=iface, elapsed=time.monotonic() - started,
        truncated=getattr(source, "truncated", None), rules_loaded=report.loaded,
        rules_skipped=dict(report.skipped_by_reason), ruleset_version=ruleset.version,
        stream_events=dict(loop.flows.events),
    )  # fmt: skip


def _drive(loop: _Loop, frames: Iterator, source: Any, request: RunRequest) -> None:
    progress = request.progress
    total = getattr(source, "size", 0) or 0
    next_tick = 0.0
    for cnt, (ts_sec, ts_usec, linktype, data, wirelen) in enumerate(frames, 1):
        p = Packet(cnt, ts_sec, ts_usec, linktype, data)
        p.wirelen = wirelen
        loop.packet(p)
        if progress is not None and cnt & 1023 == 0:
            now = time.monotonic()
            if now >= next_tick:
                progress(getattr(source, "position", 0), total)
                next_tick = now + 0.1
    loop.finish()
    if progress is not None:
        progress(total, total)


def _publisher(config: Config, request: RunRequest) -> Any:
    url = request.redis_url or config.output.redis_url
    if not url:
        return None
    from sensor.output.redis_bus import AlertPublisher, BusConfig

    return AlertPublisher(BusConfig(url=url, stream=config.output.redis_stream,
                                    sensor_id=config.sensor_id))  # fmt: skip


def _drops(source: Any) -> tuple[int, int]:
    stats = getattr(source, "stats", None)
    if callable(stats):
        try:
            _recv, kernel, iface = stats()
            return int(kernel), int(iface)
        except Exception:  # stats are best effort after the capture closed
            return 0, 0
    return 0, 0


def _install_stop_handlers(source: Any) -> Callable[[], None]:
    def handler(_signum: int, _frame: object) -> None:
        source.stop()

    old_int = signal.signal(signal.SIGINT, handler)
    old_term = signal.signal(signal.SIGTERM, handler)

    def restore() -> None:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)

    return restore
