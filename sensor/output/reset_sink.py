"""TCP resets sent by the sensor itself (``respond.tcp-reset.in_sensor``), the moment it alerts.

Scope: :class:`ResetSink` is the first alert sink on a live interface when the operator
turns ``in_sensor`` on. For each TCP alert that the response policy enforces (the same
``respond.policy`` and ``respond.mode`` the responder applies, responders/policy.py) it runs
the ``tcp-reset`` responder's own code (responders/builtin/tcp_reset.py: the exact
sequence numbers, MACs, VLAN tags, TTL, ``extra``, ``max_per_flow``) in the packet loop,
and writes what it did into the alert (``sekimori.reset``: status, reason, details with
``latency_us``), so the EVE record and the bus copy carry the evidence.

Why: a reset is a race, and on a shared 2-core machine every process hop after detection
costs more than detection itself (the datagram hand-over, the responder's wake-up on cold
caches: ~300 µs of ~500 µs capture-to-send, docs/performance.md). Suricata's own ``reject``
is sent by the detecting thread for the same reason.

What stays with ``sekimori respond``: the record (it adopts the sensor's outcome into the
decisions stream with ``path: sensor`` instead of sending again), watching the flow for the
verdict (``confirmed``/``failed``), blocks and every other responder. A reset the sensor
could not send (``status: failed``) is sent by the responder as without this option.

Non-goals: detect mode (nothing is sent; the responder records ``would_reset``), capture
files (there is no session to reset), non-TCP alerts.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from responders.builtin.tcp_reset import TcpResetResponder, excluded_by_policy
from responders.config import RespondConfig
from responders.plugin import DONE, FAILED, Outcome
from responders.policy import Decision, decide
from responders.rst_plan import End
from sensor.errors import ResponderError
from sensor.extensions import AlertEvent
from sensor.packet import Packet
from signatures.rule import Signature

log = logging.getLogger(__name__)


def in_sensor(cfg: RespondConfig) -> bool:
    """Whether the operator asked the sensor to send TCP resets itself."""
    return "tcp-reset" in cfg.responders and cfg.table("tcp-reset").get("in_sensor") is True


class ResetSink:
    """Runs ``tcp-reset`` on enforced TCP alerts before any other sink sees them."""

    def __init__(self, cfg: RespondConfig, mode: str, sensor_id: str) -> None:
        self._policy = cfg.policy
        self._respond_mode = cfg.mode
        self._mode = mode  # the sensor's, as the alert's sekimori.mode says to the policy
        self._sensor_id = sensor_id
        # The watch (a second capture of the SPAN port) stays with the responder.
        table = dict(cfg.table("tcp-reset"), watch=False)
        self._reset = TcpResetResponder(table)
        self._reset.start()  # opens the injection socket: a bad interface fails the start
        self.sent = 0
        self.failed = 0
        self._decisions: dict[tuple[Any, ...], Decision] = {}  # bounded by the ruleset's size
        self._early: tuple[Signature, Packet, dict[str, Any] | None] | None = None

    def act_first(self, sig: Signature, p: Packet) -> None:
        """Reset before the EVE record exists (the packet loop calls this only when no
        policy can veto the alert); :meth:`write` then puts the outcome in the record."""
        self._early = (sig, p, self._act(sig, p, None, sig.category))

    def write(self, event: AlertEvent) -> None:
        early, self._early = self._early, None
        if early is not None and early[0] is event.signature and early[1] is event.packet:
            reset = early[2]
        else:
            record = event.record
            reset = self._act(event.signature, event.packet, record.get("sekimori"),
                              record["alert"].get("category"))  # fmt: skip
        if reset is not None:
            event.record.setdefault("sekimori", {})["reset"] = reset

    def _act(self, sig: Signature, p: Packet, annotations: dict[str, Any] | None,
             category: str | None) -> dict[str, Any] | None:  # fmt: skip
        """Reset the session if the response policy enforces this alert; the outcome as it
        goes into the alert (``sekimori.reset``), None when not acted on."""
        flow = p.flow
        if p.proto != 6 or flow is None or not flow.tcp_session:
            return None
        alerted = time.time()
        decision = self._decide(sig, annotations, category)
        if not (decision.triggered and decision.enforce) or excluded_by_policy(annotations or {}):
            return None  # (a policy's exclusion: the responder records why, from the same)
        client, server = _ends(p, flow)
        key = (self._sensor_id, flow.flow_id, p.src, p.dst)
        try:
            outcome = self._reset.reset_session(client, server, p.vlan, key,
                                                p.ts_sec + p.ts_usec / 1e6, alerted)  # fmt: skip
        except (ResponderError, OSError) as exc:  # the responder sends instead
            outcome = Outcome(self._reset.name, FAILED, str(exc), {})
            self.failed += 1
            log.error("in-sensor reset failed (%s); the responder will send it", exc)
        else:
            self.sent += outcome.status == DONE
        return {"status": outcome.status, "reason": outcome.reason,
                "details": dict(outcome.details, policy=decision.reason)}  # fmt: skip

    def _decide(self, sig: Signature, annotations: dict[str, Any] | None,
                category: str | None) -> Decision:  # fmt: skip
        """The responder's decision on the alert as the bus copy will carry it: the
        organisation policy's annotations (stage, the mode they imply) win over the
        sensor's mode, as in RedisSink. Without annotations the decision depends only on
        the rule and the mode: it is made once per rule."""
        rule = (sig.gid, sig.sid, sig.rev, sig.action, category, sig.severity)
        if not annotations and (cached := self._decisions.get(rule)) is not None:
            return cached
        probe = {
            "event_type": "alert",
            "alert": {"signature_id": sig.sid, "category": category, "severity": sig.severity},
            "sekimori": {"rule_action": sig.action, "mode": self._mode, **(annotations or {})},
        }
        decision = decide(self._policy, self._respond_mode, probe)
        if not annotations:
            self._decisions[rule] = decision
        return decision

    stats_prefix = "respond"  # its counters: respond.sensor_resets, respond.sensor_reset_failures

    @property
    def stats(self) -> ResetSink:
        return self

    def snapshot(self) -> dict[str, int]:
        return {"sensor_resets": self.sent, "sensor_reset_failures": self.failed}

    def close(self) -> None:
        self._reset.stop()


def _ends(p: Packet, flow: Any) -> tuple[End, End]:
    """Client and server as the flow table knows them (what the alert's response context
    would say, without the round trip through text)."""
    size = 4 if flow.ipver == 4 else 16
    # A direction without a recorded MAC takes the packet's, by the packet's direction.
    macs = (p.src_mac, p.dst_mac) if p.to_server else (p.dst_mac, p.src_mac)
    ends = []
    for addr, port, d, mac in ((flow.src, flow.sport, flow.toserver, macs[0]),
                               (flow.dst, flow.dport, flow.toclient, macs[1])):  # fmt: skip
        if d is None:
            ends.append(End(addr.to_bytes(size, "big"), port, mac or b"", None, 0, 64))
        else:
            ends.append(End(addr.to_bytes(size, "big"), port, d.mac or mac or b"", d.next_seq,
                            d.window, d.ttl))  # fmt: skip
    return ends[0], ends[1]
