"""Flow table and TCP session tracking, driven by real TCP/IP headers built with dpkt.

The helpers at the top (``Conn``, ``make_table``) are shared with ``test_stream_*.py``.
"""

from __future__ import annotations

import struct
from dataclasses import replace

import dpkt

from sensor.config import FlowConfig, FlowTimeouts, StreamConfig
from sensor.flow import (
    FLOW_STATE_CLOSED,
    FLOW_STATE_ESTABLISHED,
    FLOW_STATE_NEW,
    Flow,
    FlowTable,
    TcpDir,
)
from sensor.packet import IPPROTO_TCP, IPPROTO_UDP, TH_ACK, TH_FIN, TH_RST, TH_SYN, Packet
from sensor.tcp import (
    TCP_CLOSE_WAIT,
    TCP_CLOSED,
    TCP_ESTABLISHED,
    TCP_FIN_WAIT1,
    TCP_FIN_WAIT2,
    TCP_LAST_ACK,
    TCP_NONE,
    TCP_SYN_RECV,
    TCP_SYN_SENT,
    TCP_TIME_WAIT,
)

CLIENT = (0x0A000001, 40000)
SERVER = (0x0A000002, 80)
T0 = 1_700_000_000
SA = TH_SYN | TH_ACK
PA = TH_ACK | 0x08


def flow(p: Packet) -> Flow:
    assert isinstance(p.flow, Flow)
    return p.flow


def up(f: Flow) -> TcpDir:
    """The client's direction."""
    assert f.toserver is not None
    return f.toserver


def down(f: Flow) -> TcpDir:
    assert f.toclient is not None
    return f.toclient


def make_table(**stream_kw: object) -> FlowTable:
    return FlowTable(FlowConfig(), replace(StreamConfig(), **stream_kw))  # type: ignore[arg-type]


def tcp_opts(wscale: int | None = None, tfo: bool = False) -> bytes:
    out = b""
    if wscale is not None:
        out += bytes((1, 3, 3, wscale))
    if tfo:
        out += bytes((34, 10)) + b"\x11" * 8 + b"\x01\x01"
    return out


class Conn:
    """Builds and feeds the packets of one client/server pair to a table."""

    def __init__(self, table: FlowTable, client=CLIENT, server=SERVER, vlan=()) -> None:
        self.table, self.client, self.server, self.vlan = table, client, server, vlan
        self.cnt = 0
        self.ts = T0

    def build(
        self,
        to_server: bool,
        flags: int,
        seq: int,
        ack: int = 0,
        data: bytes = b"",
        win: int = 65535,
        opts: bytes = b"",
        proto: int = IPPROTO_TCP,
    ) -> Packet:
        (sa, sp), (da, dp) = (self.client, self.server) if to_server else (self.server, self.client)
        if proto == IPPROTO_TCP:
            l4 = dpkt.tcp.TCP(
                sport=sp, dport=dp, seq=seq, ack=ack, flags=flags, win=win, opts=opts, data=data
            )
            l4.off = (20 + len(opts)) // 4
            hlen = 20 + len(opts)
        else:
            l4 = dpkt.udp.UDP(sport=sp, dport=dp, data=data)
            l4.ulen = 8 + len(data)
            hlen = 8
        ip = dpkt.ip.IP(
            src=struct.pack("!I", sa), dst=struct.pack("!I", da), p=proto, ttl=64, data=l4
        )
        raw = bytes(ip)
        self.cnt += 1
        p = Packet(self.cnt, self.ts, self.cnt, 101, raw)
        p.ipver, p.ip_off, p.ip_hlen, p.ip_len = 4, 0, 20, len(raw)
        p.src, p.dst, p.proto, p.ttl, p.vlan = sa, da, proto, 64 if to_server else 63, self.vlan
        p.src_mac = b"\x02\x00\x00\x00\x00\x01" if to_server else b"\x02\x00\x00\x00\x00\x02"
        p.l4_off, p.l4_hlen, p.sport, p.dport = 20, hlen, sp, dp
        p.payload = data
        if proto == IPPROTO_TCP:
            p.tcp_flags, p.seq, p.ack, p.win = flags, seq, ack, win
        return p

    def send(self, *args: object, **kw: object) -> Packet:
        p = self.build(*args, **kw)  # type: ignore[arg-type]
        self.table.process(p)
        return p

    def handshake(self, isn_c: int = 1000, isn_s: int = 5000, **kw: object) -> tuple[int, int]:
        """Returns the next client and server sequence numbers."""
        nc, ns = (isn_c + 1) & 0xFFFFFFFF, (isn_s + 1) & 0xFFFFFFFF
        self.send(True, TH_SYN, isn_c, **kw)
        self.send(False, SA, isn_s, nc, **kw)
        self.send(True, TH_ACK, nc, ns)
        return nc, ns


def test_handshake_established_after_final_ack_then_client_close() -> None:
    t = make_table()
    c = Conn(t)
    syn = c.send(True, TH_SYN, 1000)
    f = flow(syn)
    assert f is not None and f.tcp_state == TCP_SYN_SENT and not f.is_established(syn)
    synack = c.send(False, SA, 5000, 1001)
    assert f.tcp_state == TCP_SYN_RECV and not synack.to_server and not f.is_established(synack)
    ack = c.send(True, TH_ACK, 1001, 5001)
    assert f.tcp_state == TCP_ESTABLISHED and f.state == FLOW_STATE_ESTABLISHED
    assert not f.is_established(ack)  # like Suricata: decided before the final ACK is applied
    data = c.send(True, PA, 1001, 5001, b"hello")
    assert f.is_established(data) and up(f).new_data == b"hello"
    c.send(True, TH_FIN | TH_ACK, 1006, 5001)
    assert f.tcp_state == TCP_CLOSE_WAIT and up(f).fin_seen and up(f).next_seq == 1007
    c.send(False, TH_FIN | TH_ACK, 5001, 1007)
    assert f.tcp_state == TCP_LAST_ACK and f.state == FLOW_STATE_CLOSED
    c.send(True, TH_ACK, 1007, 5002)
    assert f.tcp_state == TCP_CLOSED
    assert (f.pkts_toserver, f.pkts_toclient) == (5, 2) and f.bytes_toserver > f.bytes_toclient
    assert (f.src, f.sport, f.dst, f.dport) == (*CLIENT, *SERVER)


def test_server_close_goes_through_fin_wait_and_time_wait() -> None:
    t = make_table()
    c = Conn(t)
    cs, ss = c.handshake()
    p = c.send(False, TH_FIN | TH_ACK, ss, cs)
    f = flow(p)
    assert f.tcp_state == TCP_FIN_WAIT1
    c.send(True, TH_ACK, cs, ss + 1)
    assert f.tcp_state == TCP_FIN_WAIT2
    c.send(True, TH_FIN | TH_ACK, cs, ss + 1)
    assert f.tcp_state == TCP_TIME_WAIT and f.state == FLOW_STATE_CLOSED
    c.send(False, TH_ACK, ss + 1, cs + 1)
    assert f.tcp_state == TCP_CLOSED


def test_rst_closes_only_when_in_window() -> None:
    t = make_table()
    c = Conn(t)
    cs, ss = c.handshake()
    p = c.send(False, TH_RST, ss + 10_000_000)
    f = flow(p)
    assert f.tcp_state == TCP_ESTABLISHED and t.events["stream.rst_invalid"] == 1
    assert list(p.events or ()) == ["stream.rst_invalid"]
    c.send(False, TH_RST | TH_ACK, ss, cs)
    assert f.tcp_state == TCP_CLOSED and down(f).rst_seen


def test_midstream_disabled_gives_no_session() -> None:
    t = make_table(midstream=False)
    c = Conn(t)
    p = c.send(True, PA, 7000, 9000, b"GET / HTTP/1.1\r\n")
    f = flow(p)
    assert f is not None and not f.tcp_session and f.tcp_state == TCP_NONE
    assert up(f).new_data == b"" and not p.stream_added and not f.is_established(p)
    reply = c.send(False, PA, 9000, 7016, b"HTTP/1.1 200 OK\r\n")
    assert not f.is_established(reply) and f.state == FLOW_STATE_NEW
    # still tracked for active response: next_seq / last_ack / MAC / TTL per direction
    assert up(f).next_seq == 7016 and down(f).last_ack == 7016
    assert down(f).mac == b"\x02\x00\x00\x00\x00\x02" and down(f).ttl == 63
    assert t.stats.tcp_no_session == 1 and t.stats.tcp_sessions == 0


def test_midstream_enabled_picks_up_as_established() -> None:
    t = make_table(midstream=True)
    c = Conn(t)
    p = c.send(False, PA, 9000, 7000, b"HTTP/1.1 200 OK\r\n")
    f = flow(p)
    assert f.tcp_session and f.tcp_state == TCP_ESTABLISHED and t.stats.tcp_midstream == 1
    # the first packet's sender becomes the client (Suricata has no port heuristics here)
    assert (f.src, f.sport) == SERVER and p.to_server
    assert up(f).new_data == b"HTTP/1.1 200 OK\r\n" and f.is_established(p)
    nxt = c.send(True, TH_ACK, 7000, 9017)
    assert not nxt.to_server and f.is_established(nxt)


def test_synack_first_is_swapped_when_picked_up() -> None:
    t = make_table(midstream=True)
    c = Conn(t)
    p = c.send(False, SA, 5000, 1001)
    f = flow(p)
    assert (f.src, f.sport, f.dst, f.dport) == (*CLIENT, *SERVER)
    assert not p.to_server and f.pkts_toclient == 1 and f.pkts_toserver == 0
    assert f.tcp_state == TCP_SYN_RECV
    c.send(True, TH_ACK, 1001, 5001)
    assert f.tcp_state == TCP_ESTABLISHED
    d = c.send(True, PA, 1001, 5001, b"abc")
    assert d.to_server and up(f).new_data == b"abc"


def test_synack_first_without_midstream_is_not_tracked() -> None:
    t = make_table()
    c = Conn(t)
    p = c.send(False, SA, 5000, 1001)
    f = flow(p)
    assert not f.tcp_session and (f.src, f.sport) == SERVER and p.to_server


def test_async_oneside_accepts_client_only_session() -> None:
    t = make_table(async_oneside=True)
    c = Conn(t)
    c.send(True, TH_SYN, 1000)
    p = c.send(True, TH_ACK, 1001, 5001)
    f = flow(p)
    assert f.tcp_state == TCP_ESTABLISHED
    d = c.send(True, PA, 1001, 5001, b"USER x\r\n")
    assert up(f).new_data == b"USER x\r\n" and f.is_established(d)
    assert down(f).next_seq == 5001


def test_without_async_oneside_client_only_session_stays_in_syn_sent() -> None:
    t = make_table()
    c = Conn(t)
    c.send(True, TH_SYN, 1000)
    c.send(True, TH_ACK, 1001, 5001)
    d = c.send(True, PA, 1001, 5001, b"USER x\r\n")
    assert flow(d).tcp_state == TCP_SYN_SENT and up(flow(d)).new_data == b""


def test_split_handshake_server_sends_syn() -> None:
    t = make_table()
    c = Conn(t)
    c.send(True, TH_SYN, 1000)
    c.send(False, TH_SYN, 5000)
    c.send(True, SA, 1000, 5001)
    p = c.send(False, TH_ACK, 5001, 1001)
    assert flow(p).tcp_state == TCP_ESTABLISHED


def test_tfo_data_on_syn_is_delivered() -> None:
    t = make_table()
    c = Conn(t)
    syn = c.send(True, TH_SYN, 1000, data=b"GET /tfo", opts=tcp_opts(tfo=True))
    f = flow(syn)
    assert up(f).new_data == b"GET /tfo" and syn.stream_added
    c.send(False, SA, 5000, 1009)
    c.send(True, TH_ACK, 1009, 5001)
    again = c.send(True, PA, 1009, 5001, b" HTTP/1.1")
    assert f.tcp_state == TCP_ESTABLISHED and up(f).new_data == b" HTTP/1.1"
    assert up(flow(again)).new_data_offset == 8


def test_window_scaling_applies_only_when_both_offer_it() -> None:
    t = make_table()
    c = Conn(t)
    c.handshake(opts=tcp_opts(wscale=7))
    p = c.send(True, PA, 1001, 5001, b"x", win=100)
    assert up(flow(p)).window == 100 << 7
    t2 = make_table()
    c2 = Conn(t2)
    c2.send(True, TH_SYN, 1000, opts=tcp_opts(wscale=7))
    c2.send(False, SA, 5000, 1001)  # no wscale: scaling off for both
    c2.send(True, TH_ACK, 1001, 5001)
    q = c2.send(True, PA, 1001, 5001, b"x", win=100)
    assert up(flow(q)).window == 100


def test_udp_established_once_both_directions_seen() -> None:
    t = make_table()
    c = Conn(t, client=(0x0A000001, 5353), server=(0x0A000009, 53))
    q = c.send(True, 0, 0, data=b"query", proto=IPPROTO_UDP)
    f = flow(q)
    assert f.toserver is None and not f.is_established(q) and f.state == FLOW_STATE_NEW
    r = c.send(False, 0, 0, data=b"answer", proto=IPPROTO_UDP)
    assert flow(r) is f and not r.to_server and f.is_established(r)
    q2 = c.send(True, 0, 0, data=b"again", proto=IPPROTO_UDP)
    assert f.is_established(q2) and f.state == FLOW_STATE_ESTABLISHED


def test_vlan_and_protocol_separate_flows() -> None:
    t = make_table()
    a = Conn(t, vlan=(10,)).send(True, TH_SYN, 1)
    b = Conn(t, vlan=(20,)).send(True, TH_SYN, 1)
    u = Conn(t).send(True, 0, 0, data=b"x", proto=IPPROTO_UDP)
    assert len({id(flow(a)), id(flow(b)), id(flow(u))}) == 3 and len(t) == 3


def test_bad_or_non_ip_packets_have_no_flow() -> None:
    t = make_table()
    p = Conn(t).build(True, TH_SYN, 1)
    p.bad = True
    assert t.process(p) is None and p.flow is None
    q = Packet(1, T0, 0, 1, b"\x00" * 14)
    assert t.process(q) is None and len(t) == 0


def test_timeouts_follow_flow_state() -> None:
    cfg = FlowConfig(
        timeouts={
            "default": FlowTimeouts(30, 300, 0),
            "tcp": FlowTimeouts(60, 600, 60),
            "udp": FlowTimeouts(30, 300, 0),
            "icmp": FlowTimeouts(30, 300, 0),
        }
    )
    t = FlowTable(cfg, StreamConfig())
    udp = Conn(t, client=(1, 1000), server=(2, 53)).send(True, 0, 0, data=b"q", proto=IPPROTO_UDP)
    tcp = Conn(t)
    tcp.handshake()
    assert t.expire(T0 + 30) == [] and len(t) == 2
    assert t.expire(T0 + 31) == [flow(udp)] and t.stats.timed_out == 1
    assert t.expire(T0 + 600) == [] and len(t) == 1
    gone = t.expire(T0 + 601)
    assert len(gone) == 1 and gone[0].tcp_state == TCP_ESTABLISHED and len(t) == 0


def test_closed_tcp_flow_uses_closed_timeout() -> None:
    t = make_table()
    c = Conn(t)
    cs, _ = c.handshake()
    p = c.send(True, TH_RST, cs)
    assert flow(p).state == FLOW_STATE_CLOSED
    assert t.expire(T0 + 60) == [] and t.expire(T0 + 61) == [flow(p)]


def test_max_flows_evicts_least_recently_used_and_reports_them() -> None:
    t = FlowTable(FlowConfig(max_flows=3), StreamConfig())
    conns = [Conn(t, client=(0x0A000001, 1000 + i)) for i in range(3)]
    first = [c.send(True, TH_SYN, 1).flow for c in conns]
    conns[0].send(True, TH_SYN, 1)  # flow 0 recently used again
    Conn(t, client=(0x0A000001, 2000)).send(True, TH_SYN, 1)
    Conn(t, client=(0x0A000001, 2001)).send(True, TH_SYN, 1)
    assert len(t) == 3 and t.stats.evicted_memcap == 2 and t.stats.flows_active == 3
    evicted = t.expire(T0)
    assert first[0] not in evicted and set(evicted) == {first[1], first[2]}


def test_memcap_evicts_flows() -> None:
    t = FlowTable(FlowConfig(memcap=10_000), StreamConfig())
    for i in range(50):
        Conn(t, client=(0x0A000001, 1000 + i)).send(True, TH_SYN, 1)
    assert t.memuse <= 10_000 and t.stats.evicted_memcap == 50 - len(t) > 0


def test_port_reuse_after_close_starts_a_new_flow() -> None:
    t = make_table()
    c = Conn(t)
    cs, _ = c.handshake()
    old = c.send(True, TH_RST, cs).flow
    new = c.send(True, TH_SYN, 90_000).flow
    assert (
        new is not None
        and new is not old
        and new.tcp_state == TCP_SYN_SENT
        and t.stats.flows_reused == 1
    )
    assert old in t.expire(T0) and len(t) == 1


def test_flow_id_is_deterministic_and_in_range() -> None:
    ids = []
    for _ in range(2):
        t = make_table()
        ids.append(flow(Conn(t).send(True, TH_SYN, 1)).flow_id)
    other = flow(Conn(make_table(), client=(0x0A000001, 40001)).send(True, TH_SYN, 1)).flow_id
    assert ids[0] == ids[1] and other != ids[0]
    assert all(0 < i < 2**53 for i in [*ids, other])


def test_both_directions_share_one_flow_and_direction_flags() -> None:
    t = make_table()
    c = Conn(t)
    a = c.send(True, TH_SYN, 1000)
    b = c.send(False, SA, 5000, 1001)
    assert flow(a) is flow(b) and a.to_server and not b.to_server
    assert down(flow(b)).mac == b"\x02\x00\x00\x00\x00\x02" and up(flow(b)).ttl == 64


def test_port_reuse_from_time_wait() -> None:
    t = make_table()
    c = Conn(t)
    cs, ss = c.handshake()
    c.send(False, TH_FIN | TH_ACK, ss, cs)
    old = flow(c.send(True, TH_FIN | TH_ACK, cs, ss + 1))
    assert old.tcp_state == TCP_TIME_WAIT
    new = flow(c.send(True, TH_SYN, 77_000))
    assert (
        new is not None
        and new is not old
        and new.tcp_state == TCP_SYN_SENT
        and t.stats.flows_reused == 1
    )


def test_data_on_the_completing_ack_counts_as_established() -> None:
    t = make_table()
    c = Conn(t)
    c.send(True, TH_SYN, 1000)
    c.send(False, SA, 5000, 1001)
    p = c.send(True, PA, 1001, 5001, b"GET / HTTP/1.0\r\n\r\n")
    f = flow(p)
    assert f.tcp_state == TCP_ESTABLISHED and p.stream_added and f.is_established(p)
    assert up(f).new_data == b"GET / HTTP/1.0\r\n\r\n"


def test_budgeted_expiry_resumes_its_pass_and_skips_flows_gone_meanwhile() -> None:
    t = make_table()
    conns = [Conn(t, client=(0x0A000001 + i, 1000), server=(2, 53)) for i in range(10)]
    flows = [flow(c.send(True, 0, 0, data=b"q", proto=IPPROTO_UDP)) for c in conns]
    late = T0 + 31  # every UDP flow is past its 30 s "new" timeout
    first = t.expire(late, budget=4)
    assert len(first) == 4 and len(t) == 6  # only a slice of the table was looked at
    # A flow of the current pass that goes away (evicted, closed) in between is not ours:
    remaining = [f for f in flows if f not in first]
    t._remove(remaining[0])  # as eviction does
    second = t.expire(late, budget=4)
    assert remaining[0] not in second and len(second) == 4
    third = t.expire(late, budget=4)  # the pass ends with the last slice
    assert sorted(map(id, first + second + third)) == sorted(map(id, remaining[1:] + first))
    assert len(t) == 0 and t.expire(late, budget=4) == []
    # Without a budget (capture files) nothing changes: one exact full scan.
    again = [flow(c.send(True, 0, 0, data=b"q", proto=IPPROTO_UDP)) for c in conns]
    assert sorted(map(id, t.expire(T0 + 62))) == sorted(map(id, again))
