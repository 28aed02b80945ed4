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
