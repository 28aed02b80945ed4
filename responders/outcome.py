"""Reset confirmation: did the session really die after the RSTs left?

Scope: :func:`judge` is the rule, as a pure function over what was seen of the flow after
the resets were sent: new data from either end, or a bare ACK from an end (a socket that
took the RST sends nothing more; one that answers with an ACK is alive — RFC 5961's
challenge ACK when its acknowledgement differs from the sequence number we used) means
``failed``; the flow staying quiet (or only RSTs passing) until the watch window ends
means ``confirmed``. :class:`FlowWatcher` feeds it: one ``AF_PACKET`` socket on the watch
interface (the sensor's SPAN port, on the same host), read by one thread, with a socket
filter that drops everything in the kernel while no reset is being watched.

Why on the responder side: the responder alone knows when the RSTs left and at which
sequence numbers; watching here needs no message back from the sensor and no per-packet
work in the sensor's loop. The cost is a second capture of the SPAN port, paid only
during a watch window (a few hundred ms per reset).

Non-goals: reassembly, telling our own RSTs from the endpoints' (both only close the flow),
watching a flow the watch interface does not carry.
"""

from __future__ import annotations

import ctypes
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from responders.seq import seq_diff
from sensor.errors import ResponderError

log = logging.getLogger(__name__)

CONFIRMED = "confirmed"
FAILED = "failed"

_ETH_P_ALL = 0x0003
_SO_ATTACH_FILTER = 26
_SO_TIMESTAMPNS = 35
_PACKET_OUTGOING = 4
_BPF_RET_K = 0x06
_TH_FIN, _TH_SYN, _TH_RST, _TH_ACK = 0x01, 0x02, 0x04, 0x10
_POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class Seen:
    """One TCP packet of a watched flow, as the watch interface delivered it."""

    ts: float  # epoch seconds (kernel receive time)
    from_client: bool
    flags: int
    seq: int
    ack: int
    payload_len: int


@dataclass(frozen=True, slots=True)
class Verdict:
    status: str  # CONFIRMED | FAILED
    reason: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ResetWatch:
    """What was sent for one flow, and who to tell how it ended."""

    client: tuple[bytes, int]  # (packed address, port)
    server: tuple[bytes, int]
    to_server_seq: int | None  # the exact RST toward the server (the client's next seq)
    to_client_seq: int | None
    sent_at: float  # epoch seconds the RSTs left
    window_s: float  # how long to watch
    grace_s: float  # packets this soon after sending were already in flight
    on_verdict: Callable[[Verdict], None]


def judge(watch: ResetWatch, seen: Seen) -> Verdict | None:
    """A ``failed`` verdict when ``seen`` proves an end survived the reset; else None."""
    if seen.ts < watch.sent_at + watch.grace_s or seen.flags & (_TH_RST | _TH_SYN):
        return None
    side = "client" if seen.from_client else "server"
    sent = watch.to_client_seq if seen.from_client else watch.to_server_seq
    their_rst = watch.to_server_seq if seen.from_client else watch.to_client_seq
    if seen.payload_len or seen.flags & _TH_FIN:
        if their_rst is not None and seq_diff(seen.seq + seen.payload_len, their_rst) <= 0:
            what = "retransmitted"  # old bytes again: still a live socket
        else:
            what = "new"
        return Verdict(FAILED, f"{side} sent {what} data after the reset",
                       {"side": side, "seq": seen.seq, "bytes": seen.payload_len})  # fmt: skip
    if seen.flags & _TH_ACK:
        if sent is not None and seen.ack != sent:
            reason = f"challenge ACK from the {side} (ack {seen.ack}, our RST seq {sent})"
        else:
            reason = f"ACK from the {side} after the reset: its socket is alive"
        return Verdict(FAILED, reason, {"side": side, "ack": seen.ack})
    return None


def quiet_verdict(watch: ResetWatch, packets: int, rsts: int) -> Verdict:
    ms = round(watch.window_s * 1000)
    reason = f"quiet for {ms} ms after the reset" if not rsts else "closed by RST"
    return Verdict(CONFIRMED, reason, {"packets_after": packets, "rsts_after": rsts})


def parse_tcp(frame: bytes) -> tuple[bytes, int, bytes, int, int, int, int, int] | None:
    """(src, sport, dst, dport, flags, seq, ack, payload_len) of an Ethernet TCP frame."""
    off, n = 12, len(frame)
    if n < 14:
        return None
    etype = int.from_bytes(frame[12:14], "big")
    while etype in (0x8100, 0x88A8) and off + 6 <= n:
        off += 4
        etype = int.from_bytes(frame[off : off + 2], "big")
    off += 2
    if etype == 0x0800 and n >= off + 20 and frame[off + 9] == 6:
        ihl = (frame[off] & 0x0F) * 4
        total = int.from_bytes(frame[off + 2 : off + 4], "big")
        src, dst, l4, end = (
            frame[off + 12 : off + 16],
            frame[off + 16 : off + 20],
            off + ihl,
            off + total,
        )
    elif etype == 0x86DD and n >= off + 40 and frame[off + 6] == 6:
        plen = int.from_bytes(frame[off + 4 : off + 6], "big")
        src, dst, l4, end = (
            frame[off + 8 : off + 24],
            frame[off + 24 : off + 40],
            off + 40,
            off + 40 + plen,
        )
    else:
        return None
    if n < l4 + 20:
        return None
    sport, dport, seq, ack, hl_flags = struct.unpack_from("!HHIIH", frame, l4)
    doff = (hl_flags >> 12) * 4
    payload = max(0, min(end, n) - l4 - doff)
    return src, sport, dst, dport, hl_flags & 0xFF, seq, ack, payload


@dataclass(slots=True)
class WatchStats:
    confirmed: int = 0
    failed: int = 0
    watching: int = 0

    def snapshot(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class _Active:
    __slots__ = ("packets", "rsts", "watch")

    def __init__(self, watch: ResetWatch) -> None:
        self.watch = watch
        self.packets = 0
        self.rsts = 0


def _attach_filter(sock: socket.socket, ret: int) -> None:
    """Attach a one-instruction classic BPF program returning ``ret`` (0 = drop everything).

    The kernel copies the program during setsockopt, so the buffer only lives for the call.
    """
    insn = ctypes.create_string_buffer(struct.pack("HBBI", _BPF_RET_K, 0, 0, ret), 8)
    prog = struct.pack("HL", 1, ctypes.addressof(insn))
    sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, prog)


class FlowWatcher:
    """Watches reset flows on one interface from a background thread."""

    def __init__(self, interface: str) -> None:
        self.interface = interface
        self.stats = WatchStats()
        self._lock = threading.Lock()
        self._active: dict[tuple, tuple[_Active, bool]] = {}  # flow key -> (watch, from_client)
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._accepting = False  # the socket filter currently lets packets through
        self._armed_at = 0.0

    def start(self) -> None:
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(_ETH_P_ALL))
            _attach_filter(sock, 0)
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            sock.bind((self.interface, _ETH_P_ALL))
            sock.settimeout(_POLL_S)
        except OSError as exc:
            raise ResponderError(f"watch interface {self.interface}: {exc}") from exc
        self._sock = sock
        self._thread = threading.Thread(target=self._run, name="reset-watch", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        """False once the watch thread ended (a receive error): nothing is judged anymore."""
        return self._thread is not None and self._thread.is_alive()

    def arm(self) -> None:
        """Let packets through from now on; call before sending, so that a challenge ACK
        coming back within microseconds is not filtered out before :meth:`watch`."""
        with self._lock:
            self._armed_at = time.time()
            self._set_accepting(True)

    def watch(self, w: ResetWatch) -> None:
        active = _Active(w)
        with self._lock:
            self._active[(*w.client, *w.server)] = (active, True)
            self._active[(*w.server, *w.client)] = (active, False)
            self.stats.watching += 1
            self._set_accepting(True)

    def _set_accepting(self, on: bool) -> None:
        if on != self._accepting and self._sock is not None:
            _attach_filter(self._sock, 0x40000 if on else 0)
            self._accepting = on

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _run(self) -> None:
        sock = self._sock
        assert sock is not None
        while not self._stop.is_set():
            try:
                data, anc, _flags, addr = sock.recvmsg(65535, 64)
            except TimeoutError:
                self._expire(time.time())
                continue
            except OSError as exc:
                if not self._stop.is_set():  # one line, not a thread traceback
                    log.error("reset watch on %s: receive failed (%s); resets from now on "
                              "are recorded unconfirmed", self.interface, exc)  # fmt: skip
                return
            if addr[2] != _PACKET_OUTGOING:
                self._packet(data, _timestamp(anc))
            self._expire(time.time())

    def _packet(self, frame: bytes, ts: float) -> None:
        parsed = parse_tcp(frame)
        if parsed is None:
            return
        src, sport, dst, dport, flags, seq, ack, plen = parsed
        with self._lock:
            found = self._active.get((src, sport, dst, dport))
        if found is None:
            return
        active, from_client = found
        w = active.watch
        if ts < w.sent_at:
            return
        active.packets += 1
        if flags & _TH_RST:
            active.rsts += 1
        verdict = judge(w, Seen(ts, from_client, flags, seq, ack, plen))
        if verdict is not None:
            self._finish(active, verdict)

    def _expire(self, now: float) -> None:
        with self._lock:
            due = {id(a): a for a, _ in self._active.values()
                   if now >= a.watch.sent_at + a.watch.window_s}  # fmt: skip
            if not self._active and now - self._armed_at > 1.0:
                self._set_accepting(False)  # armed, but the send failed: nothing to watch
        for active in due.values():
            self._finish(active, quiet_verdict(active.watch, active.packets, active.rsts))

    def _finish(self, active: _Active, verdict: Verdict) -> None:
        w = active.watch
        with self._lock:
            if self._active.pop((*w.client, *w.server), None) is None:
                return  # already decided
            self._active.pop((*w.server, *w.client), None)
            self.stats.watching -= 1
            if verdict.status == CONFIRMED:
                self.stats.confirmed += 1
            else:
                self.stats.failed += 1
            if not self._active and time.time() - self._armed_at > 1.0:
                self._set_accepting(False)
        try:
            w.on_verdict(verdict)
        except Exception:  # a reporting failure must not kill the watch thread
            log.exception("reset watch: reporting the verdict failed")


def _timestamp(ancdata: list[tuple[int, int, bytes]]) -> float:
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= 16:
            sec, nsec = struct.unpack_from("qq", data)
            return sec + nsec / 1e9
    return time.time()
