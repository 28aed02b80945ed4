"""EVE JSON output: the line-per-event file format Suricata writes, and its timestamps.

Scope: a buffered writer of one JSON object per line (orjson) to a file or stdout, the
exact EVE timestamp format, and the ``stats`` event. Alert records are built by the
detection stage; this module only serialises what it is given, in the given key order.

Non-goals: rotation, syslog/unix-socket outputs, Redis (see the Redis publisher), and
making records JSON-safe (bytes must already be base64 text, as in Suricata's payload).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from types import TracebackType
from typing import BinaryIO

import orjson

from sensor.errors import SekimoriError

_BUFFER_BYTES = 1 << 16
_DUMPS_OPTIONS = orjson.OPT_NON_STR_KEYS


class EveWriteError(SekimoriError):
    """The EVE output file cannot be opened or written (disk full, permission, closed pipe)."""


def _reason(exc: Exception) -> str:
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc)


def format_timestamp(ts_sec: int, ts_usec: int) -> str:
    """EVE timestamp: local time with its numeric UTC offset, e.g. 2016-05-13T11:43:56.172149+0000.

    Same layout as Suricata's (strftime "%Y-%m-%dT%H:%M:%S" + ".%06u" + "%z" on localtime).
    """
    carry, usec = divmod(int(ts_usec), 1_000_000)  # tolerate usec outside 0..999999
    local = time.localtime(int(ts_sec) + carry)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', local)}.{usec:06d}{time.strftime('%z', local)}"


def stats_record(
    ts_sec: int, ts_usec: int, uptime: int, counters: Mapping[str, int]
) -> dict[str, object]:
    """An EVE ``stats`` event from Suricata-style dotted counter names.

    ``{"decoder.pkts": 10, "capture.kernel_drops": 0}`` becomes
    ``{"stats": {"uptime": .., "decoder": {"pkts": 10}, "capture": {"kernel_drops": 0}}}``,
    the nesting Suricata uses, so dashboards built for Suricata read it unchanged.
    """
    stats: dict[str, object] = {"uptime": int(uptime)}
    for name, value in counters.items():
        node = stats
        *parents, leaf = name.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"stats counter {name!r} nests under the counter {part!r}")
            node = child
        node[leaf] = value
    return {
        "timestamp": format_timestamp(ts_sec, ts_usec),
        "event_type": "stats",
        "stats": stats,
    }


class EveWriter:
    """Appends EVE records, one JSON object per line, to ``path`` ("-" or None: stdout).

    Output is buffered; call ``flush()`` when a reader should see the lines now (live
    capture), and ``close()`` (or use ``with``) at the end. Stdout is flushed, not closed.
    """

    def __init__(self, path: str | None) -> None:
        self.path = path if path not in (None, "-") else "<stdout>"
        self._owned = path not in (None, "-")
        self._out: BinaryIO | None
        if self._owned:
            assert path is not None
            try:
                self._out = open(path, "ab", buffering=_BUFFER_BYTES)  # noqa: SIM115
            except OSError as exc:
                raise EveWriteError(
                    f"cannot open EVE output {path}: {exc.strerror or exc}"
                ) from exc
        else:
            self._out = sys.stdout.buffer
        self.records = 0

    def write(self, record: Mapping[str, object]) -> None:
        out = self._out
        if out is None:
            raise EveWriteError(f"EVE output {self.path} is already closed")
        line = orjson.dumps(record, option=_DUMPS_OPTIONS) + b"\n"
        try:
            out.write(line)
        except (OSError, ValueError) as exc:  # ValueError: the stream was closed under us
            raise EveWriteError(f"cannot write EVE output {self.path}: {_reason(exc)}") from exc
        self.records += 1

    def flush(self) -> None:
        if self._out is None:
            return
        try:
            self._out.flush()
        except (OSError, ValueError) as exc:
            raise EveWriteError(f"cannot write EVE output {self.path}: {_reason(exc)}") from exc

    def close(self) -> None:
        if self._out is None:
            return
        try:
            self.flush()
        finally:
            out, self._out = self._out, None
            if self._owned:
                try:
                    out.close()
                except OSError as exc:
                    raise EveWriteError(
                        f"cannot write EVE output {self.path}: {_reason(exc)}"
                    ) from exc

    def __enter__(self) -> EveWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
