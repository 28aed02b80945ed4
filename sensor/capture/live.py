"""Live capture from a network interface through libpcap (the ``pypcap`` binding).

Scope: open an interface with snaplen/promiscuous/immediate/buffer settings and an
optional BPF filter, yield the same ``(ts_sec, ts_usec, linktype, data, wirelen)`` tuples
as :func:`sensor.capture.open_capture`, report libpcap's drop counters, and stop cleanly
when :meth:`LiveCapture.stop` is called (from a signal handler, for instance).

Why nonblocking + ``select``: pypcap's blocking iterator retries internally when the
read timeout expires, so it never returns on an idle link and a stop request would wait
for the next packet. Polling the capture descriptor with the timeout and then draining
the ring with ``dispatch`` returns control every ``timeout_ms`` at the latest.

Non-goals: injecting packets, multiple interfaces per object, AF_PACKET fanout.
"""

from __future__ import annotations

import select
from collections.abc import Iterator

import pcap

from sensor.capture.records import Record
from sensor.errors import CaptureError

_NS_PER_SEC = 1_000_000_000


def _capture_error(iface: str, exc: Exception) -> CaptureError:
    text = str(exc.args[0] if exc.args else exc)
    lowered = text.lower()
    if "no such device" in lowered or "doesn't exist" in lowered or "no such interface" in lowered:
        return CaptureError(f"no such interface: {iface}")
    if "permission" in lowered or "not permitted" in lowered:
        return CaptureError(f"capturing on {iface} needs root or CAP_NET_RAW")
    return CaptureError(f"cannot capture on {iface}: {text}")


class LiveCapture:
    """An open capture on one interface; iterate to receive packets until :meth:`stop`."""

    def __init__(
        self,
        iface: str,
        snaplen: int = 65535,
        promisc: bool = True,
        bpf: str | None = None,
        immediate: bool = True,
        buffer_size: int | None = None,
        timeout_ms: int = 100,
    ) -> None:
        self.iface = iface
        self.bpf = bpf
        self.timeout_ms = timeout_ms
        self._stopped = False
        self._pending: list[Record] = []
        try:
            self._pcap = pcap.pcap(
                name=iface,
                snaplen=snaplen,
                promisc=promisc,
                timeout_ms=timeout_ms,
                immediate=immediate,
                timestamp_in_ns=True,
                buffer_size=buffer_size or 0,
            )
        except OSError as exc:
            raise _capture_error(iface, exc) from exc
        try:
            if bpf:
                self._pcap.setfilter(bpf)
            self._pcap.setnonblock(True)
            self.linktype: int = self._pcap.datalink()
            self._fd: int = self._pcap.fileno()
        except OSError as exc:
            self._pcap.close()
            detail = (
                exc.args[0].decode(errors="replace")
                if exc.args and isinstance(exc.args[0], bytes)
                else str(exc)
            )
            if bpf:
                raise CaptureError(f"bad BPF filter {bpf!r} on {iface}: {detail}") from exc
            raise _capture_error(iface, exc) from exc
        self.packets_read = 0
        self.bytes_read = 0
        # pypcap dereferences a freed handle (segfault) if used after close(): every
        # method checks this flag, and the last counters are kept for stats().
        self._closed = False
        self._final_stats = (0, 0, 0)

    def _collect(self, ts_ns: int, data: bytes) -> None:
        # wirelen is not exposed by pypcap; len(data) is the captured length, which
        # equals the wire length unless the snaplen cut the frame.
        sec, rest = divmod(ts_ns, _NS_PER_SEC)
        self._pending.append((sec, rest // 1000, self.linktype, data, len(data)))

    def next_batch(self, timeout_s: float | None = None) -> list[Record]:
        """Wait up to ``timeout_s`` (default ``timeout_ms``) and return the packets that
        arrived (maybe none).

        For callers that need control back on an idle link (flow timeouts, stats)."""
        if self._stopped or self._closed:
            return []
        wait = self.timeout_ms / 1000 if timeout_s is None else timeout_s
        try:
            readable, _, _ = select.select([self._fd], [], [], wait)
            if not readable:
                return []
            self._pcap.dispatch(-1, self._collect)
        except InterruptedError:
            return []
        except (OSError, ValueError) as exc:
            if self._stopped:  # closed underneath us by stop()+close()
                return []
            raise CaptureError(f"capture on {self.iface} failed: {exc}") from exc
        batch, self._pending = self._pending, []
        self.packets_read += len(batch)
        self.bytes_read += sum(len(r[3]) for r in batch)
        return batch

    def drain(self, limit: int = 100_000) -> list[Record]:
        """What the kernel already captured, without waiting (at most ``limit`` frames).

        For a graceful stop: a frame captured before SIGTERM is inspected and its alert
        written, not dropped with the ring."""
        if self._closed:
            return []
        drained: list[Record] = []
        try:
            while len(drained) < limit:
                before = len(self._pending)
                self._pcap.dispatch(-1, self._collect)  # non-blocking handle: returns at once
                if len(self._pending) == before:
                    break
                drained += self._pending
                self._pending = []
        except (OSError, ValueError):
            pass  # the handle went away: nothing more to drain
        self.packets_read += len(drained)
        self.bytes_read += sum(len(r[3]) for r in drained)
        return drained

    def __iter__(self) -> Iterator[Record]:
        while not self._stopped:
            yield from self.next_batch()

    def stop(self) -> None:
        """Ask the iteration to end; safe from a signal handler (only sets a flag)."""
        self._stopped = True

    def stats(self) -> tuple[int, int, int]:
        """(received, dropped by the kernel, dropped by the interface) per libpcap.

        After :meth:`close` it returns the counters read just before closing."""
        if self._closed:
            return self._final_stats
        try:
            received, dropped, ifdropped = self._pcap.stats()
        except OSError as exc:
            raise CaptureError(f"cannot read capture statistics of {self.iface}: {exc}") from exc
        return int(received), int(dropped), int(ifdropped)

    def close(self) -> None:
        """Stop and release the capture handle. Safe to call more than once."""
        self._stopped = True
        if self._closed:
            return
        try:
            self._final_stats = self.stats()
        except CaptureError:
            pass  # keep the zeros: closing must not fail
        self._closed = True
        self._pcap.close()

    def __enter__(self) -> LiveCapture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
