"""SSH banners and the clear-text key exchange of one connection (no decryption).

Scope: as Suricata 7's SSH parser, per direction: the identification line
(``SSH-protoversion-softwareversion [comments]``), then the binary packets sent in clear until
that side's ``SSH_MSG_NEWKEYS``. A connection has a single transaction (id 0) holding the
``ssh.proto`` / ``ssh.software`` buffers of each side and, when HASSH is enabled
(``AppLayerSettings.ssh_hassh``, switched on by any rule using an ``ssh.hassh*`` buffer, as
Suricata enables it for such rules), the HASSH string and MD5 of each side's
``SSH_MSG_KEXINIT``: ``kex;encryption;mac;compression`` with the client-to-server lists for the
client (``ssh.hassh``) and the server-to-client lists for the server (``ssh.hassh.server``).

Progress: a direction is LINE once its banner is parsed and COMPLETE after its NEWKEYS.
Anomalies use Suricata's event names (``ssh.invalid_banner``, ``ssh.long_banner``,
``ssh.invalid_record``); an invalid banner or record stops parsing of that direction.

Non-goals: SSH-1 binary packets, decryption, any message but KEXINIT and NEWKEYS.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable

from sensor.applayer.common import (
    PROGRESS_COMPLETE,
    PROGRESS_LINE,
    AppLayerSettings,
    Transaction,
)

MAX_BANNER = 256  # Suricata's SSH_MAX_BANNER_LEN: a longer line is ssh.long_banner
MSG_KEXINIT = 20
MSG_NEWKEYS = 21
_HEADER = struct.Struct("!IBB")  # packet_length, padding_length, message code
_MAX_KEXINIT = 256 * 1024  # a KEXINIT is buffered whole for HASSH up to this size

# sides' parsing state
_BANNER, _WAIT_EOL, _RECORDS, _DONE = range(4)


class SshTxData:
    """What the clear-text part of the connection revealed, for EVE."""

    __slots__ = ("hassh", "proto", "software")

    def __init__(self) -> None:
        # keyed by direction: True = client (to server), False = server
        self.proto: dict[bool, bytes] = {}
        self.software: dict[bool, bytes] = {}
        self.hassh: dict[bool, tuple[bytes, bytes]] = {}  # (md5 hex, string)


class _Side:
    __slots__ = ("buf", "skip", "state")

    def __init__(self) -> None:
        self.state = _BANNER
        self.buf = bytearray()  # banner line or record bytes not yet complete
        self.skip = 0  # bytes of a record still to pass over without buffering


def parse_banner(line: bytes) -> tuple[bytes, bytes] | None:
    """(protoversion, softwareversion) of an identification line, None when it is not one.

    As Suricata: ``SSH-``, a non-empty version up to the next ``-``, then the software up to a
    space (the rest is comments); the software may be empty.
    """
    if not line.startswith(b"SSH-"):
        return None
    proto, dash, rest = line[4:].partition(b"-")
    if not proto or not dash:
        return None
    end = len(rest)
    for stop in (b" ", b"\r", b"\n"):
        i = rest.find(stop)
        if i >= 0:
            end = min(end, i)
    return proto, rest[:end]


def _line_end(buf: bytearray) -> tuple[int, int] | None:
    """(end of the line's text, start of what follows) or None while incomplete.

    A line ends at LF, CRLF, or a CR followed by anything else (Suricata's ssh_parse_line).
    """
    for i, byte in enumerate(buf):
        if byte == 0x0A:
            return i, i + 1
        if byte == 0x0D:
            if i + 1 >= len(buf):
                return None  # CR at the end: wait to see whether LF follows
            return i, i + 2 if buf[i + 1] == 0x0A else i + 1
    return None


def hassh_string(payload: bytes, client: bool) -> bytes | None:
    """The HASSH input of a KEXINIT payload (after the message code), None if malformed."""
    pos = 16  # cookie
    lists: list[bytes] = []
    for _ in range(10):
        if pos + 4 > len(payload):
            return None
        (n,) = struct.unpack_from("!I", payload, pos)
        pos += 4
        if pos + n > len(payload):
            return None
        lists.append(payload[pos : pos + n])
        pos += n
    if pos + 5 > len(payload):  # first_kex_packet_follows + reserved
        return None
    kex, _hostkey, enc_cs, enc_sc, mac_cs, mac_sc, comp_cs, comp_sc = lists[:8]
    if client:
        return b";".join((kex, enc_cs, mac_cs, comp_cs))
    return b";".join((kex, enc_sc, mac_sc, comp_sc))


class SshParser:
    """Both directions of one SSH connection."""

    def __init__(self, cfg: AppLayerSettings, on_update: Callable[[Transaction], None]) -> None:
        self.cfg = cfg
        self._on_update = on_update
        self.tx = Transaction(0, "ssh")
        self.data = SshTxData()
        self.tx.state = self.data
        self._sides = {True: _Side(), False: _Side()}
        self.events: list[str] = []

    @property
    def finished(self) -> bool:
        """Both sides sent NEWKEYS: the rest of the connection is encrypted."""
        return all(s.state == _DONE for s in self._sides.values())

    def feed(self, to_server: bool, data: bytes) -> None:
        side = self._sides[to_server]
        if side.state == _DONE:
            return
        if side.state in (_BANNER, _WAIT_EOL):
            side.buf += data
            data = self._banner(to_server, side)
            if side.state != _RECORDS:
                return
        self._records(to_server, side, data)

    # ------------------------------------------------------------------ banner
    def _banner(self, to_server: bool, side: _Side) -> bytes:
        """Consume the identification line; returns the bytes after it (records)."""
        buf = side.buf
        found = _line_end(buf)
        if side.state == _WAIT_EOL:  # the banner was taken already; skip to the line end
            if found is None:
                del buf[: max(0, len(buf) - 1)]  # keep a trailing CR
                return b""
            side.state = _RECORDS
            rest = bytes(buf[found[1] :])
            buf.clear()
            return rest
        if found is None:
            if len(buf) < MAX_BANNER:
                return b""
            # Too long without a line end: Suricata takes the banner from what it has.
            if not self._take_banner(to_server, side, bytes(buf)):
                return b""
            self._event("ssh.long_banner")
            side.state = _WAIT_EOL
            del buf[: len(buf) - 1]
            return b""
        end, after = found
        line = bytes(buf[:end])
        rest = bytes(buf[after:])
        buf.clear()
        if not self._take_banner(to_server, side, line):
            return b""
        if len(line) >= MAX_BANNER:
            self._event("ssh.long_banner")
        side.state = _RECORDS
        return rest

    def _take_banner(self, to_server: bool, side: _Side, line: bytes) -> bool:
        parsed = parse_banner(line)
        if parsed is None:
            self._fail(side, "ssh.invalid_banner")
            return False
        proto, software = parsed
        tx = self.tx
        self.data.proto[to_server] = proto
        tx.set_buffer("ssh.proto", proto, to_server)
        if software:
            self.data.software[to_server] = software
            tx.set_buffer("ssh.software", software, to_server)
        if to_server:
            tx.progress_ts = max(tx.progress_ts, PROGRESS_LINE)
        else:
            tx.progress_tc = max(tx.progress_tc, PROGRESS_LINE)
        self._on_update(tx)
        return True

    # ----------------------------------------------------------------- records
    def _records(self, to_server: bool, side: _Side, data: bytes) -> None:
        if side.skip:
            if len(data) <= side.skip:
                side.skip -= len(data)
                return
            data = data[side.skip :]
            side.skip = 0
        buf = side.buf
        buf += data
        pos = 0
        while side.state == _RECORDS and len(buf) - pos >= _HEADER.size:
            length, _padding, code = _HEADER.unpack_from(buf, pos)
            if length < 2:
                self._fail(side, "ssh.invalid_record")
                return
            total = 4 + length
            if code == MSG_NEWKEYS:
                self._newkeys(to_server, side)
            want_whole = (
                code == MSG_KEXINIT
                and self.cfg.ssh_hassh
                and to_server not in self.data.hassh
                and total <= _MAX_KEXINIT
            )
            if len(buf) - pos < total:
                if want_whole:
                    break  # wait for the whole KEXINIT
                side.skip = total - (len(buf) - pos)
                pos = len(buf)
                break
            if want_whole:
                self._kexinit(to_server, bytes(buf[pos + _HEADER.size : pos + total]))
            pos += total
        del buf[:pos]
        if side.state == _DONE:
            buf.clear()

    def _kexinit(self, to_server: bool, payload: bytes) -> None:
        text = hassh_string(payload, to_server)
        if text is None:
            return
        digest = hashlib.md5(text, usedforsecurity=False).hexdigest().encode()
        self.data.hassh[to_server] = (digest, text)
        name = "ssh.hassh" if to_server else "ssh.hassh.server"
        self.tx.set_buffer(name, digest, to_server)
        self.tx.set_buffer(name + ".string", text, to_server)
        self._on_update(self.tx)

    def _newkeys(self, to_server: bool, side: _Side) -> None:
        side.state = _DONE
        side.skip = 0
        tx = self.tx
        if to_server:
            tx.progress_ts = PROGRESS_COMPLETE
            tx.to_server_done = True
        else:
            tx.progress_tc = PROGRESS_COMPLETE
            tx.to_client_done = True
        self._on_update(tx)

    # ------------------------------------------------------------------ events
    def _event(self, name: str) -> None:
        self.tx.events.append(name)
        self.events.append(name)
        self._on_update(self.tx)

    def _fail(self, side: _Side, event: str) -> None:
        side.state = _DONE
        side.buf.clear()
        side.skip = 0
        self._event(event)


def eve_ssh(tx: Transaction) -> dict[str, object]:
    """The ``ssh`` object Suricata adds to an alert on this connection (empty before any
    banner): ``client``/``server`` with ``proto_version``, ``software_version`` and, when
    computed, ``hassh: {hash, string}``."""
    data = tx.state
    if not isinstance(data, SshTxData):
        return {}
    out: dict[str, object] = {}
    for to_server, key in ((True, "client"), (False, "server")):
        proto = data.proto.get(to_server)
        if proto is None:
            continue
        side: dict[str, object] = {"proto_version": proto.decode("latin-1")}
        software = data.software.get(to_server)
        if software:
            side["software_version"] = software.decode("latin-1")
        hassh = data.hassh.get(to_server)
        if hassh is not None:
            side["hassh"] = {"hash": hassh[0].decode(), "string": hassh[1].decode("latin-1")}
        out[key] = side
    return out
