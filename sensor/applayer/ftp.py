"""FTP control channel commands, enough for Suricata 7's ``ftpbounce`` keyword.

Scope: the client's command lines (CRLF or LF terminated, any TCP slicing); each command is
one transaction (``tx.proto == "ftp"``, ids from 0), as in Suricata. A ``PORT`` command whose
address differs from the client's own IPv4 address sets the value ``ftp.bounce`` to 1 (0 for
a PORT to the client itself); other commands carry no value, so ``ftpbounce`` only matches on
the PORT transaction. The address is read as Suricata does: skip to the first digit, then four
comma-separated decimal octets of at most three digits each.

Non-goals: server replies, FTP-DATA channels (``ftpdata_command``), EVE ``ftp`` records,
``EPRT``/IPv6 (Suricata's ftpbounce compares IPv4 only).
"""

from __future__ import annotations

from collections.abc import Callable

from sensor.applayer.common import (
    PROGRESS_COMPLETE,
    AppLayerSettings,
    Transaction,
)

MAX_LINE = 4096  # a longer command line is dropped unparsed (bounded buffering)


def port_address(args: bytes) -> int | None:
    """The IPv4 address a PORT argument names (as an integer), None when it is not well
    formed."""
    i = 0
    while i < len(args) and not 0x30 <= args[i] <= 0x39:
        i += 1
    octets: list[int] = []
    digits = b""
    for byte in args[i:]:
        if 0x30 <= byte <= 0x39:
            digits += bytes((byte,))
            if len(digits) > 3:
                return None
        elif byte == 0x2C and digits:  # ","
            value = int(digits)
            if value > 255:
                return None
            octets.append(value)
            digits = b""
            if len(octets) == 4:
                return int.from_bytes(bytes(octets), "big")
        else:
            return None
    return None


class FtpParser:
    """The client side of one FTP control connection."""

    def __init__(self, cfg: AppLayerSettings, on_update: Callable[[Transaction], None],
                 client_ip: int | None) -> None:  # fmt: skip
        self.cfg = cfg
        self._on_update = on_update
        self._client = client_ip  # IPv4 as an integer; None on IPv6 flows
        self._line = bytearray()
        self._dropping = False  # inside an over-long line: skip to its end
        self._next_id = 0
        self.events: list[str] = []

    def feed(self, to_server: bool, data: bytes) -> None:
        if not to_server:
            return
        buf = self._line
        buf += data
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            if self._dropping:
                self._dropping = False
            else:
                self._command(bytes(buf[start:nl]).rstrip(b"\r"))
            start = nl + 1
        del buf[:start]
        if len(buf) > MAX_LINE:
            buf.clear()
            self._dropping = True

    def _command(self, line: bytes) -> None:
        if not line:
            return
        verb, _, args = line.partition(b" ")
        tx = Transaction(self._next_id, "ftp")
        self._next_id += 1
        tx.progress_ts = PROGRESS_COMPLETE
        tx.to_server_done = True
        tx.state = verb.upper()
        if verb.upper() == b"PORT":
            address = port_address(args)
            if address is not None:
                tx.values["ftp.bounce"] = int(self._client is not None and address != self._client)
        self._on_update(tx)
