"""Transaction rules see a direction's data once the other side acknowledged it.

Suricata (IDS mode) parses a direction's stream when the peer's ACK for it is processed and
inspects a transaction's direction on packets of that direction, so a request rule alerts on
the client's first packet after the server's ACK and a response/file rule on the server's first
packet after the client's ACK (conformance cases fileext-01, filemagic-flowbits,
http-post-file). These captures pin that packet.
"""

from __future__ import annotations

from pathlib import Path

from pcapgen import TcpSession, alerts_of

from sensor.applayer.magic import libmagic_missing

PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n" + b"x" * 700
TAIL = b"\n%%EOF-marker\n"


def _alerts(tmp_path: Path, frames: list[bytes], rules: list[str],
            sets: tuple[str, ...] = ()) -> dict[int, object]:  # fmt: skip
    alerts = alerts_of(tmp_path, frames, rules, *sets)
    by_sid = {a["alert"]["signature_id"]: a.get("pcap_cnt") for a in alerts}
    assert len(by_sid) == len(alerts)  # each rule alerts once (once per transaction)
    return by_sid


def _download() -> list[bytes]:
    s = TcpSession().handshake()  # frames 1-3
    s.send(True, b"GET /files/report.pdf HTTP/1.1\r\nHost: example.test\r\n\r\n")  # 4
    s.ack(False)  # 5: the server acknowledges the request
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(PDF) + len(TAIL)}\r\n\r\n".encode()
    s.send(False, head + PDF)  # 6: headers and the file's first bytes
    s.ack(True)  # 7: the client acknowledges them
    s.send(False, TAIL)  # 8: the rest of the file
    s.ack(True)  # 9
    return s.close().frames  # 10 FIN client, 11 FIN server, 12 ACK


RULES = [
    'alert http any any -> any any (http.uri; content:"/files/"; sid:1;)',
    'alert http any any -> any any (fileext:"pdf"; sid:2;)',
    'alert http any any -> any any (file_data; content:"EOF-marker"; sid:3;)',
    'alert http any any -> any any (http.stat_code; content:"200"; sid:4;)',
]


def test_alert_packets_follow_the_acknowledgements(tmp_path: Path) -> None:
    rules = list(RULES)
    if libmagic_missing() is None:
        rules.append('alert http any any -> any any (filemagic:"PDF document"; sid:5;)')
    got = _alerts(tmp_path, _download(), rules)
    # request acked by 5 -> next client packet 7; response head acked by 7 -> server's 8;
    # the body completes with 8, acked by 9 -> the server's next packet, its FIN (11)
    expected = {1: 7, 2: 8, 3: 11, 4: 8}
    if libmagic_missing() is None:
        expected[5] = 8
    assert got == expected


def test_unacknowledged_data_is_inspected_at_flow_end(tmp_path: Path) -> None:
    s = TcpSession().handshake()
    s.send(True, b"GET /files/report.pdf HTTP/1.1\r\nHost: example.test\r\n\r\n")
    got = _alerts(tmp_path, s.frames, RULES[:1])  # the capture ends before the server's ACK
    assert got == {1: None}  # on the flow-end pseudo packet, which has no pcap_cnt


def test_inline_mode_parses_on_arrival(tmp_path: Path) -> None:
    """stream.inline (auto: on in prevent mode) parses as Suricata's inline mode: the request
    rule fires on the segment carrying the request, which a TCP reset needs."""
    want = {1: 4, 4: 6}  # the request's own packet; the response head's own packet
    for i, sets in enumerate((("stream.inline=yes",), ("sensor.mode=prevent",))):
        (tmp_path / str(i)).mkdir()
        got = _alerts(tmp_path / str(i), _download(), [RULES[0], RULES[3]], sets)
        assert got == want, sets
    (tmp_path / "off").mkdir()
    ids = _alerts(tmp_path / "off", _download(), [RULES[0]],
                  ("sensor.mode=prevent", "stream.inline=no"))  # fmt: skip
    assert ids == {1: 7}  # explicitly off: IDS timing even when preventing


def test_file_name_sticky_buffer_on_the_http_file(tmp_path: Path) -> None:
    """file.name (Suricata 7's sticky buffer; filename/fileext are its keyword forms) sees the
    response file's name, on the same packet as fileext."""
    rules = [
        'alert http any any -> any any (file.name; content:"report.pdf"; bsize:10; sid:21;)',
        'alert http any any -> any any (file.name; content:".PDF"; nocase; endswith; sid:22;)',
        'alert http any any -> any any (file.name; content:"files/"; sid:23;)',
    ]
    assert _alerts(tmp_path, _download(), rules) == {21: 8, 22: 8}
