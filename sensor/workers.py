"""``sekimori run --workers N``: one pipeline per process, flows hashed to processes.

Scope: ``run_parallel(config, request, n)`` runs N copies of ``sensor.pipeline.run`` in
forked processes and returns one merged ``RunSummary``.

- Capture file: a dispatcher reads the file once and writes one pcapng shard per worker,
  every frame going to the worker its flow hashes to (:func:`frame_worker`: symmetric
  over the 5-tuple, so both directions meet; fragments follow their first fragment). The
  workers then run in parallel; their EVE lines are merged in capture order with
  ``pcap_cnt`` mapped back to the frame's number in the original file, so the output
  equals a single-process run's alerts.
- Live interface: N workers open the interface and join one AF_PACKET fanout group
  (``PACKET_FANOUT_HASH`` with defragmentation: the kernel's flow hash keeps each flow on
  one worker). Their EVE lines are forwarded as they arrive; SIGINT/SIGTERM stop all.

Non-goals: threads (the GIL), sharing state between workers (flowbits/thresholds by
host across flows that land on different workers are per worker, as in Suricata's
per-thread flow ownership), Redis output with several workers (each worker would need
its own spool; refused with a clear error until the pipeline gives each one).
"""

from __future__ import annotations

import array
import contextlib
import dataclasses
import logging
import multiprocessing
import os
import selectors
import shutil
import signal
import socket
import struct
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection
from typing import Any, BinaryIO

import orjson

from sensor.config import Config
from sensor.errors import CaptureError, ConfigError, SekimoriError

log = logging.getLogger("sekimori.workers")

SOL_PACKET = 263
PACKET_FANOUT = 18
PACKET_FANOUT_HASH = 0
PACKET_FANOUT_FLAG_DEFRAG = 0x8000
_FRAG_MEMORY = 65536  # fragment-id → worker entries kept by the dispatcher

_ETH_TYPES_VLAN = (0x8100, 0x88A8, 0x9100)
_IPV6_EXT = (0, 43, 60, 51)  # hop-by-hop, routing, destination options, AH


# -- flow hashing -------------------------------------------------------------------------
def _l3_offset(linktype: int, data: bytes) -> tuple[int, int]:
    """(offset of the IP header, IP version) for a frame; (-1, 0) when not IP."""
    if linktype == 1:  # Ethernet, possibly VLAN/QinQ tagged
        off, etype = 12, 0
        while off + 2 <= len(data):
            etype = (data[off] << 8) | data[off + 1]
            if etype in _ETH_TYPES_VLAN:
                off += 4
                continue
            break
        off += 2
    elif linktype in (101, 12, 228, 229, 14):  # raw IP
        off, etype = 0, 0
    elif linktype == 113:  # Linux cooked
        off, etype = 16, (data[14] << 8) | data[15] if len(data) >= 16 else 0
    elif linktype in (0, 108):  # BSD loopback: family word
        off, etype = 4, 0
    else:
        return -1, 0
    if etype not in (0, 0x0800, 0x86DD) or off >= len(data):
        return -1, 0
    ver = data[off] >> 4
    return (off, ver) if ver in (4, 6) else (-1, 0)


def _pair_key(a: bytes, b: bytes, pa: int, pb: int) -> bytes:
    if (a, pa) <= (b, pb):
        return a + b + pa.to_bytes(2, "big") + pb.to_bytes(2, "big")
    return b + a + pb.to_bytes(2, "big") + pa.to_bytes(2, "big")


class FlowHasher:
    """Maps frames to workers: one flow, both directions, always to the same worker."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._frags: dict[bytes, int] = {}

    def worker(self, linktype: int, data: bytes) -> int:
        off, ver = _l3_offset(linktype, data)
        if off < 0:
            return 0
        if ver == 4:
            if len(data) < off + 20:
                return 0
            ihl = (data[off] & 0x0F) * 4
            proto = data[off + 9]
            src, dst = data[off + 12 : off + 16], data[off + 16 : off + 20]
            frag = ((data[off + 6] << 8) | data[off + 7]) & 0x3FFF  # MF + offset
            l4 = off + ihl
            if frag:
                fkey = src + dst + data[off + 4 : off + 6] + bytes((proto,))
                return self._fragment(fkey, frag & 0x1FFF == 0, proto, src, dst, data, l4)
        else:
            if len(data) < off + 40:
                return 0
            proto = data[off + 6]
            src, dst = data[off + 8 : off + 24], data[off + 24 : off + 40]
            l4 = off + 40
            while proto in _IPV6_EXT and l4 + 8 <= len(data):
                proto, l4 = data[l4], l4 + (data[l4 + 1] + 1) * (4 if proto == 51 else 8)
            if proto == 44 and l4 + 8 <= len(data):  # fragment header
                fkey = src + dst + data[l4 + 4 : l4 + 8]
                first = (int.from_bytes(data[l4 + 2 : l4 + 4], "big") & 0xFFF8) == 0
                return self._fragment(fkey, first, data[l4], src, dst, data, l4 + 8)
        return self._flow(proto, src, dst, data, l4)

    def _flow(self, proto: int, src: bytes, dst: bytes, data: bytes, l4: int) -> int:
        if proto in (6, 17, 132) and l4 + 4 <= len(data):
            sp = (data[l4] << 8) | data[l4 + 1]
            dp = (data[l4 + 2] << 8) | data[l4 + 3]
            key = _pair_key(src, dst, sp, dp) + bytes((proto,))
        else:
            key = _pair_key(src, dst, 0, 0) + bytes((proto,))
        return zlib.crc32(key) % self.n

    def _fragment(self, fkey: bytes, first: bool, proto: int, src: bytes, dst: bytes,
                  data: bytes, l4: int) -> int:  # fmt: skip
        """All fragments of a datagram go together, to the flow's worker when known."""
        w = self._frags.get(fkey)
        if w is None:
            w = (
                self._flow(proto, src, dst, data, l4)
                if first
                else self._flow(proto, src, dst, b"", 0)
            )
            if len(self._frags) >= _FRAG_MEMORY:
                self._frags.pop(next(iter(self._frags)))
            self._frags[fkey] = w
        return w


def frame_worker(hasher: FlowHasher, linktype: int, data: bytes) -> int:
    """The worker (0..n-1) a frame belongs to (a convenience for a pipeline-side filter)."""
    return hasher.worker(linktype, data)


# -- capture-file dispatch -----------------------------------------------------------------
class _PcapngShard:
    """A minimal pcapng writer: SHB, one IDB per link type, EPBs (µs timestamps)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._f: BinaryIO = open(path, "wb", buffering=1 << 20)  # noqa: SIM115
        self._ifaces: dict[int, int] = {}
        self._f.write(
            struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)
        )

    def write(self, ts_sec: int, ts_usec: int, linktype: int, data: bytes, wirelen: int) -> None:
        iface = self._ifaces.get(linktype)
        if iface is None:
            iface = self._ifaces[linktype] = len(self._ifaces)
            self._f.write(struct.pack("<IIHHII", 1, 20, linktype, 0, 0, 20))
        ts = ts_sec * 1_000_000 + ts_usec
        pad = (-len(data)) & 3
        total = 32 + len(data) + pad
        self._f.write(struct.pack("<IIIIIII", 6, total, iface, ts >> 32, ts & 0xFFFFFFFF,
                                  len(data), wirelen))  # fmt: skip
        self._f.write(data)
        self._f.write(b"\x00" * pad + struct.pack("<I", total))

    def close(self) -> None:
        self._f.close()


def split_capture(
    path: str, n: int, outdir: str
) -> tuple[list[str], list[array.array], str | None]:
    """Write one shard per worker; return the shard paths, per-shard original frame
    numbers (1-based, in shard order) and the source's truncation message."""
    from sensor.capture import open_capture

    cap = open_capture(path)
    hasher = FlowHasher(n)
    shards = [_PcapngShard(os.path.join(outdir, f"shard{k}.pcapng")) for k in range(n)]
    numbers = [array.array("Q") for _ in range(n)]
    try:
        for cnt, (ts_sec, ts_usec, linktype, data, wirelen) in enumerate(cap, 1):
            k = hasher.worker(linktype, data)
            shards[k].write(ts_sec, ts_usec, linktype, data, wirelen)
            numbers[k].append(cnt)
    except OSError as exc:
        raise CaptureError(
            f"cannot write worker shards in {outdir}: {exc.strerror or exc}"
        ) from exc
    finally:
        for s in shards:
            s.close()
    return [s.path for s in shards], numbers, cap.truncated


# -- worker processes ----------------------------------------------------------------------
def _child(config: Config, request: Any, conn: Connection, fanout: int | None) -> None:
    """Body of one worker process: run the pipeline, send back the summary or the error."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    try:
        import sensor.pipeline as pipeline

        if fanout is not None:
            setattr(pipeline, "LiveCapture", _fanout_capture(pipeline.LiveCapture, fanout))  # noqa: B010
        conn.send(("ok", pipeline.run(config, request)))
    except SekimoriError as exc:
        conn.send(("error", exc))
    except BaseException as exc:  # any other failure: one line for the parent
        conn.send(("error", SekimoriError(f"worker {os.getpid()}: {type(exc).__name__}: {exc}")))
    finally:
        conn.close()


def join_fanout(fd: int, group: int) -> None:
    """Put the AF_PACKET socket ``fd`` into fanout ``group`` (hash by flow, defragmented)."""
    sock = socket.socket(fileno=os.dup(fd))
    try:
        # An unsigned 32-bit value: the defrag flag sets the top bit, beyond a C int.
        value = (group & 0xFFFF) | ((PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG) << 16)
        sock.setsockopt(SOL_PACKET, PACKET_FANOUT, struct.pack("=I", value))
    except OSError as exc:
        raise CaptureError(
            f"cannot join AF_PACKET fanout group {group}: {exc.strerror or exc}"
        ) from exc
    finally:
        sock.close()  # closes the duplicate only; the capture keeps its socket


def _fanout_capture(base: Any, group: int) -> Any:
    """A LiveCapture class that joins the fanout group once its socket is open.

    Stopgap until the pipeline passes a fanout group to LiveCapture itself: it replaces
    ``sensor.pipeline.LiveCapture`` only inside this worker process.
    """

    class FanoutCapture(base):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            try:
                join_fanout(self._pcap.fileno(), group)
            except BaseException:
                self.close()
                raise

    return FanoutCapture


# -- merging -------------------------------------------------------------------------------
def _remap(line: bytes, numbers: array.array | None) -> tuple[tuple[str, int], bytes]:
    """(sort key, line) for one EVE line; ``pcap_cnt`` mapped to the original frame."""
    try:
        rec = orjson.loads(line)
    except orjson.JSONDecodeError:
        return ("", 0), line
    cnt = rec.get("pcap_cnt")
    if numbers is not None and isinstance(cnt, int) and 0 < cnt <= len(numbers):
        rec["pcap_cnt"] = cnt = numbers[cnt - 1]
        line = orjson.dumps(rec) + b"\n"
    return (str(rec.get("timestamp", "")), cnt if isinstance(cnt, int) else 0), line


def merge_summaries(parts: list[Any], elapsed: float, truncated: str | None) -> Any:
    """One RunSummary from the workers': integer counters and counter maps summed; rule
    figures (loaded, skipped, version) are the same in every worker and taken from one."""
    first = parts[0]
    merged: dict[str, Any] = {"elapsed": elapsed}
    for f in dataclasses.fields(first):
        value = getattr(first, f.name)
        if f.name.startswith("rule") or f.name in merged:
            continue
        if isinstance(value, bool) or not isinstance(value, int | dict):
            continue
        if isinstance(value, int):
            merged[f.name] = sum(getattr(p, f.name) for p in parts)
        elif all(isinstance(v, int) for v in value.values()):
            c: Counter[Any] = Counter()
            for p in parts:
                c.update(getattr(p, f.name))
            merged[f.name] = dict(c)
    merged["truncated"] = truncated if truncated is not None else first.truncated
    return dataclasses.replace(first, **merged)


class _Pool:
    """N forked workers, each with an EVE pipe (when EVE is wanted) and a result pipe."""

    def __init__(self, config: Config, requests: list[Any], fanout: int | None) -> None:
        ctx = multiprocessing.get_context("fork")  # Config holds mapping proxies: not picklable
        self.procs: list[Any] = []
        self.results: list[Connection] = []
        self.eve_fds: list[int] = []
        for req in requests:
            child_req = req
            if req.eve is not None:
                rfd, wfd = os.pipe()
                self.eve_fds.append(rfd)
                child_req = dataclasses.replace(req, eve=f"/dev/fd/{wfd}")
            recv, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_child, args=(config, child_req, send, fanout), daemon=True)
            proc.start()
            send.close()
            if req.eve is not None:
                os.close(wfd)
            self.procs.append(proc)
            self.results.append(recv)

    def pump(self, on_line: Callable[[int, bytes], None]) -> None:
        """Read every worker's EVE lines until all pipes close."""
        sel = selectors.DefaultSelector()
        partial: dict[int, bytes] = {}
        for k, fd in enumerate(self.eve_fds):
            sel.register(fd, selectors.EVENT_READ, k)
            partial[k] = b""
        while sel.get_map():
            for key, _ in sel.select(timeout=1.0):
                k = key.data
                chunk = os.read(key.fd, 1 << 16)
                if not chunk:
                    sel.unregister(key.fd)
                    os.close(key.fd)
                    continue
                lines = (partial[k] + chunk).split(b"\n")
                partial[k] = lines.pop()
                for line in lines:
                    if line:
                        on_line(k, line + b"\n")
        sel.close()

    def summaries(self) -> list[Any]:
        out, error = [], None
        for proc, conn in zip(self.procs, self.results):
            try:
                status, value = conn.recv()
            except EOFError:
                status, value = (
                    "error",
                    SekimoriError(f"worker {proc.pid} died (exit {proc.exitcode})"),
                )
            proc.join(timeout=60)
            if status == "error":
                error = error or value
            else:
                out.append(value)
        if error is not None:
            raise error
        return out

    def signal_all(self, signum: int) -> None:
        for proc in self.procs:
            if proc.is_alive() and proc.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signum)


def _open_out(eve: str) -> BinaryIO:
    if eve == "-":
        return sys.stdout.buffer
    try:
        return open(eve, "ab")
    except OSError as exc:
        raise SekimoriError(f"cannot open EVE output {eve}: {exc.strerror or exc}") from exc


def _write_lines(eve: str, lines: Iterable[bytes]) -> None:
    out = _open_out(eve)
    try:
        for line in lines:
            out.write(line)
        out.flush()
    except OSError as exc:
        raise SekimoriError(f"cannot write EVE output {eve}: {exc.strerror or exc}") from exc
    finally:
        if out is not sys.stdout.buffer:
            out.close()


# -- entry point ---------------------------------------------------------------------------
def run_parallel(config: Config, request: Any, n: int) -> Any:
    """Run ``request`` on ``n`` worker processes; a ``RunSummary`` for the whole run."""
    import sensor.pipeline as pipeline

    if n <= 1:
        return pipeline.run(config, request)
    if n > 64:
        raise ConfigError(f"--workers {n}: at most 64 workers")
    if request.redis_url or config.output.redis_url:
        raise ConfigError("--workers with Redis output is not supported yet (one spool per worker needed); "
                          "run one sensor per worker with its own sensor-name instead")  # fmt: skip
    if request.pcap is not None:
        return _run_file(config, request, n)
    return _run_live(config, request, n)


def _shard_dir(pcap: str) -> str:
    """Shards go to /dev/shm when the capture fits there twice over, else next to /tmp."""
    size = os.path.getsize(pcap) if os.path.isfile(pcap) else 0
    shm = "/dev/shm"
    if os.path.isdir(shm) and shutil.disk_usage(shm).free > 2 * size + (64 << 20):
        return tempfile.mkdtemp(prefix="sekimori-workers-", dir=shm)
    return tempfile.mkdtemp(prefix="sekimori-workers-")


def _run_file(config: Config, request: Any, n: int) -> Any:
    started = time.monotonic()
    outdir = _shard_dir(request.pcap)
    try:
        paths, numbers, truncated = split_capture(request.pcap, n, outdir)
        log.info("workers: %d shards (%s frames) in %.2f s", n,
                 "/".join(str(len(x)) for x in numbers), time.monotonic() - started)  # fmt: skip
        reqs = [dataclasses.replace(request, pcap=p, progress=None) for p in paths]
        pool = _Pool(config, reqs, fanout=None)
        collected: list[tuple[tuple[str, int], bytes]] = []
        pool.pump(lambda k, line: collected.append(_remap(line, numbers[k])))
        parts = pool.summaries()
    finally:
        shutil.rmtree(outdir, ignore_errors=True)
    if request.eve is not None:
        collected.sort(key=lambda kv: kv[0])  # stable: ties keep their worker's order
        _write_lines(request.eve, (line for _key, line in collected))
    return merge_summaries(parts, time.monotonic() - started, truncated)


def _run_live(config: Config, request: Any, n: int) -> Any:
    started = time.monotonic()
    group = os.getpid() & 0xFFFF
    pool = _Pool(config, [request] * n, fanout=group)

    def stop(_signum: int, _frame: object) -> None:
        pool.signal_all(signal.SIGTERM)

    old = signal.signal(signal.SIGINT, stop), signal.signal(signal.SIGTERM, stop)
    try:
        if request.eve is not None:
            out = _open_out(request.eve)

            def forward(_k: int, line: bytes) -> None:
                out.write(line)
                out.flush()

            try:
                pool.pump(forward)
            finally:
                if out is not sys.stdout.buffer:
                    out.close()
        parts = pool.summaries()
    finally:
        signal.signal(signal.SIGINT, old[0])
        signal.signal(signal.SIGTERM, old[1])
    return merge_summaries(parts, time.monotonic() - started, None)
