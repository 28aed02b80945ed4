"""From packets to RST sequence numbers: the flow table's state, as the sensor puts it in
the alert's response context, gives tcp-reset exactly the receivers' RCV.NXT (across the
sequence-number wrap), and ``handshake_seen`` tells a full handshake from a pickup."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from pcapgen import TcpSession

from responders.builtin.tcp_reset import TcpResetResponder
from sensor.config import load_config
from sensor.decode import Decoder
from sensor.flow import FlowTable
from sensor.output.alert import response_context
from sensor.packet import Packet

DROP_RULE = cast(Any, SimpleNamespace(action="drop"))


def _feed(frames: list[bytes], sets: tuple[str, ...] = ()) -> Packet:
    config, _ = load_config(None, sets=list(sets), env={})
    table, decoder = FlowTable(config.flow, config.stream), Decoder()
    p = None
    for i, frame in enumerate(frames, 1):
        p = Packet(i, 1_700_000_000, i, 1, frame)
        decoder.decode(p)
        table.process(p)
    assert p is not None
    return p


def _alert(p: Packet, s: TcpSession) -> dict[str, Any]:
    flow = {"src_ip": s.client, "src_port": s.cport, "dest_ip": s.server, "dest_port": s.sport}
    return {"proto": "TCP", "direction": "to_server", "flow": flow, **flow,
            "sekimori": response_context(DROP_RULE, p, "detect", "s1")}  # fmt: skip


def test_full_handshake_gives_exact_rst_sequence_numbers_across_the_wrap() -> None:
    s = TcpSession(cisn=2**32 - 3, sisn=2**32 - 2).handshake()  # client data wraps past 0
    s.send(True, b"GET /EVIL HTTP/1.0\r\n\r\n")
    p = _feed(s.frames)
    ctx = response_context(DROP_RULE, p, "detect", "s1")
    assert ctx["handshake_seen"] is True
    client_next, server_next = s.cseq % 2**32, s.sseq % 2**32
    assert ctx["tcp"]["toserver"]["next_seq"] == client_next
    assert ctx["tcp"]["toclient"]["next_seq"] == server_next
    outcome = TcpResetResponder({"interface": "lo", "watch": False}).respond(
        _alert(p, s), enforce=False
    )
    assert outcome.details["decision"] == "would_reset"
    assert outcome.details["to_server"] == [client_next]
    assert outcome.details["to_client"] == [server_next]


def test_midstream_pickup_is_not_a_seen_handshake() -> None:
    s = TcpSession().handshake()
    s.send(True, b"first")
    s.send(False, b"reply")
    s.send(True, b"second")
    p = _feed(s.frames[3:], ("stream.midstream=true",))
    ctx = response_context(DROP_RULE, p, "detect", "s1")
    assert ctx["handshake_seen"] is False
    assert ctx["tcp"]["toserver"]["next_seq"] == s.cseq
