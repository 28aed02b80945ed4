"""Exceptions at run time: pass entries, suppressions, thresholds and rate filters.

Scope: ``ExceptionState.check`` decides for one alert whether an exception silences it or
changes its action, with Suricata's semantics for the threshold.config entries:

- suppress: no track → every alert of the sid; ``by_src``/``by_dst``/``by_either`` → when
  that address is in the listed networks. ``sig_id 0`` means every rule of the gid.
- threshold ``limit``: the first ``count`` alerts per track key in a ``seconds`` window;
  ``threshold``: every ``count``-th; ``both``: once per window after ``count`` matches.
- rate_filter: more than ``count`` matches in ``seconds`` switch the action to
  ``new_action`` for ``timeout`` seconds (``pass`` silences, ``drop``/``reject`` mark the
  alert as would-block evidence).

Time is the packet's time (so a replay of a capture decides exactly as the live run did).
An exception past its ``expires`` date no longer applies. Each exception that silences or
changes an alert is counted in ``hits`` (its key → count and last time) for ``tune``.

Non-goals: parsing (loader.py), the rule's own ``threshold:`` keyword (the engine's).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, field
from typing import Any

from sensor.policy.model import AnyException, Network, PassRule, Policy, RateFilter, Threshold

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_STATE_LIMIT = 100_000  # track keys per exception kept before the oldest windows are dropped


@dataclass(frozen=True, slots=True)
class AlertView:
    """The parts of an alert exceptions look at."""

    gid: int
    sid: int
    src: Address | None
    dst: Address | None
    proto: str
    dport: int | None
    flow_id: int | None
    ts: float


@dataclass(frozen=True, slots=True)
class Verdict:
    suppressed_by: AnyException | None = None
    rate_action: str | None = None
    rate_filter: RateFilter | None = None


@dataclass(slots=True)
class Hit:
    count: int = 0
    last: float = 0.0


def view_of(record: dict[str, Any], ts: float) -> AlertView:
    alert = record.get("alert") or {}
    return AlertView(
        gid=int(alert.get("gid", 1)), sid=int(alert.get("signature_id", 0)),
        src=_addr(record.get("src_ip")), dst=_addr(record.get("dest_ip")),
        proto=str(record.get("proto", "")).lower(), dport=record.get("dest_port"),
        flow_id=record.get("flow_id"), ts=ts,
    )  # fmt: skip


def _addr(value: object) -> Address | None:
    try:
        return ipaddress.ip_address(str(value))
    except ValueError:
        return None


def _in(addr: Address | None, nets: tuple[Network, ...]) -> bool:
    return addr is not None and any(addr.version == n.version and addr in n for n in nets)


def _selects(gid: int, sid: int, view: AlertView) -> bool:
    return gid == view.gid and (sid == 0 or sid == view.sid)


def _track_key(track: str, view: AlertView) -> object:
    if track == "by_src":
        return view.src
    if track == "by_dst":
        return view.dst
    if track == "by_both":
        return (view.src, view.dst)
    if track == "by_flow":
        return view.flow_id
    return None  # by_rule


def _passes(rule: PassRule, view: AlertView) -> bool:
    return (
        (not rule.sids or view.sid in rule.sids)
        and (not rule.src or _in(view.src, rule.src))
        and (not rule.dst or _in(view.dst, rule.dst))
        and (rule.proto is None or rule.proto == view.proto)
        and (not rule.dst_ports or view.dport in rule.dst_ports)
    )


@dataclass
class ExceptionState:
    """Windows and counters for one policy version (rebuilt when the policy reloads)."""

    policy: Policy
    windows: dict[tuple[int, object], list[float]] = field(default_factory=dict)
    hits: dict[str, Hit] = field(default_factory=dict)

    def check(self, view: AlertView, today: dt.date) -> Verdict:
        p = self.policy
        for rule in p.passes:
            if not rule.meta.expired(today) and _passes(rule, view):
                return self._hit(Verdict(suppressed_by=rule), rule, view.ts)
        for sup in p.suppressions:
            if sup.meta.expired(today) or not _selects(sup.gid, sup.sid, view):
                continue
            if (sup.track is None
                    or (sup.track in ("by_src", "by_either") and _in(view.src, sup.networks))
                    or (sup.track in ("by_dst", "by_either") and _in(view.dst, sup.networks))):  # fmt: skip
                return self._hit(Verdict(suppressed_by=sup), sup, view.ts)
        for index, thr in enumerate(p.thresholds):
            if not thr.meta.expired(today) and _selects(thr.gid, thr.sid, view):
                if not self._threshold_allows(index, thr, view):
                    return self._hit(Verdict(suppressed_by=thr), thr, view.ts)
                break  # one threshold per sid applies, as in Suricata
        for index, rf in enumerate(p.rate_filters):
            if not rf.meta.expired(today) and _selects(rf.gid, rf.sid, view):
                action = self._rate_action(index, rf, view)
                if action is None:
                    break
                if action == "pass":
                    return self._hit(Verdict(suppressed_by=rf), rf, view.ts)
                return self._hit(Verdict(rate_action=action, rate_filter=rf), rf, view.ts)
        return Verdict()

    def _hit(self, verdict: Verdict, exc: AnyException, ts: float) -> Verdict:
        hit = self.hits.setdefault(exc.key, Hit())
        hit.count += 1
        hit.last = max(hit.last, ts)
        return verdict

    def _window(self, key: tuple[int, object]) -> list[float]:
        if len(self.windows) > _STATE_LIMIT:
            self.windows.clear()  # bounded memory beats exact counts for runaway trackers
        return self.windows.setdefault(key, [0.0, 0.0, 0.0])  # start, count, (rate) until

    def _threshold_allows(self, index: int, thr: Threshold, view: AlertView) -> bool:
        w = self._window((index, _track_key(thr.track, view)))
        if w[1] == 0 or view.ts - w[0] >= thr.seconds:
            w[0], w[1] = view.ts, 0
        w[1] += 1
        if thr.type == "limit":
            return w[1] <= thr.count
        if thr.type == "threshold":
            if w[1] >= thr.count:
                w[1] = 0
                w[0] = view.ts
                return True
            return False
        return w[1] == thr.count  # both: once per window, when the count is reached

    def _rate_action(self, index: int, rf: RateFilter, view: AlertView) -> str | None:
        w = self._window((1_000_000 + index, _track_key(rf.track, view)))
        if w[2] and view.ts < w[2]:
            return rf.new_action
        if w[2] or w[1] == 0 or view.ts - w[0] >= rf.seconds:
            w[0], w[1], w[2] = view.ts, 0, 0.0  # after a timeout counting starts afresh
        w[1] += 1
        if w[1] > rf.count:
            w[2] = view.ts + rf.timeout
            return rf.new_action
        return None
