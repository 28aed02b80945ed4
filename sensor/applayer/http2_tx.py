"""HTTP/2 transaction records: the frames a stream carried and the buffers built from them.

Scope: :class:`Frame` (the parts of a frame the ``http2.*`` keywords read), :class:`Http2TxData`
(one stream's frames, header lists and bodies per direction) and the sticky buffers Suricata 7
fills for HTTP/2: ``http.method`` (``:method``), ``http.uri``/``http.uri.raw`` (``:path``, not
normalised), ``http.host`` (``:authority`` lower-cased without port), ``http.host.raw``,
``http.user_agent``, ``http.stat_code`` (``:status``), ``http.cookie``, ``http.header``
(``name: value\\r\\n`` per field, pseudo headers included, cookies left out),
``http.header.raw``, ``http.header_names``, ``http2.header_name`` and ``http2.header``
(one entry per field), ``http.request_body`` and ``file.data`` (DATA frames, the response's
decompressed as Suricata's HTTP/2 file tracking does). Repeated fields are merged with
``", "`` for the single-value buffers, as Suricata's ``http2_frames_get_header_value``.

Non-goals: frame parsing and HPACK (``http2.py``, ``hpack.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from sensor.applayer.common import Transaction
from sensor.applayer.http_body import BodySink

FRAME_TYPES = {"DATA": 0, "HEADERS": 1, "PRIORITY": 2, "RST_STREAM": 3, "SETTINGS": 4,
               "PUSH_PROMISE": 5, "PING": 6, "GOAWAY": 7, "WINDOW_UPDATE": 8,
               "CONTINUATION": 9}  # fmt: skip
ERROR_CODES = {"NO_ERROR": 0, "PROTOCOL_ERROR": 1, "INTERNAL_ERROR": 2,
               "FLOW_CONTROL_ERROR": 3, "SETTINGS_TIMEOUT": 4, "STREAM_CLOSED": 5,
               "FRAME_SIZE_ERROR": 6, "REFUSED_STREAM": 7, "CANCEL": 8,
               "COMPRESSION_ERROR": 9, "CONNECT_ERROR": 10, "ENHANCE_YOUR_CALM": 11,
               "INADEQUATE_SECURITY": 12, "HTTP_1_1_REQUIRED": 13}  # fmt: skip
SETTINGS_IDS = {"SETTINGS_HEADER_TABLE_SIZE": 1, "SETTINGS_ENABLE_PUSH": 2,
                "SETTINGS_MAX_CONCURRENT_STREAMS": 3, "SETTINGS_INITIAL_WINDOW_SIZE": 4,
                "SETTINGS_MAX_FRAME_SIZE": 5, "SETTINGS_MAX_HEADER_LIST_SIZE": 6}  # fmt: skip
MAX_FRAMES_PER_TX = 256  # per direction: what http2.* keywords can see of a long stream


@dataclass(frozen=True)
class Frame:
    """What detection needs of one frame (a HEADERS frame with its CONTINUATIONs is one)."""

    ftype: int
    stream_id: int
    error_code: int | None = None  # RST_STREAM, GOAWAY
    weight: int | None = None  # PRIORITY, HEADERS with the PRIORITY flag
    window: int | None = None  # WINDOW_UPDATE increment
    settings: tuple[tuple[int, int], ...] = ()
    size_updates: tuple[int, ...] = ()  # HPACK dynamic table size updates in the block
    headers: tuple[tuple[bytes, bytes], ...] = ()  # HEADERS/PUSH_PROMISE, decoded


class Http2TxData:
    """One stream (or one connection-level frame: stream 0) seen from both directions."""

    __slots__ = ("frames_tc", "frames_ts", "req_body", "resp_body", "stream_id")

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id
        self.frames_ts: list[Frame] = []
        self.frames_tc: list[Frame] = []
        self.req_body: BodySink | None = None
        self.resp_body: BodySink | None = None

    def frames(self, to_server: bool) -> list[Frame]:
        return self.frames_ts if to_server else self.frames_tc

    def add(self, to_server: bool, frame: Frame) -> None:
        frames = self.frames(to_server)
        if len(frames) < MAX_FRAMES_PER_TX:
            frames.append(frame)

    def headers(self, to_server: bool) -> list[tuple[bytes, bytes]]:
        return [h for f in self.frames(to_server) for h in f.headers]


def _first(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    return next((v for n, v in headers if n == name), None)


def _merged(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    values = [v for n, v in headers if n == name]
    return b", ".join(values) if values else None


def header_buffers(tx: Transaction, data: Http2TxData, to_server: bool) -> None:
    """(Re)build the header buffers of one direction from every header block it sent."""
    headers = data.headers(to_server)
    if not headers:
        return
    skip = b"cookie" if to_server else b"set-cookie"
    hdr = bytearray()
    raw = bytearray()
    names = bytearray(b"\r\n")
    for name, value in headers:
        raw += name + b": " + value + b"\r\n"
        names += name + b"\r\n"
        if name.lower() != skip:
            hdr += name + b": " + value.strip(b" \t") + b"\r\n"
    names += b"\r\n"
    tx.set_buffer("http.header", bytes(hdr), to_server)
    tx.set_buffer("http.header.raw", bytes(raw), to_server)
    tx.set_buffer("http.header_names", bytes(names), to_server)
    tx.set_buffer("http2.header_name", [n for n, _ in headers], to_server)
    tx.set_buffer("http2.header", [n + b": " + v for n, v in headers], to_server)
    cookie = _merged(headers, skip)
    if cookie is not None:
        tx.set_buffer("http.cookie", cookie, to_server)
    if to_server:
        _request_buffers(tx, headers)
    else:
        status = _first(headers, b":status")
        if status is not None:
            tx.set_buffer("http.stat_code", status, False)
            tx.values["http.stat_code"] = int(status) if status.isdigit() else -1


def _request_buffers(tx: Transaction, headers: list[tuple[bytes, bytes]]) -> None:
    method = _first(headers, b":method")
    if method is not None:
        tx.buffers["http.method"] = method
    path = _first(headers, b":path")
    if path is not None:
        tx.buffers["http.uri"] = path
        tx.buffers["http.uri.raw"] = path
        tx.values["urilen"] = len(path)
        tx.values["urilen.raw"] = len(path)
    authority = _merged(headers, b":authority")
    if authority is not None:
        tx.buffers["http.host.raw"] = authority
        tx.buffers["http.host"] = authority.split(b":", 1)[0].lower()
    agent = _merged(headers, b"user-agent")
    if agent is not None:
        tx.buffers["http.user_agent"] = agent


def body_buffers(tx: Transaction) -> None:
    """Refresh the body buffers from the DATA frames' sinks (once per ``pop_ready``)."""
    data = tx.state
    if not isinstance(data, Http2TxData):
        return
    if data.req_body is not None and data.req_body.data:
        body = bytes(data.req_body.data)
        tx.buffers["http.request_body"] = body
        tx.buffers["file.data"] = body
    if data.resp_body is not None and data.resp_body.data:
        tx.set_buffer("file.data", bytes(data.resp_body.data), False)


def eve_http2(tx: Transaction) -> dict[str, object]:
    """The ``http`` object of an alert on an HTTP/2 transaction (Suricata's layout: the
    HTTP/1-style fields plus ``http2.stream_id``)."""
    data = tx.state
    if not isinstance(data, Http2TxData):
        return {}
    req, resp = data.headers(True), data.headers(False)
    out: dict[str, object] = {}
    for key, value in (
        ("hostname", tx.buffers.get("http.host")),
        ("url", _first(req, b":path")),
        ("http_user_agent", _merged(req, b"user-agent")),
        ("http_content_type", _merged(resp, b"content-type")),
        ("http_refer", _merged(req, b"referer")),
        ("http_method", _first(req, b":method")),
    ):
        if isinstance(value, bytes):
            out[key] = value.decode("latin-1")
    out["protocol"] = "HTTP/2"
    status = tx.values.get("http.stat_code")
    if status is not None and status >= 0:
        out["status"] = status
    out["length"] = data.resp_body.wire_len if data.resp_body is not None else 0
    out["http2"] = {"stream_id": data.stream_id}
    return out
