"""Publishing alerts to a Redis Stream, with a local spool that carries them through outages.

Scope: :class:`AlertPublisher` buffers EVE alert dicts (each with its ``sekimori`` response
context), serialises them with orjson and appends them to the alert stream in batches. A
batch is one server-side script call (``XADD ... MAXLEN ~ n * eve <json> sensor <id> seq
<n>`` per alert plus a per-sensor high-water mark, atomically), so a batch costs one round
trip like a pipeline, and a batch that is retried after a lost reply is not added twice.
When Redis is unreachable or slow (every call has a timeout) the alerts go to the
:class:`~sensor.output.spool.Spool` and are replayed in order once Redis answers again;
while the spool holds anything, new alerts queue behind it so order is kept. A spool left
by a previous run is replayed the same way.

Entries use the field layout of Suricata's EVE ``redis`` output in stream mode (field
``eve`` holding the JSON), plus ``sensor`` and ``seq`` fields, so one consumer reads both.

Non-goals: background threads (the sensor calls :meth:`AlertPublisher.tick` when idle; the
Redis client never blocks longer than its timeouts and retries are spaced by
``retry_interval_s``), delivery guarantees for stats (a stats record is a snapshot that the
next one supersedes, so it is counted and dropped during an outage, never spooled).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

import orjson
import redis

from sensor.errors import ConfigError
from sensor.output.redis_conn import RedisSettings, connect, redact_url, same_slot_key
from sensor.output.spool import Spool

log = logging.getLogger(__name__)

# KEYS: stream, high-water-mark key. ARGV: maxlen (0 = no trimming), sensor id, then
# (seq, payload) pairs. Seqs are fixed-width decimal strings, so string order is number order
# (Lua numbers are doubles and cannot hold a nanosecond clock exactly).
_APPEND_BATCH_LUA = """
local last = redis.call('GET', KEYS[2]) or ''
local start = last
local maxlen = tonumber(ARGV[1])
local added, skipped = 0, 0
for i = 3, #ARGV, 2 do
  local seq = ARGV[i]
  if seq > last then
    if maxlen > 0 then
      redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*',
                 'eve', ARGV[i + 1], 'sensor', ARGV[2], 'seq', seq)
    else
      redis.call('XADD', KEYS[1], '*', 'eve', ARGV[i + 1], 'sensor', ARGV[2], 'seq', seq)
    end
    last = seq
    added = added + 1
  else
    skipped = skipped + 1
  end
end
if last ~= start then redis.call('SET', KEYS[2], last) end
return {added, skipped}
"""

SEQ_WIDTH = 20  # digits of a 64-bit sequence number
DROP_LOG_DETAILED = 20  # drops logged one by one before switching to periodic summaries
DROP_LOG_EVERY = 1000


@dataclass(frozen=True)
class BusConfig:
    """Everything the publisher needs; ``repr`` and :meth:`dump` never show the password."""

    url: str = "redis://127.0.0.1:6379/0"
    stream: str = "sekimori:alerts"
    stats_stream: str = "sekimori:stats"
    maxlen: int = 100_000  # approximate (MAXLEN ~) trimming; 0 disables trimming
    stats_maxlen: int = 10_000
    batch_size: int = 500
    flush_interval_s: float = 0.2
    spool_dir: str = "/var/lib/sekimori/spool"
    spool_max_bytes: int = 256 << 20
    connect_timeout_s: float = 1.0
    socket_timeout_s: float = 2.0
    retry_interval_s: float = 1.0  # how long to spool without trying Redis after a failure
    replay_batches_per_flush: int = 20  # bounds how long one flush spends replaying
    sensor_id: str = "sensor-1"
    username: str | None = None
    password: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_verify: bool = True
    cluster: bool = False

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.maxlen < 0 or self.flush_interval_s < 0:
            raise ConfigError("bus: batch_size must be >= 1, maxlen and flush_interval_s >= 0")
        if not self.sensor_id or not self.stream or not self.stats_stream:
            raise ConfigError("bus: sensor_id, stream and stats_stream must not be empty")
        self.redis_settings()  # validates the URL and timeouts now, not at the first alert

    def __repr__(self) -> str:
        return f"BusConfig({self.dump()!r})"

    def redis_settings(self) -> RedisSettings:
        return RedisSettings(
            url=self.url, username=self.username, password=self.password,
            password_env=self.password_env, password_file=self.password_file,
            tls_ca=self.tls_ca, tls_cert=self.tls_cert, tls_key=self.tls_key,
            tls_verify=self.tls_verify, cluster=self.cluster,
            connect_timeout_s=self.connect_timeout_s, socket_timeout_s=self.socket_timeout_s,
        )  # fmt: skip

    def dump(self) -> dict[str, Any]:
        """The settings for ``config dump``: password masked, URL redacted."""
        out = asdict(self)
        out["url"] = redact_url(self.url)
        if self.password is not None:
            out["password"] = "***"
        return out


@dataclass(slots=True)
class BusStats:
    """Counters (mutable on purpose: bumped on the hot path). ``snapshot()`` for reporting."""

    published: int = 0  # alerts added to the stream straight from memory
    spooled: int = 0  # alerts written to the spool
    replayed: int = 0  # spooled alerts later added to the stream
    dropped: int = 0  # alerts lost: spool full or not serialisable (each one logged)
    deduplicated: int = 0  # alerts Redis already held (lost reply, earlier run), not re-added
    redis_errors: int = 0
    batches: int = 0  # script calls that succeeded
    stats_published: int = 0
    stats_dropped: int = 0
    spool_corrupt: int = 0  # torn/corrupt spool records skipped

    def snapshot(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class AlertPublisher:
    """Buffers alerts and appends them to the stream in batches; spools when Redis is away."""

    def __init__(self, cfg: BusConfig) -> None:
        self.cfg = cfg
        self.stats = BusStats()
        self._settings = cfg.redis_settings()
        self._client: Any = connect(self._settings, retries=0)
        self._script = self._client.register_script(_APPEND_BATCH_LUA)
        self._hwm_key = same_slot_key(cfg.stream, f":hwm:{cfg.sensor_id}")
        self._spool = Spool(cfg.spool_dir, cfg.spool_max_bytes)
        self._buffer: list[tuple[int, bytes]] = []
        self._last_seq = self._spool.max_seq()
        self._last_flush = time.monotonic()
        self._retry_at = 0.0  # monotonic time before which Redis is not tried again
        self._down = False  # inside an outage (logged once when it starts and when it ends)
        self._synced_hwm = False  # high-water mark read since the last (re)connection
        self._closed = False
        if not self._spool.is_empty():
            log.info("bus: %s holds alerts from a previous run; they are replayed first",
                     cfg.spool_dir)  # fmt: skip

    # -- the interface the pipeline calls ------------------------------------------------

    def publish(self, record: dict) -> None:
        """Queue one alert; sends a batch when it is full or the flush interval has passed."""
        try:
            payload = orjson.dumps(record, option=orjson.OPT_NON_STR_KEYS)
        except TypeError as exc:
            self._log_drop(record, f"not serialisable: {exc}")
            return
        self.publish_serialised(payload)

    def publish_serialised(self, payload: bytes) -> None:
        """:meth:`publish` for a record the caller already serialised (the fast path did)."""
        self._buffer.append((self._next_seq(), payload))
        if len(self._buffer) >= self.cfg.batch_size:
            self.flush()
        else:
            self.tick()

    def tick(self) -> None:
        """Flush if the interval has passed (call when idle so a lone alert does not wait)."""
        if time.monotonic() - self._last_flush >= self.cfg.flush_interval_s:
            self.flush()

    def publish_stats(self, record: dict) -> None:
        """Append one stats snapshot to the stats stream; dropped (counted) during an outage."""
        if not self._redis_due():
            self.stats.stats_dropped += 1
            return
        payload = orjson.dumps(record, option=orjson.OPT_NON_STR_KEYS)
        fields = {"stats": payload, "sensor": self.cfg.sensor_id}
        try:
            self._client.xadd(self.cfg.stats_stream, fields, maxlen=self.cfg.stats_maxlen,
                              approximate=True)  # fmt: skip
        except redis.RedisError as exc:
            self.stats.stats_dropped += 1
            self._went_down(exc)
            return
        self.stats.stats_published += 1

    def flush(self) -> None:
        """Push everything buffered to Redis, or to the spool if Redis cannot take it now."""
        self._last_flush = time.monotonic()
        if self._redis_due() and self._sync_hwm() and self._replay_spool():
            while self._buffer:
                chunk = self._buffer[: self.cfg.batch_size]
                if not self._send(chunk):
                    break
                del self._buffer[: len(chunk)]
                self.stats.published += len(chunk)
        if self._buffer:
            self._spool_buffer()

    def close(self) -> None:
        """Flush (replaying as much of the spool as Redis takes), then release everything."""
        if self._closed:
            return
        self.flush()
        while self._redis_due() and not self._spool.is_empty():
            errors = self.stats.redis_errors
            self._replay_spool()
            if self.stats.redis_errors != errors:
                break  # Redis went away again: the rest waits for the next run
        self._closed = True
        self._spool.close()
        self.stats.spool_corrupt = self._spool.corrupt_records
        try:
            self._client.close()
        except redis.RedisError:
            pass

    @property
    def spool_bytes(self) -> int:
        return self._spool.size_bytes

    # -- sending -------------------------------------------------------------------------

    def _send(self, chunk: list[tuple[int, bytes]]) -> bool:
        """One batch in one script call; False (Redis marked down) on any Redis trouble."""
        args: list[Any] = [self.cfg.maxlen, self.cfg.sensor_id]
        for seq, payload in chunk:
            args.append(str(seq).zfill(SEQ_WIDTH))
            args.append(payload)
        try:
            _added, skipped = self._script(keys=[self.cfg.stream, self._hwm_key], args=args)
        except redis.RedisError as exc:
            self._went_down(exc)
            return False
        self.stats.batches += 1
        self.stats.deduplicated += int(skipped)
        if self._down:
            self._down = False
            log.warning("bus: redis at %s is reachable again", self._settings.where)
        return True

    def _sync_hwm(self) -> bool:
        """Once per connection: never number new alerts below what Redis already holds.

        Sequence numbers follow the wall clock; if it stepped back across a restart, fresh
        alerts would look like duplicates to the script, so they are renumbered above the mark.
        """
        if self._synced_hwm:
            return True
        try:
            raw = self._client.get(self._hwm_key)
        except redis.RedisError as exc:
            self._went_down(exc)
            return False
        self._synced_hwm = True
        hwm = int(raw) if raw is not None else 0
        if hwm >= self._last_seq:
            self._last_seq = hwm
            self._buffer = [(self._next_seq(), payload) for _seq, payload in self._buffer]
        return True

    def _replay_spool(self) -> bool:
        """Replay up to ``replay_batches_per_flush`` batches; True when the spool is empty."""
        for _ in range(self.cfg.replay_batches_per_flush):
            chunk = self._spool.peek(self.cfg.batch_size)
            if not chunk:
                return True
            if not self._send(chunk):
                return False
            self._spool.consume(len(chunk))
            self.stats.replayed += len(chunk)
        return self._spool.is_empty()

    def _spool_buffer(self) -> None:
        for seq, payload in self._buffer:
            try:
                kept = self._spool.append(seq, payload)
            except (OSError, ConfigError) as exc:  # disk full, directory gone: still no crash
                self._log_drop(payload, f"spool {self.cfg.spool_dir} cannot be written: {exc}")
                continue
            if kept:
                self.stats.spooled += 1
            else:
                self._log_drop(payload, f"spool {self.cfg.spool_dir} is full "
                                        f"({self.cfg.spool_max_bytes} bytes)")  # fmt: skip
        try:
            self._spool.sync()
        except OSError as exc:
            log.error("bus: spool %s cannot be flushed: %s", self.cfg.spool_dir, exc)
        self._buffer.clear()

    # -- outage bookkeeping --------------------------------------------------------------

    def _redis_due(self) -> bool:
        return time.monotonic() >= self._retry_at

    def _went_down(self, exc: BaseException) -> None:
        self.stats.redis_errors += 1
        self._retry_at = time.monotonic() + self.cfg.retry_interval_s
        self._synced_hwm = False
        if not self._down:
            self._down = True
            log.warning("bus: redis at %s failed (%s); spooling alerts to %s until it is back",
                        self._settings.where, type(exc).__name__, self.cfg.spool_dir)  # fmt: skip

    def _log_drop(self, alert: dict | bytes, why: str) -> None:
        self.stats.dropped += 1
        count = self.stats.dropped
        if count <= DROP_LOG_DETAILED:
            log.error("bus: alert dropped (%s): %s", why, _describe(alert))
        elif count % DROP_LOG_EVERY == 0:
            log.error("bus: %d alerts dropped so far (%s); latest: %s", count, why,
                      _describe(alert))  # fmt: skip

    def _next_seq(self) -> int:
        # The wall clock makes numbers grow across restarts; +1 keeps them strictly increasing.
        seq = max(self._last_seq + 1, time.time_ns())
        self._last_seq = seq
        return seq


def _describe(alert: dict | bytes) -> str:
    """A short identity of a dropped alert for the log: signature id, flow and timestamp."""
    if isinstance(alert, bytes):
        try:
            alert = orjson.loads(alert)
        except orjson.JSONDecodeError:
            return f"{len(alert)} unreadable bytes"
    if not isinstance(alert, dict):
        return "not an object"
    sig = alert.get("alert")
    if not isinstance(sig, dict):
        sig = {}
    return (
        f"sid={sig.get('signature_id')} {alert.get('src_ip')}:{alert.get('src_port')} -> "
        f"{alert.get('dest_ip')}:{alert.get('dest_port')} flow_id={alert.get('flow_id')} "
        f"ts={alert.get('timestamp')}"
    )
