"""HTTP/1.x message framing: the per-direction parse state and how bodies are delimited.

Scope: the state constants and :class:`Side` (one direction's buffer and position), and
:class:`BodyFraming`, the part of :class:`sensor.applayer.http.HttpParser` that decides
how a body ends (``Content-Length``, chunked, connection close, none) and feeds it to the
body sink (decompression, file tracking: sensor/applayer/http_body.py). Split from
http.py, which parses the start lines and headers and drives both directions.

Non-goals: anything HttpParser does not call from here.
"""

from __future__ import annotations

from collections.abc import Callable

from sensor.applayer.common import PROGRESS_BODY, PROGRESS_COMPLETE, Transaction
from sensor.applayer.http_body import (
    CHUNK_EMPTY,
    CHUNK_INVALID,
    BodySink,
    chunk_size_hopeless,
    parse_chunk_size,
)
from sensor.applayer.http_message import HttpTxData, header_value

S_LINE = 0
S_HEADERS = 1
S_BODY_LEN = 2
S_CHUNK_SIZE = 3
S_CHUNK_DATA = 4
S_CHUNK_END = 5
S_TRAILER = 6
S_BODY_CLOSE = 7
S_STOP = 8  # failed, tunnel or protocol switch: nothing more is parsed in this direction
S_WAIT = 9  # request asked for h2c: the client's next bytes wait for the server's answer
H2C_HOLD = 64 * 1024  # client bytes held while waiting; beyond that HTTP/1 parsing resumes


class Side:
    """Parsing state of one direction."""

    __slots__ = (
        "buf",
        "header_lines",
        "header_raw",
        "interim_raw",
        "line",
        "pos",
        "remaining",
        "request",
        "state",
        "tx",
    )

    def __init__(self, request: bool) -> None:
        self.request = request
        self.buf = bytearray()
        self.pos = 0
        self.state = S_LINE
        self.tx: Transaction | None = None
        self.line = b""  # the request/status line of the message being parsed
        self.header_lines: list[bytes] = []
        self.header_raw = bytearray()  # the header block as received, for http.header.raw
        # an interim (1xx) response's header block, which libhtp's raw header data runs on
        # into the final response's status line and headers
        self.interim_raw = b""
        self.remaining = 0  # bytes left in a Content-Length body or chunk


class BodyFraming:
    """Body delimiting for :class:`sensor.applayer.http.HttpParser` (a mixin: it uses the
    parser's line reader, failure path and update callback)."""

    _on_update: Callable[[Transaction], None]

    def _next_line(self, side: Side) -> bytes | None:
        raise NotImplementedError

    def _fail(self, side: Side, event: str) -> None:
        raise NotImplementedError

    def _trailers_done(self, side: Side, raw: bytes) -> None:
        raise NotImplementedError

    # ----------------------------------------------------------------- bodies
    def _frame_body(
        self, side: Side, tx: Transaction, headers: list[list[bytes]], allow_close: bool
    ) -> None:
        """Choose how the body is delimited, or finish a bodyless message."""
        where = "request" if side.request else "response"
        te = header_value(headers, b"transfer-encoding")
        if te is not None and b"chunked" in te.lower():
            side.state = S_CHUNK_SIZE
        elif te is not None:
            tx.events.append(f"http.invalid_transfer_encoding_value_in_{where}")
        if side.state != S_CHUNK_SIZE:
            cl = header_value(headers, b"content-length")
            length = -1
            if cl is not None:
                text = cl.split(b",")[0].strip()
                if text.isdigit():
                    length = int(text)
                else:
                    tx.events.append(f"http.invalid_content_length_field_in_{where}")
            if length > 0:
                side.state, side.remaining = S_BODY_LEN, length
            elif length < 0 and allow_close:
                side.state = S_BODY_CLOSE
            else:
                self._finish(side)
                return
        self._set_progress(side, tx, PROGRESS_BODY)
        self._on_update(tx)

    @staticmethod
    def _set_progress(side: Side, tx: Transaction, value: int) -> None:
        if side.request:
            tx.progress_ts = value
        else:
            tx.progress_tc = value

    def _sink(self, side: Side) -> BodySink:
        data = side.tx.state if side.tx is not None else None
        assert isinstance(data, HttpTxData)
        sink = data.req_body if side.request else data.resp_body
        assert sink is not None
        return sink

    def _consume(self, side: Side, count: int) -> None:
        chunk = bytes(side.buf[side.pos : side.pos + count])
        side.pos += len(chunk)
        sink = self._sink(side)
        sink.add(chunk)
        assert side.tx is not None
        if sink.events:
            side.tx.events.extend(sink.events)
            sink.events.clear()
        self._on_update(side.tx)

    def _body(self, side: Side) -> bool:
        avail = len(side.buf) - side.pos
        state = side.state
        if state in (S_BODY_LEN, S_CHUNK_DATA):
            if avail == 0:
                return False
            take = min(avail, side.remaining)
            self._consume(side, take)
            side.remaining -= take
            if side.remaining == 0:
                if state == S_BODY_LEN:
                    self._finish(side)
                else:
                    side.state = S_CHUNK_END
            return True
        if state == S_BODY_CLOSE:
            if avail == 0:
                return False
            self._consume(side, avail)
            return True
        start = side.pos
        if state == S_CHUNK_SIZE and chunk_size_hopeless(side.buf, side.pos):
            return self._chunk_size(side, bytes(side.buf[start:]), start)
        line = self._next_line(side)
        if line is None:
            return False
        if state == S_CHUNK_SIZE:
            return self._chunk_size(side, line, start)
        if state == S_CHUNK_END:
            side.state = S_CHUNK_SIZE  # CRLF after chunk data (libhtp tolerates junk here)
            return True
        # S_TRAILER: libhtp adds trailer fields to the message's headers (and their bytes,
        # the ending empty line included, to its raw header data); the empty line ends it
        side.header_raw += side.buf[start : side.pos]
        if line:
            side.header_lines.append(line)
            return True
        self._trailers_done(side, bytes(side.header_raw))
        side.header_raw = bytearray()
        self._finish(side)
        return True

    def _chunk_size(self, side: Side, line: bytes, start: int) -> bool:
        size = parse_chunk_size(line)
        if size == CHUNK_EMPTY:
            return True  # stray empty line before a chunk size
        if size == CHUNK_INVALID:
            if side.request:
                self._fail(side, "http.invalid_request_chunk_len")
                return False
            # libhtp gives up on chunking and reads the response body until close
            assert side.tx is not None
            side.tx.events.append("http.invalid_response_chunk_len")
            side.pos = start
            side.state = S_BODY_CLOSE
            return True
        if size == 0:
            side.state = S_TRAILER
        else:
            side.state, side.remaining = S_CHUNK_DATA, size
        return True

    def _finish(self, side: Side) -> None:
        tx = side.tx
        assert tx is not None
        if side.request:
            tx.progress_ts = PROGRESS_COMPLETE
            tx.to_server_done = True
        else:
            tx.progress_tc = PROGRESS_COMPLETE
            tx.to_client_done = True
        side.tx = None
        side.state = S_LINE
        if side.request and isinstance(tx.state, HttpTxData):
            upgrade = header_value(tx.state.req_headers, b"upgrade") or b""
            if b"h2c" in upgrade.lower():
                side.state = S_WAIT  # hold the client's bytes: they are HTTP/2 after a 101
        self._on_update(tx)
