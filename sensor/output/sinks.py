"""Where alerts go: the EVE file (Suricata's layout) and the Redis bus (with response context).

Scope: two ``AlertSink`` implementations (see sensor/extensions.py). The Redis sink adds the
``sekimori`` response context responders need and, on a live interface, pushes each alert
at once (latency matters for TCP resets); for capture files it lets the publisher batch.
With ``respond.fast_socket`` set, each TCP alert also goes, first, as a datagram to the
responder on this host (sensor/output/fast_respond.py).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from sensor.extensions import AlertEvent
from sensor.output.alert import response_context
from sensor.output.eve import EveWriter, stats_record
from sensor.output.fast_respond import FastChannel

# How long the bus copy of an alert waits after its fast-path datagram (see RedisSink.write).
FAST_DEFER_S = 0.002


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
        fast: FastChannel | None = None,
    ) -> None:
        self._publisher = publisher
        self._fast = fast
        self._flush_at: float | None = None  # monotonic time a deferred flush is due
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
        fast = self._fast
        if fast is not None and "tcp" in ctx:
            try:
                payload = orjson.dumps(record, option=orjson.OPT_NON_STR_KEYS)
            except TypeError:
                self._publisher.publish(record)  # the publisher reports and counts it
            else:
                fast.send(payload)  # first: the responder may reset the session now
                self._publisher.publish_serialised(payload)
        else:
            self._publisher.publish(record)
        if not self._immediate:
            return
        if fast is None:
            self._publisher.flush()
        elif self._flush_at is None:
            # The responder is resetting this session from the datagram right now; the
            # bus copy (the record) leaves a moment later so that the Redis round trip does
            # not compete with it for the CPU. The live loop calls poll().
            self._flush_at = time.monotonic() + FAST_DEFER_S

    def poll(self, now: float) -> float | None:
        """Flush a deferred bus copy when due; the seconds until the next one is due."""
        if self._flush_at is None:
            return None
        if now < self._flush_at:
            return self._flush_at - now
        self.flush()
        return None

    def flush(self) -> None:
        self._flush_at = None
        self._publisher.flush()

    def tick(self) -> None:
        self._publisher.tick()

    @property
    def stats(self) -> Any:
        if self._fast is None:
            return self._publisher.stats
        return _Counters(self._publisher.stats, self._fast)

    def close(self) -> None:
        if self._fast is not None:
            self._fast.close()
        self._publisher.close()


class _Counters:
    """The publisher's counters and the fast path's, as one ``snapshot()``."""

    def __init__(self, *parts: Any) -> None:
        self._parts = parts

    def snapshot(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for part in self._parts:
            out.update(part.snapshot())
        return out
