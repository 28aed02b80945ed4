"""SIP over UDP (one message per datagram) and TCP (a stream of messages), as Suricata 7.

Scope: Suricata 7's SIP grammar: a request line ``METHOD SP URI SP VERSION CRLF`` (method
letters only; URI characters are alphanumerics, ``!%'*+-._`` and ``~#@:``, so a URI with
``;params`` is not a request, as in Suricata 7.0) or a status line ``VERSION SP CODE SP
REASON CRLF`` (a 3-byte code), then ``Name: value CRLF`` headers and an empty line. Every
message is its own transaction (requests and responses are not paired, as in Suricata),
filling Suricata's sticky buffers: requests (to server) ``sip.method``, ``sip.uri``,
``sip.request_line``; responses (to client) ``sip.stat_code``, ``sip.stat_msg``,
``sip.response_line``; ``sip.protocol`` (the version) in both. The line buffers are the
line's prefix made of reason-phrase characters, as Suricata's ``sip_take_line`` cuts it.
EVE: the ``sip`` object (``method``, ``uri``, ``version``, ``request_line`` / ``version``,
``code``, ``reason``, ``response_line``).

Events (Suricata's names): ``sip.incomplete_data`` (a datagram ends inside the message),
``sip.invalid_data`` (not SIP; on TCP it ends that direction's parsing).

Non-goals: header and SDP buffers (``sip.from``, ``sdp.*``: Suricata 8), header
normalisation. On TCP a message body is skipped by its ``Content-Length`` (Suricata 7.0
takes the rest of the segment as the body).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from sensor.applayer.common import AppLayerSettings, Transaction

_TOKEN = rb"A-Za-z0-9!%'*+\-._`"
_REQUEST_LINE = re.compile(rb"([A-Za-z]*) ([" + _TOKEN + rb"~#@:]+) ([A-Za-z0-9./]+)\r\n")
_STATUS_LINE = re.compile(
    rb"([A-Za-z0-9./]+) ([\s\S]{3}) ([" + _TOKEN + rb"$&(),/:;=?@\[\\\]^ ]*)\r\n"
)
_LINE = re.compile(rb"[" + _TOKEN + rb"$&(),/:;=?@\[\\\]^ ]+")
_HEADER_NAME = re.compile(rb"[" + _TOKEN + rb"]*[ \t]*:[ \t]*")
_VALUE_CHARS = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!%'*+-._`"
    b'"#$&(),/;:<=>?@[]{}^|~\\\t\r '
)
MAX_MESSAGE = 64 * 1024  # TCP: bytes buffered for one message before giving up


class _Incomplete(Exception):
    pass


class _Invalid(Exception):
    pass


@dataclass(frozen=True, slots=True)
class SipMessage:
    request: bool
    version: bytes
    method: bytes = b""
    uri: bytes = b""
    code: bytes = b""
    reason: bytes = b""
    line: bytes | None = None  # request_line / response_line as Suricata cuts it
    content_length: int = 0


def _headers(data: bytes, pos: int) -> tuple[int, int]:
    """Skip the header block at ``pos``; (offset after the empty line, Content-Length)."""
    length = 0
    while True:
        if data.startswith(b"\r\n", pos):
            return pos + 2, length
        if len(data) - pos < 2 and b"\r\n".startswith(data[pos:]):
            raise _Incomplete
        m = _HEADER_NAME.match(data, pos)
        if m is None:
            raise _Incomplete if b":" not in data[pos:] else _Invalid
        name = m.group(0).split(b":", 1)[0].strip().lower()
        value_start = m.end()
        i = value_start
        while True:  # a value ends at a LF not followed by space or tab (folding)
            if i >= len(data):
                raise _Incomplete
            byte = data[i]
            if byte == 0x0A:
                if i + 1 >= len(data):
                    raise _Incomplete
                if data[i + 1] in b" \t":
                    i += 2
                    continue
                break
            if byte not in _VALUE_CHARS:
                raise _Incomplete  # as Suricata 7: an invalid value byte waits for more
            i += 1
        if name in (b"content-length", b"l"):
            digits = data[value_start:i].strip()
            length = int(digits) if digits.isdigit() and len(digits) < 10 else 0
        pos = i + 1


def parse_message(data: bytes, to_server: bool) -> tuple[SipMessage, int]:
    """One message at the start of ``data``: (message, bytes up to its body)."""
    line_re = _REQUEST_LINE if to_server else _STATUS_LINE
    m = line_re.match(data)
    if m is None:
        if b"\r\n" not in data[:MAX_MESSAGE]:
            raise _Incomplete
        raise _Invalid
    end, length = _headers(data, m.end())
    taken = _LINE.match(data)
    line = taken.group(0) if taken is not None else None
    if to_server:
        method, uri, version = m.groups()
        msg = SipMessage(True, version, method=method, uri=uri, line=line,
                         content_length=length)  # fmt: skip
    else:
        version, code, reason = m.groups()
        msg = SipMessage(False, version, code=code, reason=reason, line=line,
                         content_length=length)  # fmt: skip
    return msg, end


class SipParser:
    """SIP messages of one flow; ``on_update(tx)`` receives each new transaction."""

    def __init__(self, cfg: AppLayerSettings, tcp: bool,
                 on_update: Callable[[Transaction], None]) -> None:  # fmt: skip
        self.cfg = cfg
        self.tcp = tcp
        self._on_update = on_update
        self._next_id = 0
        self._bufs = {True: bytearray(), False: bytearray()}
        self._skip = {True: 0, False: 0}  # TCP: body bytes still to pass over
        self._failed = {True: False, False: False}
        self.events: list[str] = []

    def feed(self, to_server: bool, data: bytes) -> None:
        if self._failed[to_server]:
            return
        if not self.tcp:
            try:
                msg, _end = parse_message(data, to_server)
            except _Incomplete:
                self._event("sip.incomplete_data")
                return
            except _Invalid:
                self._event("sip.invalid_data")
                return
            self._transaction(msg, to_server)
            return
        skip = self._skip[to_server]
        if skip:
            taken = min(skip, len(data))
            self._skip[to_server] -= taken
            data = data[taken:]
        buf = self._bufs[to_server]
        buf += data
        while buf and not self._skip[to_server]:
            try:
                msg, end = parse_message(bytes(buf), to_server)
            except _Incomplete:
                if len(buf) > MAX_MESSAGE:
                    self._fail(to_server)
                return
            except _Invalid:
                self._fail(to_server)
                return
            self._transaction(msg, to_server)
            body = min(msg.content_length, len(buf) - end)
            self._skip[to_server] = msg.content_length - body
            del buf[: end + body]

    def _event(self, name: str) -> None:
        if name not in self.events:  # once each: a long UDP flow keeps the list bounded
            self.events.append(name)

    def _fail(self, to_server: bool) -> None:
        self._failed[to_server] = True
        self._bufs[to_server].clear()
        self._event("sip.invalid_data")

    def _transaction(self, msg: SipMessage, to_server: bool) -> None:
        tx = Transaction(self._next_id, "sip")
        self._next_id += 1
        tx.state = msg
        tx.set_buffer("sip.protocol", msg.version, to_server)
        if msg.request:
            tx.set_buffer("sip.method", msg.method, True)
            tx.set_buffer("sip.uri", msg.uri, True)
            if msg.line is not None:
                tx.set_buffer("sip.request_line", msg.line, True)
        else:
            tx.set_buffer("sip.stat_code", msg.code, False)
            tx.set_buffer("sip.stat_msg", msg.reason, False)
            if msg.line is not None:
                tx.set_buffer("sip.response_line", msg.line, False)
        tx.complete()
        self._on_update(tx)


def eve_sip(tx: Transaction) -> dict[str, object]:
    """The ``sip`` object Suricata 7 adds to an alert on this transaction."""
    msg = tx.state
    if not isinstance(msg, SipMessage):
        return {}
    text = lambda b: b.decode("latin-1")  # noqa: E731 - local shorthand
    if msg.request:
        out = {"method": text(msg.method), "uri": text(msg.uri), "version": text(msg.version)}
        if msg.line is not None:
            out["request_line"] = text(msg.line)
        return dict(out)
    out = {"version": text(msg.version), "code": text(msg.code), "reason": text(msg.reason)}
    if msg.line is not None:
        out["response_line"] = text(msg.line)
    return dict(out)
