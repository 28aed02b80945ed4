"""The Prometheus endpoint: the sensor's dotted counters as Prometheus metrics over HTTP.

Scope: :class:`MetricsServer` is a ``Ticker`` (sensor/extensions.py): each tick it takes a
snapshot of the counters (about once a second) and an HTTP thread (prometheus-client's)
serves the latest snapshot on ``/metrics``. Its companion sink counts alerts per rule
(exported for the ``top_rules`` busiest rules) and by rule action and outcome. The mapping
from dotted names (``capture.packets``, ``decoder.ipv4.trunc_pkt``, ``bus.spooled``,
``responder.resets_confirmed`` ...) to metric names and labels is :func:`metric_families`,
documented in docs/metrics.md; any process with counters (a responder service) can serve
them the same way with :func:`serve`.

Opt-in: nothing listens unless ``SEKIMORI_METRICS_LISTEN`` names an address. The HTTP
thread only reads an immutable snapshot replaced by the packet loop, so scraping never
blocks or races the hot path. Non-goals: push gateways, histograms, authentication (bind
to loopback or a management network; put a proxy in front for TLS).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import CollectorRegistry

from sensor.errors import ConfigError
from sensor.extensions import AlertEvent
from sensor.opsconfig import OpsSettings, parse_listen

log = logging.getLogger(__name__)

PREFIX = "sekimori_"
# Counters that are levels, not running totals.
GAUGE_NAMES = frozenset(
    {
        "flows_active",
        "reassembly_memuse",
        "memuse",
        "blocks_active",
        "drift",
        "lag",
        "spool_bytes",
        "in_flight",
        "tcp_no_session",
    }
)
_UNSAFE = re.compile(r"[^a-zA-Z0-9_]")


@dataclass(frozen=True)
class _Rule:
    """Prefix → one metric family with the rest of the dotted name as a label."""

    family: str
    label: str
    doc: str


# Families whose members differ only by a label (decoder events, stream events, drops).
_LABELLED: Mapping[str, _Rule] = {
    "decoder.": _Rule("decoder_events_total", "event", "Decoder counters and anomalies"),
    "events.": _Rule("stream_events_total", "event", "Stream engine anomalies"),
    "detect.alerts_severity_": _Rule(
        "alerts_by_severity_total", "severity", "Alerts written, by severity"
    ),
}
_RENAMED: Mapping[str, tuple[str, str, dict[str, str]]] = {
    "capture.packets": ("packets_total", "Packets captured", {}),
    "capture.bytes": ("bytes_total", "Bytes captured (wire length)", {}),
    "capture.kernel_drops": (
        "drops_total",
        "Packets dropped before sekimori saw them",
        {"where": "kernel"},
    ),
    "capture.iface_drops": (
        "drops_total",
        "Packets dropped before sekimori saw them",
        {"where": "interface"},
    ),
    "detect.alerts": ("alerts_total", "Alerts written (after policies)", {}),
}


def _clean(name: str) -> str:
    return _UNSAFE.sub("_", name).strip("_").lower()


def _plain(name: str) -> tuple[str, bool]:
    """A dotted name with no special rule → (family name, is_gauge)."""
    leaf = name.rsplit(".", 1)[-1]
    gauge = leaf in GAUGE_NAMES or leaf.endswith("_active")
    family = _clean(name)
    return (family if gauge else family.removesuffix("_total") + "_total"), gauge


@dataclass
class Snapshot:
    """What one scrape shows; replaced whole at every tick (never mutated once published)."""

    counters: Mapping[str, int] = field(default_factory=dict)
    rule_hits: tuple[tuple[int, int, str, int], ...] = ()  # gid, sid, msg, hits
    by_action: tuple[tuple[str, str, int], ...] = ()  # rule action, outcome, count
    static: Mapping[str, int] = field(default_factory=dict)  # memory caps from the config


def metric_families(snap: Snapshot) -> Iterator[Metric]:
    """Prometheus families for one snapshot (see docs/metrics.md for the table)."""
    families: dict[str, Metric] = {}

    def family(name: str, doc: str, labels: tuple[str, ...], gauge: bool = False) -> Any:
        if name not in families:
            kind = GaugeMetricFamily if gauge else CounterMetricFamily
            # CounterMetricFamily drops a trailing _total and the exposition adds it back.
            families[name] = kind(PREFIX + name, doc, labels=list(labels))
        return families[name]

    for name, value in sorted(snap.counters.items()):
        if name in _RENAMED:
            fam, doc, labels = _RENAMED[name]
            family(fam, doc, tuple(labels)).add_metric(list(labels.values()), value)
            continue
        rule = next((r for p, r in _LABELLED.items() if name.startswith(p)), None)
        if rule is not None:
            prefix = next(p for p in _LABELLED if name.startswith(p))
            family(rule.family, rule.doc, (rule.label,)).add_metric([name[len(prefix) :]], value)
            continue
        fam, gauge = _plain(name)
        family(fam, f"sekimori counter {name}", (), gauge).add_metric([], value)
    if snap.rule_hits:
        hits = family(
            "rule_hits_total", "Alerts per rule (the busiest rules only)", ("gid", "sid", "msg")
        )
        for gid, sid, msg, n in snap.rule_hits:
            hits.add_metric([str(gid), str(sid), msg], n)
    if snap.by_action:
        acts = family(
            "alerts_by_action_total", "Alerts by rule action and outcome", ("action", "outcome")
        )
        for action, outcome, n in snap.by_action:
            acts.add_metric([action, outcome], n)
    for name, value in snap.static.items():
        family("memcap_bytes", "Configured memory caps", ("name",), True).add_metric([name], value)
    yield from families.values()


class _Collector:
    def __init__(self, server: MetricsServer) -> None:
        self._server = server

    def collect(self) -> Iterator[Metric]:
        yield from metric_families(self._server.snapshot)


def serve(listen: str, collector: Any) -> tuple[Any, Any]:
    """Start prometheus-client's HTTP thread on ``listen`` for ``collector``; (server, thread)."""
    host, port = parse_listen(listen)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    try:
        return start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise ConfigError(f"metrics: cannot listen on {listen}: {exc.strerror or exc}") from exc


class MetricsServer:
    """Ticker + HTTP endpoint. ``close()`` stops the listener (the companion sink calls it)."""

    def __init__(self, listen: str, top_rules: int, static: Mapping[str, int]) -> None:
        self.snapshot = Snapshot(static=dict(static))
        self._top = top_rules
        self._hits: Counter[tuple[int, int]] = Counter()
        self._msgs: dict[tuple[int, int], str] = {}
        self._actions: Counter[tuple[str, str]] = Counter()
        self._server, self._thread = serve(listen, _Collector(self))
        log.info("metrics: serving Prometheus metrics on http://%s/metrics", listen)

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def tick(self, now_sec: float, counters: Mapping[str, int]) -> None:
        top = self._hits.most_common(self._top) if self._top else []
        self.snapshot = Snapshot(
            counters=dict(counters),
            rule_hits=tuple((g, s, self._msgs[(g, s)], n) for (g, s), n in top),
            by_action=tuple((a, o, n) for (a, o), n in sorted(self._actions.items())),
            static=self.snapshot.static,
        )

    def count(self, event: AlertEvent) -> None:
        sig = event.signature
        key = (sig.gid, sig.sid)
        self._hits[key] += 1
        self._msgs.setdefault(key, sig.msg)
        alert = event.record.get("alert") or {}
        self._actions[(sig.action, str(alert.get("action", "allowed")))] += 1

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class _MetricsSink:
    """Companion AlertSink: per-rule and per-action counts, and the listener's shutdown."""

    def __init__(self, server: MetricsServer) -> None:
        self._server = server

    def write(self, event: AlertEvent) -> None:
        self._server.count(event)

    def close(self) -> None:
        self._server.close()


def register(ext: Any, config: Any, settings: OpsSettings) -> MetricsServer | None:
    """Add the endpoint to ``ext`` when ``settings.metrics_listen`` is set (opt-in)."""
    if not settings.metrics_listen:
        return None
    static = {
        "flow": config.flow.memcap,
        "stream": config.stream.memcap,
        "stream.reassembly": config.stream.reassembly_memcap,
    }
    server = MetricsServer(settings.metrics_listen, settings.metrics_top_rules, static)
    ext.tickers.append(server)
    ext.sinks.append(_MetricsSink(server))
    return server
