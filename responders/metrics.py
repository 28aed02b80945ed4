"""Prometheus metrics of a responder process (``sekimori respond --metrics-listen``).

Scope: decisions per responder and outcome (resets confirmed/failed, blocks done/refused),
reset latency percentiles, and per block target the reconciliation figures (desired,
present, drift, enforcement), collected on each scrape from the service's own counters.
Served with the same prometheus-client listener as the sensor's (sensor/metrics.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from sensor.metrics import serve


class _Collector:
    def __init__(self, service: Any) -> None:
        self._service = service

    def collect(self) -> Iterator[Metric]:
        stats = self._service.stats()
        decisions = CounterMetricFamily(
            "sekimori_responder_decisions", "Decisions per responder and outcome",
            labels=["responder", "outcome"],
        )  # fmt: skip
        for key, n in sorted(stats.get("decisions", {}).items()):
            responder, _, outcome = key.partition(":")
            decisions.add_metric([responder, outcome], n)
        yield decisions
        latency = GaugeMetricFamily(
            "sekimori_reset_latency_microseconds", "Capture-to-send time of TCP resets",
            labels=["quantile"],
        )  # fmt: skip
        summary = stats.get("reset_latency", {})
        for q, key in (("0.5", "p50_us"), ("0.99", "p99_us")):
            if summary.get(key) is not None:
                latency.add_metric([q], float(summary[key]))
        yield latency
        blocks = getattr(self._service, "blocks", None)
        reports = getattr(blocks, "reports", {}) if blocks is not None else {}
        target = GaugeMetricFamily(
            "sekimori_block_target", "Reconciliation of each block target with the ledger",
            labels=["target", "figure"],
        )  # fmt: skip
        for name, report in sorted(reports.items()):
            for figure, value in report.stats().items():
                if isinstance(value, int | float):
                    target.add_metric([name, figure], float(value))
        yield target


def serve_responder_metrics(listen: str, service: Any) -> Any:
    """Start the listener; returns the HTTP server (``shutdown()`` stops it)."""
    server, _thread = serve(listen, _Collector(service))
    return server
