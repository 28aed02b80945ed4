"""HTTP/1 behaviours found by differential testing against Suricata 7.0.10.

Each test builds a small capture with tests/pcapgen.py; the expected alerts were taken from
Suricata 7.0.10 (``suricata -r ... -k none --runmode single``) on that same capture.
"""

from __future__ import annotations

from pathlib import Path

from pcapgen import TcpSession, alerts_of


def _keys(alerts: list[dict[str, object]]) -> list[tuple[object, ...]]:
    return sorted(
        (a["alert"]["signature_id"], a["src_port"], a["dest_port"])  # type: ignore[index]
        for a in alerts
    )


def test_bidirectional_buffer_alerts_once_per_direction(tmp_path: Path) -> None:
    """A rule on a buffer both sides fill (http.protocol, http.content_len) alerts once on the
    request and once on the response of the same transaction. Suricata 7.0.10 on this capture:
    sid 1 and sid 2 each alert 40000->80 and 80->40000."""
    s = TcpSession().handshake()
    s.send(True, b"POST /up HTTP/1.1\r\nHost: c.com\r\nContent-Length: 4\r\n\r\ndata")
    s.send(False, b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok").close()
    rules = [
        'alert http any any -> any any (msg:"proto"; http.protocol; content:"HTTP/1.1"; sid:1;)',
        'alert http any any -> any any (msg:"cl"; http.content_len; bsize:1; sid:2;)',
        'alert http any any -> any any (msg:"ts"; flow:to_server; http.protocol; bsize:8; sid:3;)',
    ]
    assert _keys(alerts_of(tmp_path, s.frames, rules)) == [
        (1, 80, 40000), (1, 40000, 80), (2, 80, 40000), (2, 40000, 80), (3, 40000, 80),
    ]  # fmt: skip


def _session(*msgs: tuple[bool, bytes], cport: int = 40000) -> list[bytes]:
    s = TcpSession(cport=cport).handshake()
    for from_client, data in msgs:
        s.send(from_client, data)
    return s.close().frames


def _rule(sid: int, body: str) -> str:
    return f'alert http any any -> any any (msg:"{sid}"; {body} sid:{sid};)'


def test_header_buffers_without_headers(tmp_path: Path) -> None:
    """No header at all: no http.header nor http.header_names, and http.start ends after the
    start line's CRLF; only cookies: no http.header. Suricata 7.0.10 on this capture: sids 3,
    4 on 40000->80, sid 5 on 80->40000 and sid 7 on 40001->80."""
    frames = _session(
        (True, b"GET /nh HTTP/1.1\r\n\r\n"), (False, b"HTTP/1.1 404 Not Found\r\n\r\n")
    ) + _session(
        (True, b"GET /oc HTTP/1.1\r\nCookie: a=b\r\n\r\n"),
        (False, b"HTTP/1.1 200 OK\r\nSet-Cookie: x=y\r\nContent-Length: 0\r\n\r\n"),
        cport=40001,
    )  # fmt: skip
    rules = [
        _rule(1, 'flow:to_server; http.header; content:!"zz";'),
        _rule(2, 'flow:to_server; http.header_names; content:"|0d 0a 0d 0a|"; startswith;'),
        _rule(3, "flow:to_server; http.start; bsize:18;"),
        _rule(4, 'flow:to_server; http.start; content:"GET /nh HTTP/1.1|0d 0a|"; endswith;'),
        _rule(5, "flow:to_client; http.start; bsize:24;"),
        _rule(6, "flow:to_client; http.header; bsize:0;"),
        _rule(7, 'flow:to_server; http.cookie; content:"a=b";'),
    ]
    assert _keys(alerts_of(tmp_path, frames, rules)) == [
        (3, 40000, 80), (4, 40000, 80), (5, 80, 40000), (7, 40001, 80),
    ]  # fmt: skip


def test_start_lines_keep_trailing_blanks_and_odd_status(tmp_path: Path) -> None:
    """libhtp keeps the blanks ending a start line (in the line, http.protocol, the status
    message), has no http.stat_msg for "HTTP/1.1 200", no http.host for an empty Host, and
    keeps a 4-digit status as http.stat_code. Suricata 7.0.10: sids 1-4 and 6 alert."""
    frames = _session(
        (True, b"GET /ts HTTP/1.1  \r\nHost: a\r\n\r\n"),
        (False, b"HTTP/1.1 200 OK  \r\nContent-Length: 0\r\n\r\n"),
    ) + _session(
        (True, b"GET /e HTTP/1.1\r\nHost:\r\n\r\n"),
        (False, b"HTTP/1.1 2000\r\nContent-Length: 0\r\n\r\n"),
        cport=40001,
    )  # fmt: skip
    rules = [
        _rule(1, 'http.request_line; content:"HTTP/1.1  "; endswith;'),
        _rule(2, 'flow:to_server; http.protocol; content:"HTTP/1.1  "; bsize:10;'),
        _rule(3, 'http.stat_msg; content:"OK  "; bsize:4;'),
        _rule(4, 'http.response_line; content:"OK  "; endswith;'),
        _rule(5, "http.stat_msg; bsize:0;"),
        _rule(6, 'http.stat_code; content:"2000"; bsize:4;'),
        _rule(7, "http.host; bsize:0;"),
    ]
    assert _keys(alerts_of(tmp_path, frames, rules)) == [
        (1, 40000, 80), (2, 40000, 80), (3, 80, 40000), (4, 80, 40000), (6, 80, 40001),
    ]  # fmt: skip


def test_absolute_uri_host_raw_is_the_uri_hostname(tmp_path: Path) -> None:
    """An absolute-URI request: http.host.raw is the URI's hostname, lower-cased, without
    user info and port. Suricata 7.0.10 on this capture: sid 2 alerts, sid 1 does not."""
    frames = _session(
        (True, b"GET http://u:p@ABS.Example.COM:8080/P HTTP/1.1\r\nHost: other.com\r\n\r\n"),
        (False, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    )
    rules = [
        _rule(1, 'http.host.raw; content:"ABS.Example.COM:8080";'),
        _rule(2, 'http.host.raw; content:"abs.example.com"; bsize:15;'),
    ]
    assert _keys(alerts_of(tmp_path, frames, rules)) == [(2, 40000, 80)]


def test_chunked_trailers_and_interim_response_in_headers(tmp_path: Path) -> None:
    """Chunked trailer fields join the headers (http.header, http.header_names, and
    http.header.raw with the trailer's bytes); after a 100 Continue, http.header.raw runs
    from the interim head to the final one. Suricata 7.0.10 on this capture: every sid."""
    frames = _session(
        (True, b"POST /ct HTTP/1.1\r\nHost: ct.com\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"3\r\nabc\r\n0\r\nX-Trailer: yes\r\n\r\n"),
        (False, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n"),
    ) + _session(
        (True, b"POST /c2 HTTP/1.1\r\nHost: c2.com\r\nExpect: 100-continue\r\n"
               b"Content-Length: 3\r\n\r\n"),
        (False, b"HTTP/1.1 100 Continue\r\nX-C: 1\r\n\r\n"),
        (True, b"abc"),
        (False, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        cport=40001,
    )  # fmt: skip
    rules = [
        _rule(1, 'flow:to_server; http.header; content:"X-Trailer: yes|0d 0a|"; endswith;'),
        _rule(2, 'flow:to_server; http.header_names; content:"|0d 0a|X-Trailer|0d 0a 0d 0a|";'),
        _rule(3, 'flow:to_server; http.header.raw; content:"yes|0d 0a 0d 0a|"; endswith;'),
        _rule(4, "flow:to_client; http.header.raw; bsize:32;"),
        _rule(5, 'flow:to_client; http.header.raw; content:"X-C: 1|0d 0a 0d 0a|HTTP/1.1 200 OK'
                 '|0d 0a|Content-Length: 2|0d 0a 0d 0a|"; startswith; endswith;'),
    ]  # fmt: skip
    assert _keys(alerts_of(tmp_path, frames, rules)) == [
        (1, 40000, 80), (2, 40000, 80), (3, 40000, 80), (4, 80, 40000), (5, 80, 40001),
    ]  # fmt: skip


def test_http09_response_is_a_body(tmp_path: Path) -> None:
    """An HTTP/0.9 request has no http.protocol and its http.start is the line alone; the
    answer has no status line: all of it is the response body. Suricata 7.0.10: sids 2, 3."""
    frames = _session((True, b"GET /nine\r\n"), (False, b"<html>old</html>"))
    rules = [
        _rule(1, 'http.protocol; content:!"zz";'),
        _rule(2, 'http.start; content:"GET /nine|0d 0a|"; bsize:11;'),
        _rule(3, 'file.data; content:"<html>old</html>"; bsize:16;'),
    ]
    assert _keys(alerts_of(tmp_path, frames, rules)) == [(2, 40000, 80), (3, 80, 40000)]


def test_host_header_and_uri_normalisation_as_libhtp(tmp_path: Path) -> None:
    """libhtp's Host parsing keeps the case and trailing dots of a name with a port, trims the
    blanks before the colon and splits at the first colon; its dot-segment removal drops the
    "/" a final "/." or "/.." leaves; a CONNECT has an empty http.uri and the authority's
    host in http.host.raw. Suricata 7.0.10 on this capture: sids 1-6 alert, 7 does not."""
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    frames = _session((True, b"GET /a/b/. HTTP/1.1\r\nHost: WWW.Dot.com.:443\r\n\r\n"), (False, ok))
    frames += _session((True, b"GET /a/b/.. HTTP/1.1\r\nHost: h :80:90\r\n\r\n"), (False, ok),
                       cport=40001)  # fmt: skip
    frames += _session(
        (True, b"CONNECT www.example.com:443 HTTP/1.1\r\nHost: www.example.com:443\r\n\r\n"),
        (False, b"HTTP/1.1 200 Connection established\r\n\r\n"),
        cport=40002,
    )
    rules = [
        _rule(1, r'http.host; pcre:"/^WWW\.Dot\.com\.$/";'),
        _rule(2, 'http.uri; content:"/a/b"; startswith; endswith;'),
        _rule(3, 'http.host; content:"h"; bsize:1;'),
        _rule(4, 'http.uri; content:"/a"; bsize:2;'),
        _rule(5, "http.uri; bsize:0;"),
        _rule(6, 'http.host.raw; content:"www.example.com"; bsize:15;'),
        _rule(7, 'http.uri; content:"www.example.com";'),
    ]
    assert _keys(alerts_of(tmp_path, frames, rules)) == [
        (1, 40000, 80), (2, 40000, 80), (3, 40001, 80), (4, 40001, 80), (5, 40002, 80),
        (6, 40002, 80),
    ]  # fmt: skip


def test_multipart_upload_file_data_is_each_file(tmp_path: Path) -> None:
    """A multipart/form-data upload: request file.data is each part with a filename (not the
    raw body, not the form fields); http.request_body stays the whole body. Suricata 7.0.10
    on this capture: sids 1, 2, 4 and 5 alert."""
    mp = (
        b'--b1\r\nContent-Disposition: form-data; name="x"\r\n\r\nfield\r\n'
        b'--b1\r\nContent-Disposition: form-data; name="f1"; filename="one.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\nFIRSTFILE\r\n"
        b'--b1\r\nContent-Disposition: form-data; name="f2"; filename="two.bin"\r\n\r\n'
        b"SECONDFILE\r\n--b1--\r\n"
    )
    head = b'POST /mp HTTP/1.1\r\nHost: g\r\nContent-Type: multipart/form-data; boundary="b1"\r\n'
    frames = _session(
        (True, head + b"Content-Length: %d\r\n\r\n" % len(mp) + mp),
        (False, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    )
    rules = [
        _rule(1, 'flow:to_server; file.data; content:"FIRSTFILE"; startswith; endswith;'),
        _rule(2, 'flow:to_server; file.data; content:"SECONDFILE"; startswith; endswith;'),
        _rule(3, 'flow:to_server; file.data; content:"field";'),
        _rule(4, 'flow:to_server; http.request_body; content:"field";'),
        _rule(5, 'flow:to_server; file.data; content:"SECOND"; startswith;'),
        _rule(6, 'flow:to_server; file.data; content:"FIRSTFILE"; content:"SECONDFILE";'),
    ]
    assert _keys(alerts_of(tmp_path, frames, rules)) == [
        (1, 40000, 80), (2, 40000, 80), (4, 40000, 80), (5, 40000, 80),
    ]  # fmt: skip


def test_rules_suricata_refuses_are_refused(tmp_path: Path) -> None:
    """Suricata 7.0.10 refuses (so never alerts on) rules mixing request-only and
    response-only buffers or contradicting their flow direction, http.header.raw / pcre /D
    without flow:to_server or to_client, and http.host contents with upper case or nocase;
    it loads the rest here: on this capture sids 7 and 8 alert (9 loads, but a GET has no
    request file)."""
    frames = _session(
        (True, b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n"),
        (False, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
    )
    rules = [
        _rule(1, 'http.uri; content:"/x"; http.stat_code; content:"200";'),
        _rule(2, 'flow:to_client; http.uri; content:"/x";'),
        _rule(3, 'http.uri; content:"/x"; http.header.raw; content:"Host";'),
        _rule(4, 'pcre:"/Host/D"; content:"/x"; http_uri;'),
        _rule(5, 'http.host; content:"A";'),
        _rule(6, 'http.host; content:"a"; nocase;'),
        _rule(7, 'flow:to_server; http.header.raw; content:"Host";'),
        _rule(8, 'http.stat_code; content:"200"; http.header; content:"Content";'),
        _rule(9, 'http.uri; content:"/x"; file.data; content:"x"; http.protocol; content:"H";'),
    ]
    assert _keys(alerts_of(tmp_path, frames, rules)) == [(7, 40000, 80), (8, 80, 40000)]


def test_header_line_without_colon_and_repeated_content_length(tmp_path: Path) -> None:
    """libhtp keeps a header line without a colon as a header with an empty name (the line
    is its value) and never merges a repeated Content-Length (the first one stays).
    Suricata 7.0.10 on this capture: sids 1, 2 and 3 alert, 4 does not."""
    frames = _session(
        (True, b"GET /nc HTTP/1.1\r\nHost: a\r\nBadHeaderLine\r\nX-A: b\r\n\r\n"),
        (False, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    ) + _session(
        (True, b"POST /cd HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\n"
               b"abcd"),
        (False, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        cport=40001,
    )  # fmt: skip
    rules = [
        _rule(1, 'http.header; content:"|0d 0a|: BadHeaderLine|0d 0a|";'),
        _rule(2, 'http.header_names; content:"|0d 0a|Host|0d 0a 0d 0a|X-A|0d 0a 0d 0a|";'),
        _rule(3, 'flow:to_server; http.content_len; content:"4"; bsize:1;'),
        _rule(4, 'http.content_len; content:"4, 4";'),
    ]
    assert _keys(alerts_of(tmp_path, frames, rules)) == [
        (1, 40000, 80), (2, 40000, 80), (3, 40001, 80),
    ]  # fmt: skip


def test_response_file_keywords_once_and_only_with_a_body(tmp_path: Path) -> None:
    """An HTTP response file is inspected towards the client only (filesize does not alert
    again on the client's packets) and an empty body makes no file (no filename, no
    filesize:0). Suricata 7.0.10 on this capture: sids 1 and 3 on 80->40000 only."""
    frames = _session(
        (True, b"GET /docs/report.pdf HTTP/1.1\r\nHost: a\r\n\r\n"),
        (False, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n%PDF-"),
    ) + _session(
        (True, b"GET /e.txt HTTP/1.1\r\nHost: a\r\n\r\n"),
        (False, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        cport=40001,
    )  # fmt: skip
    rules = [
        _rule(1, "filesize:5;"),
        _rule(2, "filesize:0;"),
        _rule(3, 'filename:!"e.txt";'),
        _rule(4, 'filename:"e.txt";'),
    ]
    assert _keys(alerts_of(tmp_path, frames, rules)) == [(1, 80, 40000), (3, 80, 40000)]


def test_request_line_without_protocol_then_headers(tmp_path: Path) -> None:
    """libhtp: a request line without protocol followed by a header line is not HTTP/0.9 --
    its headers are parsed and the response is an ordinary one. Suricata 7.0.10 on this
    capture: sids 1, 2 and 3 alert, 4 does not."""
    frames = _session(
        (True, b"GET /nine\r\nHost: a\r\n\r\n"),
        (False, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
    )
    rules = [
        _rule(1, 'http.host; content:"a";'),
        _rule(2, 'http.stat_code; content:"200";'),
        _rule(3, 'http.response_body; content:"hello"; startswith;'),
        _rule(4, 'http.method; content:"Host:";'),
    ]
    assert _keys(alerts_of(tmp_path, frames, rules)) == [
        (1, 40000, 80), (2, 80, 40000), (3, 80, 40000),
    ]  # fmt: skip


def test_only_100_continue_is_interim(tmp_path: Path) -> None:
    """libhtp treats only 100 Continue as interim: a 103 without length is a whole answer,
    and the 200 after it a response without request (its own transaction); after a 101
    without Upgrade nor length nothing more is parsed. Suricata 7.0.10 on this capture:
    sid 1 twice on 80->40000 and once on 80->40001, sid 2 once, sid 3 never."""
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    frames = _session(
        (True, b"GET /h HTTP/1.1\r\nHost: a\r\n\r\n"),
        (False, b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n" + ok),
    ) + _session(
        (True, b"GET /u HTTP/1.1\r\nHost: a\r\n\r\n"),
        (False, b"HTTP/1.1 101 Switching\r\n\r\n" + ok),
        cport=40001,
    )  # fmt: skip
    rules = [
        _rule(1, 'flow:to_client; http.protocol; content:"HTTP/1.1";'),
        _rule(2, 'http.stat_code; content:"103";'),
        _rule(3, 'http.stat_msg; content:"OK"; http.header; content:"Link";'),
    ]
    assert _keys(alerts_of(tmp_path, frames, rules)) == [
        (1, 80, 40000), (1, 80, 40000), (1, 80, 40001), (2, 80, 40000),
    ]  # fmt: skip
