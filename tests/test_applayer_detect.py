"""Protocol detection from the first bytes of either direction, not the port."""

from __future__ import annotations

import pytest

from sensor.applayer import AppLayer, AppLayerSettings, detect_protocol
from sensor.applayer.detect import NEED_MORE, NO_MATCH


@pytest.mark.parametrize(
    ("data", "to_server", "port", "expected"),
    [
        (b"GET / HTTP/1.1\r\n", True, 9999, "http"),
        (b"PROPFIND /x HTTP/1.1\r\n", True, 1, "http"),
        (b"HTTP/1.1 200 OK\r\n", False, 1, "http"),
        (b"\x16\x03\x01\x02\x00\x01", True, 8080, "tls"),
        (b"SSH-2.0-OpenSSH_9.2p1\r\n", False, 2222, "ssh"),
        (b"EHLO mail\r\n", True, 2525, "smtp"),
        (b"USER anonymous\r\n", True, 2121, "ftp"),
        (b"220 (vsFTPd 3.0.3)\r\n", False, 21, "ftp"),
        (b"220 mail ESMTP\r\n", False, 25, NO_MATCH),  # SMTP is named by the EHLO
        (b"GE", True, 80, NEED_MORE),
        (b"\x16", True, 443, NEED_MORE),
        (b"random junk", True, 80, NO_MATCH),
    ],
)
def test_detect_protocol(data: bytes, to_server: bool, port: int, expected: str | None) -> None:
    assert detect_protocol(data, to_server, 6, 40000, port) == expected


def test_detection_across_segments_replays_held_data() -> None:
    al = AppLayer(AppLayerSettings(), 6, 40000, 8081)  # not an HTTP port
    for byte in b"GET /x HTTP/1.0\r\n\r\n":
        al.feed(True, bytes([byte]), 0)
    assert al.proto_name == "http"
    (tx,) = al.pop_ready()
    assert tx.buffers["http.uri"] == b"/x"


def test_server_first_detection() -> None:
    al = AppLayer(AppLayerSettings(), 6, 40000, 8081)
    al.feed(False, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0)
    assert al.proto_name == "http"


def test_unknown_both_directions_is_failed_and_ignores_more_data() -> None:
    al = AppLayer(AppLayerSettings(), 6, 40000, 80)
    al.feed(True, b"\x00\x01binary", 0)
    assert al.proto_name is None
    al.feed(False, b"\x00\x02binary", 0)
    assert al.proto_name == "failed"
    al.feed(True, b"GET / HTTP/1.1\r\n\r\n", 0)
    assert al.pop_ready() == []


def test_disabled_parser_still_names_the_protocol() -> None:
    al = AppLayer(AppLayerSettings(http=False), 6, 40000, 80)
    al.feed(True, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", 0)
    assert al.proto_name == "http" and al.pop_ready() == []
