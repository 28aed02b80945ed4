"""The ``tcp-reset`` responder: kill a TCP session from the side, with exact RSTs both ways.

Scope: from the flow state the sensor put in the alert (``sekimori.tcp.toserver`` is the
client's direction, ``toclient`` the server's), build one RST toward the server at the
client's next sequence number (the server's RCV.NXT) and one toward the client at the
server's next sequence number, with the MAC addresses each end last used, the VLAN tags and
the TTL of the side the RST pretends to come from; optionally ``extra`` more per direction
``extra_step`` bytes apart for data in flight. Frames leave through ``interface`` (raw
AF_PACKET). Then, when a watch interface is available, :mod:`responders.outcome` watches
the flow and the verdict (``confirmed``/``failed``) is reported through the follow-up hook
the service installs (``set_followup``).

Settings (``[respond.tcp-reset]``): ``interface`` (required), ``extra`` (0), ``extra_step``
(1460), ``max_per_flow`` (2 resets per flow), ``max_age_s`` (5: older alerts describe a
flow that has moved on), ``watch`` (true), ``watch_interface`` (default: the alert's
``in_iface``, i.e. the sensor's capture port on this host), ``confirm_window_ms`` (1000),
``grace_ms`` (1: packets seen this soon after sending were already in flight).

Non-goals: guessing sequence numbers (Snort's burst) — without the flow state in the alert
the responder skips with a reason; per-flow limits shared between service instances (each
instance counts its own; the idempotency key already stops duplicate alerts).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import datetime
from ipaddress import ip_address
from typing import Any

from responders.inject import RawSender
from responders.outcome import FlowWatcher, ResetWatch, Verdict
from responders.plugin import DONE, SKIPPED, AlertResponder, Outcome
from responders.rst_plan import End, endpoints, ends_from_alert, plan_frames
from sensor.errors import ResponderError

log = logging.getLogger(__name__)

Followup = Callable[[Mapping[str, Any], Outcome], None]
_FLOW_MEMORY = 65536  # flows remembered for max_per_flow


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _int(m: Mapping[str, Any], key: str, default: int) -> int:
    value = m.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _flow_key(alert: Mapping[str, Any]) -> tuple[Any, ...]:
    """What ``max_per_flow`` counts by: sensor, flow id and the alert's addresses."""
    return (_map(alert.get("sekimori")).get("sensor_id"), alert.get("flow_id"),
            alert.get("src_ip"), alert.get("dest_ip"))  # fmt: skip


def excluded_by_policy(ctx: Mapping[str, Any]) -> bool:
    """The organisation policy staged this rule to enforce without a reset
    (``response = ["block"]``, docs/policy.md): its annotation says ``would_reset`` false."""
    return ctx.get("stage") == "enforce" and ctx.get("would_reset") is False


def capture_time(alert: Mapping[str, Any]) -> float | None:
    """Epoch seconds of the triggering packet (the EVE timestamp), None when unreadable."""
    ts = alert.get("timestamp")
    if not isinstance(ts, str):
        return None
    try:
        return datetime.fromisoformat(ts).timestamp()
    except ValueError:
        return None


class TcpResetResponder(AlertResponder):
    name = "tcp-reset"
    fast_path = True  # started before the idempotency round trip (see service.process)

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        try:
            self.interface = str(config["interface"])
            self.extra = int(config.get("extra", 0))
            self.extra_step = int(config.get("extra_step", 1460))
            self.max_per_flow = int(config.get("max_per_flow", 2))
            self.max_age_s = float(config.get("max_age_s", 5.0))
            self.watch_enabled = bool(config.get("watch", True))
            self.watch_interface = str(config.get("watch_interface") or "")
            self.window_s = float(config.get("confirm_window_ms", 1000)) / 1000
            self.grace_s = float(config.get("grace_ms", 1)) / 1000
        except KeyError as exc:
            raise ResponderError("tcp-reset: respond.tcp-reset.interface is required") from exc
        except (TypeError, ValueError) as exc:
            raise ResponderError(f"tcp-reset: bad setting: {exc}") from exc
        self._sender = RawSender(self.interface)
        self._watchers: dict[str, FlowWatcher] = {}
        self._resets: OrderedDict[tuple, int] = OrderedDict()
        self._lock = threading.Lock()
        self._watch_lock = threading.Lock()  # calls may run on several worker threads
        self._followup: Followup | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def set_followup(self, report: Followup) -> None:
        """Where reset verdicts go (the service writes them to the decisions stream)."""
        self._followup = report

    def start(self) -> None:
        self._sender.open()
        if self.watch_enabled and self.watch_interface:
            self._watcher(self.watch_interface)

    def stop(self) -> None:
        for watcher in self._watchers.values():
            watcher.stop()
        self._watchers.clear()
        self._sender.close()

    def stats(self) -> dict[str, int]:
        out = {"confirmed": 0, "failed": 0, "watching": 0}
        for watcher in self._watchers.values():
            for key, value in watcher.stats.snapshot().items():
                out[key] += value
        return out

    def _watcher(self, interface: str) -> FlowWatcher:
        with self._watch_lock:
            watcher = self._watchers.get(interface)
            if watcher is None:
                watcher = FlowWatcher(interface)
                watcher.start()
                self._watchers[interface] = watcher
            return watcher

    # -- acting -------------------------------------------------------------------------------

    def respond(self, alert: Mapping[str, Any], *, enforce: bool) -> Outcome:
        started = time.perf_counter()
        by_sensor = _map(_map(alert.get("sekimori")).get("reset"))
        if by_sensor.get("status") in (DONE, SKIPPED):
            return self._adopt(alert, by_sensor, started)
        if excluded_by_policy(_map(alert.get("sekimori"))):
            return self._outcome(SKIPPED, "the organisation policy's response excludes reset",
                                 {"decision": "not_applicable"}, started)  # fmt: skip
        plan = self._plan(alert)
        if isinstance(plan, Outcome):
            return plan
        frames, details = plan
        if not enforce:
            return self._outcome(SKIPPED, "detect mode", dict(details, decision="would_reset"),
                                 started)  # fmt: skip
        alerted = _map(alert.get("sekimori")).get("alerted_at")
        return self._send(frames, details, _flow_key(alert), capture_time(alert),
                          alerted if isinstance(alerted, float) else None, alert, started)  # fmt: skip

    def reset_session(self, client: End, server: End, vlan: tuple[int, ...],
                      key: tuple[Any, ...], captured: float, alerted: float) -> Outcome:  # fmt: skip
        """The sensor's entry (``in_sensor``): the ends come from its flow table, the flow is
        watched by the responder that records the outcome (no watch here)."""
        started = time.perf_counter()
        frames, seqs = plan_frames(client, server, vlan, self.extra, self.extra_step)
        if not frames:
            return self._outcome(SKIPPED, "flow state lacks sequence numbers or MAC addresses",
                                 {"decision": "not_applicable"}, started)  # fmt: skip
        return self._send(frames, dict(seqs), key, captured, alerted, None, started)

    def _send(self, frames: list[bytes], details: dict[str, Any], key: tuple[Any, ...],
              captured: float | None, alerted: float | None, alert: Mapping[str, Any] | None,
              started: float) -> Outcome:  # fmt: skip
        """Send the planned frames (within ``max_per_flow``); watch when ``alert`` is given."""
        over = self._count_flow(key)
        if over:
            return self._outcome(SKIPPED, over, dict(details, decision="limit"), started)
        watcher = self._watcher_for(alert) if alert is not None else None
        if watcher is not None:
            watcher.arm()
        leaving = time.time()
        self._sender.send(frames)
        sent_at = time.time()
        # Latency ends when the first frame is handed to the kernel: on a veth or bridge the
        # send call itself carries the frame through to the receiving TCP stack, which is
        # delivery, not sending (reported separately as send_us).
        if captured is not None:
            details["latency_us"] = round((leaving - captured) * 1e6)
            if alerted is not None:  # the sensor's share: capture to alert emitted
                details["sensor_us"] = round((alerted - captured) * 1e6)
        details["send_us"] = round((sent_at - leaving) * 1e6)
        details["sent_at"] = leaving
        if watcher is not None and alert is not None:
            watcher.watch(self._watch(alert, details, sent_at))  # judged from when all left
            details["check"] = "watching"
        else:
            details["check"] = "unconfirmed: no watch on this host"
        return self._outcome(DONE, f"{len(frames)} RST(s) sent", dict(details, decision="reset"),
                             started)  # fmt: skip

    def _adopt(self, alert: Mapping[str, Any], by_sensor: Mapping[str, Any], started: float
               ) -> Outcome:  # fmt: skip
        """The sensor acted already (``in_sensor``): record its outcome and watch the flow.

        Nothing is sent again. A reset the sensor tried and failed is not adopted (the
        caller goes on and sends its own)."""
        details = dict(_map(by_sensor.get("details")), path="sensor")
        reason = str(by_sensor.get("reason", ""))
        if by_sensor.get("status") == SKIPPED:
            return self._outcome(SKIPPED, f"sensor: {reason}", details, started)
        self._count_flow(_flow_key(alert))  # a later alert of this flow meets max_per_flow here too
        first = details.get("sent_at")
        watcher = self._watcher_for(alert) if isinstance(first, float) else None
        if watcher is not None and isinstance(first, float):
            watcher.arm()
            left = first + _int(details, "send_us", 0) / 1e6  # when the last frame had left
            # Packets between the RSTs leaving and this moment were not captured by the
            # watch; a gap beyond grace_ms is said in the record (docs/responders.md).
            gap = time.time() - left - self.grace_s
            if gap > 0:
                details["watch_gap_us"] = round(gap * 1e6)
            watcher.watch(self._watch(alert, details, left))
            details["check"] = "watching"
        else:
            details["check"] = "unconfirmed: no watch on this host"
        return self._outcome(DONE, f"sensor: {reason}", details, started)

    def _plan(self, alert: Mapping[str, Any]) -> tuple[list[bytes], dict[str, Any]] | Outcome:
        """The RST frames to send, or the reason there are none (a SKIPPED outcome)."""
        started = time.perf_counter()
        ends = ends_from_alert(alert)
        if ends is None:
            return self._outcome(SKIPPED, "no TCP session state in the alert",
                                 {"decision": "not_applicable"}, started)  # fmt: skip
        captured = capture_time(alert)
        if captured is not None and time.time() - captured > self.max_age_s:
            age = time.time() - captured
            return self._outcome(SKIPPED, f"alert is {age:.1f} s old (max_age_s {self.max_age_s})",
                                 {"decision": "too_old"}, started)  # fmt: skip
        frames, seqs = plan_frames(*ends, self.extra, self.extra_step)
        if not frames:
            return self._outcome(SKIPPED, "flow state lacks sequence numbers or MAC addresses",
                                 {"decision": "not_applicable"}, started)  # fmt: skip
        return frames, dict(seqs)

    def _count_flow(self, key: tuple[Any, ...]) -> str | None:
        with self._lock:
            done = self._resets.pop(key, 0)
            self._resets[key] = done + 1
            while len(self._resets) > _FLOW_MEMORY:
                self._resets.popitem(last=False)
        if done >= self.max_per_flow:
            return f"flow already reset {done} time(s) (max_per_flow {self.max_per_flow})"
        return None

    def _watcher_for(self, alert: Mapping[str, Any]) -> FlowWatcher | None:
        if not self.watch_enabled:
            return None
        name = self.watch_interface or alert.get("in_iface")
        if not isinstance(name, str) or not name:
            return None
        try:
            watcher = self._watcher(name)
            return watcher if watcher.alive else None  # its thread ended: unconfirmed
        except ResponderError as exc:  # not on this host: resets still go out, unconfirmed
            log.warning("tcp-reset: cannot watch %s: %s", name, exc)
            self.watch_enabled = bool(self.watch_interface)
            return None

    def _watch(self, alert: Mapping[str, Any], details: Mapping[str, Any], sent_at: float
               ) -> ResetWatch:  # fmt: skip
        ends = endpoints(alert)
        assert ends is not None
        (cip, cport), (sip, sport) = ends

        def report(verdict: Verdict) -> None:
            if self._followup is not None:
                self._followup(alert, Outcome(self.name, verdict.status, verdict.reason,
                                              dict(verdict.details, decision=verdict.status)))  # fmt: skip

        ts, tc = details["to_server"], details["to_client"]
        return ResetWatch(
            client=(ip_address(cip).packed, cport), server=(ip_address(sip).packed, sport),
            to_server_seq=ts[0] if ts else None, to_client_seq=tc[0] if tc else None,
            sent_at=sent_at, window_s=self.window_s, grace_s=self.grace_s, on_verdict=report,
        )  # fmt: skip

    def _outcome(self, status: str, reason: str, details: dict[str, Any], started: float
                 ) -> Outcome:  # fmt: skip
        return Outcome(self.name, status, reason, details, (time.perf_counter() - started) * 1000)
