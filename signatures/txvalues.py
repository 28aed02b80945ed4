"""Keywords on a transaction's numeric values: tls.version, dns.opcode, dns.rrtype.

Scope: parse the keyword into a (value name, predicate) pair checked against
``Transaction.values`` of the application layer. Signatures keep only the (keyword, value)
text (so the rule cache can pickle them); ``compile_tx_value`` builds the predicate.
"""

from __future__ import annotations

from collections.abc import Callable

from sensor.errors import RuleError
from signatures.numeric import parse_uint

TX_VALUE_KEYWORDS = {"tls.version": "tls", "dns.opcode": "dns", "dns.rrtype": "dns"}

_TLS_VERSIONS = {"ssl3": 0x0300, "3.0": 0x0300, "1.0": 0x0301, "1.1": 0x0302, "1.2": 0x0303,
                 "1.3": 0x0304, "tls1.0": 0x0301, "tls1.1": 0x0302, "tls1.2": 0x0303,
                 "tls1.3": 0x0304}  # fmt: skip


def compile_tx_value(keyword: str, value: str | None) -> tuple[str, Callable[[int], bool]]:
    """(name in Transaction.values, predicate) for one keyword; RuleError when invalid."""
    text = (value or "").strip()
    if keyword == "tls.version":
        negated = text.startswith("!")
        key = text.lstrip("!").strip().lower()
        try:
            version = _TLS_VERSIONS[key] if key in _TLS_VERSIONS else int(key, 0)
        except ValueError as exc:
            raise RuleError(f"tls.version: unknown version '{text}'") from exc
        if negated:
            return "tls.version", lambda v: v != version
        return "tls.version", lambda v: v == version
    if keyword == "dns.opcode":
        return "dns.opcode", parse_uint("dns.opcode", text, 15).test
    if keyword == "dns.rrtype":
        return "dns.rrtype", parse_uint("dns.rrtype", text, 65535).test
    raise RuleError(f"unknown transaction keyword '{keyword}'")
