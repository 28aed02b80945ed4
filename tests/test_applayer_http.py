"""HTTP/1.x parsing: buffers, pipelining, chunked/gzip bodies, slicing invariance, anomalies."""

from __future__ import annotations

import gzip
import zlib

import pytest

from sensor.applayer import PROGRESS_COMPLETE, PROGRESS_HEADERS, AppLayer, AppLayerSettings
from sensor.applayer.common import Transaction

REQ_GET = (
    b"GET /a/./b/../c//d%2fe%20f?x=%41%20y+z HTTP/1.1\r\n"
    b"Host: Example.COM:8080\r\n"
    b"User-Agent: curl/7.88.1\r\n"
    b"Cookie: a=b\r\n"
    b"Accept: */*\r\n"
    b"Accept-Encoding: gzip\r\n"
    b"Accept-Language: en\r\n"
    b"Referer: http://ref/\r\n"
    b"Connection: keep-alive\r\n"
    b"\r\n"
)
REQ_POST_CHUNKED = (
    b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
)
GZ_BODY = gzip.compress(b"<html>secret</html>")
RESP_GZIP = (
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\n"
    b"Content-Length: %d\r\nSet-Cookie: s=1\r\nLocation: /next\r\n\r\n" % len(GZ_BODY)
) + GZ_BODY
RESP_CONTINUE_404 = (
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnop"
)


def run(
    requests: bytes, responses: bytes, step: int = 1 << 20, cfg: AppLayerSettings | None = None
) -> tuple[AppLayer, dict[int, Transaction]]:
    al = AppLayer(cfg or AppLayerSettings(), 6, 40000, 80)
    txs: dict[int, Transaction] = {}
    for i in range(0, len(requests), step):
        al.feed(True, requests[i : i + step], 0)
        txs.update((tx.tx_id, tx) for tx in al.pop_ready())
    for i in range(0, len(responses), step):
        al.feed(False, responses[i : i + step], 0)
        txs.update((tx.tx_id, tx) for tx in al.pop_ready())
    al.close()
    txs.update((tx.tx_id, tx) for tx in al.pop_ready())
    return al, txs


def snapshot(txs: dict[int, Transaction]) -> dict[int, tuple[object, ...]]:
    return {
        i: (tx.buffers, tx.buffers_tc, tx.values, tx.events, tx.to_server_done, tx.to_client_done)
        for i, tx in txs.items()
    }


def test_request_buffers_match_suricata_layout() -> None:
    al, txs = run(REQ_GET, b"")
    assert al.proto_name == "http"
    b = txs[0].buffers
    assert b["http.method"] == b"GET"
    assert b["http.uri"] == b"/a/c/d/e f?x=A y+z"
    assert b["http.uri.raw"] == b"/a/./b/../c//d%2fe%20f?x=%41%20y+z"
    assert b["http.protocol"] == b"HTTP/1.1"
    assert b["http.request_line"] == b"GET /a/./b/../c//d%2fe%20f?x=%41%20y+z HTTP/1.1"
    # Suricata 7.0.10: libhtp lower-cases a Host header's name only when it has no port
    assert b["http.host"] == b"Example.COM"
    assert b["http.host.raw"] == b"Example.COM:8080"
    assert b["http.user_agent"] == b"curl/7.88.1"
    assert b["http.cookie"] == b"a=b"
    assert b["http.accept"] == b"*/*"
    assert b["http.accept_enc"] == b"gzip"
    assert b["http.accept_lang"] == b"en"
    assert b["http.referer"] == b"http://ref/"
    assert b["http.connection"] == b"keep-alive"
    # http.header: normalised "Name: value\r\n" lines, Cookie left out (it has http.cookie)
    assert b"Cookie" not in b["http.header"]
    header = b["http.header"]
    assert isinstance(header, bytes)
    assert header.startswith(b"Host: Example.COM:8080\r\nUser-Agent: curl/7.88.1\r\n")
    assert header.endswith(b"Connection: keep-alive\r\n")
    assert b["http.header.raw"] == REQ_GET.split(b"\r\n", 1)[1]
    assert b["http.start"] == REQ_GET
    assert b["http.header_names"] == (
        b"\r\nHost\r\nUser-Agent\r\nCookie\r\nAccept\r\n"
        b"Accept-Encoding\r\nAccept-Language\r\nReferer\r\n"
        b"Connection\r\n\r\n"
    )
    assert txs[0].values["urilen"] == len(b["http.uri"])
    assert txs[0].progress_ts == PROGRESS_COMPLETE and txs[0].to_server_done
    assert not txs[0].to_client_done


def test_pipelined_requests_pair_with_responses_in_order() -> None:
    al, txs = run(REQ_GET + REQ_POST_CHUNKED, RESP_GZIP + RESP_CONTINUE_404)
    assert sorted(txs) == [0, 1]
    first, second = txs[0], txs[1]
    assert first.buffers["http.response_body"] == b"<html>secret</html>"
    assert first.get("file.data", to_server=False) == b"<html>secret</html>"
    assert first.get("http.stat_code", False) == b"200"
    assert first.values["http.stat_code"] == 200
    assert first.get("http.cookie", False) == b"s=1"
    assert first.get("http.cookie", True) == b"a=b"
    assert first.get("http.location", False) == b"/next"
    assert first.get("http.server", False) == b"nginx"
    assert first.get("http.content_type", False) == b"text/html"
    assert b"Set-Cookie" not in first.buffers_tc["http.header"]
    assert second.buffers["http.request_body"] == b"hello world"
    assert second.get("file.data", True) == b"hello world"
    assert second.get("http.content_type", True) == b"text/plain"
    # the 100-continue interim response is skipped; the final one belongs to the same request
    assert second.get("http.stat_code", False) == b"404"
    assert second.get("http.stat_msg", False) == b"Not Found"
    assert second.get("http.response_line", False) == b"HTTP/1.1 404 Not Found"
    assert second.buffers["http.response_body"] == b"nop"
    assert all(t.to_server_done and t.to_client_done for t in txs.values())
    assert al.eve_fields(first) == {
        "http": {
            "hostname": "Example.COM",  # as Suricata 7.0.10 logs it
            "http_port": 8080,
            "url": "/a/./b/../c//d%2fe%20f?x=%41%20y+z",
            "http_user_agent": "curl/7.88.1",
            "http_content_type": "text/html",
            "http_refer": "http://ref/",
            "http_method": "GET",
            "protocol": "HTTP/1.1",
            "status": 200,
            "redirect": "/next",
            "length": len(GZ_BODY),
        }
    }


def test_every_split_point_gives_the_same_buffers() -> None:
    requests = REQ_GET + REQ_POST_CHUNKED
    responses = RESP_GZIP + RESP_CONTINUE_404
    _, whole = run(requests, responses)
    expected = snapshot(whole)
    for step in (1, 2, 3, 5, 13):
        _, sliced = run(requests, responses, step)
        assert snapshot(sliced) == expected, f"slicing by {step} changed the result"
    # and every two-piece split of the request stream
    for cut in range(1, len(requests)):
        al = AppLayer(AppLayerSettings(), 6, 40000, 80)
        al.feed(True, requests[:cut], 0)
        al.feed(True, requests[cut:], 0)
        al.feed(False, responses, 0)
        got = {tx.tx_id: tx for tx in al.pop_ready()}
        assert snapshot(got) == expected, f"cut at {cut}"


@pytest.mark.parametrize("wrapped", [True, False])
def test_deflate_zlib_wrapped_and_raw(wrapped: bool) -> None:
    comp = zlib.compressobj(wbits=zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
    body = comp.compress(b"deflated payload " * 10) + comp.flush()
    resp = (
        b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: %d\r\n\r\n" % len(body)
    ) + body
    _, txs = run(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", resp, step=1)
    assert txs[0].buffers["http.response_body"] == b"deflated payload " * 10


def test_decompression_is_bounded_by_the_body_limit() -> None:
    bomb = gzip.compress(b"\0" * (20 * 1024 * 1024))
    resp = (
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(bomb)
    ) + bomb
    cfg = AppLayerSettings(response_body_limit=4096)
    _, txs = run(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", resp, cfg=cfg)
    assert txs[0].buffers["http.response_body"] == b"\0" * 4096
    assert txs[0].to_client_done


def test_broken_gzip_is_an_event_and_passes_bytes_through() -> None:
    resp = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 9\r\n\r\nnot-gzip!"
    _, txs = run(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", resp)
    assert "http.gzip_decompression_failed" in txs[0].events


def test_request_body_limit_keeps_the_first_bytes() -> None:
    req = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789"
    _, txs = run(req, b"", cfg=AppLayerSettings(request_body_limit=4))
    assert txs[0].buffers["http.request_body"] == b"0123"
    assert txs[0].to_server_done


def test_head_and_304_have_no_body_and_close_delimited_body_finishes_on_close() -> None:
    req = b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\nGET /x HTTP/1.0\r\n\r\n"
    resp = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n"
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close"
    )
    _, txs = run(req, resp)
    assert txs[0].to_client_done and "http.response_body" not in txs[0].buffers
    assert txs[1].buffers["http.response_body"] == b"until close"
    assert txs[1].to_client_done
    assert "http.missing_host_header" in txs[1].events


def test_folded_and_repeated_headers_follow_libhtp() -> None:
    req = b"GET / HTTP/1.1\r\nHost: h\r\nX-A: one\r\n two\r\nX-A: three\r\n\r\n"
    _, txs = run(req, b"")
    assert b"X-A: one two, three\r\n" in txs[0].buffers["http.header"]


def test_progress_marks_headers_final_before_the_body() -> None:
    al = AppLayer(AppLayerSettings(), 6, 1, 80)
    al.feed(True, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nab", 0)
    (tx,) = al.pop_ready()
    assert tx.progress_ts >= PROGRESS_HEADERS and not tx.to_server_done
    assert tx.buffers["http.request_body"] == b"ab"
    al.feed(True, b"cde", 0)
    (tx,) = al.pop_ready()
    assert tx.to_server_done and tx.buffers["http.request_body"] == b"abcde"
    assert al.pop_ready() == []


def test_overlong_line_and_bad_chunk_are_events_not_exceptions() -> None:
    cfg = AppLayerSettings(field_limit=100)
    al, txs = run(b"GET /" + b"a" * 500 + b" HTTP/1.1\r\n\r\n", b"", cfg=cfg)
    assert "http.request_field_too_long" in al.events and al.anomalous
    _, txs = run(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", b"")
    assert "http.invalid_request_chunk_len" in txs[0].events


def test_response_without_request_gets_its_own_transaction() -> None:
    _, txs = run(b"", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert txs[0].get("http.stat_code", False) == b"200"
    assert "http.unable_to_match_response_to_request" in txs[0].events


def test_absolute_uri_gives_path_only_and_host_from_the_uri() -> None:
    _, txs = run(
        b"GET http://User@WWW.Example.org:81/p/../q?a=1 HTTP/1.1\r\nHost: other\r\n\r\n", b""
    )
    b = txs[0].buffers
    assert b["http.uri"] == b"/q?a=1"
    assert b["http.host"] == b"www.example.org"
    # Suricata 7.0.10 takes http.host.raw from libhtp's parsed URI: lower case, no port
    assert b["http.host.raw"] == b"www.example.org"


def _eicar_response(head: bytes, body: bytes) -> bytes:
    return b"HTTP/1.1 200 ok\r\n" + head + b"\r\n" + body


EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def _body_of(resp: bytes, cfg: AppLayerSettings | None = None) -> bytes:
    bodies = []
    for step in (1, 1 << 20):
        _, txs = run(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", resp, step=step, cfg=cfg)
        body = txs[0].get("file.data", False)
        assert isinstance(body, bytes)
        bodies.append(body)
    assert bodies[0] == bodies[1], "slicing changed the body"
    return bodies[0]


def test_lenient_chunk_sizes_and_fallback_to_identity() -> None:
    # junk after the size and white space before it are ignored (libhtp)
    chunked = b"f x\r\n" + EICAR[:15] + b"\r\n\x0c" + b"%x\r\n" % (len(EICAR) - 15)
    chunked += EICAR[15:] + b"\r\n0\r\n\r\n"
    assert _body_of(_eicar_response(b"Transfer-Encoding: chunked\r\n", chunked)) == EICAR
    # "chunked" announced but the body is not: read it as identity until close
    resp = _eicar_response(b"Transfer-Encoding: chunked x\r\nConnection: close\r\n", EICAR)
    assert _body_of(resp) == EICAR


def test_stacked_and_sloppy_content_encodings() -> None:
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    deflated = raw.compress(EICAR) + raw.flush()
    layered = gzip.compress(deflated)
    resp = _eicar_response(b"Content-Encoding: deflate\r\nContent-Encoding: gzip\r\n", layered)
    assert _body_of(resp) == EICAR
    # a "gzip" body that is really raw deflate, and a "gzip x" / x-deflate token
    assert _body_of(_eicar_response(b"Content-Encoding: gzip\r\n", deflated)) == EICAR
    assert _body_of(_eicar_response(b"Content-Encoding: gzip x\r\n", gzip.compress(EICAR))) == EICAR
    assert (
        _body_of(_eicar_response(b"Content-Encoding: x-deflate\r\n", zlib.compress(EICAR))) == EICAR
    )
    # three layers exceed the default limit of two (response-body-decompress-layer-limit)
    triple = _eicar_response(
        b"Content-Encoding: gzip, gzip, gzip\r\n",
        gzip.compress(gzip.compress(gzip.compress(EICAR))),
    )
    assert _body_of(triple) != EICAR
    assert _body_of(triple, AppLayerSettings(decompress_layer_limit=3)) == EICAR


def test_gzip_with_reserved_flags_bad_header_crc_and_bad_trailer() -> None:
    good = gzip.compress(EICAR)
    reserved = good[:3] + b"\x80" + good[4:]
    hcrc = good[:3] + b"\x02" + good[4:10] + b"\x00\x00" + good[10:]
    bad_trailer = good[:-8] + b"\xff" * 8
    for body in (reserved, hcrc, bad_trailer):
        assert _body_of(_eicar_response(b"Content-Encoding: gzip\r\n", body)) == EICAR


def test_response_head_quirks() -> None:
    # a lone CR ends a response header line; an indented "Name: value" is a header
    resp = (
        b"HTTP/1.1 200 ok\r\nContent-Disposition: x\rContent-Encoding: deflate\r\n"
        b"Connection: close\r\n Transfer-Encoding: chunked\r\n\r\n"
    )
    body = zlib.compress(EICAR)
    chunked = b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
    assert _body_of(resp + chunked) == EICAR
    # 101 without Upgrade is an ordinary response; a 204 announcing a length has a body
    for status in (b"101", b"204"):
        resp = b"HTTP/1.1 " + status + b" ok\r\nContent-Length: %d\r\n\r\n" % len(EICAR) + EICAR
        assert _body_of(resp) == EICAR


def test_response_file_name_and_size_for_the_file_keywords() -> None:
    body = b"MZ" + b"\0" * 98
    disposition = (
        b'HTTP/1.1 200 OK\r\nContent-Disposition: attachment; filename="Payload.EXE"\r\n'
        b"Content-Length: %d\r\n\r\n" % len(body)
    ) + body
    _, txs = run(b"GET /dl?id=1 HTTP/1.1\r\nHost: h\r\n\r\n", disposition)
    assert txs[0].buffers_tc["file.name"] == b"Payload.EXE"
    assert txs[0].values["file.size"] == 100
    _, txs = run(b"GET /files/report.pdf?x=1 HTTP/1.1\r\nHost: h\r\n\r\n",
                 b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")  # fmt: skip
    assert txs[0].buffers_tc["file.name"] == b"report.pdf"


def test_file_keywords_compare_names_and_sizes() -> None:
    from signatures.txvalues import compile_tx_value

    name, ext = compile_tx_value("fileext", '"exe"')
    assert name == "file.name" and ext(b"Payload.EXE") and not ext(b"exe.txt")
    _, contains = compile_tx_value("filename", "!report")
    assert contains(b"a.exe") and not contains(b"Report.pdf")
    name, size = compile_tx_value("filesize", ">50")
    assert name == "file.size" and size(100) and not size(10)
    with pytest.raises(Exception, match="needs a name"):
        compile_tx_value("filename", "")
