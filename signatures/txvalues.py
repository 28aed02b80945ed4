"""Keywords on a transaction's values: tls.version, dns.opcode, dns.rrtype, and the file
keywords filename, fileext, filesize (on the HTTP response's file).

Scope: parse the keyword into a (value name, predicate) pair checked against
``Transaction.values`` of the application layer. Signatures keep only the (keyword, value)
text (so the rule cache can pickle them); ``compile_tx_value`` builds the predicate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sensor.errors import RuleError
from signatures.numeric import parse_uint

TX_VALUE_KEYWORDS = {"tls.version": "tls", "dns.opcode": "dns", "dns.rrtype": "dns",
                     "filename": "http", "fileext": "http", "filesize": "http"}  # fmt: skip
# names of the values they read: numbers in Transaction.values, file.name a buffer
NUMERIC_VALUES = frozenset({"tls.version", "dns.opcode", "dns.rrtype", "file.size"})
VALUE_OF = {"filename": "file.name", "fileext": "file.name", "filesize": "file.size"}

_TLS_VERSIONS = {"ssl3": 0x0300, "3.0": 0x0300, "1.0": 0x0301, "1.1": 0x0302, "1.2": 0x0303,
                 "1.3": 0x0304, "tls1.0": 0x0301, "tls1.1": 0x0302, "tls1.2": 0x0303,
                 "tls1.3": 0x0304}  # fmt: skip


def compile_tx_value(keyword: str, value: str | None) -> tuple[str, Callable[[Any], bool]]:
    """(name of the value read, predicate) for one keyword; RuleError when invalid."""
    text = (value or "").strip()
    if keyword in ("filename", "fileext"):
        return "file.name", _file_name_test(keyword, text)
    if keyword == "filesize":
        return "file.size", parse_uint("filesize", text, 2**63).test
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


def _file_name_test(keyword: str, text: str) -> Callable[[Any], bool]:
    """filename: the name contains the string; fileext: the extension is the string; both
    case-insensitive, ``!`` negates (Suricata 7's legacy file keywords)."""
    negated = text.startswith("!")
    text = text.lstrip("!").strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    if not text:
        raise RuleError(f"{keyword}: needs a name")
    needle = text.encode("utf-8", "surrogateescape").lower()
    if keyword == "fileext":

        def test(name: Any) -> bool:
            _stem, dot, ext = bytes(name).lower().rpartition(b".")
            return (dot == b"." and ext == needle) != negated

        return test
    return lambda name: (needle in bytes(name).lower()) != negated
