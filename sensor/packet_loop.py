"""The per-packet path of one run: decode, flows, detection, alerts to the sinks.

Scope: :class:`PacketLoop` takes one :class:`~sensor.packet.Packet` at a time (from a file or
a live interface, driven by sensor/pipeline.py), runs it through the decoder (and
defragmentation), the flow table, the detector and the behavioural observers, applies the
alert policies (suppressions, thresholds, stages) and hands each alert to every sink. It
also owns the run's counters (Suricata's stats names where it has them), periodic ticks
and EVE stats records, and swapping in a reloaded ruleset without losing flows.

Non-goals: where packets come from, signals, and the run's summary (pipeline.py).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from sensor.applayer.common import AppLayerSettings
from sensor.config import Config
from sensor.decode import DecodeConfig, Decoder
from sensor.detect import Detector
from sensor.extensions import AlertEvent, Extensions
from sensor.flow import FlowTable
from sensor.output.alert import AlertBuilder
from sensor.output.sinks import EveSink
from sensor.packet import Packet
from signatures.rule import Signature
from signatures.ruleset import CompiledRuleset

EXPIRY_MIN_BUDGET = 4096  # flows looked at per second at least, on a live interface


def _evaluation_order(sig: Signature) -> int:
    return sig.order


class PacketLoop:
    """The per-packet path and its counters."""

    def __init__(self, config: Config, detector: Detector, ext: Extensions) -> None:
        d = config.defrag
        self.decoder = Decoder(DecodeConfig(defrag_max_datagrams=d.trackers,
                                            defrag_max_fragments=d.max_frags,
                                            defrag_timeout=d.timeout, defrag_memcap=d.memcap))  # fmt: skip
        self.flows = FlowTable(config.flow, config.stream)
        self.detector = detector
        self.app_settings = app_settings(config)
        self.observers = tuple(ext.observers)
        self.policies = tuple(ext.policies)
        self.sinks = tuple(ext.sinks)
        # Sinks that act on the signature and packet alone (the in-sensor TCP reset) may act
        # before the EVE record is built, but only when no policy can suppress the alert or
        # restage it; with a policy they act from write(), after it.
        self.first_actors = () if self.policies else tuple(
            s for s in self.sinks if hasattr(s, "act_first"))  # fmt: skip
        self.tickers = tuple(ext.tickers)
        self.mode = config.mode
        self.alerts_builder = AlertBuilder(config.mode)
        self.live = False
        self.packets = 0
        self.bytes = 0
        self.alerts = 0
        self.suppressed = 0
        self.discarded = 0  # alerts over packet-alert-max
        self.alert_max = config.detect.packet_alert_max
        self.by_severity: Counter[int] = Counter()
        self.next_expire = 0
        self.last_sec = self.last_usec = 0
        self.source: Any = None
        self.run_info: dict[str, Any] = {}
        self.stats_interval = config.output.stats_interval
        self.last_stats = 0.0
        self.started = time.monotonic()

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
            # Live: an eighth of the table per second (sensor/flow.py FlowTable.expire).
            budget = max(EXPIRY_MIN_BUDGET, len(self.flows) // 8) if self.live else None
            self.end_flows(self.flows.expire(p.ts_sec, budget), p.ts_sec, p.ts_usec)
            self.next_expire = p.ts_sec + 1

    def end_flows(self, flows: list[Any], ts_sec: int, ts_usec: int) -> None:
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
        if len(hits) > self.alert_max:
            # Suricata keeps the packet-alert-max highest-priority alerts of a packet (its
            # alert queue sorted by signature order) and counts the rest as discarded.
            self.discarded += len(hits) - self.alert_max
            hits = sorted(hits, key=_evaluation_order)[: self.alert_max]
        for sig in hits:
            for actor in self.first_actors:
                actor.act_first(sig, p)
            record = self.alerts_builder.record(sig, p)
            tx = self.detector.alert_txs.get(sig.order)
            app = p.flow.app if p.flow is not None else None
            if tx is not None and app is not None:
                record.update(app.eve_fields(tx))  # the http / dns / tls / ssh object
            elif app is not None:
                record.update(app.flow_eve_fields())  # ssh: on every alert of the flow
            event = AlertEvent(record, sig, p)
            if not all(policy.annotate(event) for policy in self.policies):
                self.suppressed += 1
                continue
            self.alerts += 1
            self.by_severity[sig.severity] += 1
            for sink in self.sinks:
                sink.write(event)

    # -- housekeeping ------------------------------------------------------------------
    def counters(self) -> dict[str, int]:
        """Dotted counters in Suricata's stats naming where it has one."""
        kernel, iface = capture_drops(self.source)
        c: dict[str, int] = {
            "capture.packets": self.packets,
            "capture.bytes": self.bytes,
            "capture.kernel_drops": kernel,
            "capture.iface_drops": iface,
            "detect.alerts": self.alerts,
            "detect.alerts_suppressed": self.suppressed,
            "detect.alerts_discarded": self.discarded,
            "detect.candidates": self.detector.stats.candidates,
            "detect.checked": self.detector.stats.checked,
        }
        for sev, n in self.by_severity.items():
            c[f"detect.alerts_severity_{sev}"] = n
        for name, n in self.decoder.stats.items():
            c[f"decoder.{name}"] = n
        for name, n in self.flows.stats.as_dict().items():
            c[f"flow.{name}"] = n
        for name, n in self.flows.events.items():
            c[f"events.{name}"] = n
        for obs in self.observers:
            stats_of = getattr(obs, "stats", None)
            if callable(stats_of):
                for name, n in stats_of().items():
                    c[f"behaviour.{name}"] = n
        for sink in self.sinks:
            stats = getattr(sink, "stats", None)
            if stats is not None and hasattr(stats, "snapshot"):
                prefix = getattr(sink, "stats_prefix", "bus")
                for name, n in stats.snapshot().items():
                    c[f"{prefix}.{name}"] = n
        return c

    def tick(self, now: float) -> None:
        if self.tickers:
            counters = self.counters()
            for ticker in self.tickers:
                ticker.tick(now, counters)
        if self.stats_interval and now - self.last_stats >= self.stats_interval:
            self.write_stats(now)
        for sink in self.sinks:
            t = getattr(sink, "tick", None)
            if t is not None:
                t()
            elif self.live:  # a running sensor's EVE file shows its alerts within a second
                flush = getattr(sink, "flush", None)
                if flush is not None:
                    flush()

    def write_stats(self, now: float) -> None:
        """An EVE ``stats`` event with every counter (stats.interval, and at the end)."""
        self.last_stats = now
        sinks = [s for s in self.sinks if isinstance(s, EveSink)]
        if not sinks:
            return
        counters = self.counters()
        counters["detect.rules_loaded"] = self.run_info.get("rules_loaded", 0)
        counters["detect.rules_skipped"] = self.run_info.get("rules_skipped", 0)
        sec = int(now)
        usec = int((now - sec) * 1e6)
        uptime = int(time.monotonic() - self.started)
        for sink in sinks:
            sink.write_stats(sec, usec, uptime, counters)

    def swap_ruleset(self, ruleset: CompiledRuleset) -> None:
        """New rules from the next packet on; flows, flowbits and hostbits are kept."""
        old = self.detector
        new = Detector(ruleset, self.app_settings)
        new.hostbits, new.thresholds = old.hostbits, old.thresholds
        self.detector = new


def app_settings(config: Config) -> AppLayerSettings:
    a = config.app_layer
    inline = config.stream.inline  # auto: Suricata's inline timing when preventing
    return AppLayerSettings(
        http=a.http, dns=a.dns, tls=a.tls, request_body_limit=a.request_body_limit,
        response_body_limit=a.response_body_limit, decompress_layer_limit=a.decompress_layer_limit,
        inline=inline == "yes" or (inline == "auto" and config.mode == "prevent"),
    )  # fmt: skip


def capture_drops(source: Any) -> tuple[int, int]:
    """(kernel, interface) drops of a live capture; (0, 0) for files or when unreadable."""
    stats = getattr(source, "stats", None)
    if callable(stats):
        try:
            _recv, kernel, iface = stats()
            return int(kernel), int(iface)
        except Exception:  # stats are best effort after the capture closed
            return 0, 0
    return 0, 0
