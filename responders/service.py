"""``sekimori respond``: read alerts from the bus, apply the policy, run the responders.

Scope: :class:`RespondService` is one member of the responders' consumer group (several
instances share the work; see responders/bus.py for claiming, dead-lettering and the
idempotency key that stops a second action on a redelivered alert). Per alert: the policy
(responders/policy.py) decides whether it triggers and whether it is enforced; every
configured responder is called in its own worker thread with a timeout and retries, in
parallel, so one slow or failing responder never holds up or stops the others; when
configured, the BlockManager (responders/blocking.py) gets the alert too. The alert is
acknowledged only after every call finished (done, skipped with a reason, or failed after
its retries). Every outcome becomes one entry of the ``sekimori:decisions`` stream; reset
verdicts (``confirmed``/``failed``) arrive later from the watch thread and are appended the
same way.

Non-goals: process supervision, the responders' own logic, reading Suricata's list/channel
modes (stream sources only).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import wait as futures_wait
from typing import Any

import orjson
import redis

from responders.builtin.log import LogResponder
from responders.builtin.tcp_reset import TcpResetResponder
from responders.bus import AlertConsumer
from responders.bus_message import BusMessage
from responders.calls import DecisionLog, IsolatedCalls, LatencyStats
from responders.config import RespondConfig
from responders.fast import FastCall, FastPath
from responders.plugin import FAILED, AlertResponder, Outcome, Responder, load_plugins
from responders.policy import decide, enforcing
from sensor.errors import BusError, ResponderError, SekimoriError
from sensor.output.redis_conn import connect

log = logging.getLogger(__name__)

BUILTINS: dict[str, type[Responder]] = {
    TcpResetResponder.name: TcpResetResponder,
    LogResponder.name: LogResponder,
}
STATS_KEY = "sekimori:respond:stats"  # hash: consumer name -> JSON snapshot
_INFLIGHT = 10_000  # alerts remembered for follow-up verdicts (reset confirmations)


def build_responders(cfg: RespondConfig) -> dict[str, AlertResponder]:
    """Instances of the configured responders; ResponderError naming a broken one."""
    known = load_plugins(BUILTINS)
    out: dict[str, AlertResponder] = {}
    for name in cfg.responders:
        cls = known.get(name)
        if cls is None:
            raise ResponderError(f"unknown responder '{name}' (known: {', '.join(sorted(known))})")
        if not issubclass(cls, AlertResponder):
            raise ResponderError(f"responder '{name}' blocks addresses; configure it under "
                                 "[blocks], not respond.responders")  # fmt: skip
        try:
            out[name] = cls(cfg.table(name))
        except SekimoriError:
            raise
        except Exception as exc:
            raise ResponderError(f"responder '{name}' cannot be configured: "
                                 f"{type(exc).__name__}: {exc}") from exc  # fmt: skip
    return out


def _load_block_manager(cfg: RespondConfig) -> Any:
    """The BlockManager when ``[blocks]`` is configured and the module is installed."""
    if cfg.blocks is None:
        return None
    try:
        from responders import blocking
        from responders.block_config import parse_blocks
    except ImportError:
        log.warning("respond: [blocks] is configured but responders.blocking is not available")
        return None
    table = parse_blocks(cfg.blocks, default_redis_url=cfg.consumer.redis.url)
    return blocking.BlockManager(table)


class RespondService:
    def __init__(self, cfg: RespondConfig, *, client: Any = None,
                 responders: Mapping[str, AlertResponder] | None = None,
                 block_manager: Any = None) -> None:  # fmt: skip
        self.cfg = cfg
        self._client = client if client is not None else connect(cfg.consumer.redis, retries=1)
        self.consumer = AlertConsumer(cfg.consumer, self._client)
        self.decisions = DecisionLog(self._client, cfg)
        self.responders = dict(responders) if responders is not None else build_responders(cfg)
        self.blocks = block_manager if block_manager is not None else _load_block_manager(cfg)
        self.counts: Counter[str] = Counter()  # "responder:outcome" -> n
        self._consecutive_failures = 0
        self._last_action = ""
        self._last_action_ts = 0.0
        self._stats_every_s = 10.0
        self.latency = LatencyStats()
        self._calls = {name: IsolatedCalls(name, cfg.call(name)) for name in self.responders}
        if self.blocks is not None:
            self._calls["blocks"] = IsolatedCalls("blocks", cfg.call("blocks"))
        self._inflight: OrderedDict[int, tuple[BusMessage, bool, Mapping[str, Any]]] = OrderedDict()
        self.fast = FastPath(cfg, self.responders) if cfg.fast_socket else None
        # Per message being processed: when it was read, and its fast-path calls.
        self._early: dict[str, tuple[float, dict[str, Future[Outcome]]]] = {}
        self._lock = threading.Lock()
        self._started: list[Responder] = []

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start every responder (a failure names it) and make sure the groups exist."""
        for name, responder in self.responders.items():
            hook = getattr(responder, "set_followup", None)
            if callable(hook):
                hook(self._followup)
            try:
                responder.start()
            except Exception as exc:
                self.stop()
                if isinstance(exc, SekimoriError):
                    raise ResponderError(f"responder '{name}' failed to start: {exc}") from exc
                raise ResponderError(f"responder '{name}' failed to start: "
                                     f"{type(exc).__name__}: {exc}") from exc  # fmt: skip
            self._started.append(responder)
        if self.blocks is not None:
            self.blocks.start()
        self.consumer.ensure_groups()
        if self.fast is not None:
            try:
                self.fast.start()
            except ResponderError:
                self.stop()
                raise
        # What exists now lives as long as the process: keep the cyclic collector from
        # walking it (a pause on the fast path's thread holds the GIL). stop() releases it.
        gc.freeze()

    def stop(self) -> None:
        gc.unfreeze()
        if self.fast is not None:
            self.fast.stop()
        for responder in reversed(self._started):
            try:
                responder.stop()
            except Exception:  # stop must not raise; one bad plugin must not leak the others
                log.exception("respond: stopping %s failed", getattr(responder, "name", "?"))
        self._started.clear()
        if self.blocks is not None:
            try:
                self.blocks.stop()
            except Exception:
                log.exception("respond: stopping the block manager failed")
        for call in self._calls.values():
            call.close()

    # -- the loop ----------------------------------------------------------------------------

    def run(self, stop: threading.Event, *, stats_every_s: float = 10.0) -> None:
        """Read and handle alerts until ``stop`` is set; Redis trouble is retried, not fatal."""
        self._stats_every_s = stats_every_s
        next_stats = time.monotonic() + stats_every_s
        next_reconcile = time.monotonic()
        while not stop.is_set():
            try:
                for message in self.consumer.read():
                    self.process(message)
                now = time.monotonic()
                if self.blocks is not None and now >= next_reconcile:
                    self.blocks.reconcile_once()
                    next_reconcile = now + float(
                        getattr(self.blocks.cfg, "reconcile_interval_s", 30)
                    )
                if now >= next_stats:
                    self.publish_stats()
                    next_stats = now + stats_every_s
            except BusError as exc:
                log.warning("respond: %s; retrying in 1 s", exc)
                stop.wait(1.0)
        self.publish_stats()

    def process(self, message: BusMessage) -> None:
        """One alert read from the bus: fast-path responders first, then the guarded rest.

        A first delivery of an alert (XREADGROUP gives each entry to one consumer) starts
        the responders that declare ``fast_path`` (tcp-reset: a reset is a race, and safe to
        repeat) before the idempotency key round trip; :meth:`handle`, run under the key,
        waits for them like for any other call. If the key shows the alert was already
        handled elsewhere, the early call still finishes and is recorded as a duplicate.
        """
        received = time.time()
        fast = self._claim_fast(message)
        if fast is not None:  # the fast path acted already (responders/fast.py)
            received, early = fast.received, dict(fast.futures)
        else:
            early = self._start_early(message) if message.deliveries == 1 else {}
        if early:
            # Wait (without the GIL) so the worker runs now, not after this thread's next
            # stretch of Python work on the idempotency key; handle() collects the results.
            futures_wait(early.values(), timeout=max(self._calls[n].call.timeout_s for n in early))
        self._early[message.id] = (received, early)
        try:
            result = self.consumer.handle(message, self.handle)
        finally:
            received, early = self._early.pop(message.id, (received, {}))
        if early and result.value in ("duplicate", "busy"):
            for name, future in early.items():  # handle() never ran: finish and record them
                outcome = self._calls[name].run(future.result, future)
                self._record(message, outcome, True, received, f"{result.value} delivery")
        for verdict in fast.verdicts if fast is not None else ():
            self._record(message, verdict, True)  # came back before the bus copy did

    def _claim_fast(self, message: BusMessage) -> FastCall | None:
        """This alert's fast-path calls; later verdicts about them then map to ``message``."""
        if self.fast is None:
            return None
        return self.fast.take(message.eve, lambda call: self._remember(message, True, call.eve))

    def _start_early(self, message: BusMessage) -> dict[str, Future[Outcome]]:
        fast = [(n, r) for n, r in self.responders.items() if getattr(r, "fast_path", False)]
        if not fast:
            return {}
        decision = decide(self.cfg.policy, self.cfg.mode, message.eve)
        if not (decision.triggered and decision.enforce):
            return {}
        self._remember(message, True)
        return {name: self._calls[name].submit(self._caller(r, message.eve, True))
                for name, r in fast}  # fmt: skip

    def handle(self, message: BusMessage) -> None:
        """Everything for one alert; returns when every responder has finished with it."""
        eve = message.eve
        received, early = self._early.pop(message.id, (time.time(), {}))
        decision = decide(self.cfg.policy, self.cfg.mode, eve)
        outcomes: list[tuple[Outcome, bool]] = []
        if decision.triggered:
            self._remember(message, decision.enforce)
            futures = {name: early.get(name) or
                       self._calls[name].submit(self._caller(r, eve, decision.enforce))
                       for name, r in self.responders.items()}  # fmt: skip
            for name, responder in self.responders.items():
                fn = self._caller(responder, eve, decision.enforce)
                outcome = self._calls[name].run(fn, futures[name])
                outcomes.append((outcome, decision.enforce))
        elif not self.blocks:
            outcomes.append((Outcome("policy", "skipped", decision.reason,
                                     {"decision": "no_action"}), False))  # fmt: skip
        if self.blocks is not None:
            enforce = enforcing(self.cfg.mode, eve)
            for outcome in self._block(eve, enforce):
                outcomes.append((outcome, enforce))
        for outcome, enforce in outcomes:
            self._record(message, outcome, enforce, received)

    def _caller(self, responder: AlertResponder, eve: dict[str, Any], enforce: bool
                ) -> Callable[[], Outcome]:  # fmt: skip
        return lambda: responder.respond(eve, enforce=enforce)

    def _block(self, eve: dict[str, Any], enforce: bool) -> list[Outcome]:
        box: list[list[Outcome]] = []

        def call() -> Outcome:
            box.append(list(self.blocks.handle_alert(eve, enforce)))
            return Outcome("blocks", "done")

        result = self._calls["blocks"].run(call)
        return box[0] if box and result.status != FAILED else [result]

    def _record(self, message: BusMessage, outcome: Outcome, enforce: bool,
                received: float | None = None, note: str = "") -> None:  # fmt: skip
        if received is not None and "sent_at" in outcome.details:
            # Where the capture-to-send time went: the sensor and the bus, or this process.
            outcome = Outcome(outcome.responder, outcome.status,
                              f"{outcome.reason}; {note}" if note else outcome.reason,
                              dict(outcome.details, received_at=received), outcome.elapsed_ms)  # fmt: skip
        key = f"{outcome.responder}:{outcome.details.get('decision') or outcome.status}"
        with self._lock:
            self.counts[key] += 1
            if outcome.status == "failed":
                self._consecutive_failures += 1
            else:
                self._consecutive_failures = 0
            if outcome.status == "done":
                self._last_action, self._last_action_ts = key, time.time()
        latency = outcome.details.get("latency_us")
        if isinstance(latency, int | float):
            self.latency.add(float(latency))
        self.decisions.append(message, outcome, enforce)

    # -- follow-ups (reset verdicts) ------------------------------------------------------------

    def _remember(self, message: BusMessage, enforce: bool,
                  alert: Mapping[str, Any] | None = None) -> None:  # fmt: skip
        """Verdicts about ``alert`` (default: the message's own EVE object) go to ``message``."""
        seen = message.eve if alert is None else alert
        with self._lock:
            self._inflight[id(seen)] = (message, enforce, seen)
            while len(self._inflight) > _INFLIGHT:
                self._inflight.popitem(last=False)

    def _followup(self, alert: Mapping[str, Any], outcome: Outcome) -> None:
        with self._lock:
            found = self._inflight.pop(id(alert), None)
        if found is None or found[2] is not alert:
            if self.fast is not None and self.fast.verdict(alert, outcome):
                return  # recorded when the bus copy of that alert arrives
            log.warning("respond: %s verdict for an alert no longer tracked", outcome.responder)
            return
        message, enforce, _ = found
        try:
            self._record(message, outcome, enforce)
        except BusError as exc:
            log.warning("respond: %s verdict for %s lost: %s", outcome.responder, message.id, exc)

    # -- stats ---------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        with self._lock:
            counts = dict(self.counts)
        out: dict[str, Any] = {
            "consumer": self.cfg.consumer.consumer,
            "time": time.time(),
            "bus": self.consumer.stats.snapshot(),
            "decisions": counts,
            "reset_latency": self.latency.summary(),
        }
        if self.fast is not None:
            out["fast_path"] = self.fast.stats.snapshot()
        for name, responder in self.responders.items():
            extra = getattr(responder, "stats", None)
            if callable(extra):
                out[name] = extra()
        return out

    def publish_stats(self) -> None:
        try:
            self._client.hset(STATS_KEY, self.cfg.consumer.consumer,
                                       orjson.dumps(self.stats()))  # fmt: skip
        except redis.RedisError as exc:
            log.warning("respond: stats not written: %s", exc)
        self._heartbeat()

    def _heartbeat(self) -> None:
        """The heartbeat `sekimori status` reads (lag of the group, failures, last action)."""
        from sensor.heartbeat import publish_heartbeat

        with self._lock:
            counts = dict(self.counts)
        failures = sum(n for k, n in counts.items() if k.endswith(":failed"))
        handled = sum(counts.values())
        fields = {
            "stream": self.cfg.consumer.streams[0], "group": self.cfg.consumer.group,
            "handled": handled, "failures": failures,
            "consecutive_failures": self._consecutive_failures,
            "last_action": self._last_action, "last_action_ts": self._last_action_ts,
            "interval": self._stats_every_s,
        }  # fmt: skip
        try:
            publish_heartbeat(self._client, "responder", self.cfg.consumer.consumer, fields)
        except Exception as exc:  # a heartbeat never stops the responder
            log.warning("respond: heartbeat not written: %s", exc)
