"""flags: Suricata's modifiers and the signature mask its flags put on a rule."""

from __future__ import annotations

from pathlib import Path

from pcapgen import TcpSession, alerts_of


def _by_rule(tmp_path: Path, rules: list[str]) -> dict[str, list[int]]:
    s = TcpSession(cport=42000, sport=9000).handshake()  # 1 S, 2 SA, 3 A
    s.send(True, b"AAAA").close()  # 4 PA, 5 FA, 6 FA, 7 A
    got: dict[str, list[int]] = {}
    for a in alerts_of(tmp_path, s.frames, rules):
        got.setdefault(a["alert"]["signature"], []).append(a["pcap_cnt"])
    return got


def test_not_means_not_all_and_s_f_r_need_such_a_packet(tmp_path: Path) -> None:
    """Taken from Suricata 7.0.10 on this capture: ``!`` is "not all of these" (!SA fires on
    the bare SYN and the FIN-ACKs), a rule naming S, F or R only sees packets carrying one of
    them (!F, !R, !S never fire on the bare ACKs or the data packet), and the ignore mask
    applies to ``*`` too."""
    flags = ["!F", "!R", "!SA", "!A", "!S", "*A", "A+", "*FA,S", "*RA", "*UA", "*CA"]
    rules = [
        f'alert tcp any any -> any any (msg:"{f}"; flags:{f}; sid:{i};)'
        for i, f in enumerate(flags, 1)
    ]
    assert _by_rule(tmp_path, rules) == {
        "!F": [1, 2], "!R": [1, 2, 5, 6], "!SA": [1, 5, 6], "!A": [1], "!S": [5, 6],
        "*A": [2, 3, 4, 5, 6, 7], "A+": [2, 3, 4, 5, 6, 7], "*FA,S": [2, 5, 6],
        "*RA": [2, 5, 6],
    }  # fmt: skip


def test_mask_and_ignore_hold_for_content_rules(tmp_path: Path) -> None:
    """Taken from Suricata 7.0.10: on the PA data packet !SA and !AF do not fire (S and F
    need a SYN/FIN/RST packet), +PA,P does not (P is ignored, so not all of PA is there),
    !P,P does."""
    flags = ["!SA", "!PA", "!AF", "+PA,P", "!P,P"]
    rules = [
        f'alert tcp any any -> any any (msg:"{f}"; flags:{f}; content:"AAAA"; sid:{i};)'
        for i, f in enumerate(flags, 1)
    ]
    assert _by_rule(tmp_path, rules) == {"!P,P": [4]}


def test_rules_without_prefilter_naming_s_only_see_syn_packets(tmp_path: Path) -> None:
    """Taken from Suricata 7.0.10 on this capture: a rule without a fast pattern whose
    flags name S (other than with ``!``) sits in Suricata's SYN-only store, so *SF, *SA and
    *SR never fire on the FIN-ACKs; *AF and *PF are gated by the S/F/R mask only."""
    flags = ["*SF", "*SA", "*SR", "S+", "*AF", "*PF", "!S"]
    rules = [
        f'alert tcp any any -> any any (msg:"{f}"; flags:{f}; sid:{i};)'
        for i, f in enumerate(flags, 1)
    ]
    assert _by_rule(tmp_path, rules) == {
        "*SF": [1, 2], "*SA": [1, 2], "*SR": [1, 2], "S+": [1, 2],
        "*AF": [2, 5, 6], "*PF": [5, 6], "!S": [5, 6],
    }  # fmt: skip
