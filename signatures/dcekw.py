"""The DCERPC value keywords: ``dcerpc.iface``/``dce_iface`` and ``dcerpc.opnum``/``dce_opnum``.

Scope: parse the keyword values as Suricata 7 does (rust/src/dcerpc/detect.rs) into
predicates on what the application layer records for a DCERPC call (over TCP or an SMB
pipe): ``dce.iface`` is the tuple of accepted interfaces the request may use (see
sensor/applayer/dcerpc.py), ``dce.opnum`` the request's operation number. Neither is
present on a transaction without a request, so both keywords only match calls.

* ``dce_iface:<uuid>[,<version test>][,any_frag]``: the UUID (any form Python's ``uuid``
  reads, compared case-insensitively), the interface's major version against ``N``, ``<N``,
  ``>N``, ``=N``, ``!N`` (Suricata's u16 comparison), and ``any_frag``, which also accepts
  interfaces bound by a PDU without the first-fragment flag.
* ``dce_opnum:<n>[,<n>|<a>-<b>...]``: any listed number or inclusive range.

Non-goals: ``dce_stub_data`` (a sticky buffer, see signatures/buffers.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from sensor.errors import RuleError
from signatures.numeric import parse_uint

DCE_KEYWORDS = {"dce_iface": "dce.iface", "dcerpc.iface": "dce.iface",
                "dce_opnum": "dce.opnum", "dcerpc.opnum": "dce.opnum"}  # fmt: skip
_MAX_OPNUM = 0xFFFFFFFF  # Suricata parses opnum bounds as u32


def compile_dce(keyword: str, value: str | None) -> tuple[str, Callable[[Any], bool]]:
    """(name of the value read, predicate) for a DCERPC keyword; RuleError when invalid."""
    if DCE_KEYWORDS.get(keyword) == "dce.iface":
        return "dce.iface", _iface_test(keyword, value or "")
    if DCE_KEYWORDS.get(keyword) == "dce.opnum":
        return "dce.opnum", _opnum_test(keyword, value or "")
    raise RuleError(f"unknown DCERPC keyword '{keyword}'")


def _iface_test(keyword: str, text: str) -> Callable[[Any], bool]:
    parts = [p.strip() for p in text.split(",")]
    if not 1 <= len(parts) <= 3:
        raise RuleError(f"{keyword}: expected <uuid>[,<version>][,any_frag]")
    try:
        wanted = uuid.UUID(parts[0]).bytes
    except ValueError as exc:
        raise RuleError(f"{keyword}: invalid UUID '{parts[0]}'") from exc
    any_frag = parts[-1] == "any_frag" and len(parts) > 1
    versions = parts[1:-1] if any_frag else parts[1:]
    if len(versions) > 1 or (len(parts) == 3 and not any_frag):
        raise RuleError(f"{keyword}: the third field can only be any_frag")
    version: Callable[[int], bool] | None = None
    if versions:
        text_v = versions[0]
        if text_v in ("<0", ">=0", ">65535") or "-" in text_v or "<>" in text_v:
            raise RuleError(f"{keyword}: invalid version '{text_v}'")  # Suricata refuses these
        version = parse_uint(keyword, text_v, 0xFFFF).test

    def test(ifaces: Any) -> bool:
        for iface in ifaces:
            if not any_frag and not iface.first_frag:
                continue
            if iface.uuid == wanted and (version is None or version(iface.version)):
                return True
        return False

    return test


def _opnum_test(keyword: str, text: str) -> Callable[[Any], bool]:
    ranges: list[tuple[int, int]] = []
    for item in text.split(","):
        bounds = [b.strip() for b in item.split("-")]
        if len(bounds) > 2 or not all(b.isdigit() for b in bounds):
            raise RuleError(f"{keyword}: invalid opnum '{item.strip()}'")
        lo, hi = int(bounds[0]), int(bounds[-1])
        if hi < lo or hi > _MAX_OPNUM:
            raise RuleError(f"{keyword}: invalid opnum range '{item.strip()}'")
        ranges.append((lo, hi))
    if not ranges:
        raise RuleError(f"{keyword}: needs a value")
    bounds_t = tuple(ranges)
    return lambda opnum: any(lo <= opnum <= hi for lo, hi in bounds_t)
