"""Where alerts go: the EVE file (Suricata's layout) and the Redis bus (with response context).

Scope: two ``AlertSink`` implementations (see sensor/extensions.py). The Redis sink adds the
``sekimori`` response context responders need and, on a live interface, pushes each alert
at once (latency matters for TCP resets); for capture files it lets the publisher batch.
"""

from __future__ import annotations

from typing import Any

from sensor.extensions import AlertEvent
from sensor.output.alert import response_context
from sensor.output.eve import EveWriter, stats_record


class EveSink:
    def __init__(self, writer: EveWriter) -> None:
        self._writer = writer

    def write(self, event: AlertEvent) -> None:
        self._writer.write(event.record)

    def flush(self) -> None:
        self._writer.flush()

    def write_stats(self, ts_sec: int, ts_usec: int, uptime: int, counters: dict[str, int]) -> None:
        """An EVE ``stats`` event (Suricata's nesting; decoder anomalies under
        ``decoder.event``, as Suricata names them)."""
        named = {
            (f"decoder.event.{k[8:]}" if k.startswith("decoder.") and "." in k[8:] else k): v
            for k, v in counters.items()
        }
        self._writer.write(stats_record(ts_sec, ts_usec, uptime, named))

    def close(self) -> None:
        self._writer.close()


class RedisSink:
    def __init__(
        self,
        publisher: Any,
        sensor_id: str,
        *,
        immediate: bool,
        mode: str = "detect",
        ruleset_version: str = "",
    ) -> None:
        self._publisher = publisher
        self._sensor_id = sensor_id
        self._immediate = immediate
        self._mode = mode
        self.ruleset_version = ruleset_version  # the pipeline updates it after a reload

    def write(self, event: AlertEvent) -> None:
        record = dict(event.record)
        ctx = response_context(event.signature, event.packet, self._mode, self._sensor_id)
        ctx["ruleset_version"] = self.ruleset_version  # block provenance (docs/blocking.md)
        ctx.update(record.get("sekimori") or {})  # policy annotations (stage, priority) win
        record["sekimori"] = ctx
        self._publisher.publish(record)
        if self._immediate:
            self._publisher.flush()

    def flush(self) -> None:
        self._publisher.flush()

    def tick(self) -> None:
        self._publisher.tick()

    @property
    def stats(self) -> Any:
        return self._publisher.stats

    def close(self) -> None:
        self._publisher.close()
