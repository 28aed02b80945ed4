"""``sekimori run --workers N``: one pipeline per process, flows hashed to processes.

Scope: ``run_parallel(config, request, n)`` runs N copies of ``sensor.pipeline.run`` in
forked processes and returns one merged ``RunSummary``.

- Capture file: a dispatcher reads the file once and writes one pcapng shard per worker,
  every frame going to the worker its flow hashes to (sensor/flow_hash.py: symmetric
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
from collections import Counter
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection
from typing import Any, BinaryIO

import orjson

from sensor.config import Config
from sensor.errors import CaptureError, ConfigError, SekimoriError
from sensor.flow_hash import split_capture

log = logging.getLogger("sekimori.workers")

SOL_PACKET = 263
PACKET_FANOUT = 18
PACKET_FANOUT_HASH = 0
PACKET_FANOUT_FLAG_DEFRAG = 0x8000


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
