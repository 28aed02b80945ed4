"""Port scans: vertical, horizontal and slow, for TCP SYN/FIN/NULL/Xmas and UDP probes.

Scope: ``ScanDetector``, a PacketObserver. A *probe* is a TCP packet without ACK or RST
(its kind comes from the flags: syn, fin, null, xmas, odd) or the first datagram of a UDP
flow. A probe stays *unanswered* unless the target completes a session with it (the
client's handshake-completing ACK, or a UDP reply); completed sessions are taken off the
books, so a browser opening many connections or an FTP client using many passive ports is
not a scan, while closed, filtered and half-open (nmap -sS) ports are.

- vertical: one source, ``vertical_ports`` distinct unanswered ports on one host, same
  probe kind, within ``window`` seconds;
- horizontal: one source, ``horizontal_hosts`` distinct unanswered hosts on one port;
- half-open: one source answering ``half_open_ports`` SYN/ACKs of one host with RST
  (what nmap -sS does on open ports; a kernel that made the connection never does);
- slow: unanswered (host, port) pairs left when a short window closes go into a per-source
  HyperLogLog for ``slow_window`` seconds; ``slow_targets`` distinct pairs is a slow scan.

Memory: at most ``max_entries`` short-window entries (each holds at most the threshold's
number of targets) and ``max_sources`` 64-byte sketches, both LRU-evicted and counted.
Each key alerts once per window. Non-goals: ACK/window scans (-sA/-sW), idle scans, and
ICMP sweeps (the flood detector sees ICMP volume; ping sweeps are left to rules).
"""

from __future__ import annotations

from collections.abc import Hashable

from sensor.behaviour.settings import ScanConfig
from sensor.behaviour.sigs import behaviour_signature
from sensor.behaviour.table import HyperLogLog, LruTable
from sensor.packet import (
    IPPROTO_TCP,
    IPPROTO_UDP,
    TH_ACK,
    TH_FIN,
    TH_PUSH,
    TH_RST,
    TH_SYN,
    TH_URG,
    Packet,
)
from signatures.rule import Signature

KINDS = ("syn", "fin", "null", "xmas", "odd", "udp")
_KIND_TEXT = {"syn": "TCP SYN", "fin": "TCP FIN", "null": "TCP NULL", "xmas": "TCP Xmas",
              "odd": "TCP odd-flags", "udp": "UDP"}  # fmt: skip
_CORE = TH_FIN | TH_SYN | TH_RST | TH_PUSH | TH_ACK | TH_URG
_XMAS = TH_FIN | TH_PUSH | TH_URG


def probe_kind(flags: int) -> str:
    """Kind of a TCP probe (flags without ACK and RST)."""
    core = flags & _CORE
    if core == 0:
        return "null"
    if core & _XMAS == _XMAS:
        return "xmas"
    if core & TH_SYN and not core & TH_FIN:
        return "syn"
    if core == TH_FIN:
        return "fin"
    return "odd"


class _Window:
    """Distinct unanswered targets of one key in the current short window."""

    __slots__ = ("alerted", "start", "targets")

    def __init__(self, start: int) -> None:
        self.start = start
        self.targets: set[int] = set()
        self.alerted = False


class _Slow:
    __slots__ = ("alerted", "sketch", "start")

    def __init__(self, start: int) -> None:
        self.start = start
        self.sketch = HyperLogLog()
        self.alerted = False


def _pair(host: int, port: int) -> int:
    return (host << 16) | port


class ScanDetector:
    def __init__(self, config: ScanConfig) -> None:
        self._cfg = config
        self._vertical: LruTable[_Window] = LruTable(config.max_entries, self._evicted_v)
        self._horizontal: LruTable[_Window] = LruTable(config.max_entries, self._evicted_h)
        self._slow: LruTable[_Slow] = LruTable(config.max_sources)
        self.probes = 0
        self.alerts = 0
        self._flushed = False  # set when a closing window fed a sketch during this packet
        self._sig_v = {k: behaviour_signature(9100100 + i, f"SEKIMORI SCAN vertical {_KIND_TEXT[k]} port scan",
                                              "attempted-recon", proto="udp" if k == "udp" else "tcp")
                       for i, k in enumerate(KINDS)}  # fmt: skip
        self._sig_h = {k: behaviour_signature(9100110 + i, f"SEKIMORI SCAN horizontal {_KIND_TEXT[k]} host sweep",
                                              "attempted-recon", proto="udp" if k == "udp" else "tcp")
                       for i, k in enumerate(KINDS)}  # fmt: skip
        self._sig_half_open = behaviour_signature(
            9100121,
            "SEKIMORI SCAN TCP half-open (stealth SYN) scan",
            "attempted-recon",
            proto="tcp",
        )
        self._sig_slow = behaviour_signature(9100120, "SEKIMORI SCAN slow port scan",
                                             "attempted-recon")  # fmt: skip

    # ------------------------------------------------------------------ per packet

    def observe(self, p: Packet) -> list[Signature] | None:
        proto = p.proto
        if proto == IPPROTO_TCP:
            if p.l4_off < 0:
                return None
            flags = p.tcp_flags
            if flags & TH_ACK:
                fl = p.flow
                # The client's handshake-completing ACK: this target answered.
                if (fl is not None and p.to_server and not flags & (TH_SYN | TH_RST)
                        and fl.pkts_toserver <= 3 and fl.pkts_toclient):  # fmt: skip
                    self._answered(p.src, p.dst, p.dport, "syn")
                return None
            if flags & TH_RST:
                fl = p.flow
                # RST as the client's answer to a SYN/ACK: nmap -sS on an open port.
                if fl is not None and p.to_server and fl.pkts_toserver == 2 and fl.pkts_toclient:
                    return self._half_open(p)
                return None
            return self._probe(p, probe_kind(flags))
        if proto == IPPROTO_UDP and p.l4_off >= 0:
            fl = p.flow
            if fl is None:
                return self._probe(p, "udp")
            if not p.to_server:
                if fl.pkts_toclient == 1:
                    self._answered(fl.src, fl.dst, fl.dport, "udp")
                return None
            if fl.pkts_toserver == 1:
                return self._probe(p, "udp")
        return None

    def _probe(self, p: Packet, kind: str) -> list[Signature] | None:
        self.probes += 1
        now, src, dst, port = p.ts_sec, p.src, p.dst, p.dport
        hits: list[Signature] | None = None
        self._flushed = False
        v = self._current(self._vertical, (src, dst, kind), now, True)
        if not v.alerted:
            v.targets.add(port)
            if len(v.targets) >= self._cfg.vertical_ports:
                v.alerted = True
                hits = [self._sig_v[kind]]
        h = self._current(self._horizontal, (src, port, kind), now, False)
        if not h.alerted:
            h.targets.add(dst)
            if len(h.targets) >= self._cfg.horizontal_hosts:
                h.alerted = True
                hits = [*(hits or ()), self._sig_h[kind]]
        slow = self._slow_check(src, now) if self._flushed else None
        if slow is not None:
            hits = [*(hits or ()), slow]
        if hits:
            self.alerts += len(hits)
        return hits

    def _half_open(self, p: Packet) -> list[Signature] | None:
        w = self._current(self._vertical, (p.src, p.dst, "halfopen"), p.ts_sec, True)
        if w.alerted:
            return None
        w.targets.add(p.dport)
        if len(w.targets) < self._cfg.half_open_ports:
            return None
        w.alerted = True
        self.alerts += 1
        return [self._sig_half_open]

    def _current(self, table: LruTable[_Window], key: tuple[int, int, str], now: int,
                 vertical: bool) -> _Window:  # fmt: skip
        w = table.get(key)
        if w is None or now - w.start >= self._cfg.window:
            if w is not None:
                self._to_slow(key, w, now, vertical)
            w = _Window(now)
            table.put(key, w)
        return w

    def _answered(self, src: int, dst: int, port: int, kind: str) -> None:
        v = self._vertical.peek((src, dst, kind))
        if v is not None:
            v.targets.discard(port)
        h = self._horizontal.peek((src, port, kind))
        if h is not None:
            h.targets.discard(dst)

    # ------------------------------------------------------------------ slow scans

    def _to_slow(self, key: tuple[int, int, str], w: _Window, now: int, vertical: bool) -> None:
        """Unanswered targets of a closed short window feed the source's long sketch."""
        if not w.targets:
            return
        src, fixed = key[0], key[1]
        s = self._slow.get(src)
        if s is None or now - s.start >= self._cfg.slow_window:
            s = _Slow(now)
            self._slow.put(src, s)
        self._flushed = True
        add = s.sketch.add
        if vertical:  # fixed is the host, targets are ports
            for port in w.targets:
                add(_pair(fixed, port))
        else:  # fixed is the port, targets are hosts
            for host in w.targets:
                add(_pair(host, fixed))

    def _slow_check(self, src: int, now: int) -> Signature | None:
        s = self._slow.peek(src)
        if s is None or s.alerted or now - s.start >= self._cfg.slow_window:
            return None
        if s.sketch.estimate() >= self._cfg.slow_targets:
            s.alerted = True
            return self._sig_slow
        return None

    def _evicted_v(self, key: Hashable, w: _Window) -> None:
        assert isinstance(key, tuple)
        self._to_slow(key, w, w.start, True)

    def _evicted_h(self, key: Hashable, w: _Window) -> None:
        assert isinstance(key, tuple)
        self._to_slow(key, w, w.start, False)

    # ------------------------------------------------------------------ reporting

    def stats(self) -> dict[str, int]:
        return {
            "scan.probes": self.probes,
            "scan.alerts": self.alerts,
            "scan.vertical_entries": len(self._vertical),
            "scan.horizontal_entries": len(self._horizontal),
            "scan.slow_sources": len(self._slow),
            "scan.evicted": self._vertical.evictions + self._horizontal.evictions,
            "scan.slow_evicted": self._slow.evictions,
        }

    def close(self) -> None:
        pass
