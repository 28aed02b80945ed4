"""The same-host fast path: act on the sensor's alert datagram, record from the bus copy.

Scope: with ``respond.fast_socket`` set, the sensor sends every TCP alert as one datagram
to this Unix socket the moment it is raised (sensor/output/fast_respond.py), ahead of the
Redis publish. :class:`FastPath` receives them on its own thread, applies the same policy
as the bus path (responders/policy.py) and runs the responders that declare ``fast_path``
(``tcp-reset``) at once, on that thread: a reset is a race against the server's answer, and
the bus hop (sensor → Redis → responder) is the largest share of capture-to-send time.

If the listener falls behind and the bus copy is handled first, the bus path acts as
without a fast path and the late datagram is dropped (counted as ``late``): one alert is
never acted on twice by this process.

The bus stays the record. When the bus copy of the same alert arrives (matched by sensor,
flow id, signature and capture timestamp), :meth:`FastPath.take` hands the finished calls to
the service, which records them in the decisions stream (``details.path = "fast"``), runs
the other responders and acknowledges the entry as for any alert. A reset verdict that
comes back before the bus copy is kept with the call and recorded then. Calls whose bus copy
does not come within ``pending_s`` (the sensor's Redis down for that long) are dropped from
memory and counted as ``unmatched``: their action happened, their record comes when the
sensor's spool is replayed and another instance acts again (a second RST at the same
sequence number is harmless).

Trust: whoever can write to the socket can ask for resets, as whoever can write to the
alert stream can; the socket is created with mode 0660 (``fast_socket_mode``) in a
directory the operator controls.

Non-goals: detect-mode decisions (``would_reset``) and non-fast responders (blocks, plugins
without ``fast_path``) — the bus path does those; several listeners on one socket.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import orjson

from responders.config import RespondConfig
from responders.plugin import FAILED, AlertResponder, Outcome
from responders.policy import decide
from sensor.errors import ResponderError

log = logging.getLogger(__name__)

_MAX_DATAGRAM = 1 << 20
_MAX_PENDING = 10_000


def alert_key(eve: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """What identifies one alert in both copies: sensor, flow, signature, capture time."""
    ctx = eve.get("sekimori")
    alert = eve.get("alert")
    if not isinstance(ctx, dict) or not isinstance(alert, dict):
        return None
    return (ctx.get("sensor_id"), eve.get("flow_id"), alert.get("signature_id"),
            eve.get("timestamp"), eve.get("pcap_cnt"))  # fmt: skip


@dataclass
class FastCall:
    """The fast-path calls for one alert, until its bus copy claims them (internal, mutable)."""

    received: float  # when the datagram was read (epoch seconds)
    eve: dict[str, Any]  # the alert as the responders saw it (verdicts refer to this object)
    futures: dict[str, Future[Outcome]] = field(default_factory=dict)
    verdicts: list[Outcome] = field(default_factory=list)  # follow-ups before the bus copy


@dataclass
class FastStats:
    received: int = 0
    acted: int = 0  # alerts the fast responders ran on
    not_triggered: int = 0  # the policy did not ask for an enforced response
    claimed: int = 0  # bus copies that found their fast calls
    late: int = 0  # datagrams that arrived after their bus copy was handled (not acted on)
    unmatched: int = 0  # fast calls whose bus copy never came (dropped after pending_s)
    malformed: int = 0

    def snapshot(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class FastPath:
    """Listens on the fast socket and runs the ``fast_path`` responders on each alert."""

    def __init__(self, cfg: RespondConfig, responders: Mapping[str, AlertResponder],
                 *, pending_s: float = 30.0) -> None:  # fmt: skip
        self.path = cfg.fast_socket
        self.mode = cfg.fast_socket_mode
        self.cfg = cfg
        self.fast = {n: r for n, r in responders.items() if getattr(r, "fast_path", False)}
        self.pending_s = pending_s
        self.stats = FastStats()
        self._pending: OrderedDict[tuple[Any, ...], FastCall] = OrderedDict()
        # Alerts whose bus copy came first (the listener fell behind): never acted on twice.
        self._bus_first: OrderedDict[tuple[Any, ...], None] = OrderedDict()
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            _remove_stale(self.path)
            sock.bind(self.path)
            os.chmod(self.path, self.mode)
            sock.settimeout(0.5)  # the loop looks at the stop flag this often
        except OSError as exc:
            sock.close()
            raise ResponderError(f"fast path: cannot listen on {self.path}: "
                                 f"{exc.strerror or exc}") from exc  # fmt: skip
        self._sock = sock
        self._thread = threading.Thread(target=self._run, name="respond-fast", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            try:
                os.unlink(self.path)
            except OSError:
                pass

    def _run(self) -> None:
        sock = self._sock
        assert sock is not None
        while not self._stop.is_set():
            try:
                data = sock.recv(_MAX_DATAGRAM)
            except TimeoutError:
                self._expire(time.time())
                continue
            except OSError as exc:
                if not self._stop.is_set():  # one line, not a thread traceback
                    log.error("fast path: receiving on %s failed (%s); alerts are handled "
                              "from the bus only from now on", self.path, exc)  # fmt: skip
                return
            try:
                self.handle(data, time.time())
            except Exception as exc:  # a bad alert must not end the listener
                self.stats.malformed += 1
                log.error("fast path: alert datagram dropped (%s: %s); its bus copy is "
                          "handled as usual", type(exc).__name__, exc)  # fmt: skip

    # -- acting -------------------------------------------------------------------------------

    def handle(self, data: bytes, received: float) -> None:
        """One datagram: decode, decide, run the fast responders on this thread."""
        self.stats.received += 1
        try:
            eve = orjson.loads(data)
        except orjson.JSONDecodeError:
            eve = None
        key = alert_key(eve) if isinstance(eve, dict) else None
        if key is None or not isinstance(eve, dict):
            self.stats.malformed += 1
            return
        decision = decide(self.cfg.policy, self.cfg.mode, eve)
        if not (decision.triggered and decision.enforce) or not self.fast:
            self.stats.not_triggered += 1
            return
        call = FastCall(received, eve, {name: Future() for name in self.fast})
        with self._lock:
            if key in self._pending:
                return  # the same alert twice: acted on already
            if key in self._bus_first:
                self.stats.late += 1  # the bus copy overtook it and was handled: nothing to do
                return
            self._pending[key] = call
        self.stats.acted += 1
        for name, responder in self.fast.items():
            started = time.perf_counter()
            try:
                outcome = responder.respond(eve, enforce=True)
            except Exception as exc:  # a plugin may raise anything; the bus path records it
                outcome = Outcome(name, FAILED, f"{type(exc).__name__}: {exc}", {},
                                  (time.perf_counter() - started) * 1000)  # fmt: skip
            details = {"path": "fast", **outcome.details}  # "sensor" when it sent them
            call.futures[name].set_result(dataclasses.replace(outcome, details=details))
        self._expire(received)

    def take(self, eve: Mapping[str, Any],
             on_claim: Callable[[FastCall], None]) -> FastCall | None:  # fmt: skip
        """The fast calls made for this bus copy's alert, if any (each handed out once).

        ``on_claim`` runs under the lock :meth:`verdict` takes, so a verdict arriving now
        finds either the pending call or whatever ``on_claim`` registered, never neither."""
        key = alert_key(eve)
        if key is None:
            return None
        with self._lock:
            call = self._pending.pop(key, None)
            if call is not None:
                on_claim(call)
            else:  # handled from the bus: a datagram arriving later must not act again
                self._bus_first[key] = None
                while len(self._bus_first) > _MAX_PENDING:
                    self._bus_first.popitem(last=False)
        if call is not None:
            self.stats.claimed += 1
        return call

    def verdict(self, alert: Mapping[str, Any], outcome: Outcome) -> bool:
        """Keep a follow-up for an alert whose bus copy has not arrived; False if unknown."""
        with self._lock:
            for call in reversed(self._pending.values()):
                if call.eve is alert:
                    call.verdicts.append(outcome)
                    return True
        return False

    def _expire(self, now: float) -> None:
        with self._lock:
            while self._pending:
                key, oldest = next(iter(self._pending.items()))
                if now - oldest.received < self.pending_s and len(self._pending) <= _MAX_PENDING:
                    break
                del self._pending[key]
                self.stats.unmatched += 1
                log.warning("fast path: no bus copy of alert sid %s flow %s within %g s",
                            key[2], key[1], self.pending_s)  # fmt: skip


def _remove_stale(path: str) -> None:
    """A socket file left by a previous run is removed; anything else at the path is not."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(f"{path} exists and is not a socket")
    os.unlink(path)
