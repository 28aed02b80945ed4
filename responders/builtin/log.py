"""The ``log`` responder: records what a response would be, acts on nothing.

Scope: one JSON line per alert it is given (rule, flow, whether the policy enforced it) to
``path`` (a file, appended) or, without a path, to the service's log; the last records are
also kept in memory (``records``) so tests can use it as a double. It is the dry run: with
``respond.responders = ["log"]`` the whole pipeline runs and nothing touches the network.

Non-goals: log rotation (use logrotate with copytruncate), formatting for humans.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import IO, Any

import orjson

from responders.plugin import DONE, AlertResponder, Outcome
from sensor.errors import ResponderError

log = logging.getLogger(__name__)


class LogResponder(AlertResponder):
    name = "log"

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.records: deque[dict[str, Any]] = deque(maxlen=int(config.get("keep", 1000)))
        self._file: IO[bytes] | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        path = self.config.get("path")
        if path:
            try:
                self._file = open(str(path), "ab")  # noqa: SIM115 - held until stop()
            except OSError as exc:
                raise ResponderError(f"log responder: cannot open {path}: {exc}") from exc

    def stop(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def respond(self, alert: Mapping[str, Any], *, enforce: bool) -> Outcome:
        started = time.perf_counter()
        rule = alert.get("alert") if isinstance(alert.get("alert"), Mapping) else {}
        assert isinstance(rule, Mapping)
        ctx = alert.get("sekimori") if isinstance(alert.get("sekimori"), Mapping) else {}
        assert isinstance(ctx, Mapping)
        record = {
            "time": time.time(),
            "would": "respond" if enforce else "would_respond",
            "sid": rule.get("signature_id"),
            "signature": rule.get("signature"),
            "rule_action": ctx.get("rule_action"),
            "flow_id": alert.get("flow_id"),
            "src": f"{alert.get('src_ip')}:{alert.get('src_port')}",
            "dest": f"{alert.get('dest_ip')}:{alert.get('dest_port')}",
            "proto": alert.get("proto"),
        }
        line = orjson.dumps(record) + b"\n"
        with self._lock:
            self.records.append(record)
            if self._file is not None:
                self._file.write(line)
                self._file.flush()
            else:
                log.info("log responder: %s", line.decode().rstrip())
        return Outcome(self.name, DONE, "recorded", {"decision": "logged"},
                       (time.perf_counter() - started) * 1000)  # fmt: skip
