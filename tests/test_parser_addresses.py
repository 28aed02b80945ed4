"""Address/port expressions and variables: grammar, Suricata negation semantics, errors."""

from __future__ import annotations

import ipaddress

import pytest

from sensor.errors import ConfigError, RuleError
from signatures.addresses import check_variables, parse_addresses, parse_ports
from signatures.variables import Variables

V = Variables.suricata_defaults()


def has(expr: str, addr: str, variables: Variables = V) -> bool:
    ip = ipaddress.ip_address(addr)
    return parse_addresses(expr, variables).contains(ip.version, int(ip))


def test_any_is_any_for_both_families() -> None:
    s = parse_addresses("any", V)
    assert s.is_any and has("any", "8.8.8.8") and has("any", "2001:db8::1")


@pytest.mark.parametrize(
    ("expr", "inside", "outside"),
    [
        ("1.2.3.4", ["1.2.3.4"], ["1.2.3.5", "::1"]),
        ("1.2.3.0/24", ["1.2.3.0", "1.2.3.255"], ["1.2.4.0"]),
        ("1.2.3.77/24", ["1.2.3.1"], ["1.2.4.1"]),  # host bits are masked, as Suricata does
        ("1.2.3.0/255.255.255.0", ["1.2.3.9"], ["1.2.2.255"]),
        ("1.1.1.1-1.1.1.9", ["1.1.1.1", "1.1.1.9"], ["1.1.1.10"]),
        ("2001:db8::/32", ["2001:db8::1"], ["2001:db9::1", "1.2.3.4"]),
        ("2001::1-2001::4", ["2001::3"], ["2001::5"]),
        ("[1.2.3.4, 5.6.7.8]", ["5.6.7.8"], ["1.2.3.5"]),
        ("$HOME_NET", ["10.9.8.7", "192.168.1.1", "172.31.0.1"], ["172.32.0.1", "8.8.8.8"]),
    ],
)
def test_positive_forms(expr: str, inside: list[str], outside: list[str]) -> None:
    for addr in inside:
        assert has(expr, addr), addr
    for addr in outside:
        assert not has(expr, addr), addr


def test_list_minus_nested_negated_list() -> None:
    expr = "[1.2.3.0/24,![1.2.3.4,1.2.3.5]]"
    assert has(expr, "1.2.3.3") and has(expr, "1.2.3.6")
    assert not has(expr, "1.2.3.4") and not has(expr, "1.2.3.5") and not has(expr, "1.2.4.1")


def test_only_negatives_mean_any_except_within_that_family() -> None:
    # Suricata: the "any" filled in for pure negation is per family, so no IPv6 matches.
    assert has("!1.2.3.4", "1.2.3.5") and not has("!1.2.3.4", "1.2.3.4")
    assert not has("!1.2.3.4", "2001:db8::1")
    assert has("[!1.2.3.4,!2001:db8::1]", "2001:db8::2")


def test_external_net_is_not_home_net_ipv4_only() -> None:
    assert has("$EXTERNAL_NET", "8.8.8.8") and not has("$EXTERNAL_NET", "10.0.0.1")
    assert not has("$EXTERNAL_NET", "2001:db8::1")
    assert has("$AIM_SERVERS", "8.8.8.8")


def test_double_negation_inside_negated_group() -> None:
    expr = "![1.2.3.0/24,!1.2.3.4]"  # everything except (the /24 without .4)
    assert has(expr, "1.2.3.4") and has(expr, "9.9.9.9") and not has(expr, "1.2.3.5")


def test_non_negated_variable_is_flattened_like_suricata() -> None:
    # [$EXTERNAL_NET, 8.8.8.8] = positives {8.8.8.8} minus negatives {HOME_NET}
    expr = "[$EXTERNAL_NET,8.8.8.8]"
    assert has(expr, "8.8.8.8") and not has(expr, "9.9.9.9")


def test_overrides_and_recursive_resolution() -> None:
    v = V.with_overrides(
        addresses={"HOME_NET": "[10.1.0.0/16]", "DMZ": "[$HOME_NET,2001:db8::/48]"}
    )
    assert has("$DMZ", "10.1.2.3", v) and has("$DMZ", "2001:db8::9", v)
    assert has("$EXTERNAL_NET", "10.2.0.1", v)  # EXTERNAL_NET follows the new HOME_NET
    assert V.address_groups["HOME_NET"] == "[192.168.0.0/16,10.0.0.0/8,172.16.0.0/12]"


def test_variable_names_are_case_sensitive() -> None:
    with pytest.raises(RuleError, match=r"unknown variable \$home_net"):
        parse_addresses("$home_net", V)


@pytest.mark.parametrize(
    ("expr", "reason"),
    [
        ("$FOO", "unknown variable $FOO"),
        ("[1.2.3.4", "unbalanced brackets in '[1.2.3.4': missing ']'"),
        ("1.2.3.4]", "unbalanced brackets in '1.2.3.4]': unexpected ']'"),
        ("1.2.3.4/33", "invalid CIDR prefix length '/33' in '1.2.3.4/33'"),
        ("::/129", "invalid CIDR prefix length '/129' in '::/129'"),
        ("1.2.3.256", "invalid IPv4 address '1.2.3.256' in '1.2.3.256'"),
        ("[1.2.3.4,,1.2.3.5]", "empty element in address list '[1.2.3.4,,1.2.3.5]'"),
        ("1.1.1.9-1.1.1.1", "address range '1.1.1.9-1.1.1.1' has its start after its end"),
        ("!any", "address expression '!any' negates the complete IP space"),
        (
            "[1.2.3.4,!1.2.3.4]",
            "address expression '[1.2.3.4,!1.2.3.4]' leaves no addresses after negation",
        ),
        (
            "$HTTP_PORTS",
            "unknown variable $HTTP_PORTS (it is a port variable, used here as address)",
        ),
        ("", "empty address expression"),
    ],
)
def test_address_errors(expr: str, reason: str) -> None:
    with pytest.raises(RuleError) as info:
        parse_addresses(expr, V)
    assert info.value.reason == reason


def test_variable_cycle_is_reported() -> None:
    v = V.with_overrides(addresses={"A": "[$B,1.1.1.1]", "B": "$A"})
    with pytest.raises(RuleError) as info:
        parse_addresses("$A", v)
    assert info.value.reason == "variable cycle: $A -> $B -> $A"


def test_check_variables_lists_bad_groups() -> None:
    check_variables(V)  # the stock groups are valid
    v = V.with_overrides(addresses={"HOME_NET": "any"}, ports={"BAD": "70000"})
    with pytest.raises(ConfigError, match=r"EXTERNAL_NET.*negates the complete IP space") as info:
        check_variables(v)
    assert "port variable BAD: port 70000 out of range" in str(info.value)


def test_invalid_override_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="invalid address variable name"):
        V.with_overrides(addresses={"$HOME_NET": "any"})


@pytest.mark.parametrize(
    ("expr", "inside", "outside"),
    [
        ("any", [0, 65535], []),
        ("80", [80], [81]),
        ("1024:", [1024, 65535], [1023]),
        (":1023", [0, 1023], [1024]),
        ("1:100", [1, 100], [0, 101]),
        ("[80, 443,8000:8100]", [443, 8050], [8101]),
        ("!80", [79, 81], [80]),
        ("[1:100,!50]", [49, 51], [50]),
        ("![80,443]", [81], [80, 443]),
        ("[1000:2000,![1500:1600,!1550]]", [1550, 1000], [1500, 1600]),
        ("$HTTP_PORTS", [80], [8080]),
        ("$FILE_DATA_PORTS", [80, 110, 143], [25]),
        ("$SHELLCODE_PORTS", [81], [80]),
    ],
)
def test_ports(expr: str, inside: list[int], outside: list[int]) -> None:
    s = parse_ports(expr, V)
    assert s.is_any == (expr == "any")
    for port in inside:
        assert s.contains(port), port
    for port in outside:
        assert not s.contains(port), port


@pytest.mark.parametrize(
    ("expr", "reason"),
    [
        ("70000", "port 70000 out of range 0-65535 in '70000'"),
        ("5:1", "port range '5:1' has its start after its end"),
        ("1:!5", "negated value inside a port range in '1:!5'"),
        ("!any", "port expression '!any' negates the complete port space"),
        ("[80,!80]", "port expression '[80,!80]' leaves no ports after negation"),
        ("http", "invalid port 'http' in 'http'"),
        ("[80", "unbalanced brackets in '[80': missing ']'"),
        ("$NOPE", "unknown variable $NOPE"),
    ],
)
def test_port_errors(expr: str, reason: str) -> None:
    with pytest.raises(RuleError) as info:
        parse_ports(expr, V)
    assert info.value.reason == reason


def test_compiled_sets_are_cached_per_variables() -> None:
    v = Variables.suricata_defaults()
    assert parse_addresses("$HOME_NET", v) is parse_addresses("$HOME_NET", v)
