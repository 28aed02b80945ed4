"""ssl_version and tls_cert_notbefore/notafter value syntax (Suricata 7)."""

from __future__ import annotations

import pytest

from sensor.errors import RuleError
from signatures.txvalues import compile_tx_value


def test_ssl_version_list_and_negation() -> None:
    name, test = compile_tx_value("ssl_version", "sslv3,tls1.0")
    assert name == "tls.version"
    assert test(0x0300) and test(0x0301) and not test(0x0303)
    _, only_negated = compile_tx_value("ssl_version", "!tls1.2")
    # Suricata 7: a negated version only removes itself; it never matches alone
    assert not only_negated(0x0303) and not only_negated(0x0301)
    _, tls13 = compile_tx_value("ssl_version", "tls1.3")
    assert tls13(0x0304) and tls13(0x7F1C)  # draft versions count as TLS 1.3
    with pytest.raises(RuleError):
        compile_tx_value("ssl_version", "tls9")


@pytest.mark.parametrize(
    ("value", "epoch", "expected"),
    [
        (">2015", 1704067200, True),
        ("<2015", 1704067200, False),
        ("2024-01-01", 1704067200, True),
        ("2024-01-01T00:00:01", 1704067200, False),
        ("2023-12<>2024-02", 1704067200, True),
        ("2024-02<>2025", 1704067200, False),
        ("<1704067201", 1704067200, True),
    ],
)
def test_cert_dates(value: str, epoch: int, expected: bool) -> None:
    name, test = compile_tx_value("tls_cert_notbefore", value)
    assert name == "tls.cert_notbefore"
    assert test(epoch) is expected


@pytest.mark.parametrize("value", ["", "yesterday", "<2015<>2016", "2015-13-01"])
def test_bad_cert_dates(value: str) -> None:
    with pytest.raises(RuleError):
        compile_tx_value("tls_cert_notafter", value)
