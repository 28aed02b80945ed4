"""The service's parts that stand alone: isolated calls, the decisions log, latency figures.

Scope: :class:`IsolatedCalls` runs one responder's calls on its own worker thread with a
timeout and retries (a hung or failing plugin never holds up another);
:class:`DecisionLog` appends decision records to the decisions stream;
:class:`LatencyStats` keeps the last capture-to-send latencies for p50/p99.

Non-goals: policy and ordering (responders/service.py).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import orjson
import redis

from responders.bus_message import BusMessage
from responders.config import CallConfig, RespondConfig
from responders.plugin import FAILED, Outcome
from sensor.output.redis_conn import bus_error


def percentile(samples: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None without samples."""
    if not samples:
        return None
    ordered = sorted(samples)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


class LatencyStats:
    """Capture-to-send latencies of the last ``keep`` resets, in microseconds."""

    def __init__(self, keep: int = 10_000) -> None:
        self._samples: deque[float] = deque(maxlen=keep)
        self._lock = threading.Lock()

    def add(self, us: float) -> None:
        with self._lock:
            self._samples.append(us)

    def summary(self) -> dict[str, float | int | None]:
        with self._lock:
            samples = list(self._samples)
        return {"count": len(samples), "p50_us": percentile(samples, 50),
                "p99_us": percentile(samples, 99)}  # fmt: skip


class DecisionLog:
    """Appends decision records to the decisions stream (redis-py clients are thread-safe)."""

    def __init__(self, client: Any, cfg: RespondConfig) -> None:
        self._client = client
        self._cfg = cfg

    def append(self, message: BusMessage, outcome: Outcome, enforce: bool) -> None:
        eve = message.eve
        alert = eve.get("alert") if isinstance(eve.get("alert"), dict) else {}
        assert isinstance(alert, dict)
        details = dict(outcome.details)
        fields: dict[str, Any] = {
            "alert_id": message.id,
            "alert_stream": message.source,
            "alert_key": message.idempotency_key,
            "sensor": message.sensor or "",
            "sid": str(alert.get("signature_id", "")),
            "flow_id": str(eve.get("flow_id", "")),
            "src": f"{eve.get('src_ip')}:{eve.get('src_port', '')}",
            "dest": f"{eve.get('dest_ip')}:{eve.get('dest_port', '')}",
            "responder": outcome.responder,
            "outcome": str(details.get("decision") or outcome.status),
            "status": outcome.status,
            "reason": outcome.reason,
            "enforce": "1" if enforce else "0",
            "elapsed_ms": f"{outcome.elapsed_ms:.3f}",
            "time": f"{time.time():.6f}",
            "details": orjson.dumps(details, default=str),
        }
        if "latency_us" in details:
            fields["latency_us"] = str(details["latency_us"])
        cfg = self._cfg
        try:
            self._client.xadd(cfg.decisions_stream, fields, maxlen=cfg.decisions_maxlen,
                              approximate=True)  # fmt: skip
        except redis.RedisError as exc:
            raise bus_error(cfg.consumer.redis, exc, f"writing {cfg.decisions_stream}") from exc


class IsolatedCalls:
    """One responder's calls: a worker thread, a timeout per attempt, retries on failure."""

    def __init__(self, name: str, call: CallConfig) -> None:
        self.name = name
        self.call = call
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"respond-{name}")

    def submit(self, fn: Callable[[], Outcome]) -> Future[Outcome]:
        return self._pool.submit(fn)

    def run(self, fn: Callable[[], Outcome], first: Future[Outcome] | None = None) -> Outcome:
        """Wait for ``first`` (already submitted) or submit ``fn``; retry failures."""
        started = time.perf_counter()
        attempts = self.call.retries + 1
        outcome = Outcome(self.name, FAILED, "not run")
        for attempt in range(1, attempts + 1):
            future = first if attempt == 1 and first is not None else self._pool.submit(fn)
            try:
                outcome = future.result(timeout=self.call.timeout_s)
            except FutureTimeout:
                # The hung call keeps its thread; later calls get a fresh one, not a queue.
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = ThreadPoolExecutor(max_workers=1,
                                                thread_name_prefix=f"respond-{self.name}")  # fmt: skip
                reason = f"timed out after {self.call.timeout_s:g} s"
                return Outcome(self.name, FAILED, reason, {"attempts": attempt},
                               (time.perf_counter() - started) * 1000)  # fmt: skip
            except Exception as exc:  # a plugin may raise anything: it must not stop the rest
                outcome = Outcome(self.name, FAILED, f"{type(exc).__name__}: {exc}",
                                  {"attempts": attempt})  # fmt: skip
            if outcome.status != FAILED:
                return outcome
            if attempt < attempts:
                time.sleep(self.call.retry_delay_s)
        details = dict(outcome.details, attempts=attempts)
        return Outcome(self.name, FAILED, f"{outcome.reason} (after {attempts} attempt(s))",
                       details, (time.perf_counter() - started) * 1000)  # fmt: skip

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
