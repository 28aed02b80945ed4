"""HTTP/1.x message heads: header block parsing and the sticky buffers built from them.

Scope: turn a request/status line and the raw header lines into Suricata 7's buffers
(``http.method``, ``http.uri``, ``http.header``, ``http.start``, ``http.header_names`` ...) and
the numeric values keywords need (``urilen``, ``http.stat_code``), following libhtp's rules:
folded lines are joined, repeated headers are merged with ``", "``, values are trimmed;
``http.header`` lists ``Name: value\\r\\n`` without ``Cookie`` (requests) / ``Set-Cookie``
(responses).

Non-goals: the stream state machine (``http.py``) and body decoding (``http_body.py``).
"""

from __future__ import annotations

import re

from sensor.applayer.common import Transaction
from sensor.applayer.http_body import BodySink
from sensor.applayer.http_multipart import multipart_boundary, multipart_files
from sensor.applayer.uri import header_hostname, normalize_hostname, normalize_uri

_LWS = b" \t"
_NAME_TRAIL = b" \t\x0b\x0c"  # white space libhtp trims between a header name and its colon


def _looks_like_header(line: bytes) -> bool:
    colon = line.find(b":")
    name = line[:colon].strip(_LWS)
    return colon > 0 and bool(name) and b" " not in name and b"\t" not in name


# Single-value header buffers: (buffer name, lower-case header name, directions it exists in).
_REQUEST_HEADER_BUFFERS = (
    ("http.user_agent", b"user-agent"),
    ("http.accept", b"accept"),
    ("http.accept_enc", b"accept-encoding"),
    ("http.accept_lang", b"accept-language"),
    ("http.referer", b"referer"),
    ("http.cookie", b"cookie"),
    ("http.content_type", b"content-type"),
    ("http.content_len", b"content-length"),
    ("http.connection", b"connection"),
)
_RESPONSE_HEADER_BUFFERS = (
    ("http.cookie", b"set-cookie"),
    ("http.content_type", b"content-type"),
    ("http.content_len", b"content-length"),
    ("http.connection", b"connection"),
    ("http.location", b"location"),
    ("http.server", b"server"),
)


class HttpTxData:
    """Parsed details of one HTTP transaction kept for EVE and body handling."""

    __slots__ = (
        "authority",
        "host",
        "http09",
        "method",
        "protocol",
        "req_body",
        "req_headers",
        "resp_body",
        "resp_headers",
        "resp_protocol",
        "status",
        "target",
    )

    def __init__(self) -> None:
        self.method = b""
        self.target = b""
        self.protocol = b""
        self.http09 = False  # a request line without protocol and no headers after it
        self.authority: bytes | None = None
        self.host = b""
        self.req_headers: list[list[bytes]] = []
        self.resp_headers: list[list[bytes]] = []
        self.resp_protocol = b""
        self.status = -1
        self.req_body: BodySink | None = None
        self.resp_body: BodySink | None = None


def parse_headers(lines: list[bytes], events: list[str], request: bool) -> list[list[bytes]]:
    """Header lines (no line terminators) -> ordered [name, value] pairs, repeats merged."""
    side = "request" if request else "response"
    logical: list[bytes] = []
    for line in lines:
        if line[:1] in (b" ", b"\t") and logical:
            if not request and _looks_like_header(line):
                # libhtp: an indented "Name: value" in a response is a header, not folding
                logical.append(line.lstrip(_LWS))
                continue
            logical[-1] += line  # folding: libhtp appends the continuation as received
            continue
        logical.append(line)
    out: list[list[bytes]] = []
    index: dict[bytes, int] = {}
    for line in logical:
        colon = line.find(b":")
        if colon == -1:  # libhtp: a header with an empty name, the line as its value
            events.append(f"http.{side}_field_missing_colon")
            name, value = b"", line.strip(_LWS)
        else:
            name, value = line[:colon], line[colon + 1 :].strip(_LWS)
            if name != name.rstrip(_NAME_TRAIL):
                events.append(f"http.{side}_header_invalid")
                name = name.rstrip(_NAME_TRAIL)
        key = name.lower()
        if key in index:
            pair = out[index[key]]
            if key == b"content-length":  # libhtp keeps the first one, never merges it
                if pair[1] != value:
                    events.append(f"http.duplicate_content_length_field_in_{side}")
                continue
            pair[1] = pair[1] + b", " + value
        else:
            index[key] = len(out)
            out.append([name, value])
    return out


def header_value(headers: list[list[bytes]], lname: bytes) -> bytes | None:
    # libhtp ignores NUL bytes inside a header name when it looks a header up, so
    # "Transfer\0-encoding: chunked" still frames the body (http-evader case 291).
    for name, value in headers:
        if name.lower().replace(b"\x00", b"") == lname:
            return value
    return None


def _header_buffers(
    tx: Transaction, line: bytes, headers: list[list[bytes]], raw: bytes, to_server: bool
) -> None:
    skip = b"cookie" if to_server else b"set-cookie"
    hdr = bytearray()
    start = bytearray(line + b"\r\n")
    names = bytearray(b"\r\n")
    for name, hvalue in headers:
        entry = name + b": " + hvalue + b"\r\n"
        start += entry
        names += name + b"\r\n"
        if name.lower() != skip:
            hdr += entry
    # Suricata: no http.header when nothing is left once cookies are skipped, and neither
    # http.header_names nor the blank line ending http.start when there is no header at all
    if headers:
        start += b"\r\n"
        names += b"\r\n"
        tx.set_buffer("http.header_names", bytes(names), to_server)
    if hdr:
        tx.set_buffer("http.header", bytes(hdr), to_server)
    tx.set_buffer("http.header.raw", raw, to_server)
    tx.set_buffer("http.start", bytes(start), to_server)
    wanted = _REQUEST_HEADER_BUFFERS if to_server else _RESPONSE_HEADER_BUFFERS
    for buffer_name, lname in wanted:
        value = header_value(headers, lname)
        if value is not None:
            tx.set_buffer(buffer_name, value, to_server)


def request_line_buffers(tx: Transaction, data: HttpTxData, line: bytes) -> None:
    """Buffers available once the request line is parsed."""
    uri: bytes
    authority: bytes | None
    if data.method == b"CONNECT":  # authority form: libhtp has a host and port, no path
        uri, authority = b"", data.target
    else:
        uri, authority = normalize_uri(data.target)
    data.authority = authority
    tx.buffers["http.method"] = data.method
    tx.buffers["http.uri"] = uri
    tx.buffers["http.uri.raw"] = data.target
    tx.buffers["http.request_line"] = line
    if data.protocol:  # HTTP/0.9 has none
        tx.buffers["http.protocol"] = data.protocol
    else:  # nor headers: http.start is the request line alone
        tx.buffers["http.start"] = line + b"\r\n"
    tx.values["urilen"] = len(uri)
    tx.values["urilen.raw"] = len(data.target)


def request_header_buffers(tx: Transaction, data: HttpTxData, line: bytes, raw: bytes) -> None:
    headers = data.req_headers
    _header_buffers(tx, line, headers, raw, True)
    host_header = header_value(headers, b"host")
    if data.authority is not None:
        # Suricata's http.host.raw is then the URI's hostname as libhtp normalised it
        # (lower case, without user info and port), not the Host header
        data.host = normalize_hostname(data.authority.rpartition(b"@")[2])
        tx.buffers["http.host.raw"] = data.host
    elif host_header is not None:
        tx.buffers["http.host.raw"] = host_header
        data.host = header_hostname(host_header)
    else:
        tx.events.append("http.missing_host_header")
    if data.host:  # an empty Host header leaves libhtp without a hostname: no http.host
        tx.buffers["http.host"] = data.host


def trailer_buffers(tx: Transaction, data: HttpTxData, line: bytes, lines: list[bytes],
                    raw: bytes, request: bool) -> None:  # fmt: skip
    """A chunked body's trailer fields join the message's headers (libhtp keeps them in the
    same table), so every header buffer is rebuilt; ``raw`` is the trailer's bytes."""
    headers = parse_headers(lines, [], request)
    if request:
        data.req_headers = headers
    else:
        data.resp_headers = headers
    before = tx.get("http.header.raw", request)
    _header_buffers(
        tx, line, headers, (before if isinstance(before, bytes) else b"") + raw, request
    )


def response_line_buffers(tx: Transaction, data: HttpTxData, line: bytes, msg: bytes) -> None:
    tx.set_buffer("http.response_line", line, False)
    tx.set_buffer("http.protocol", data.resp_protocol, False)
    parts = line.split(None, 2)
    if len(parts) > 1:  # what the server sent, even when it is no valid status ("2000")
        tx.set_buffer("http.stat_code", parts[1], False)
    if msg:  # libhtp has no status message for "HTTP/1.1 200": no http.stat_msg
        tx.set_buffer("http.stat_msg", msg, False)
    tx.values["http.stat_code"] = data.status


def response_header_buffers(tx: Transaction, data: HttpTxData, line: bytes, raw: bytes) -> None:
    _header_buffers(tx, line, data.resp_headers, raw, False)


def eve_http(tx: Transaction) -> dict[str, object]:
    """The ``http`` object Suricata adds to an alert on this transaction."""
    data = tx.state
    if not isinstance(data, HttpTxData):
        return {}
    out: dict[str, object] = {}
    if data.host:
        out["hostname"] = data.host.decode("latin-1")
    host_header = header_value(data.req_headers, b"host")
    if host_header and b":" in host_header.rpartition(b"]")[2]:
        port = host_header.rpartition(b":")[2].strip()
        if port.isdigit():
            out["http_port"] = int(port)
    if data.target:
        out["url"] = data.target.decode("latin-1")
    for key, lname, headers in (
        ("http_user_agent", b"user-agent", data.req_headers),
        ("http_content_type", b"content-type", data.resp_headers),
        ("http_refer", b"referer", data.req_headers),
    ):
        value = header_value(headers, lname)
        if value is not None:
            out[key] = value.decode("latin-1")
    if data.method:
        out["http_method"] = data.method.decode("latin-1")
    if data.protocol:
        out["protocol"] = data.protocol.decode("latin-1")
    if data.status >= 0:
        out["status"] = data.status
    location = header_value(data.resp_headers, b"location")
    if location is not None:
        out["redirect"] = location.decode("latin-1")
    out["length"] = data.resp_body.wire_len if data.resp_body is not None else 0
    return out


def body_buffers(tx: Transaction) -> None:
    """Refresh the body buffers from the body sinks (done lazily, once per ``pop_ready``)."""
    data = tx.state
    if not isinstance(data, HttpTxData):
        return
    sink = data.req_body
    if sink is not None and sink.data:
        body = bytes(sink.data)
        tx.buffers["http.request_body"] = body
        boundary = multipart_boundary(header_value(data.req_headers, b"content-type"))
        if boundary is None:
            tx.buffers["file.data"] = body  # Suricata tracks a plain body as a file
        else:  # a multipart upload: its files, one buffer each
            files = [f for f in multipart_files(body, boundary) if f]
            if files:
                tx.buffers["file.data"] = files[0] if len(files) == 1 else files
    sink = data.resp_body
    if sink is not None and sink.data:
        body = bytes(sink.data)
        tx.set_buffer("http.response_body", body, False)
        tx.set_buffer("file.data", body, False)
        if "file.name" not in tx.buffers_tc:  # Suricata opens the file on its first data
            file_name(tx, data)
    # an empty body makes no file
    if (
        sink is not None
        and sink.wire_len > 0
        and tx.to_client_done
        and "file.size" not in tx.values
    ):
        # the response body is the transaction's file (filesize counts it once complete)
        tx.values["file.size"] = sink.wire_len if not sink.layers else len(sink.data)


_DISPOSITION_NAME = re.compile(rb'filename\*?=\s*(?:"([^"]*)"|([^;\s]+))', re.IGNORECASE)


def file_name(tx: Transaction, data: HttpTxData) -> None:
    """The response file's name, as Suricata takes it: Content-Disposition's filename, else
    the last segment of the request's path (``file.name``, filename/fileext keywords)."""
    disposition = header_value(data.resp_headers, b"content-disposition") or b""
    m = _DISPOSITION_NAME.search(disposition)
    if m:
        name = m.group(1) if m.group(1) is not None else m.group(2)
    else:
        uri = tx.buffers.get("http.uri")
        path = uri.split(b"?", 1)[0] if isinstance(uri, bytes) else b""
        name = path.rsplit(b"/", 1)[-1]
    if name:
        tx.set_buffer("file.name", name, False)
