"""Extension points of the sensor pipeline: what sees packets and alerts besides the rules.

Scope: three small contracts and the one function that assembles them from configuration.

- ``PacketObserver``: sees every inspected packet after flow tracking and signature
  detection (behavioural detectors, reset-outcome watchers); may raise alerts of its own.
- ``AlertPolicy``: sees every alert before it is written; may annotate the record (stage,
  priority, would-block evidence) or suppress it (suppressions, exceptions).
- ``AlertSink``: receives every alert that survived the policies (EVE file, Redis bus).
- ``Ticker``: called about once a second with the sensor's counters (metrics endpoint,
  heartbeats, stats records).

Each part of the sensor that needs one of these registers it in ``build_extensions`` with
one line, so the per-packet loop in sensor/pipeline.py never grows feature-specific code.
Non-goals: dynamic plugin discovery for the sensor (responders have entry points; sensor
extensions are part of the product).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sensor.config import Config
from sensor.packet import Packet
from signatures.rule import Signature


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One alert on its way out: the EVE record plus what produced it."""

    record: dict[str, Any]
    signature: Signature
    packet: Packet


class PacketObserver(Protocol):
    def observe(self, p: Packet) -> list[Signature] | None:
        """Look at a packet (flow already attached); return signatures that alert on it."""

    def close(self) -> None: ...


class AlertPolicy(Protocol):
    def annotate(self, event: AlertEvent) -> bool:
        """Add to ``event.record`` as needed; return False to suppress the alert."""


class Ticker(Protocol):
    def tick(self, now_sec: float, counters: Mapping[str, int]) -> None:
        """Called about once a second (wall time live, capture time for files) and at close,
        with the sensor's dotted counters (capture.*, decoder.*, flow.*, detect.*, ...)."""


class AlertSink(Protocol):
    def write(self, event: AlertEvent) -> None: ...

    def close(self) -> None: ...


@dataclass
class Extensions:
    observers: list[PacketObserver] = field(default_factory=list)
    policies: list[AlertPolicy] = field(default_factory=list)
    sinks: list[AlertSink] = field(default_factory=list)
    tickers: list[Ticker] = field(default_factory=list)
    # What this run is (iface or pcap, mode, ruleset version, rules loaded), kept current by
    # the pipeline (after a reload too) for heartbeats, status and health alerts.
    run_info: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        for observer in self.observers:
            observer.close()
        for sink in self.sinks:
            sink.close()
        for ticker in self.tickers:  # those with a thread of their own (live sensor)
            close = getattr(ticker, "close", None)
            if close is not None:
                close()


def build_extensions(config: Config) -> Extensions:
    """Observers and policies configured for this run (sinks are added by the pipeline).

    Register new parts here, one line each, reading their settings from ``config``.
    """
    ext = Extensions()
    from sensor import health, heartbeat, metrics, opsconfig  # they import this module

    ops = opsconfig.ops_settings()
    metrics.register(ext, config, ops)
    heartbeat.register(ext, config, ops)
    health.register(ext, config, ops)
    from sensor import policy  # stages, exceptions, priorities (docs/policy.md)

    policy.register(ext, config)
    from sensor import behaviour  # scans, brute force, floods (docs/detectors.md)

    behaviour.register(ext, config)
    return ext
