"""TCP flag combinations no honest stack sends, as named anomalies, counts and alerts.

Scope: the flag anomalies Suricata has no decoder event for (``tcp.flags_syn_fin``,
``tcp.flags_syn_rst``, ``tcp.flags_null``, ``tcp.flags_xmas``, ``tcp.flags_fin_no_ack``),
as predicates over a decoded packet (shared with the ``decode-event`` keyword in
signatures/events.py, which is why they are computed from the header instead of being
attached by an observer that runs after detection), and ``AnomalyDetector``, a
PacketObserver that counts them and, when configured, alerts at most once per source and
anomaly per cooldown.

Non-goals: decoder and stream events (the decoder and stream engine attach and count those;
rules match them with ``decode-event``/``stream-event``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from sensor.behaviour.settings import AnomalyConfig
from sensor.behaviour.sigs import behaviour_signature
from sensor.behaviour.table import LruTable
from sensor.packet import IPPROTO_TCP, TH_ACK, TH_FIN, TH_PUSH, TH_RST, TH_SYN, TH_URG, Packet
from signatures.rule import Signature

_CORE = TH_FIN | TH_SYN | TH_RST | TH_PUSH | TH_ACK | TH_URG  # ECE/CWR are ECN, not anomalies
_XMAS = TH_FIN | TH_PUSH | TH_URG


def _tcp_flags(p: Packet) -> int:
    """Flags of a decoded TCP header, or -1 when the packet has none."""
    if p.proto != IPPROTO_TCP or p.l4_off < 0:
        return -1
    return p.tcp_flags


# name -> predicate over the flags byte; the order is the precedence for alerting (an
# Xmas probe that also sets SYN is reported as Xmas).
FLAG_ANOMALIES: dict[str, Callable[[int], bool]] = {
    "tcp.flags_null": lambda f: f & _CORE == 0,
    "tcp.flags_xmas": lambda f: f & _XMAS == _XMAS,
    "tcp.flags_syn_fin": lambda f: f & (TH_SYN | TH_FIN) == TH_SYN | TH_FIN,
    "tcp.flags_syn_rst": lambda f: f & (TH_SYN | TH_RST) == TH_SYN | TH_RST,
    "tcp.flags_fin_no_ack": lambda f: f & (TH_FIN | TH_ACK) == TH_FIN,
}

_SIDS = {
    "tcp.flags_null": (9100001, "SEKIMORI ANOMALY TCP packet without flags (NULL)"),
    "tcp.flags_xmas": (9100002, "SEKIMORI ANOMALY TCP FIN+PSH+URG (Xmas)"),
    "tcp.flags_syn_fin": (9100003, "SEKIMORI ANOMALY TCP SYN and FIN together"),
    "tcp.flags_syn_rst": (9100004, "SEKIMORI ANOMALY TCP SYN and RST together"),
    "tcp.flags_fin_no_ack": (9100005, "SEKIMORI ANOMALY TCP FIN without ACK"),
}


def flag_anomaly_check(name: str) -> Callable[[Packet], bool]:
    """The packet predicate for one flag anomaly name (KeyError when unknown)."""
    test = FLAG_ANOMALIES[name]

    def check(p: Packet) -> bool:
        f = _tcp_flags(p)
        return f >= 0 and test(f)

    return check


def classify_flags(flags: int) -> str | None:
    """The first flag anomaly the flags byte shows, or None for an ordinary combination."""
    for name, test in FLAG_ANOMALIES.items():
        if test(flags):
            return name
    return None


class AnomalyDetector:
    """Counts TCP flag anomalies; alerts on them when ``config.alert`` is set."""

    def __init__(self, config: AnomalyConfig) -> None:
        self._config = config
        self.counts: Counter[str] = Counter()
        self._last: LruTable[int] = LruTable(config.max_entries)
        self._sigs = {name: behaviour_signature(sid, msg, "protocol-command-decode",
                                                proto="tcp", target="dest_ip")
                      for name, (sid, msg) in _SIDS.items()}  # fmt: skip
        self.alerts = 0

    def observe(self, p: Packet) -> list[Signature] | None:
        f = _tcp_flags(p)
        # Fast exit for the common case: ACK set and none of SYN/FIN/RST mixed oddly.
        if f < 0 or (f & TH_ACK and not f & (TH_SYN | TH_RST) and f & _XMAS != _XMAS):
            return None
        name = classify_flags(f)
        if name is None:
            return None
        self.counts[name] += 1
        if not self._config.alert:
            return None
        key = (p.src, name)
        last = self._last.get(key)
        if last is not None and p.ts_sec - last < self._config.cooldown:
            return None
        self._last.put(key, p.ts_sec)
        self.alerts += 1
        return [self._sigs[name]]

    def stats(self) -> dict[str, int]:
        return {**{f"anomaly.{k}": v for k, v in self.counts.items()},
                "anomaly.alerts": self.alerts, "anomaly.tracked": len(self._last),
                "anomaly.evicted": self._last.evictions}  # fmt: skip

    def close(self) -> None:
        pass
