"""Heartbeats in Redis: what each sensor and responder last said about itself, and when.

Scope: :func:`publish_heartbeat` (any process: the sensor here, responders/service.py for
responders) writes one hash ``sekimori:hb:<kind>:<id>`` with the fields given plus ``kind``,
``id`` and ``ts`` (wall-clock seconds), and indexes it in the sorted set ``sekimori:hb``;
:func:`read_heartbeats` reads them all back for ``sekimori status`` and the health checks.
:class:`SensorHeartbeat` is the sensor's ``Ticker``: every ``heartbeat_interval_s`` it
publishes interface, uptime, packets/s, drop share, last packet seen, ruleset and mode,
and the full dotted counters (so the same figures as the metrics endpoint are in Redis).

Failure behaviour: every call has a timeout; Redis trouble is logged once per outage and
retried after a back-off, never raised into the packet loop. Non-goals: history (the
stats stream and Prometheus keep that), judging health (cli/status_cmd.py and
sensor/health.py do).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import redis

from sensor.errors import BusError, SekimoriError
from sensor.extensions import AlertEvent
from sensor.output.redis_conn import RedisSettings, connect

log = logging.getLogger(__name__)

INDEX_KEY = "sekimori:hb"
KEY_PREFIX = "sekimori:hb:"
DEFAULT_TTL_S = 7 * 86400  # a dead process's last word stays visible for a week
BACKOFF_S = 30.0  # how long the sensor stops trying after Redis failed
KINDS = ("sensor", "responder")


def heartbeat_key(kind: str, ident: str) -> str:
    return f"{KEY_PREFIX}{kind}:{ident}"


@dataclass(frozen=True)
class Heartbeat:
    """One process's last heartbeat, as read back from Redis (all values are text)."""

    kind: str
    id: str
    ts: float
    fields: Mapping[str, str]

    def age(self, now: float) -> float:
        return max(0.0, now - self.ts)

    def num(self, name: str, default: float = 0.0) -> float:
        try:
            return float(self.fields[name])
        except (KeyError, ValueError):
            return default

    def text(self, name: str, default: str = "") -> str:
        return self.fields.get(name, default)


def _encode(value: object) -> str | bytes:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, str | int | float):
        return str(value)
    if value is None:
        return ""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


def publish_heartbeat(
    client: Any,
    kind: str,
    ident: str,
    fields: Mapping[str, object],
    *,
    ttl_s: int = DEFAULT_TTL_S,
    now: float | None = None,
) -> None:
    """Write one heartbeat (replacing the previous one of ``kind``/``ident``).

    ``fields`` values may be text, numbers, booleans or JSON-able mappings/lists.
    Responders should send at least ``stream``, ``group``, ``handled``, ``failures``,
    ``consecutive_failures``, ``last_action``, ``last_action_ts`` and ``interval`` (see
    docs/metrics.md). Raises :class:`BusError` when Redis does not take it.
    """
    if kind not in KINDS or not ident or ":" in kind:
        raise SekimoriError(f"heartbeat: kind must be one of {KINDS} and id non-empty")
    ts = time.time() if now is None else now
    mapping = {name: _encode(value) for name, value in fields.items()}
    mapping.update(kind=kind, id=ident, ts=repr(ts))
    key = heartbeat_key(kind, ident)
    try:
        pipe = client.pipeline(transaction=False)  # two slots in a cluster: no MULTI
        pipe.delete(key)  # fields a newer version no longer sends must not linger
        pipe.hset(key, mapping=mapping)
        pipe.expire(key, ttl_s)
        pipe.zadd(INDEX_KEY, {f"{kind}:{ident}": ts})
        pipe.execute()
    except redis.RedisError as exc:
        raise BusError(f"heartbeat {kind}:{ident}: redis: {exc}") from exc


def _text(raw: Mapping[Any, Any]) -> dict[str, str]:
    def s(v: Any) -> str:
        return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)

    return {s(k): s(v) for k, v in raw.items()}


def read_heartbeats(client: Any, kind: str | None = None) -> list[Heartbeat]:
    """Every indexed heartbeat (of ``kind`` when given), sorted by kind then id.

    Index entries whose hash expired are removed on the way. Raises :class:`BusError`.
    """
    try:
        members = [m.decode() if isinstance(m, bytes) else str(m)
                   for m in client.zrange(INDEX_KEY, 0, -1)]  # fmt: skip
        wanted = [m for m in members if kind is None or m.startswith(f"{kind}:")]
        pipe = client.pipeline(transaction=False)
        for member in wanted:
            pipe.hgetall(KEY_PREFIX + member)
        raws = pipe.execute() if wanted else []
        gone = [m for m, raw in zip(wanted, raws) if not raw]
        if gone:
            client.zrem(INDEX_KEY, *gone)
    except redis.RedisError as exc:
        raise BusError(f"heartbeats: redis: {exc}") from exc
    beats = []
    for raw in raws:
        if not raw:
            continue
        fields = _text(raw)
        try:
            ts = float(fields.get("ts", "0"))
        except ValueError:
            ts = 0.0
        beats.append(Heartbeat(fields.get("kind", "?"), fields.get("id", "?"), ts, fields))
    return sorted(beats, key=lambda b: (b.kind, b.id))


def consumer_group_lag(client: Any, stream: str, group: str) -> int | None:
    """Entries of ``stream`` not yet delivered to ``group`` plus those pending (unacked).

    Uses the ``lag`` Redis 7 reports; None when the stream or group does not exist.
    """
    try:
        groups = client.xinfo_groups(stream)
    except redis.ResponseError:
        return None  # no such stream
    except redis.RedisError as exc:
        raise BusError(f"consumer group {group} on {stream}: redis: {exc}") from exc
    for info in groups:
        info = _text(info)
        if info.get("name") != group:
            continue
        lag = info.get("lag", "")
        pending = int(info.get("pending", "0") or 0)
        if lag in ("", "None"):  # Redis < 7 or a lag it cannot compute
            return pending
        return int(lag) + pending
    return None


class SensorHeartbeat:
    """The sensor's Ticker: a heartbeat every interval (wall clock), carrying its counters."""

    def __init__(
        self,
        client: Any,
        sensor_id: str,
        interval_s: float,
        run_info: Callable[[], Mapping[str, object]] = dict,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._id = sensor_id
        self._interval = interval_s
        self._run_info = run_info
        self._clock = clock
        self._started = clock()
        self._next = 0.0
        self._retry_at = 0.0
        self._down = False
        self._prev: tuple[float, int, int] | None = None  # wall, packets, drops at last beat
        self._packets = -1
        self._last_packet_wall = 0.0
        self._last_packet_capture = 0.0
        self._last_alert_wall = 0.0
        self._state = "running"
        self._sender: _BeatSender | None = None

    def tick(self, now_sec: float, counters: Mapping[str, int]) -> None:
        wall = self._clock()
        packets = counters.get("capture.packets", 0)
        if packets != self._packets:
            if packets > max(self._packets, 0):
                self._last_packet_wall, self._last_packet_capture = wall, now_sec
            self._packets = packets
        if wall >= self._next:
            self._next = wall + self._interval
            self.beat(wall, counters)

    def alert_seen(self) -> None:
        self._last_alert_wall = self._clock()

    def stopped(self, counters: Mapping[str, int] | None = None) -> None:
        """Last heartbeat of the run: ``state=stopped`` so status says so at once."""
        self.close()  # the thread's pending beat first, then this one
        self._state = "stopped"
        self._retry_at = 0.0
        self.beat(self._clock(), counters or {})

    def fields(self, wall: float, counters: Mapping[str, int]) -> dict[str, object]:
        packets = counters.get("capture.packets", 0)
        drops = counters.get("capture.kernel_drops", 0) + counters.get("capture.iface_drops", 0)
        pps = 0.0
        drop_pct = 0.0
        if self._prev is not None:
            then, p0, d0 = self._prev
            dp, dd = max(0, packets - p0), max(0, drops - d0)
            pps = dp / (wall - then) if wall > then else 0.0
            drop_pct = 100.0 * dd / (dp + dd) if dp + dd else 0.0
        elif packets + drops:
            drop_pct = 100.0 * drops / (packets + drops)
        self._prev = (wall, packets, drops)
        info = dict(self._run_info())
        return {
            "host": socket.gethostname(), "pid": os.getpid(), "state": self._state,
            "iface": info.get("iface") or info.get("pcap") or "?",
            "mode": info.get("mode", "detect"),
            "ruleset_version": info.get("ruleset_version", "?"),
            "rules_loaded": info.get("rules_loaded", ""),
            "started": f"{self._started:.3f}", "uptime_s": f"{wall - self._started:.0f}",
            "interval": self._interval, "packets": packets,
            "bytes": counters.get("capture.bytes", 0), "drops": drops,
            "pps": f"{pps:.1f}", "drop_pct": f"{drop_pct:.3f}",
            "last_packet": f"{self._last_packet_wall:.3f}" if self._last_packet_wall else "",
            "last_packet_capture_ts": f"{self._last_packet_capture:.0f}",
            "last_alert": f"{self._last_alert_wall:.3f}" if self._last_alert_wall else "",
            "alerts": counters.get("detect.alerts", 0),
            "flows_active": counters.get("flow.flows_active", 0),
            "counters": dict(counters),
        }  # fmt: skip

    def beat(self, wall: float, counters: Mapping[str, int]) -> None:
        if wall < self._retry_at:
            return
        fields = self.fields(wall, counters)
        if self._sender is not None and self._state == "running":
            self._sender.submit(wall, fields)
        else:
            self._publish(wall, fields)

    def background(self) -> None:
        """Publish from a thread of its own from now on (a live sensor): the Redis round
        trip (0.6-4.5 ms measured in the reset lab, up to the 1 s socket timeout while Redis
        is unreachable) must not stall the packet loop. The ``stopped`` beat stays
        synchronous, after the thread's last one."""
        if self._sender is None:
            self._sender = _BeatSender(self._publish)

    def close(self) -> None:
        if self._sender is not None:
            self._sender.close()
            self._sender = None

    def _publish(self, wall: float, fields: Mapping[str, object]) -> None:
        try:
            publish_heartbeat(self._client, "sensor", self._id, fields, now=wall)
        except BusError as exc:
            self._retry_at = wall + BACKOFF_S
            if not self._down:
                self._down = True
                log.warning("heartbeat: %s; retrying every %.0f s", exc, BACKOFF_S)
            return
        if self._down:
            self._down = False
            log.warning("heartbeat: redis is reachable again")


class _BeatSender:
    """One thread that publishes the latest heartbeat handed to it (older ones are
    superseded, not queued: a heartbeat is a state, not an event)."""

    def __init__(self, publish: Callable[[float, Mapping[str, object]], None]) -> None:
        self._publish = publish
        self._pending: tuple[float, Mapping[str, object]] | None = None
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="sensor-heartbeat", daemon=True)
        self._thread.start()

    def submit(self, wall: float, fields: Mapping[str, object]) -> None:
        with self._cond:
            self._pending = (wall, fields)
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=3.0)  # the socket timeout is 1 s: one beat in flight

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                job, self._pending = self._pending, None
                closed = self._closed
            if job is not None:
                try:
                    self._publish(*job)
                except Exception as exc:  # never a thread traceback; the next beat retries
                    log.warning("heartbeat: not published (%s: %s)", type(exc).__name__, exc)
            if closed:
                return


class _HeartbeatSink:
    """Companion AlertSink: notes the last alert and sends the ``stopped`` beat at close."""

    def __init__(self, beat: SensorHeartbeat, last: Callable[[], Mapping[str, int]]) -> None:
        self._beat = beat
        self._last = last

    def write(self, event: AlertEvent) -> None:
        self._beat.alert_seen()

    def close(self) -> None:
        self._beat.stopped(self._last())


class _LastCounters:
    """Keeps the counters of the latest tick for the closing heartbeat."""

    def __init__(self) -> None:
        self.counters: Mapping[str, int] = {}

    def tick(self, now_sec: float, counters: Mapping[str, int]) -> None:
        self.counters = counters

    def get(self) -> Mapping[str, int]:
        return self.counters


def register(ext: Any, config: Any, settings: Any) -> None:
    """Add the heartbeat to ``ext`` when the sensor has a Redis URL (else nothing)."""
    url = config.output.redis_url
    if not url:
        return
    client = connect(RedisSettings(url=url, connect_timeout_s=0.5, socket_timeout_s=1.0))
    beat = SensorHeartbeat(client, config.sensor_id, settings.heartbeat_interval_s,
                           run_info=lambda: getattr(ext, "run_info", None) or {})  # fmt: skip
    last = _LastCounters()
    ext.tickers.extend([last, beat])
    ext.sinks.append(_HeartbeatSink(beat, last.get))
