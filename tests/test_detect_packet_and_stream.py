"""Rules Suricata inspects on the packet *and* on the raw stream alert twice in IDS mode.

Suricata's SigValidate gives a TCP rule whose pkt_data content has depth/offset, or which
uses stream_size, both SIG_FLAG_REQUIRE_PACKET and SIG_FLAG_REQUIRE_STREAM: it matches on
the packet carrying the bytes and again on the raw stream chunk that later holds them
(conformance detect-bytetest-02; ET sids 2034673/2034786 on http_log4shell, 2100257 on
nmap_version_nse). Other stream rules alert once; inline mode inspects once, on arrival.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from pcapgen import TcpSession, alerts_of

from signatures.rule import INSPECT_BOTH, INSPECT_PACKET, INSPECT_STREAM
from signatures.ruleset import load_ruleset
from signatures.variables import Variables

REQUEST = b"GET /x?q=${jndi:ldap://a} HTTP/1.1\r\nHost: example.test\r\n\r\n"
RULES = [
    'alert tcp any any -> any any (content:"GET "; depth:4; sid:1;)',  # packet and stream
    'alert tcp any any -> any any (content:"jndi"; sid:2;)',  # stream only
    "alert tcp any any -> any any (flow:to_server; stream_size:client,<,10000; "
    'content:"${"; sid:3;)',  # stream_size: packet and stream
]


def _alerts(tmp_path: Path, frames: list[bytes], rules: list[str],
            sets: tuple[str, ...] = ()) -> Counter[tuple[int, int | None]]:  # fmt: skip
    return Counter(
        (r["alert"]["signature_id"], r.get("pcap_cnt"))
        for r in alerts_of(tmp_path, frames, rules, *sets)
    )


def test_inspection_flags_follow_suricatas_sigvalidate(tmp_path: Path) -> None:
    rules = tmp_path / "r.rules"
    rules.write_text("\n".join([
        *RULES,
        'alert tcp any any -> any any (content:"GET"; dsize:>3; offset:0; sid:4;)',
        'alert tcp-pkt any any -> any any (content:"GET"; depth:3; sid:5;)',
        'alert tcp any any -> any any (pcre:"/GET/"; byte_test:1,=,1,0,relative; sid:6;)',
    ]) + "\n")  # fmt: skip
    ruleset, _ = load_ruleset([str(rules)], Variables({}, {}), cache_dir=str(tmp_path / "c"))
    modes = {s.sid: s.inspect for s in ruleset.signatures}
    assert modes == {1: INSPECT_BOTH, 2: INSPECT_STREAM, 3: INSPECT_BOTH,
                     4: INSPECT_PACKET, 5: INSPECT_PACKET, 6: INSPECT_STREAM}  # fmt: skip


def test_trigger_by_the_http_parser(tmp_path: Path) -> None:
    """The server's ACK hands the request to HTTP, which asks for raw reassembly: the client's
    next packet inspects the raw stream again (log4shell: pcap_cnt 62, then 65)."""
    s = TcpSession().handshake()  # 1-3
    s.send(True, REQUEST)  # 4: the packet payload
    s.ack(False)  # 5: the server acknowledges it (HTTP parses the request)
    s.send(False, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")  # 6
    s.ack(True)  # 7: the client's next packet: the raw chunk of its stream
    got = _alerts(tmp_path, s.close().frames, [*RULES, "alert http any any -> any any "
                                               '(http.uri; content:"jndi"; sid:9;)'])  # fmt: skip
    assert got == Counter({(1, 4): 1, (1, 7): 1, (2, 4): 1, (3, 4): 1, (3, 7): 1, (9, 7): 1})


def test_unacknowledged_data_is_inspected_again_at_flow_end(tmp_path: Path) -> None:
    """detect-bytetest-02: one segment, never acknowledged, flushed when the flow ends."""
    s = TcpSession().handshake()
    s.send(True, REQUEST)  # 4
    got = _alerts(tmp_path, s.frames, RULES)
    assert got == Counter({(1, 4): 1, (1, None): 1, (2, 4): 1, (3, 4): 1, (3, None): 1})


def test_small_acknowledged_chunks_wait_for_the_chunk_size(tmp_path: Path) -> None:
    """Without an app-layer trigger, acknowledged data waits until 2,560 bytes are
    acknowledged beyond the raw progress, then one chunk holds it all."""
    s = TcpSession(sport=9999).handshake()
    s.send(True, b"XYZ " + b"a" * 996)  # 4
    s.ack(False)  # 5
    s.send(True, b"b" * 1000)  # 6
    s.ack(False)  # 7
    s.send(True, b"c" * 1000)  # 8: 3,000 bytes sent
    s.ack(False)  # 9: 3,000 acknowledged
    s.send(True, b"d")  # 10: the client's next packet: the chunk [0, 3000)
    got = _alerts(
        tmp_path, s.frames, ['alert tcp any any -> any any (content:"XYZ "; depth:4; sid:1;)']
    )
    assert got == Counter({(1, 4): 1, (1, 10): 1})


def test_inline_mode_inspects_once_on_arrival(tmp_path: Path) -> None:
    s = TcpSession().handshake()
    s.send(True, REQUEST)
    got = _alerts(tmp_path, s.frames, RULES, ("stream.inline=yes",))
    assert got == Counter({(1, 4): 1, (2, 4): 1, (3, 4): 1})
