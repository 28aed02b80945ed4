"""Suricata 7 rule-language details found by replaying suricata-verify rule files:
tls.cert_chain_len, the ``!=`` spelling of the integer comparisons, and the default lifetime
of xbits (30 s) and hostbits (300 s)."""

from __future__ import annotations

from pathlib import Path

import dpkt
import pytest
from pcapgen import TcpSession, alerts_of, udp
from test_applayer_tls import CERT, JA3_HELLO, ext, handshake, record, server_hello, vec8

from sensor.errors import RuleError
from signatures.flowkw import HOSTBITS_EXPIRE, XBITS_EXPIRE, parse_hostbits, parse_xbits
from signatures.numeric import parse_uint
from signatures.txvalues import compile_tx_value


def tls_with_chain(n: int) -> tuple[bytes, bytes]:
    """A client hello and a server flight whose Certificate message carries ``n`` certs."""
    chain = b"".join(len(CERT).to_bytes(3, "big") + CERT for _ in range(n))
    flight = server_hello(0x0303, 0xC02F, [ext(0xFF01, b"\x00"), ext(11, vec8(b"\x00"))])
    flight += handshake(11, len(chain).to_bytes(3, "big") + chain) + handshake(14, b"")
    return record(22, JA3_HELLO, 0x0301), record(22, flight)


def tls_frames(n: int) -> list[bytes]:
    ts, tc = tls_with_chain(n)
    return TcpSession(sport=443).handshake().send(True, ts).send(False, tc).ack(True).frames


def sids(alerts: list[dict[str, object]]) -> list[int]:
    return sorted(int(a["alert"]["signature_id"]) for a in alerts)  # type: ignore[index]


# ------------------------------------------------------------------ tls.cert_chain_len


def test_cert_chain_len_values() -> None:
    name, test = compile_tx_value("tls.cert_chain_len", "0<>4")
    assert name == "tls.cert_chain_len"
    assert [test(v) for v in (0, 1, 3, 4)] == [False, True, True, False]
    _, ne = compile_tx_value("tls.cert_chain_len", "!2")
    assert ne(3) and not ne(2)
    for bad in ("", "x", "4<>4", "-1"):
        with pytest.raises(RuleError, match=r"tls\.cert_chain_len"):
            compile_tx_value("tls.cert_chain_len", bad)


def test_cert_chain_len_counts_the_server_chain(tmp_path: Path) -> None:
    rules = [
        'alert tls any any -> any any (msg:"exact"; tls.cert_chain_len:3; sid:1;)',
        'alert tls any any -> any any (msg:"lt"; tls.cert_chain_len:<4; sid:2;)',
        'alert tls any any -> any any (msg:"gt"; tls.cert_chain_len:>0; sid:3;)',
        'alert tls any any -> any any (msg:"range"; tls.cert_chain_len:0<>4; sid:4;)',
        'alert tls any any -> any any (msg:"not"; tls.cert_chain_len:!2; sid:5;)',
        'alert tls any any -> any any (msg:"ne"; tls.cert_chain_len:!=3; sid:6;)',
        'alert tls any any -> any any (msg:"one"; tls.cert_chain_len:1; sid:7;)',
    ]
    alerts = alerts_of(tmp_path, tls_frames(3), rules)
    assert sids(alerts) == [1, 2, 3, 4, 5]
    # matched once, on the server's flight (the keyword inspects to-client only)
    assert {a["src_port"] for a in alerts} == {443}


def test_cert_chain_len_single_certificate(tmp_path: Path) -> None:
    rules = ['alert tls any any -> any any (tls.cert_chain_len:1; sid:1;)',
             'alert tls any any -> any any (tls.cert_chain_len:>1; sid:2;)']  # fmt: skip
    assert sids(alerts_of(tmp_path, tls_frames(1), rules)) == [1]


# ------------------------------------------------------------------ "!=" comparisons


def test_uint_not_equal_spellings() -> None:
    for text in ("!=5", "! 5", " != 5 ", "!5"):
        test = parse_uint("dsize", text, 65535).test
        assert test(4) and not test(5), text
    with pytest.raises(RuleError):
        parse_uint("dsize", "!==5", 65535)


def test_not_equal_in_rules(tmp_path: Path) -> None:
    frames = [udp("10.0.0.1", "10.0.0.2", 1000, 53, b"abcd"),
              udp("10.0.0.1", "10.0.0.2", 1000, 53, b"abcde")]  # fmt: skip
    rules = ['alert udp any any -> any any (dsize:!=4; sid:1;)',
             'alert udp any any -> any any (udp.hdr; content:"|03 e8|"; bsize:!=8; sid:2;)',
             'alert udp any any -> any any (ttl:!=64; sid:3;)']  # fmt: skip
    alerts = alerts_of(tmp_path, frames, rules)
    assert [(a["alert"]["signature_id"], a["pcap_cnt"]) for a in alerts] == [(1, 2)]


# ------------------------------------------------------------------ bit lifetimes


def test_default_lifetimes() -> None:
    assert parse_xbits("set,a,track ip_src").expire == XBITS_EXPIRE == 30
    assert parse_xbits("set,a,track ip_pair,expire 5").expire == 5
    op = parse_hostbits("set,a,src")
    assert op is not None and op.expire == HOSTBITS_EXPIRE == 300
    with pytest.raises(RuleError, match="xbits"):
        parse_xbits("set,a,track ip_src,expire 0")


def _timed(tmp_path: Path, gaps: list[float], rules: list[str]) -> list[int]:
    """UDP packets 10.0.0.1 -> 10.0.0.2 carrying "SET" then "CHK"..., ``gaps`` seconds apart."""
    pcap = tmp_path / "in.pcap"
    with open(pcap, "wb") as fh:
        w = dpkt.pcap.Writer(fh, linktype=dpkt.pcap.DLT_EN10MB)
        t = 1_700_000_000.0
        w.writepkt(udp("10.0.0.1", "10.0.0.2", 1000, 2000, b"SET"), ts=t)
        for gap in gaps:
            t += gap
            w.writepkt(udp("10.0.0.1", "10.0.0.2", 1001, 2000, b"CHK"), ts=t)
    rule_file = tmp_path / "t.rules"
    rule_file.write_text("\n".join(rules) + "\n")
    from sensor.config import load_config
    from sensor.pipeline import RunRequest, run

    eve = tmp_path / "eve.json"
    config, _ = load_config(None, env={}, sets=["detect.cache-dir=" + str(tmp_path / "c")])
    run(config, RunRequest(pcap=str(pcap), iface=None, rule_files=(str(rule_file),), eve=str(eve)))
    import orjson

    out = [orjson.loads(line) for line in eve.read_bytes().splitlines()]
    return [int(r["pcap_cnt"]) for r in out if r["event_type"] == "alert" and
            r["alert"]["signature_id"] == 2]  # fmt: skip


@pytest.mark.parametrize(
    ("setter", "checker", "gaps", "hits"),
    [
        # xbits: 30 s by default; the check at +29 s sees it, the one at +31 s does not
        ("xbits:set,x,track ip_src", "xbits:isset,x,track ip_src", [29, 2], [2]),
        ("xbits:set,x,track ip_pair,expire 60", "xbits:isset,x,track ip_pair", [29, 2], [2, 3]),
        # hostbits: 300 s
        ("hostbits:set,h,src", "hostbits:isset,h,src", [299, 2], [2]),
        ("hostbits:set,h,src", "hostbits:isnotset,h,src", [299, 2], [3]),
    ],
)
def test_bits_expire(tmp_path: Path, setter: str, checker: str, gaps: list[float],
                     hits: list[int]) -> None:  # fmt: skip
    rules = [f'alert udp any any -> any any (content:"SET"; {setter}; noalert; sid:1;)',
             f'alert udp any any -> any any (content:"CHK"; {checker}; sid:2;)']  # fmt: skip
    assert _timed(tmp_path, gaps, rules) == hits


def test_bsize_equal_and_not_equal_spellings() -> None:
    from signatures.payload_rules import parse_bsize

    def form(text: str) -> tuple[str, int, int]:
        step = parse_bsize(text)
        return step.mode, step.lo, step.hi

    assert form("!=10") == form("!10") == form(" != 10") == ("!=", 10, 0)
    assert form("=10") == form("10") == ("=", 10, 0)
    with pytest.raises(RuleError, match="bsize"):
        parse_bsize("!=")


def test_packet_alert_max_keeps_the_highest_priority_alerts(tmp_path: Path) -> None:
    """20 rules match one datagram: Suricata 7.0.10 (default packet-alert-max 15) logs the
    three priority-1 rules and the first twelve of the rest by rule order, checked by hand
    on this capture; a noalert rule takes no place."""
    from pcapgen import run_capture

    rules = [f'alert udp any any -> any any (msg:"r{i}"; content:"XYZ"; '
             f'{"priority:1; " if i >= 18 else ""}sid:{i};)' for i in range(1, 21)]  # fmt: skip
    rules.append('alert udp any any -> any any (content:"XYZ"; flowbits:set,a; noalert; sid:100;)')
    frames = [udp("10.0.0.1", "10.0.0.2", 1000, 2000, b"aXYZb")]
    records = run_capture(tmp_path, frames, rules)
    sids = sorted(r["alert"]["signature_id"] for r in records if r["event_type"] == "alert")
    assert sids == [*range(1, 13), 18, 19, 20]
    wider = run_capture(tmp_path, frames, rules, "packet-alert-max=20")
    assert len([r for r in wider if r["event_type"] == "alert"]) == 20
