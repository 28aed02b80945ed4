"""Behavioural detection: scans, brute force, floods and TCP flag anomalies.

Scope: the PacketObservers that see every inspected packet after signature detection and
raise alerts of their own (gid 9100, see sensor/behaviour/sigs.py and docs/detectors.md),
with bounded state and counters (``stats()``). ``build_observers`` makes the configured
set; sensor/extensions.py registers it.

Non-goals: blocking (responders decide, and never on spoofable flood sources), rule
keywords (signatures/events.py), per-packet logging.
"""

from __future__ import annotations

import logging
from typing import Any

from sensor.behaviour.anomaly import AnomalyDetector
from sensor.behaviour.bruteforce import BruteForceDetector
from sensor.behaviour.flood import FloodDetector
from sensor.behaviour.scan import ScanDetector
from sensor.behaviour.settings import BehaviourConfig, load_behaviour_config

__all__ = [
    "AnomalyDetector",
    "BehaviourConfig",
    "BruteForceDetector",
    "FloodDetector",
    "ScanDetector",
    "build_observers",
    "load_behaviour_config",
    "register",
]

log = logging.getLogger("sekimori.behaviour")


class _Logged:
    """Wraps a detector so its counters are logged once when the run ends."""

    __slots__ = ("_inner", "observe")

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.observe = inner.observe  # bound method: no extra call per packet

    def stats(self) -> dict[str, int]:
        result: dict[str, int] = self._inner.stats()
        return result

    def close(self) -> None:
        self._inner.close()
        stats = self._inner.stats()
        if stats:
            log.info("behaviour: %s", ", ".join(f"{k}={v}" for k, v in sorted(stats.items())))


def build_observers(config: BehaviourConfig | None = None) -> list[Any]:
    """The detectors enabled in ``config`` (defaults when None), in a fixed order."""
    cfg = config or BehaviourConfig()
    if not cfg.enabled:
        return []
    detectors: list[Any] = []
    if cfg.anomaly.enabled:
        detectors.append(AnomalyDetector(cfg.anomaly))
    if cfg.scan.enabled:
        detectors.append(ScanDetector(cfg.scan))
    if cfg.bruteforce.enabled:
        detectors.append(BruteForceDetector(cfg.bruteforce))
    if cfg.flood.enabled:
        detectors.append(FloodDetector(cfg.flood))
    return [_Logged(d) for d in detectors]


def register(ext: Any, config: Any) -> None:
    """Add the behavioural detectors to ``ext.observers`` (called by build_extensions).

    Thresholds come from the ``[behaviour]`` table of the config file when the sensor
    configuration records its file path (``config.path``); defaults otherwise.
    """
    if not getattr(config, "behaviour_enabled", False):
        return  # opt-in (behaviour.enabled): a rules-only run reports exactly its rules' alerts
    path = getattr(config, "path", None)
    ext.observers.extend(build_observers(load_behaviour_config(path)))
