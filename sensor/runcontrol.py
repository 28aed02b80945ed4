"""Signals a running sensor obeys, turned into flags the packet loop checks between packets.

Scope: SIGTERM/SIGINT → stop (graceful: outputs flushed, flows closed), SIGHUP → reload the
rules at the next packet boundary (flows and their state kept; a failed reload keeps the
running ruleset), SIGUSR1 → dump the counters to the log. Handlers only set flags: nothing
unsafe runs inside a signal handler.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from types import FrameType

from sensor.errors import ConfigError


class RunControl:
    __slots__ = ("_old", "dump", "reload", "stop")

    def __init__(self) -> None:
        self.stop = False
        self.reload = False
        self.dump = False
        self._old: dict[int, object] = {}

    @property
    def pending(self) -> bool:
        return self.reload or self.dump

    def install(self, on_stop: Callable[[], None] | None = None) -> None:
        """Take over the signals (main thread only); ``on_stop`` also wakes a blocked capture."""

        def stop(_signum: int, _frame: FrameType | None) -> None:
            self.stop = True
            if on_stop is not None:
                on_stop()

        def reload(_signum: int, _frame: FrameType | None) -> None:
            self.reload = True

        def dump(_signum: int, _frame: FrameType | None) -> None:
            self.dump = True

        for signum, handler in ((signal.SIGTERM, stop), (signal.SIGINT, stop),
                                (signal.SIGHUP, reload), (signal.SIGUSR1, dump)):  # fmt: skip
            try:
                self._old[signum] = signal.signal(signum, handler)
            except ValueError:  # not the main thread (embedded use): signals stay as they are
                return

    def restore(self) -> None:
        for signum, old in self._old.items():
            signal.signal(signum, old)  # type: ignore[arg-type]
        self._old.clear()


class Pidfile:
    """The running sensor's pid, for ``rules activate`` / ``systemctl reload`` (SIGHUP).

    Written at start (directories created), removed at exit only if it still holds our pid.
    """

    def __init__(self, path: str | None) -> None:
        self.path = path

    def write(self) -> None:
        if not self.path:
            return
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            with open(self.path, "w", encoding="ascii") as fh:
                fh.write(f"{os.getpid()}\n")
        except OSError as exc:
            raise ConfigError(f"cannot write pid file {self.path}: {exc.strerror}") from exc

    def remove(self) -> None:
        if not self.path:
            return
        try:
            with open(self.path, encoding="ascii") as fh:
                if fh.read().strip() != str(os.getpid()):
                    return
            os.unlink(self.path)
        except OSError:
            pass  # already gone: nothing to clean up
