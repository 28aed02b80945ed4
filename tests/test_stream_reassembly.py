"""Stream reassembly through the flow table: in-order delivery, holes, overlaps, depth, wrap."""

from __future__ import annotations

from test_flow_table import PA, T0, Conn, down, flow, make_table, up

from sensor.packet import TH_ACK, TH_FIN, TH_SYN, Packet


def events_of(p: Packet) -> list[str]:
    return list(p.events or ())


def established(isn_c: int = 1000, isn_s: int = 5000, **stream_kw: object) -> Conn:
    c = Conn(make_table(**stream_kw))
    c.handshake(isn_c, isn_s)
    return c


def test_pattern_split_across_segments_is_delivered_in_order() -> None:
    c = established()
    a = c.send(True, PA, 1001, 5001, b"GET /ev")
    f = flow(a)
    got = [(up(f).new_data_offset, up(f).new_data)]
    c.send(True, PA, 1008, 5001, b"il.php HTTP/1.1\r\n")
    got.append((up(f).new_data_offset, up(f).new_data))
    assert got == [(0, b"GET /ev"), (7, b"il.php HTTP/1.1\r\n")]
    assert b"".join(d for _, d in got) == b"GET /evil.php HTTP/1.1\r\n"
    assert up(f).delivered == 24 and up(f).next_seq == 1025 and a.stream_added


def test_each_direction_reassembles_separately() -> None:
    c = established()
    c.send(True, PA, 1001, 5001, b"req")
    r = c.send(False, PA, 5001, 1004, b"resp")
    f = flow(r)
    assert down(f).new_data == b"resp" and up(f).new_data == b""
    assert down(f).last_ack == 1004 and up(f).last_ack == 5001


def test_out_of_order_segment_is_held_until_the_hole_fills() -> None:
    c = established()
    late = c.send(True, PA, 1006, 5001, b"world")
    f = flow(late)
    assert up(f).new_data == b"" and late.stream_added and up(f).held_bytes == 5
    fill = c.send(True, PA, 1001, 5001, b"hello")
    assert up(f).new_data == b"helloworld" and up(f).new_data_offset == 0 and fill.stream_added
    assert up(f).held == [] and up(f).next_seq == 1011


def test_retransmission_is_not_delivered_twice() -> None:
    c = established()
    c.send(True, PA, 1001, 5001, b"abcdef")
    again = c.send(True, PA, 1001, 5001, b"abcdef")
    f = flow(again)
    assert up(f).new_data == b"" and again.stream_added  # part of the stream: not inspected alone
    assert c.table.stats.retransmissions == 1 and "stream.pkt_retransmission" in events_of(again)
    assert c.table.stats.overlaps_diff_data == 0


def test_partial_retransmission_delivers_only_the_new_tail() -> None:
    c = established()
    c.send(True, PA, 1001, 5001, b"abc")
    p = c.send(True, PA, 1002, 5001, b"bcdef")
    assert up(flow(p)).new_data == b"def" and up(flow(p)).new_data_offset == 3


def test_overlap_with_different_data_keeps_first_and_raises_event() -> None:
    c = established()
    c.send(True, PA, 1005, 5001, b"EFGH")  # held
    p = c.send(True, PA, 1001, 5001, b"abcdXYZ")  # in order, overlaps the held bytes
    f = flow(p)
    assert up(f).new_data == b"abcdEFGH"  # first-wins: held bytes were received first
    assert c.table.stats.overlaps_diff_data == 1
    assert c.table.events["stream.reassembly_overlap_different_data"] == 1
    assert "stream.reassembly_overlap_different_data" in events_of(p)


def test_retransmission_with_different_data_after_delivery_is_flagged() -> None:
    c = established()
    c.send(True, PA, 1001, 5001, b"GET /index.html")
    p = c.send(True, PA, 1001, 5001, b"GET /evil.shtml")
    assert up(flow(p)).new_data == b"" and c.table.stats.overlaps_diff_data == 1


def test_gap_acknowledged_by_receiver_is_skipped() -> None:
    c = established()
    c.send(True, PA, 1001, 5001, b"aaaa")  # offsets 0-3
    # bytes 4-7 never captured
    c.send(True, PA, 1009, 5001, b"cccc")  # held at 8
    ack = c.send(False, TH_ACK, 5001, 1013)  # the server got everything
    f = flow(ack)
    assert up(f).new_data == b""  # released on the client's next packet
    p = c.send(True, PA, 1013, 5001, b"dddd")
    assert (up(f).new_data_offset, up(f).new_data) == (8, b"ccccdddd")
    assert c.table.stats.reassembly_gaps == 1 and "stream.reassembly_seq_gap" in events_of(p)


def test_gap_without_later_data_skips_to_the_ack() -> None:
    c = established()
    c.send(False, TH_ACK, 5001, 1101)  # server acks 100 bytes we never saw
    p = c.send(True, PA, 1101, 5001, b"tail")
    assert (up(flow(p)).new_data_offset, up(flow(p)).new_data) == (100, b"tail")
    assert c.table.stats.reassembly_gaps == 1


def test_late_data_before_gap_resolution_fills_the_hole() -> None:
    c = established()
    c.send(False, TH_ACK, 5001, 1005)  # ACK captured before the data it acknowledges
    p = c.send(True, PA, 1001, 5001, b"abcd")
    assert up(flow(p)).new_data == b"abcd" and c.table.stats.reassembly_gaps == 0


def test_reassembly_depth_stops_delivery_but_not_sequence_tracking() -> None:
    c = established(reassembly_depth=10)
    c.send(True, PA, 1001, 5001, b"01234567")
    p = c.send(True, PA, 1009, 5001, b"89abcdef")
    f = flow(p)
    assert up(f).new_data == b"89" and up(f).depth_reached and up(f).delivered == 10
    q = c.send(True, PA, 1017, 5001, b"more")
    assert up(f).new_data == b"" and not q.stream_added and up(f).next_seq == 1021
    assert c.table.stats.depth_reached == 1


def test_out_of_order_limits_drop_and_count() -> None:
    c = established(max_ooo_segments=2)
    for i in range(3):
        c.send(True, PA, 1101 + 10 * i, 5001, b"x" * 5)
    f = flow(c.send(True, TH_ACK, 1001, 5001))
    assert len(up(f).held) == 2 and c.table.stats.ooo_dropped == 1
    c2 = established(max_ooo_bytes=8)
    c2.send(True, PA, 1101, 5001, b"y" * 6)
    p = c2.send(True, PA, 1201, 5001, b"z" * 6)
    assert c2.table.stats.ooo_dropped == 1 and "stream.reassembly_insert_limit" in events_of(p)


def test_sequence_wraparound() -> None:
    isn = 2**32 - 3
    c = established(isn_c=isn)
    s1 = (isn + 1) & 0xFFFFFFFF
    p = c.send(True, PA, s1, 5001, b"ab")  # 2**32-2, 2**32-1
    f = flow(p)
    assert up(f).new_data == b"ab" and up(f).next_seq == 0
    c.send(True, PA, 4, 5001, b"ef")  # out of order, after the wrap: offsets 6-7
    q = c.send(True, PA, 0, 5001, b"cdXXYY")  # offsets 2-7; "YY" loses to the held "ef"
    assert up(f).new_data == b"cdXXef" and up(f).new_data_offset == 2
    assert up(f).next_seq == 6 and up(f).delivered == 8 and q.stream_added
    assert c.table.stats.overlaps_diff_data == 1


def test_wraparound_delivers_contiguous_bytes_exactly() -> None:
    isn = 2**32 - 2
    c = established(isn_c=isn)
    c.send(True, PA, 2, 5001, b"CD")  # held beyond the wrap
    p = c.send(True, PA, 2**32 - 1, 5001, b"xAB")  # -1, 0, 1
    assert up(flow(p)).new_data == b"xABCD" and up(flow(p)).next_seq == 4


def test_fin_is_consumed_in_order_and_ack_of_fin_is_no_gap() -> None:
    c = established()
    c.send(True, PA | TH_FIN, 1001, 5001, b"bye")
    a = c.send(False, TH_ACK, 5001, 1005)
    f = flow(a)
    assert up(f).fin_seen and up(f).next_seq == 1005 and up(f).gap_ack is None
    assert c.table.stats.reassembly_gaps == 0


def test_buffered_bytes_are_accounted_and_released() -> None:
    c = established()
    c.send(True, PA, 1101, 5001, b"x" * 100)
    assert c.table.stats.reassembly_memuse == 100
    c.send(True, PA, 1001, 5001, b"y" * 100)  # drains; delivered bytes are kept until acked
    assert c.table.stats.reassembly_memuse == 200
    c.send(False, TH_ACK, 5001, 1201)
    assert c.table.stats.reassembly_memuse == 0
    c.send(True, PA, 1301, 5001, b"z" * 10)
    c.table.flush_all()
    assert c.table.stats.reassembly_memuse == 0 and c.table.stats.flows_active == 0


def test_syn_data_without_tfo_option_is_not_delivered() -> None:
    c = Conn(make_table())
    p = c.send(True, TH_SYN, 1000, data=b"early")
    assert up(flow(p)).new_data == b"" and up(flow(p)).delivered == 0


def test_flush_all_returns_every_flow() -> None:
    c = established()
    Conn(c.table, client=(0x0A000003, 1234)).send(True, TH_SYN, 7)
    assert len(c.table.flush_all()) == 2 and len(c.table) == 0
    assert c.table.expire(T0 + 10_000) == []
