"""HTTP/1.x parser over the two reassembled directions of one TCP connection.

Scope: requests and responses in any slicing (the parser keeps the unconsumed tail per
direction, so data fed one byte at a time gives the same result), pipelining and keep-alive
(responses are paired with requests in order), ``Content-Length`` and chunked bodies,
``1xx`` interim responses, ``HEAD``/``204``/``304`` bodyless responses, bodies delimited by
connection close (finished by :meth:`HttpParser.close`), ``CONNECT``/``101`` tunnels (parsing
stops; after a request with ``Upgrade: h2c`` the client's next bytes wait for the answer, and
a ``101`` sets :attr:`HttpParser.h2c` so the caller hands the flow to the HTTP/2 parser). Anomalies become Suricata's ``http.*`` app-layer event names on the transaction;
a line longer than the field limit or an invalid chunk length stops that direction. How
bodies are delimited and fed lives in http_framing.py (the parser's mixin).

Non-goals: HTTP/2 itself (``http2.py``), multipart/file extraction, request decompression (Suricata 7 does not
decompress request bodies by default either).
"""

from __future__ import annotations

from collections.abc import Callable

from sensor.applayer.common import (
    PROGRESS_BODY,
    PROGRESS_HEADERS,
    PROGRESS_LINE,
    AppLayerSettings,
    Transaction,
)
from sensor.applayer.http_body import BodySink, codings_of
from sensor.applayer.http_framing import (
    H2C_HOLD,
    S_BODY_CLOSE,
    S_HEADERS,
    S_LINE,
    S_STOP,
    S_WAIT,
    BodyFraming,
    Side,
)
from sensor.applayer.http_message import (
    HttpTxData,
    header_value,
    parse_headers,
    request_header_buffers,
    request_line_buffers,
    response_header_buffers,
    response_line_buffers,
    trailer_buffers,
)


class HttpParser(BodyFraming):
    """Both directions of one HTTP connection. ``on_update(tx)`` is called for every change."""

    def __init__(self, cfg: AppLayerSettings, on_update: Callable[[Transaction], None]) -> None:
        self.cfg = cfg
        self._on_update = on_update
        self._ts = Side(True)
        self._tc = Side(False)
        self._next_id = 0
        self._pending: list[Transaction] = []  # requests still waiting for their response
        self.events: list[str] = []  # anomalies that stopped a direction (flow-level count)
        # set by a 101 answering an h2c upgrade: (method, target, client rest, server rest)
        self.h2c: tuple[bytes, bytes, bytes, bytes] | None = None

    @property
    def next_id(self) -> int:
        """The id the next transaction gets (an HTTP/2 parser taking over continues it)."""
        return self._next_id

    # ----------------------------------------------------------------- driving
    def feed(self, to_server: bool, data: bytes) -> None:
        side = self._ts if to_server else self._tc
        if side.state == S_STOP or not data:
            return
        side.buf += data
        if side.state == S_WAIT and len(side.buf) > H2C_HOLD:
            side.state = S_LINE
        self._run(side)
        if (
            self._ts.state == S_WAIT
            and self.h2c is None
            and ((not self._pending and self._tc.tx is None) or self._tc.state == S_STOP)
        ):
            self._ts.state = S_LINE  # answered without a switch: HTTP/1 goes on
            self._run(self._ts)

    def _run(self, side: Side) -> None:
        steps = self._step_request if side.request else self._step_response
        while side.state not in (S_STOP, S_WAIT) and steps(side):
            pass
        self._compact(side)
        if self.h2c is not None and not side.request:
            method, target = self.h2c[0], self.h2c[1]
            self.h2c = (method, target, bytes(self._ts.buf), bytes(side.buf))
            self._ts.buf.clear()
            side.buf.clear()

    def close(self) -> None:
        """Connection closed: a header block cut short ends there (libhtp finalises it),
        and a body delimited by close is complete."""
        side = self._tc
        if side.state == S_HEADERS and side.tx is not None:
            rest = bytes(side.buf[side.pos :])
            if rest.strip():
                side.header_raw += rest
                side.header_lines.append(rest.rstrip(b"\r\n"))
            side.pos = len(side.buf)
            raw = bytes(side.header_raw)
            side.header_raw = bytearray()
            self._response_headers_done(side, raw)
        if side.state == S_BODY_CLOSE and side.tx is not None:
            self._finish(side)

    @staticmethod
    def _compact(side: Side) -> None:
        if side.pos:
            del side.buf[: side.pos]
            side.pos = 0

    def _new_tx(self) -> Transaction:
        tx = Transaction(self._next_id, "http")
        self._next_id += 1
        tx.state = HttpTxData()
        return tx

    def _fail(self, side: Side, event: str) -> None:
        """Stop parsing this direction; the event is counted on the flow and the tx if any."""
        self.events.append(event)
        if side.tx is not None:
            side.tx.events.append(event)
            self._on_update(side.tx)
        side.state = S_STOP

    def _next_line(self, side: Side) -> bytes | None:
        """The next line without its terminator, or None when it is not complete yet."""
        buf, pos = side.buf, side.pos
        nl = buf.find(b"\n", pos)
        end, after = nl, nl + 1
        if not side.request and side.state in (S_LINE, S_HEADERS):
            # libhtp also ends a response head line at a lone CR (servers that send them)
            cr = buf.find(b"\r", pos, nl if nl != -1 else len(buf))
            if cr != -1 and cr + 1 < len(buf) and buf[cr + 1] != 0x0A:
                end, after = cr, cr + 1
            elif cr != -1 and cr + 1 == len(buf):
                return None  # is a LF coming?
        if end == -1:
            if len(buf) - pos > self.cfg.field_limit:
                self._fail(side, self._too_long(side))
            return None
        line = bytes(buf[pos:end])
        side.pos = after
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > self.cfg.field_limit:
            self._fail(side, self._too_long(side))
            return None
        return line

    @staticmethod
    def _too_long(side: Side) -> str:
        return "http.request_field_too_long" if side.request else "http.response_field_too_long"

    # ----------------------------------------------------------------- requests
    def _step_request(self, side: Side) -> bool:
        state = side.state
        if state == S_LINE:
            return self._request_line(side)
        if state == S_HEADERS:
            return self._headers(side)
        return self._body(side)

    def _request_line(self, side: Side) -> bool:
        line = self._next_line(side)
        if line is None:
            return False
        if not line.strip():
            return True  # libhtp skips empty lines between requests
        tx = self._new_tx()
        data = tx.state
        assert isinstance(data, HttpTxData)
        if line[:1] in (b" ", b"\t"):
            tx.events.append("http.request_line_leading_whitespace")
        parts = line.split(None, 2)
        data.method = parts[0]
        data.target = parts[1] if len(parts) > 1 else b""
        data.protocol = parts[2] if len(parts) > 2 else b""  # libhtp keeps trailing blanks
        if len(self._pending) >= self.cfg.max_transactions:
            self._pending.pop(0)
            tx.events.append("http.too_many_transactions")
        self._pending.append(tx)
        side.tx, side.line = tx, line.lstrip()
        request_line_buffers(tx, data, side.line)
        tx.progress_ts = PROGRESS_LINE
        if not data.protocol and not self._header_follows(side):  # HTTP/0.9: no headers
            data.http09 = True
            tx.events.append("http.request_line_missing_protocol")
            self._finish(side)
            return True
        self._start_headers(side)
        self._on_update(tx)
        return True

    @staticmethod
    def _header_follows(side: Side) -> bool:
        """libhtp: a request line without protocol is HTTP/0.9 unless the data after it
        looks like a header line (a colon before any other white space)."""
        after_spaces = False
        for c in side.buf[side.pos :]:
            if c == 0x3A:
                return True
            if c in (0x20, 0x09):
                after_spaces = True
            elif c in b"\r\n\x0b\x0c" or after_spaces:
                return False
        return False

    def _start_headers(self, side: Side) -> None:
        side.state = S_HEADERS
        side.header_lines = []
        side.header_raw = bytearray()

    def _headers(self, side: Side) -> bool:
        start = side.pos
        line = self._next_line(side)
        if line is None:
            return False
        side.header_raw += side.buf[start : side.pos]
        if line:
            if len(side.header_lines) >= self.cfg.max_headers:
                self._fail(
                    side,
                    "http.request_too_many_headers"
                    if side.request
                    else "http.response_too_many_headers",
                )
                return False
            side.header_lines.append(line)
            return True
        raw = bytes(side.header_raw)
        side.header_raw = bytearray()
        if side.request:
            self._request_headers_done(side, raw)
        else:
            self._response_headers_done(side, raw)
        return True

    def _request_headers_done(self, side: Side, raw: bytes) -> None:
        tx = side.tx
        assert tx is not None and isinstance(tx.state, HttpTxData)
        data = tx.state
        data.req_headers = parse_headers(side.header_lines, tx.events, True)
        request_header_buffers(tx, data, side.line, raw)
        tx.progress_ts = PROGRESS_HEADERS
        data.req_body = BodySink([], self.cfg.request_body_limit)
        self._frame_body(side, tx, data.req_headers, allow_close=False)

    # ----------------------------------------------------------------- responses
    def _step_response(self, side: Side) -> bool:
        state = side.state
        if state == S_LINE:
            return self._response_line(side)
        if state == S_HEADERS:
            return self._headers(side)
        return self._body(side)

    def _response_line(self, side: Side) -> bool:
        if side.tx is None and self._pending:
            data = self._pending[0].state
            if isinstance(data, HttpTxData) and data.http09:
                return self._response_09(side)
        start = side.pos
        line = self._next_line(side)
        if line is None:
            return False
        if not line.strip():
            return True
        if side.tx is None:  # not an interim (1xx) response's follow-up: pair with a request
            if self._pending:
                side.tx = self._pending.pop(0)
            else:
                side.tx = self._new_tx()
                side.tx.events.append("http.unable_to_match_response_to_request")
        tx = side.tx
        data = tx.state
        assert isinstance(data, HttpTxData)
        parts = line.split(None, 2)
        data.resp_protocol = parts[0]
        if not data.resp_protocol.upper().startswith(b"HTTP/"):
            tx.events.append("http.response_invalid_protocol")
        code = parts[1] if len(parts) > 1 else b""
        data.status = int(code) if len(code) == 3 and code.isdigit() else -1
        if data.status < 0:
            tx.events.append("http.response_invalid_status")
        side.line = line.lstrip()  # as libhtp: trailing blanks stay in the line and message
        response_line_buffers(tx, data, side.line, parts[2] if len(parts) > 2 else b"")
        tx.progress_tc = PROGRESS_LINE
        self._start_headers(side)
        if side.interim_raw:  # after a 1xx: libhtp's raw header data spans both heads
            side.header_raw += side.interim_raw + side.buf[start : side.pos]
            side.interim_raw = b""
        self._on_update(tx)
        return True

    def _response_09(self, side: Side) -> bool:
        """libhtp: the answer to an HTTP/0.9 request has no status line nor headers, it is
        a body until the connection closes."""
        tx = side.tx = self._pending.pop(0)
        data = tx.state
        assert isinstance(data, HttpTxData)
        cfg = self.cfg
        data.resp_body = BodySink([], cfg.response_body_limit)
        side.state = S_BODY_CLOSE
        self._set_progress(side, tx, PROGRESS_BODY)
        self._on_update(tx)
        return True

    def _trailers_done(self, side: Side, raw: bytes) -> None:
        tx = side.tx
        assert tx is not None and isinstance(tx.state, HttpTxData)
        trailer_buffers(tx, tx.state, side.line, side.header_lines, raw, side.request)

    def _response_headers_done(self, side: Side, raw: bytes) -> None:
        tx = side.tx
        assert tx is not None and isinstance(tx.state, HttpTxData)
        data = tx.state
        data.resp_headers = parse_headers(side.header_lines, tx.events, False)
        status = data.status
        if status == 100:  # libhtp: only 100 Continue is interim, the real answer follows
            side.state = S_LINE
            side.interim_raw = raw
            return
        response_header_buffers(tx, data, side.line, raw)
        tx.progress_tc = PROGRESS_HEADERS
        codings, events = codings_of(header_value(data.resp_headers, b"content-encoding"))
        tx.events.extend(events)
        cfg = self.cfg
        data.resp_body = BodySink(
            codings if cfg.decompress else [],
            cfg.response_body_limit,
            cfg.decompress_layer_limit,
            cfg.decompression_limit,
        )
        # libhtp only switches protocols when the 101 really announces an Upgrade
        upgrade = status == 101 and header_value(data.resp_headers, b"upgrade") is not None
        tunnel = upgrade or (data.method.upper() == b"CONNECT" and 200 <= status < 300)
        if tunnel:
            self._finish(side)
            side.state = S_STOP
            if (
                upgrade
                and self._ts.state == S_WAIT
                and b"h2c" in (header_value(data.resp_headers, b"upgrade") or b"").lower()
            ):
                self.h2c = (data.method, data.target, b"", b"")  # rests filled by _run
            self._ts.state = S_STOP
            return
        # a 204 announcing a length is read anyway (libhtp), a 304's length is the resource's
        has_length = header_value(data.resp_headers, b"content-length") is not None
        # other 1xx (101 without Upgrade, 102, 103) have a body only when they announce a
        # length; without one they are whole answers and what follows is the next response
        # -- except after a 101, which libhtp parses nothing more from the server for
        informational = 100 <= status < 200
        if status == 101 and not has_length:
            self._finish(side)
            side.state = S_STOP
            return
        bodyless = status == 304 or ((status == 204 or informational) and not has_length)
        if data.method.upper() == b"HEAD" or bodyless:
            self._finish(side)
            return
        self._frame_body(side, tx, data.resp_headers, allow_close=not informational)
