"""TCP sequence-number arithmetic for active response (RFC 793 / RFC 1982 serial numbers).

Scope: the 32-bit modular operations a reset responder needs: adding and comparing sequence
numbers across the wraparound, where a segment ends (SYN and FIN each consume one number),
scaled windows (RFC 7323), and the sequence numbers of the reset burst (the exact one at the
receiver's RCV.NXT first, then optional extras that cover data in flight, all inside the
receiver's window).

Non-goals: tracking sessions (the sensor's flow table does that and ships the state in the
alert); timestamps/PAWS.
"""

from __future__ import annotations

SEQ_MOD = 1 << 32
SEQ_MASK = SEQ_MOD - 1
_HALF = 1 << 31
MAX_WSCALE = 14  # RFC 7323: larger shifts are treated as 14


def seq_add(seq: int, n: int) -> int:
    """``seq + n`` modulo 2**32 (``n`` may be negative)."""
    return (seq + n) & SEQ_MASK


def seq_diff(a: int, b: int) -> int:
    """Signed distance ``a - b``: positive when ``a`` is after ``b`` (within half the space)."""
    d = (a - b) & SEQ_MASK
    return d - SEQ_MOD if d & _HALF else d


def seq_lt(a: int, b: int) -> bool:
    return seq_diff(a, b) < 0


def seq_leq(a: int, b: int) -> bool:
    return seq_diff(a, b) <= 0


def seq_in_window(seq: int, rcv_nxt: int, rcv_wnd: int) -> bool:
    """RFC 793's acceptability test for a sequence number: RCV.NXT <= seq < RCV.NXT + RCV.WND."""
    ahead = seq_diff(seq, rcv_nxt)
    return 0 <= ahead < max(rcv_wnd, 1)


def segment_end(seq: int, payload_len: int, *, syn: bool = False, fin: bool = False) -> int:
    """The sequence number following a segment: SYN and FIN each occupy one number."""
    return seq_add(seq, payload_len + int(syn) + int(fin))


def scaled_window(raw_window: int, wscale: int) -> int:
    """The window in bytes from the 16-bit header field and the negotiated shift (capped at 14)."""
    if wscale < 0:
        wscale = 0
    return (raw_window & 0xFFFF) << min(wscale, MAX_WSCALE)


def reset_burst(rcv_nxt: int, extra: int, step: int, window: int) -> list[int]:
    """Sequence numbers for the RSTs toward one receiver, exact one first.

    ``extra`` more RSTs at ``rcv_nxt + k*step`` (k = 1..extra) cover segments the sender had in
    flight when the alert was raised (the receiver's RCV.NXT moved on). Linux accepts only the
    exact RCV.NXT and answers any other in-window RST with a challenge ACK (RFC 5961), so the
    extras only help once RCV.NXT really moved; they stay inside ``window`` (when known,
    i.e. > 0) because out-of-window RSTs are dropped anyway.
    """
    seqs = [rcv_nxt & SEQ_MASK]
    if step <= 0:
        return seqs
    for k in range(1, max(extra, 0) + 1):
        offset = k * step
        if window > 0 and offset >= window:
            break
        seqs.append(seq_add(rcv_nxt, offset))
    return seqs
