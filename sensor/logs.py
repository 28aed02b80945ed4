"""Process logging: readable text on stderr by default, JSON lines on request.

Scope: configure the stdlib root logger once per process (the CLI does it after reading
the configuration); modules log through ``logging.getLogger(__name__)`` as usual.

Non-goals: alerts (they go to EVE / Redis, not the log), log files and rotation (run
under systemd/journald or redirect stderr), per-module levels.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import IO

import orjson

# Suricata's "notice" sits between info and warning.
NOTICE = 25
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "notice": NOTICE,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_HANDLER_NAME = "sekimori-stderr"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: timestamp, level, logger, message (+ traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created))
            + f".{int(record.msecs * 1000):06d}"
            + time.strftime("%z", time.localtime(record.created)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def setup_logging(level: str = "info", fmt: str = "text", stream: IO[str] | None = None) -> None:
    """Route every logger to stderr at ``level`` in ``fmt`` ("text" or "json").

    Calling it again replaces the handler it installed before (tests, repeated CLI runs).
    """
    logging.addLevelName(NOTICE, "NOTICE")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(_HANDLER_NAME)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(_LEVELS.get(level.lower(), logging.INFO))
