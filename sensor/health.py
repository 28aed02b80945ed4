"""Built-in health alerts: the sensor says when it is blind or its responders are failing.

Scope: :class:`HealthMonitor` is a ``Ticker`` that raises ordinary EVE alerts (gid 1, own
sids below) through the run's alert policies and sinks, so they reach the EVE file, Redis
and every consumer like any other alert:

- 9990001 no packet for ``no_packets_s`` seconds;
- 9990002 drops above ``drop_percent`` of the packets over ``drop_window_s``;
- 9990003 a responder's consumer group lags ``responder_lag`` entries or more;
- 9990004 a responder failed ``responder_failures`` actions in a row.

Only live runs get them (a replayed capture file is not a sensor going blind). Each
fires once when its condition starts and again only after it cleared. A health alert
has no addresses (it is about the sensor, not traffic): ``src_ip``/``dest_ip``/``proto``
are left out and a ``health`` object says what was measured. Non-goals: paging anyone,
judging a ``sekimori status`` line (cli/status_cmd.py does, with the same thresholds).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from sensor.errors import BusError
from sensor.extensions import AlertEvent
from sensor.heartbeat import Heartbeat, consumer_group_lag, read_heartbeats
from sensor.opsconfig import OpsSettings
from sensor.output.alert import alert_record
from sensor.output.redis_conn import RedisSettings, connect
from sensor.packet import Packet
from signatures.build import SignatureBuilder
from signatures.classification import Classifications
from signatures.loader import load_rule_text
from signatures.rule import Signature
from signatures.ruleset import SUPPORTED_BUFFERS
from signatures.variables import Variables

log = logging.getLogger(__name__)

SID_NO_PACKETS, SID_DROPS, SID_RESPONDER_LAG, SID_RESPONDER_FAILURES = (
    9990001,
    9990002,
    9990003,
    9990004,
)
RESPONDER_CHECK_S = 10.0
LIVE_CLOCK_SKEW_S = 120.0  # a tick this close to the wall clock comes from a live capture
HEALTH_RULES = f"""
alert ip any any -> any any (msg:"SEKIMORI HEALTH sensor sees no packets"; priority:1; metadata:sekimori health; sid:{SID_NO_PACKETS}; rev:1;)
alert ip any any -> any any (msg:"SEKIMORI HEALTH capture drops above threshold"; priority:1; metadata:sekimori health; sid:{SID_DROPS}; rev:1;)
alert ip any any -> any any (msg:"SEKIMORI HEALTH responder lagging behind the alert stream"; priority:2; metadata:sekimori health; sid:{SID_RESPONDER_LAG}; rev:1;)
alert ip any any -> any any (msg:"SEKIMORI HEALTH responder actions failing"; priority:1; metadata:sekimori health; sid:{SID_RESPONDER_FAILURES}; rev:1;)
"""


def health_signatures() -> dict[int, Signature]:
    """The built-in health rules, parsed and built like any rule (sid → Signature)."""
    loaded = load_rule_text(
        HEALTH_RULES, Variables(address_groups={}, port_groups={}), file="<health>"
    )
    builder = SignatureBuilder(Classifications.load(None), SUPPORTED_BUFFERS)
    sigs = [builder.build(parsed) for parsed in loaded.rules]
    return {sig.sid: sig for sig in sigs}


def responder_figures(client: Any, hb: Heartbeat) -> tuple[int | None, int]:
    """(lag of its consumer group, consecutive failures) for one responder heartbeat."""
    lag: int | None = None
    stream, group = hb.text("stream"), hb.text("group")
    if stream and group:
        lag = consumer_group_lag(client, stream, group)
    if lag is None and "lag" in hb.fields:
        lag = int(hb.num("lag"))
    return lag, int(hb.num("consecutive_failures"))


Figures = tuple[Heartbeat, int | None, int]  # responder, group lag, consecutive failures


def _fetch_figures(client: Any) -> list[Figures] | None:
    """Every responder's figures, None when Redis does not answer."""
    try:
        beats = read_heartbeats(client, "responder")
        return [(hb, *responder_figures(client, hb)) for hb in beats]
    except BusError as exc:
        log.debug("health: responder heartbeats unavailable: %s", exc)
        return None


class _FigureFetcher:
    """A thread reading the responders' figures every ``interval_s``; the latest reading
    is taken once by the tick."""

    def __init__(self, client: Any, interval_s: float) -> None:
        self._client = client
        self._interval = interval_s
        self._latest: list[Figures] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sensor-health", daemon=True)
        self._thread.start()

    def take(self) -> list[Figures] | None:
        with self._lock:
            latest, self._latest = self._latest, None
        return latest

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=3.0)  # one read in flight at most (1 s socket timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                figures = _fetch_figures(self._client)
            except Exception as exc:  # never a thread traceback; the next round retries
                log.warning("health: responder check failed (%s: %s)", type(exc).__name__, exc)
                figures = None
            if figures is not None:
                with self._lock:
                    self._latest = figures
            self._stop.wait(self._interval)


class HealthMonitor:
    """Ticker raising the health alerts; emits through ``ext.policies`` and ``ext.sinks``."""

    def __init__(self, ext: Any, settings: OpsSettings, client: Any = None,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self._ext = ext
        self._s = settings
        self._client = client
        self._clock = clock
        self._sigs = health_signatures()
        self._active: set[tuple[int, str]] = set()  # conditions that fired and hold
        self._packets = -1
        self._packets_since = 0.0
        self._window: tuple[float, int, int] | None = None  # start, packets, drops
        self._next_responder_check = 0.0
        self._live: bool | None = None
        self._fetcher: _FigureFetcher | None = None

    def tick(self, now_sec: float, counters: Mapping[str, int]) -> None:
        if self._live is None:
            self._live = self._is_live(now_sec)
        if not self._live:
            return
        self._check_packets(now_sec, counters.get("capture.packets", 0))
        drops = counters.get("capture.kernel_drops", 0) + counters.get("capture.iface_drops", 0)
        self._check_drops(now_sec, counters.get("capture.packets", 0), drops)
        if self._fetcher is not None:  # live: the thread did the Redis reads
            fetched = self._fetcher.take()
            if fetched is not None:
                self._judge_responders(now_sec, fetched)
            return
        wall = self._clock()
        if self._client is not None and wall >= self._next_responder_check:
            self._next_responder_check = wall + RESPONDER_CHECK_S
            figures = _fetch_figures(self._client)
            if figures is not None:
                self._judge_responders(now_sec, figures)

    def background(self) -> None:
        """Read the responders' figures from a thread of its own from now on (a live
        sensor): those Redis reads (~1 ms, up to the 1 s socket timeout while Redis is
        unreachable) must not stall the packet loop. The tick judges what was read."""
        if self._client is not None and self._fetcher is None:
            self._fetcher = _FigureFetcher(self._client, RESPONDER_CHECK_S)

    def close(self) -> None:
        if self._fetcher is not None:
            self._fetcher.close()
            self._fetcher = None

    def _is_live(self, now_sec: float) -> bool:
        """Health is about a running sensor: a capture file (replayed, compared against
        Suricata) never gets health alerts. Ticks of a live run carry the wall clock."""
        info = getattr(self._ext, "run_info", None) or {}
        if info.get("iface") or info.get("pcap"):
            return bool(info.get("iface"))
        return abs(now_sec - self._clock()) < LIVE_CLOCK_SKEW_S

    def _check_packets(self, now: float, packets: int) -> None:
        if packets != self._packets:
            self._packets, self._packets_since = packets, now
            self._clear(SID_NO_PACKETS, "")
            return
        quiet = now - self._packets_since
        if quiet >= self._s.no_packets_s:
            self._raise(SID_NO_PACKETS, "", now, {"check": "no_packets",
                        "seconds": round(quiet), "threshold": self._s.no_packets_s})  # fmt: skip

    def _check_drops(self, now: float, packets: int, drops: int) -> None:
        if self._window is None or packets < self._window[1] or drops < self._window[2]:
            self._window = (now, packets, drops)  # first tick, or counters restarted
            return
        start, p0, d0 = self._window
        if now - start < self._s.drop_window_s:
            return
        self._window = (now, packets, drops)
        dp, dd = packets - p0, drops - d0
        pct = 100.0 * dd / (dp + dd) if dp + dd else 0.0
        if dd and pct > self._s.drop_percent:
            self._raise(SID_DROPS, "", now, {"check": "drops", "percent": round(pct, 3),
                        "dropped": dd, "window_s": self._s.drop_window_s,
                        "threshold": self._s.drop_percent})  # fmt: skip
        else:
            self._clear(SID_DROPS, "")

    def _judge_responders(self, now: float, figures: list[Figures]) -> None:
        for hb, lag, failures in figures:
            if lag is not None and self._s.responder_lag and lag >= self._s.responder_lag:
                self._raise(SID_RESPONDER_LAG, hb.id, now, {"check": "responder_lag",
                            "responder": hb.id, "lag": lag,
                            "threshold": self._s.responder_lag})  # fmt: skip
            else:
                self._clear(SID_RESPONDER_LAG, hb.id)
            if self._s.responder_failures and failures >= self._s.responder_failures:
                self._raise(SID_RESPONDER_FAILURES, hb.id, now, {"check": "responder_failures",
                            "responder": hb.id, "consecutive_failures": failures,
                            "threshold": self._s.responder_failures})  # fmt: skip
            else:
                self._clear(SID_RESPONDER_FAILURES, hb.id)

    def _clear(self, sid: int, subject: str) -> None:
        self._active.discard((sid, subject))

    def _raise(self, sid: int, subject: str, now: float, details: dict[str, object]) -> None:
        if (sid, subject) in self._active:
            return
        self._active.add((sid, subject))
        sig = self._sigs[sid]
        log.warning("health: %s (%s)", sig.msg, details)
        p = Packet(0, int(now), int((now % 1) * 1_000_000), 1, b"")
        info = getattr(self._ext, "run_info", None) or {}
        p.iface = info.get("iface")
        record = alert_record(sig, p)
        for key in ("src_ip", "dest_ip", "proto"):
            record.pop(key, None)
        record["health"] = details
        event = AlertEvent(record, sig, p)
        if not all(policy.annotate(event) for policy in self._ext.policies):
            return
        for sink in self._ext.sinks:
            sink.write(event)


def register(ext: Any, config: Any, settings: OpsSettings) -> None:
    """Add the health alerts to ``ext`` (responder checks only with a Redis URL)."""
    if not settings.health_alerts:
        return
    client = None
    if config.output.redis_url:
        client = connect(RedisSettings(url=config.output.redis_url, connect_timeout_s=0.5,
                                       socket_timeout_s=1.0))  # fmt: skip
    ext.tickers.append(HealthMonitor(ext, settings, client))
