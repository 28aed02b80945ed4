"""decode-event / stream-event / engine-event / app-layer-event on real decoded packets."""

from __future__ import annotations

import dpkt
import pytest
from pcapgen import TcpSession, eth_ip
from test_behaviour_helpers import tcp

from sensor.config import Config
from sensor.decode import Decoder
from sensor.errors import RuleError
from sensor.flow import FlowTable
from sensor.packet import DLT_EN10MB, Packet
from signatures.events import event_name, parse_event_keyword


def _decode(frames: list[bytes]) -> list[Packet]:
    cfg = Config()
    decoder, flows = Decoder(), FlowTable(cfg.flow, cfg.stream)
    out = []
    for i, frame in enumerate(frames, 1):
        p = Packet(i, 1_700_000_000 + i, 0, DLT_EN10MB, frame)
        decoder.decode(p)
        if not p.bad:
            flows.process(p)
        out.append(p)
    return out


def test_names_aliases_and_case() -> None:
    assert event_name("decode-event", "ipv4.trunc_pkt") == "ipv4.trunc_pkt"
    assert event_name("decode-event", "IPV6.PKT_TOO_SMALL") == "ipv6.pkt_too_small"
    assert event_name("engine-event", "decoder.tcp.hlen_too_small") == "tcp.hlen_too_small"
    assert event_name("stream-event", "pkt_retransmission") == "stream.pkt_retransmission"
    assert (event_name("stream-event", "est_synack_resend_with_different_ack")
            == "stream.est_synack_resend_with_diff_ack")  # fmt: skip
    assert event_name("engine-event", "stream.reassembly_seq_gap") == "stream.reassembly_seq_gap"


@pytest.mark.parametrize(
    ("keyword", "value"),
    [("decode-event", "ipv4.no_such_event"), ("stream-event", "ipv4.trunc_pkt"),
     ("decode-event", "ipv-6,bad"), ("decode-event", None), ("stream-event", "nope"),
     ("app-layer-event", "missing_dot")],
)  # fmt: skip
def test_unknown_or_malformed_names_are_rule_errors(keyword: str, value: str | None) -> None:
    with pytest.raises(RuleError, match=keyword):
        parse_event_keyword(keyword, value)


def test_decoder_event_on_a_truncated_packet() -> None:
    good = tcp("10.0.0.1", "10.0.0.2", 1000, 80, dpkt.tcp.TH_SYN)
    ip = bytearray(good)
    ip[16:18] = (4000).to_bytes(2, "big")  # IPv4 total length far beyond the frame
    trunc, ok = _decode([bytes(ip), good])
    check = parse_event_keyword("decode-event", "ipv4.trunc_pkt")
    assert check(trunc) and not check(ok)


def test_stream_event_on_a_retransmission() -> None:
    s = TcpSession().handshake().send(True, b"hello")
    s.send(True, b"hello", seq=s.cseq - 5)  # the same bytes again
    packets = _decode(s.frames)
    check = parse_event_keyword("stream-event", "pkt_retransmission")
    assert [check(p) for p in packets] == [False, False, False, False, True]


@pytest.mark.parametrize(
    ("flags", "name"),
    [(0, "tcp.flags_null"), (0x29, "tcp.flags_xmas"), (0x03, "tcp.flags_syn_fin"),
     (0x06, "tcp.flags_syn_rst"), (0x01, "tcp.flags_fin_no_ack")],
)  # fmt: skip
def test_flag_anomaly_events(flags: int, name: str) -> None:
    odd, normal, synack = _decode([tcp("10.0.0.1", "10.0.0.2", 1, 2, flags),
                                   tcp("10.0.0.1", "10.0.0.2", 3, 4, 0x18),
                                   tcp("10.0.0.2", "10.0.0.1", 2, 1, 0x12)])  # fmt: skip
    check = parse_event_keyword("decode-event", name)
    assert check(odd) and not check(normal) and not check(synack)
    udp = _decode([eth_ip("10.0.0.1", "10.0.0.2", dpkt.udp.UDP(sport=1, dport=2), 17)])[0]
    assert not check(udp)


def test_app_layer_event_reads_the_flow() -> None:
    class _App:
        def __init__(self) -> None:
            self.events = ["http.missing_host_header"]

    p = _decode([tcp("10.0.0.1", "10.0.0.2", 1, 80, dpkt.tcp.TH_SYN)])[0]
    check = parse_event_keyword("app-layer-event", "http.missing_host_header")
    assert not check(p)  # no app layer yet
    assert p.flow is not None
    p.flow.app = _App()
    assert check(p)
