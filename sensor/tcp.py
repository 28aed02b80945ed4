"""TCP session tracking: Suricata 7's stream state machine in IDS mode.

Scope: given a flow and one decoded TCP packet of it, advance the session state (3-way and
split handshakes, midstream and one-sided pickups, FIN/RST shutdown), keep per-direction
sequence/ACK/window state, and hand payload to the reassembly engine (``sensor.stream``).
States and their order are Suricata's, so ``state >= TCP_ESTABLISHED`` means what it means
there (``flow:established``). Suricata's quirk of naming shutdown states from the server's
side is kept: a client FIN leads to CLOSE_WAIT -> LAST_ACK -> CLOSED, a server FIN to
FIN_WAIT1 -> FIN_WAIT2/CLOSING -> TIME_WAIT -> CLOSED.

Non-goals: OS-specific RST/overlap policies, timestamp (PAWS) validation, SACK, the SYN/ACK
queue for handshakes with several different SYN/ACKs (the latest one wins), IPS-mode drops.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sensor.packet import TH_ACK, TH_FIN, TH_RST, TH_SYN, Packet
from sensor.stream import SEQ_MASK, StreamEngine, TcpDir, seq_diff

if TYPE_CHECKING:
    from sensor.flow import Flow

# Session states, in Suricata's order.
TCP_NONE = 0
TCP_SYN_SENT = 1
TCP_SYN_RECV = 2
TCP_ESTABLISHED = 3
TCP_FIN_WAIT1 = 4
TCP_FIN_WAIT2 = 5
TCP_TIME_WAIT = 6
TCP_LAST_ACK = 7
TCP_CLOSE_WAIT = 8
TCP_CLOSING = 9
TCP_CLOSED = 10

TCP_STATE_NAMES = (
    "none", "syn_sent", "syn_recv", "established", "fin_wait1", "fin_wait2",
    "time_wait", "last_ack", "close_wait", "closing", "closed",
)  # fmt: skip

# Flow states (Suricata's FLOW_STATE_*); a TCP flow's follows its session state.
FLOW_STATE_NEW = 0
FLOW_STATE_ESTABLISHED = 1
FLOW_STATE_CLOSED = 2

_FLOW_STATE_OF = (
    FLOW_STATE_NEW, FLOW_STATE_NEW, FLOW_STATE_NEW, FLOW_STATE_ESTABLISHED,
    FLOW_STATE_ESTABLISHED, FLOW_STATE_ESTABLISHED, FLOW_STATE_CLOSED, FLOW_STATE_CLOSED,
    FLOW_STATE_ESTABLISHED, FLOW_STATE_ESTABLISHED, FLOW_STATE_CLOSED,
)  # fmt: skip

# Session flags (Flow.ssn_flags).
SSN_MIDSTREAM = 0x01
SSN_MIDSTREAM_SYNACK = 0x02
SSN_ASYNC = 0x04
SSN_4WHS = 0x08
SSN_TFO = 0x10
SSN_WSCALE_OFFERED = 0x20  # the SYN carried a window-scale option

TCP_WSCALE_MAX = 14
_TCPOPT_EOL, _TCPOPT_NOP, _TCPOPT_WSCALE, _TCPOPT_TFO, _TCPOPT_EXP = 0, 1, 3, 34, 254
_TFO_MAGIC = b"\xf9\x89"
_MAX_RST_SLACK = 65535


def syn_options(pkt: Packet) -> tuple[int, bool]:
    """(window-scale shift or -1, TFO option present) from a SYN's options; never raises."""
    data, off, end = pkt.data, pkt.l4_off + 20, pkt.l4_off + pkt.l4_hlen
    end = min(end, len(data))
    wscale, tfo = -1, False
    while off < end:
        kind = data[off]
        if kind == _TCPOPT_EOL:
            break
        if kind == _TCPOPT_NOP:
            off += 1
            continue
        if off + 1 >= end or data[off + 1] < 2:
            break  # truncated or malformed option list: stop, keep what we found
        size = data[off + 1]
        if kind == _TCPOPT_WSCALE and size == 3 and off + 2 < end:
            wscale = min(data[off + 2], TCP_WSCALE_MAX)
        elif kind == _TCPOPT_TFO or (kind == _TCPOPT_EXP and data[off + 2 : off + 4] == _TFO_MAGIC):
            tfo = True  # RFC 7413 option 34, or its experimental form (RFC 6994 kind 254)
        off += size
    return wscale, tfo


def set_state(f: Flow, state: int) -> None:
    f.tcp_state = state
    f.state = _FLOW_STATE_OF[state]


class TcpTracker:
    """The state machine; one per flow table, stateless itself (state lives in the Flow)."""

    __slots__ = ("async_oneside", "midstream", "stream")

    def __init__(self, stream: StreamEngine, midstream: bool, async_oneside: bool) -> None:
        self.stream = stream
        self.midstream = midstream
        self.async_oneside = async_oneside

    def packet(self, f: Flow, pkt: Packet) -> None:
        """Apply one TCP packet (``pkt.to_server`` already set) to flow ``f``."""
        d, r = (f.toserver, f.toclient) if pkt.to_server else (f.toclient, f.toserver)
        assert d is not None and r is not None
        d.mac = pkt.src_mac
        d.ttl = pkt.ttl
        d.new_data = b""
        r.new_data = b""
        state = f.tcp_state
        if state == TCP_ESTABLISHED and not pkt.tcp_flags & (TH_SYN | TH_RST | TH_FIN):
            self._data(f, d, r, pkt)  # the common case first
        elif not f.tcp_session:
            self._no_session(f, d, pkt)
        elif state == TCP_SYN_SENT:
            self._syn_sent(f, d, r, pkt)
        elif state == TCP_SYN_RECV:
            self._syn_recv(f, d, r, pkt)
        elif state != TCP_CLOSED:
            self._open(f, d, r, pkt)

    # -- no session yet ---------------------------------------------------------------------

    def _no_session(self, f: Flow, d: TcpDir, pkt: Packet) -> None:
        flags = pkt.tcp_flags
        ev = self.stream.event
        if flags & TH_RST:
            ev(pkt, "stream.rst_but_no_session")
        elif flags & TH_FIN:
            ev(pkt, "stream.fin_but_no_session")
        elif flags & (TH_SYN | TH_ACK) == TH_SYN | TH_ACK:
            if self.midstream or self.async_oneside:
                self._pickup_synack(f, pkt)
                return
        elif flags & TH_SYN:
            self._start_syn(f, pkt)
            return
        elif flags & TH_ACK and self.midstream:
            self._pickup_established(f, pkt)
            return
        self._track_sessionless(d, pkt)

    def _track_sessionless(self, d: TcpDir, pkt: Packet) -> None:
        """No session: still keep what an active response needs (seq, ack, window)."""
        end = (
            pkt.seq + len(pkt.payload) + (1 if pkt.tcp_flags & (TH_SYN | TH_FIN) else 0)
        ) & SEQ_MASK
        if d.next_seq == 0 or seq_diff(end, d.next_seq) > 0:
            d.next_seq = end
        if pkt.tcp_flags & TH_ACK:
            d.last_ack = pkt.ack
        d.window = pkt.win << d.wscale

    def _new_session(self, f: Flow) -> None:
        f.tcp_session = True
        self.stream.stats.tcp_sessions += 1
        if f.tcp_no_session_counted:
            self.stream.stats.tcp_no_session -= 1
            f.tcp_no_session_counted = False

    def _start_syn(self, f: Flow, pkt: Packet) -> None:
        if not pkt.to_server:  # flow first seen from the server side: the SYN sender is client
            f.swap(pkt)
        self._new_session(f)
        c = f.toserver
        assert c is not None
        set_state(f, TCP_SYN_SENT)
        c.start(pkt.seq)
        c.window = pkt.win  # never scaled on a SYN
        c.last_ack = pkt.ack if pkt.tcp_flags & TH_ACK else 0
        wscale, tfo = syn_options(pkt)
        if wscale >= 0:
            f.ssn_flags |= SSN_WSCALE_OFFERED
            c.wscale = wscale
        if self.async_oneside:
            f.ssn_flags |= SSN_ASYNC
        if tfo:
            f.ssn_flags |= SSN_TFO
            if pkt.payload:
                self.stream.segment(c, c.next_seq, pkt.payload, pkt)

    def _pickup_synack(self, f: Flow, pkt: Packet) -> None:
        if pkt.to_server:  # the SYN/ACK sender is the server: reverse the flow
            f.swap(pkt)
        self._new_session(f)
        self.stream.stats.tcp_midstream += 1
        c, s = f.toserver, f.toclient
        assert c is not None and s is not None
        set_state(f, TCP_SYN_RECV)
        f.ssn_flags |= SSN_MIDSTREAM | SSN_MIDSTREAM_SYNACK
        if self.async_oneside:
            f.ssn_flags |= SSN_ASYNC
        s.start(pkt.seq)
        s.window = pkt.win
        s.last_ack = pkt.ack
        c.start((pkt.ack - 1) & SEQ_MASK)
        wscale, _ = syn_options(pkt)
        if wscale >= 0:  # both sides offered it; the client's own shift is unknown: assume max
            s.wscale, c.wscale = wscale, TCP_WSCALE_MAX

    def _pickup_established(self, f: Flow, pkt: Packet) -> None:
        if not pkt.to_server:
            f.swap(pkt)
        self._new_session(f)
        self.stream.stats.tcp_midstream += 1
        c, s = f.toserver, f.toclient
        assert c is not None and s is not None
        set_state(f, TCP_ESTABLISHED)
        f.ssn_flags |= SSN_MIDSTREAM
        if self.async_oneside:
            f.ssn_flags |= SSN_ASYNC
        c.wscale = s.wscale = TCP_WSCALE_MAX  # unknowable midstream; Suricata assumes the max
        c.start((pkt.seq - 1) & SEQ_MASK)
        s.start((pkt.ack - 1) & SEQ_MASK)
        self._data(f, c, s, pkt)

    # -- handshake --------------------------------------------------------------------------

    def _syn_sent(self, f: Flow, d: TcpDir, r: TcpDir, pkt: Packet) -> None:
        flags, ev = pkt.tcp_flags, self.stream.event
        c, s = (d, r) if pkt.to_server else (r, d)
        if flags & TH_RST:
            if not pkt.to_server or (pkt.seq == c.isn or pkt.seq == c.next_seq):
                self._reset(f, d)
        elif flags & TH_FIN:
            pass  # Suricata: nothing defined for FIN before the SYN/ACK
        elif flags & (TH_SYN | TH_ACK) == TH_SYN | TH_ACK:
            if f.ssn_flags & SSN_4WHS and pkt.to_server:
                self._synack_4whs(f, c, s, pkt)
            elif pkt.to_server:
                ev(pkt, "stream.3whs_synack_in_wrong_direction")
            elif pkt.ack != (c.isn + 1) & SEQ_MASK and pkt.ack != c.next_seq:
                ev(pkt, "stream.3whs_synack_with_wrong_ack")
            else:
                self._synack(f, c, s, pkt)
        elif flags & TH_SYN:
            if pkt.to_server:
                if pkt.seq != c.isn and not c.delivered:
                    c.start(pkt.seq)  # resent SYN with a new ISN: the latest SYN wins
            else:  # SYN from the server: split handshake ("4-way"), server ISN now known
                f.ssn_flags |= SSN_4WHS
                s.start(pkt.seq)
                s.window = pkt.win
                wscale, _ = syn_options(pkt)
                s.wscale = max(wscale, 0)
        elif flags & TH_ACK and pkt.to_server and self.async_oneside:
            self._async_ack(f, c, s, pkt)

    def _async_ack(self, f: Flow, c: TcpDir, s: TcpDir, pkt: Packet) -> None:
        """async-oneside: the client's ACK after its SYN, the SYN/ACK never seen."""
        if seq_diff(pkt.seq, c.next_seq) < 0:
            self.stream.event(pkt, "stream.3whs_async_wrong_seq")
            return
        f.ssn_flags |= SSN_ASYNC
        set_state(f, TCP_ESTABLISHED)
        s.start((pkt.ack - 1) & SEQ_MASK)
        if f.ssn_flags & SSN_WSCALE_OFFERED:
            c.wscale = TCP_WSCALE_MAX
        self._data(f, c, s, pkt)

    def _synack(self, f: Flow, c: TcpDir, s: TcpDir, pkt: Packet) -> None:
        set_state(f, TCP_SYN_RECV)
        s.start(pkt.seq)
        s.window = pkt.win
        s.last_ack = pkt.ack
        if f.ssn_flags & SSN_TFO and pkt.ack == (c.isn + 1) & SEQ_MASK and c.delivered:
            self.stream.event(pkt, "stream.3whs_synack_tfo_data_ignored")
        wscale, _ = syn_options(pkt)
        if wscale >= 0 and f.ssn_flags & SSN_WSCALE_OFFERED:
            s.wscale = wscale
        else:  # scaling is in effect only when both SYNs carry the option
            s.wscale = c.wscale = 0

    def _synack_4whs(self, f: Flow, c: TcpDir, s: TcpDir, pkt: Packet) -> None:
        if pkt.ack != (s.isn + 1) & SEQ_MASK:
            self.stream.event(pkt, "stream.4whs_synack_with_wrong_ack")
        elif pkt.seq != c.isn:
            self.stream.event(pkt, "stream.4whs_synack_with_wrong_syn")
        else:
            set_state(f, TCP_SYN_RECV)
            c.window = pkt.win
            c.last_ack = pkt.ack

    def _syn_recv(self, f: Flow, d: TcpDir, r: TcpDir, pkt: Packet) -> None:
        flags, ev = pkt.tcp_flags, self.stream.event
        if flags & TH_RST:
            if self._rst_valid(d, r, pkt):
                self._reset(f, d)
            return
        if flags & TH_SYN:
            if flags & TH_ACK and pkt.to_server and not f.ssn_flags & SSN_4WHS:
                ev(pkt, "stream.3whs_synack_toserver_on_syn_recv")
            elif not flags & TH_ACK and not pkt.to_server:
                ev(pkt, "stream.3whs_syn_toclient_on_syn_recv")
            return  # resends of the handshake do not move the state
        if not flags & TH_ACK:
            return
        # The ACK completing the handshake comes from the side that did not send the last
        # SYN/ACK: the client normally, the server on a split handshake; with async-oneside
        # (only one direction visible) either side's ACK completes it.
        completer_is_client = not f.ssn_flags & SSN_4WHS
        if pkt.to_server != completer_is_client and not f.ssn_flags & SSN_ASYNC:
            ev(pkt, "stream.3whs_ack_in_wrong_dir")
            return
        if pkt.to_server == completer_is_client and seq_diff(pkt.ack, r.next_seq) < 0:
            ev(pkt, "stream.3whs_wrong_seq_wrong_ack")
            return
        set_state(f, TCP_ESTABLISHED)
        # Responders trust addresses only when the whole handshake was seen (not spoofable).
        f.handshake_seen = not f.ssn_flags & (SSN_MIDSTREAM | SSN_ASYNC)
        self._open(f, d, r, pkt)

    # -- established and shutdown ------------------------------------------------------------

    def _open(self, f: Flow, d: TcpDir, r: TcpDir, pkt: Packet) -> None:
        flags = pkt.tcp_flags
        if flags & TH_RST:
            if self._rst_valid(d, r, pkt):
                self._reset(f, d)
            return
        if flags & TH_SYN:
            name = "synack_resend" if flags & TH_ACK else "syn_resend"
            if f.tcp_state == TCP_ESTABLISHED:
                self.stream.event(pkt, f"stream.est_{name}")
            else:
                self.stream.event(pkt, "stream.shutdown_syn_resend")
            return
        self._data(f, d, r, pkt)
        if flags & TH_FIN or f.tcp_state > TCP_ESTABLISHED:
            self._shutdown(f, d, r, pkt)

    def _data(self, f: Flow, d: TcpDir, r: TcpDir, pkt: Packet) -> None:
        """ACK, window and payload of a packet on a synchronized session."""
        if pkt.tcp_flags & TH_ACK:
            if seq_diff(pkt.ack, d.last_ack) > 0 or d.last_ack == 0:
                d.last_ack = pkt.ack
            self.stream.acked(r, pkt.ack)
        d.window = pkt.win << d.wscale
        self.stream.segment(d, pkt.seq, pkt.payload, pkt)
        if pkt.tcp_flags & TH_FIN:
            d.fin_seen = True
            end = (pkt.seq + len(pkt.payload)) & SEQ_MASK
            if not d.fin_consumed and end == d.next_seq:
                d.next_seq = (end + 1) & SEQ_MASK
                d.fin_consumed = 1

    def _shutdown(self, f: Flow, d: TcpDir, r: TcpDir, pkt: Packet) -> None:
        """Shutdown transitions after the packet's data/ACK/FIN were applied."""
        fin = pkt.tcp_flags & TH_FIN
        acks_peer_fin = (
            bool(pkt.tcp_flags & TH_ACK)
            and r.fin_consumed == 1
            and (seq_diff(pkt.ack, r.next_seq) >= 0)
        )
        state, client = f.tcp_state, pkt.to_server
        if state == TCP_ESTABLISHED:
            if fin:
                set_state(f, TCP_CLOSE_WAIT if client else TCP_FIN_WAIT1)
        elif state == TCP_FIN_WAIT1:  # the server closed first
            if client and fin:
                set_state(f, TCP_TIME_WAIT if acks_peer_fin else TCP_CLOSING)
            elif client and acks_peer_fin:
                set_state(f, TCP_FIN_WAIT2)
        elif state == TCP_FIN_WAIT2:
            if client and fin:
                set_state(f, TCP_TIME_WAIT)
        elif state == TCP_CLOSING:
            if acks_peer_fin:
                set_state(f, TCP_TIME_WAIT)
        elif state == TCP_TIME_WAIT:
            if not client and acks_peer_fin:
                set_state(f, TCP_CLOSED)
        elif state == TCP_CLOSE_WAIT:  # the client closed first
            if not client and fin:
                set_state(f, TCP_LAST_ACK)
        elif state == TCP_LAST_ACK and client and acks_peer_fin:
            set_state(f, TCP_CLOSED)

    def _rst_valid(self, d: TcpDir, r: TcpDir, pkt: Packet) -> bool:
        """RFC 5961-style check: the RST's seq must fall in the receiver's window."""
        ahead = seq_diff(pkt.seq, d.next_seq)
        if -1 <= ahead <= max(r.window, _MAX_RST_SLACK):
            return True
        self.stream.event(pkt, "stream.rst_invalid")
        return False

    def _reset(self, f: Flow, d: TcpDir) -> None:
        d.rst_seen = True
        set_state(f, TCP_CLOSED)
