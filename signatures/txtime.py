"""Dates of the TLS certificate validity keywords (``tls_cert_notbefore:<2025``).

Scope: parse Suricata 7's value syntax - an optional ``<``/``>``, or ``DATE<>DATE`` - with
dates as ``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD``, ``YYYY-MM-DDTHH[:MM[:SS]]`` (UTC) or epoch
seconds, into a predicate on the certificate's time in epoch seconds.

``tls_cert_expired``/``tls_cert_valid`` compare with the packet's time: see txvalues.py.
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Callable
from typing import Any

from sensor.errors import RuleError

_VALUE = re.compile(r"^\s*([<>])?\s*([-:T0-9]+)\s*(?:<>\s*([-:T0-9]+))?\s*$")
_FORMATS = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H", "%Y-%m-%d", "%Y-%m", "%Y")


def date_to_epoch(keyword: str, text: str) -> int:
    for fmt in _FORMATS:
        try:
            return calendar.timegm(time.strptime(text, fmt))
        except ValueError:
            continue
    if text.isdigit():  # epoch seconds
        return int(text)
    raise RuleError(f"{keyword}: cannot parse date '{text}'")


def cert_time_test(keyword: str, text: str) -> Callable[[Any], bool]:
    m = _VALUE.match(text)
    if m is None or (m.group(1) and m.group(3)):
        raise RuleError(f"{keyword}: invalid value '{text}'")
    first = date_to_epoch(keyword, m.group(2))
    if m.group(3):
        second = date_to_epoch(keyword, m.group(3))
        return lambda v: first < v < second
    if m.group(1) == "<":
        return lambda v: v < first
    if m.group(1) == ">":
        return lambda v: v > first
    return lambda v: v == first
