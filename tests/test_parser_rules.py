"""parse_rule: header fields, option splitting and quoting, identity, error reasons."""

from __future__ import annotations

import pytest

from sensor.errors import RuleError
from signatures.parser import RuleOption, parse_rule
from signatures.variables import Variables

V = Variables.suricata_defaults()


def test_full_rule_fields() -> None:
    text = (
        "alert HTTP $HOME_NET any -> [1.2.3.4, 5.6.7.0/24] $HTTP_PORTS "
        '(msg:"ET test \\"quoted\\""; flow:established,to_server; http.uri; '
        'content:"/a|3b|b"; NOCASE; sid:2000001; rev:3; gid:1;)'
    )
    r = parse_rule(text, V, "x.rules", 7)
    assert (r.action, r.proto, r.direction) == ("alert", "http", "->")
    assert (r.src_text, r.sport_text, r.dst_text, r.dport_text) == (
        "$HOME_NET",
        "any",
        "[1.2.3.4, 5.6.7.0/24]",
        "$HTTP_PORTS",
    )
    assert r.sport.is_any and r.dport.contains(80) and not r.dport.contains(81)
    assert r.dst.contains(4, 0x05060709) and not r.src.contains(4, 0x08080808)
    assert (r.sid, r.gid, r.rev, r.file, r.line, r.enabled) == (2000001, 1, 3, "x.rules", 7, True)
    assert r.options == (
        RuleOption("msg", 'ET test \\"quoted\\"', True),
        RuleOption("flow", "established,to_server", False),
        RuleOption("http.uri", None, False),
        RuleOption("content", "/a|3b|b", True),
        RuleOption("nocase", None, False),
        RuleOption("sid", "2000001", False),
        RuleOption("rev", "3", False),
        RuleOption("gid", "1", False),
    )
    assert r.raw == text and r.option("content") == RuleOption("content", "/a|3b|b", True)


def test_options_split_like_suricata() -> None:
    r = parse_rule(
        'alert tcp any any <> any any (content:!"a\\;b"; pcre:"/^["\']?post/Ri";'
        '  msg :  "spaced"  ; byte_test:1,>,2,0; empty:; sid:1;)',
        V,
    )
    assert r.direction == "<>"
    assert r.options[:5] == (
        RuleOption("content", '!"a\\;b"', False),  # negated: kept verbatim
        RuleOption("pcre", "/^[\"']?post/Ri", True),  # inner quote needs no escape
        RuleOption("msg", "spaced", True),
        RuleOption("byte_test", "1,>,2,0", False),
        RuleOption("empty", "", False),
    )


def test_escaped_final_quote_is_not_a_closing_quote() -> None:
    r = parse_rule('alert tcp any any -> any any (content:"ab\\"; sid:1;)', V)
    assert r.options[0] == RuleOption("content", '"ab\\"', False)


def test_every_action_and_proto_case() -> None:
    for action in ("alert", "pass", "drop", "reject", "rejectsrc", "rejectdst", "rejectboth"):
        r = parse_rule(f"{action.upper()} tcp-pkt any any -> any any (sid:1;)", V)
        assert r.action == action and r.proto == "tcp-pkt"


@pytest.mark.parametrize(
    ("text", "reason", "category"),
    [
        ("", "empty rule", "invalid header"),
        ("alert tcp any any -> any any", "rule has no option section '( ... )'", "invalid header"),
        ("alert tcp any any -> any any (sid:1;) x", "rule does not end with ')'", "invalid header"),
        (
            "alert tcp any -> any any (sid:1;)",
            "rule header needs 7 fields (action proto src sport direction dst dport), got 6: "
            "'alert tcp any -> any any'",
            "invalid header",
        ),
        ("log tcp any any -> any any (sid:1;)", "unknown action 'log'", "invalid header"),
        ("alert t@p any any -> any any (sid:1;)", "invalid protocol 't@p'", "invalid header"),
        (
            "alert tcp any any => any any (sid:1;)",
            "transactional direction '=>' is a Suricata 8 feature; use '->' or '<>'",
            "invalid header",
        ),
        (
            "alert tcp any any <- any any (sid:1;)",
            "direction '<-' is not valid; swap source and destination and use '->'",
            "invalid header",
        ),
        (
            "alert tcp any any >> any any (sid:1;)",
            "invalid direction '>>' (expected '->' or '<>')",
            "invalid header",
        ),
        (
            "alert tcp $NOPE any -> any any (sid:1;)",
            "source address: unknown variable $NOPE",
            "unknown variable",
        ),
        (
            "alert tcp any 99999 -> any any (sid:1;)",
            "source port: port 99999 out of range 0-65535 in '99999'",
            "invalid port",
        ),
        (
            "alert tcp any any -> 1.2.3.4/40 any (sid:1;)",
            "destination address: invalid CIDR prefix length '/40' in '1.2.3.4/40'",
            "invalid address",
        ),
        (
            "alert tcp any any -> any [80 (sid:1;)",
            "destination port: unbalanced brackets in '[80': missing ']'",
            "invalid port",
        ),
        (
            'alert tcp any any -> any any (msg:"x"; sid:1)',
            "option 'sid' is not terminated by ';'",
            "invalid options",
        ),
        (
            'alert tcp any any -> any any (msg:"x";; sid:1;)',
            "empty option (a stray ';' or ':')",
            "invalid options",
        ),
        (
            "alert tcp any any -> any any (bad*name; sid:1;)",
            "invalid option name 'bad*name'",
            "invalid options",
        ),
        ('alert tcp any any -> any any (msg:"x";)', "rule has no sid", "invalid options"),
        ("alert tcp any any -> any any (sid:0;)", "sid must not be 0", "invalid options"),
        (
            "alert tcp any any -> any any (sid:abc;)",
            "sid must be an unsigned 32-bit integer, got 'abc'",
            "invalid options",
        ),
        (
            "alert tcp any any -> any any (sid:1; sid:2;)",
            "option 'sid' given more than once",
            "invalid options",
        ),
    ],
)
def test_error_reasons(text: str, reason: str, category: str) -> None:
    with pytest.raises(RuleError) as info:
        parse_rule(text, V)
    assert info.value.reason == reason
    assert info.value.category == category
    assert info.value.file is None  # the loader adds where


def test_header_lists_with_spaces_and_negation() -> None:
    r = parse_rule("alert udp ![10.0.0.0/8, 192.168.0.0/16] any -> any ![53, 5353] (sid:9;)", V)
    assert r.src_text == "![10.0.0.0/8, 192.168.0.0/16]" and r.dport_text == "![53, 5353]"
    assert r.src.contains(4, 0x08080808) and not r.src.contains(4, 0x0A000001)
    assert r.dport.contains(54) and not r.dport.contains(5353)
