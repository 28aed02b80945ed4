"""pcre captures into flow/packet variables and the flowvar/pktvar keywords."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pcapgen import TcpSession
from test_detect_engine import _alerts, _sids

from sensor.errors import RuleError
from signatures.pcre_vars import cut_capture_names, parse_captures, record


def test_capture_names_are_cut_from_the_pcre_value() -> None:
    assert cut_capture_names("/(a)(b)/i, flow:x, pkt:y") == ("/(a)(b)/i", "flow:x, pkt:y")
    assert cut_capture_names('!"/(a)/, pkt:y"') == ('!"/(a)/"', "pkt:y")
    # no separator before "flow:": part of the expression, as in Suricata
    assert cut_capture_names("/xflow:(a)/") == ("/xflow:(a)/", "")


def test_named_groups_and_listed_names_in_group_order() -> None:
    expr = rb"(?P<flow_user_agent>\w+) (?P<pkt_x>\d) (?P<other_y>.)"
    assert parse_captures("", expr, 3) == (("flow", "user_agent"), ("pkt", "x"))
    assert parse_captures("flow:a pkt:b", rb"(\w)(\w)", 2) == (("flow", "a"), ("pkt", "b"))
    assert parse_captures("pkt:key,pkt:value", rb"(\w+)=(\w+)", 2) == (("pkt_kv", ""),)


@pytest.mark.parametrize(
    ("names", "groups", "match"),
    [("flow:a, flow:b", 1, "more pkt/flow"), ("host:a", 1, "must start"),
     ("pkt:value", 2, "without"), ("pkt:key, flow:a", 2, "followed")],
)  # fmt: skip
def test_bad_capture_lists(names: str, groups: int, match: str) -> None:
    with pytest.raises(RuleError, match=match):
        parse_captures(names, rb"(a)(b)"[: 3 * groups], groups)


def test_record_keeps_set_groups_and_key_value_pairs() -> None:
    store: dict[tuple[str, str], bytes] = {}
    m = re.search(rb"(\w+)=(\w+)|(x)", b"user=bob")
    assert m is not None
    record((("pkt_kv", ""),), m, store)
    record((("flow", "a"), ("flow", "b"), ("flow", "c")), m, store)
    assert store == {("pkt", "user"): b"bob", ("flow", "a"): b"user", ("flow", "b"): b"bob"}


def test_flowvar_value_errors() -> None:
    from signatures.pcre_vars import flowvar

    for bad in (None, "name", ',"x"', "name,"):
        with pytest.raises(RuleError, match="flowvar"):
            flowvar(bad)


def test_flow_and_packet_variables_end_to_end(tmp_path: Path) -> None:
    req = b"GET /?id=42 HTTP/1.1\r\nUser-Agent: evil-bot/1.0\r\n\r\n"
    s = TcpSession(sport=8080).handshake().send(True, req).send(False, b"HTTP/1.1 200 OK\r\n\r\n")
    rules = "\n".join([
        # readers first in the file: the evaluation order still runs the writers first
        'alert tcp any any -> any any (msg:"ua var"; flow:to_client; flowvar:ua,"evil"; sid:2;)',
        'alert tcp any any -> any any (msg:"other ua"; flowvar:ua,"good"; sid:5;)',
        'alert tcp any any -> any any (msg:"id var"; pktvar:id,"|34 32|"; sid:4;)',
        'alert tcp any any -> any any (msg:"set ua"; flow:to_server; '
        'pcre:"/User-Agent: (?P<flow_ua>[^\\r\\n]+)/"; sid:1;)',
        'alert tcp any any -> any any (msg:"set id"; content:"id="; pcre:"/^(\\d+)/R, pkt:id"; '
        "sid:3;)",
        'alert tcp any any -> any any (msg:"negated"; pcre:!"/zzz(?P<flow_neg>.)/"; sid:6;)',
    ]) + "\n"  # fmt: skip
    alerts = _alerts(tmp_path, s.frames, rules)
    by_pkt = sorted((a["pcap_cnt"], a["alert"]["signature_id"]) for a in alerts)
    assert (4, 1) in by_pkt and (4, 3) in by_pkt and (4, 4) in by_pkt
    assert (5, 2) in by_pkt
    assert 5 not in _sids(alerts)
