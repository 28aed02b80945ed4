"""stream_size counts sequence space, as Suricata's next_seq - isn, not payload bytes."""

from __future__ import annotations

from pathlib import Path

from pcapgen import TcpSession, alerts_of

# sid 100+N: client stream size == N; sid 200+N: server stream size == N
RULES = [
    f"alert tcp any any -> any any (stream_size:{side},=,{n}; sid:{base + n};)"
    for side, base in (("client", 100), ("server", 200))
    for n in range(8)
]


def test_syn_and_acknowledged_fin_count(tmp_path: Path) -> None:
    """The sizes every packet sees, taken from Suricata 7.0.10 on this capture: the SYN
    counts one from the start (1 after the handshake, 5 after 4 bytes); a FIN counts only
    from the peer's packet acknowledging it (client FIN at 6 -> 6 from packet 7; server
    FIN at 7 -> 5 from packet 8)."""
    s = TcpSession(cport=42000, sport=9000).handshake()  # 1-3
    s.send(True, b"AAAA").send(False, b"xyz").close()  # 4, 5; FIN 6, FIN-ACK 7, ACK 8
    got: dict[int, list[int]] = {}
    for a in alerts_of(tmp_path, s.frames, RULES):
        got.setdefault(a["pcap_cnt"], []).append(a["alert"]["signature_id"])
    assert {k: sorted(v) for k, v in got.items()} == {
        1: [101, 200], 2: [101, 201], 3: [101, 201], 4: [105, 201],
        5: [105, 204], 6: [105, 204], 7: [106, 204], 8: [106, 205],
    }  # fmt: skip


def test_both_and_either_use_the_sequence_sizes(tmp_path: Path) -> None:
    """Taken from Suricata 7.0.10: with 16 client bytes and 3 server bytes the server side
    is 4 once "xyz" is seen, so both,>,3 holds from then on (pcap_cnt 7-10), and
    either,=,5 holds on the client's first data packet (1 + 4 bytes) and after the server's
    FIN is acknowledged; server,<,5 stops there too."""
    s = TcpSession(cport=41001, sport=9000).handshake()  # 1-3
    for chunk in (b"AAAA", b"BBBBCCCC", b"DDDD"):  # 4-6
        s.send(True, chunk)
    s.send(False, b"xyz").close()  # 7; FIN 8, FIN-ACK 9, ACK 10
    rules = [
        "alert tcp any any -> any any (stream_size:both,>,3; sid:1;)",
        "alert tcp any any -> any any (stream_size:either,=,5; sid:2;)",
        "alert tcp any any -> any any (stream_size:server,<,5; sid:3;)",
    ]
    got = sorted(
        (a["alert"]["signature_id"], a["pcap_cnt"]) for a in alerts_of(tmp_path, s.frames, rules)
    )
    assert got == [
        (1, 7), (1, 8), (1, 9), (1, 10), (2, 4), (2, 10),
        (3, 1), (3, 2), (3, 3), (3, 4), (3, 5), (3, 6), (3, 7), (3, 8), (3, 9),
    ]  # fmt: skip
