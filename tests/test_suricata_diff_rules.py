"""Rule-loading behaviours found by differential testing against Suricata 7.0.10.

Each refused rule here is one Suricata 7.0.10 refuses ("error parsing signature", checked
with ``suricata -T``); the loaded ones it loads. sekimori must agree,
or it would alert where Suricata cannot.
"""

from __future__ import annotations

import pytest

from sensor.errors import RuleError
from sensor.pipeline import SENSOR_BUFFERS
from signatures.build import SignatureBuilder
from signatures.classification import Classifications
from signatures.parser import parse_rule
from signatures.variables import Variables


def _build(rule: str) -> object:
    builder = SignatureBuilder(Classifications.load(None), SENSOR_BUFFERS)
    return builder.build(parse_rule(rule, Variables.suricata_defaults()))


@pytest.mark.parametrize(
    "rule",
    [
        'alert dns any any -> any any (content:"www"; dns_query; sid:1;)',  # sticky, unused
        'alert http any any -> any any (http.uri; pkt_data; content:"x"; sid:1;)',
        "alert dns any any -> any any (dns.opcode:>2; sid:1;)",  # only [!]<number>
        'alert dns any any -> any any (flow:to_client; dns.query; content:"www"; sid:1;)',
    ],
)
def test_refused_like_suricata(rule: str) -> None:
    with pytest.raises(RuleError):
        _build(rule)


@pytest.mark.parametrize(
    "body",
    ['http.uri; content:"/"; to_lowercase;', "dns.opcode:!0;", 'dns.query; content:"a";'],
)
def test_loaded_like_suricata(body: str) -> None:
    proto = "http" if "http" in body else "dns"
    _build(f"alert {proto} any any -> any any ({body} sid:1;)")
