"""Property tests: any segmentation/order/duplication reassembles to the original bytes, and
arbitrary TCP packets never raise or corrupt the bookkeeping."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st
from test_flow_table import PA, Conn, flow, make_table, up

from sensor.flow import FlowTable
from sensor.packet import TH_ACK, TH_FIN, TH_RST, TH_SYN

MASK = 0xFFFFFFFF


@st.composite
def segmented(draw: st.DrawFn) -> tuple[bytes, int, list[tuple[int, int]]]:
    data = draw(st.binary(min_size=1, max_size=600))
    cuts = sorted(set(draw(st.lists(st.integers(1, len(data)), max_size=12))) | {0, len(data)})
    segs = list(pairwise(cuts))
    dups = draw(st.lists(st.sampled_from(segs), max_size=4))
    order = draw(st.permutations(segs + dups))
    isn = draw(st.integers(0, MASK))
    return data, isn, order


@settings(max_examples=200, deadline=None)
@given(segmented())
def test_any_order_and_duplication_reassembles_the_original(
    case: tuple[bytes, int, list[tuple[int, int]]],
) -> None:
    data, isn, order = case
    c = Conn(make_table())
    c.handshake(isn_c=isn)
    base = (isn + 1) & MASK
    got = bytearray()
    for a, b in order:
        p = c.send(True, PA, (base + a) & MASK, 5001, data[a:b])
        d = up(flow(p))
        if d.new_data:
            assert d.new_data_offset == len(got)  # contiguous, never twice
            got += d.new_data
    assert bytes(got) == data
    assert c.table.stats.overlaps_diff_data == 0 and c.table.stats.reassembly_gaps == 0
    assert up(flow(p)).next_seq == (base + len(data)) & MASK


FLAGS = st.sampled_from(
    [TH_SYN, TH_SYN | TH_ACK, TH_ACK, PA, TH_FIN | TH_ACK, TH_RST, TH_RST | TH_ACK, 0, 0xFF]
)
PACKET = st.tuples(
    st.booleans(), FLAGS, st.integers(0, 3000), st.integers(0, 3000), st.binary(max_size=40)
)


def check_bookkeeping(table: FlowTable) -> None:
    held_total = unacked_total = 0
    for f in list(table._flows.values()):
        for d in (f.toserver, f.toclient):
            assert d is not None
            offs = [(o, o + len(s)) for o, s in d.held]
            assert offs == sorted(offs) and all(e1 <= s2 for (_, e1), (s2, _) in pairwise(offs))
            assert all(o > d.delivered for o, _ in offs)
            assert d.held_bytes == sum(len(s) for _, s in d.held)
            held_total += d.held_bytes
            unacked_total += d.unacked_bytes
    assert table.stats.reassembly_memuse == held_total + unacked_total


@settings(max_examples=200, deadline=None)
@given(st.lists(PACKET, max_size=40), st.booleans(), st.booleans())
def test_arbitrary_tcp_packets_keep_bookkeeping_consistent(
    pkts: list[tuple[bool, int, int, int, bytes]], midstream: bool, async_oneside: bool
) -> None:
    table = make_table(midstream=midstream, async_oneside=async_oneside, max_ooo_segments=4)
    c = Conn(table)
    for to_server, flags, seq, ack, data in pkts:
        c.send(to_server, flags, seq, ack, data)
        check_bookkeeping(table)
    table.flush_all()
    assert table.stats.reassembly_memuse == 0 and table.stats.flows_active == 0
