"""The same-host fast path to ``sekimori respond``: one datagram per TCP alert, ahead of the bus.

Scope: :class:`FastChannel` sends an alert record (serialised exactly as it goes to the
bus, response context included) to the responder's Unix datagram socket
(``respond.fast_socket``) the moment the alert is raised, before the EVE file and the
Redis publish. A TCP reset is a race against the server's answer; the Redis hop (sensor →
Redis → responder, two process wake-ups) costs more than the rest of the path, so the
responder acts on the datagram and takes the bus copy, which follows, as the record
(responders/fast.py matches the two).

It never blocks and never replaces the bus: a datagram that cannot be delivered (nobody
bound to the socket, the responder's queue full) is counted as dropped and the bus copy is
handled the normal way. A change of state (delivering / not delivering) is logged once.

Non-goals: delivery guarantees (the bus has them); other hosts (a Unix socket is local);
alerts without TCP session state (nothing to reset).
"""

from __future__ import annotations

import logging
import socket

log = logging.getLogger(__name__)


class FastChannel:
    """A non-blocking sender of datagrams to one Unix socket path."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sent = 0
        self.dropped = 0
        self._failing = False
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)

    def send(self, payload: bytes) -> None:
        # sendto resolves the path each time, so a restarted responder (new socket
        # inode) is reached without reconnect logic; the lookup costs a few µs.
        try:
            self._sock.sendto(payload, self.path)
        except OSError as exc:  # ENOENT/ECONNREFUSED: nobody listens; EAGAIN: queue full
            self.dropped += 1
            if not self._failing:
                self._failing = True
                log.warning("fast path: cannot deliver to %s (%s); alerts still go through "
                            "the bus", self.path, exc.strerror or exc)  # fmt: skip
            return
        self.sent += 1
        if self._failing:
            self._failing = False
            log.info("fast path: delivering to %s again", self.path)

    def snapshot(self) -> dict[str, int]:
        return {"fast_sent": self.sent, "fast_dropped": self.dropped}

    def close(self) -> None:
        self._sock.close()
