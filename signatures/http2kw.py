"""The HTTP/2 frame keywords of Suricata 7: http2.frametype, http2.errorcode,
http2.priority, http2.window, http2.size_update, http2.settings.

Scope: parse a keyword's value into a predicate over the frames one direction of an HTTP/2
transaction carried (``sensor.applayer.http2_tx.Frame`` records; the detection engine hands
the list of the packet's direction). As Suricata, a keyword matches when any frame matches:
``frametype`` by type (name, any case, or number), ``errorcode`` on RST_STREAM and GOAWAY
codes, ``priority`` on PRIORITY frames and prioritised HEADERS (weight), ``window`` on
WINDOW_UPDATE increments, ``size_update`` on HPACK dynamic table size updates,
``settings:NAME[op value]`` on SETTINGS entries. Numbers use the usual unsigned operators
(``5``, ``>5``, ``<=5``, ``1-9`` ...).

Non-goals: ``http2.header``/``http2.header_name`` (sticky buffers, see signatures/buffers.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sensor.applayer.http2_tx import ERROR_CODES, FRAME_TYPES, SETTINGS_IDS, Frame
from sensor.errors import RuleError
from signatures.numeric import parse_uint

HTTP2_KEYWORDS = frozenset({"http2.frametype", "http2.errorcode", "http2.priority",
                            "http2.window", "http2.size_update", "http2.settings"})  # fmt: skip
_SETTINGS_RE = re.compile(r"\s*([A-Za-z_0-9]+)\s*(.*?)\s*$")


def _named(keyword: str, text: str, names: dict[str, int]) -> int:
    key = text.strip().strip('"').strip()
    if key.upper() in names:
        return names[key.upper()]
    if key.isdigit():
        return int(key)
    raise RuleError(f"{keyword}: unknown value '{text}'")


def _values(frames: list[Frame], pick: Callable[[Frame], list[int]]) -> list[int]:
    return [v for f in frames for v in pick(f)]


def compile_http2(keyword: str, text: str) -> Callable[[Any], bool]:
    """Predicate over a list of frames; RuleError when the value is invalid."""
    if keyword == "http2.frametype":
        ftype = _named(keyword, text, FRAME_TYPES)
        return lambda frames: any(f.ftype == ftype for f in frames)
    if keyword == "http2.errorcode":
        code = _named(keyword, text, ERROR_CODES)
        return lambda frames: any(f.error_code == code for f in frames)
    if keyword == "http2.settings":
        m = _SETTINGS_RE.match(text)
        if not m:
            raise RuleError(f"http2.settings: invalid value '{text}'")
        ident = _named(keyword, m.group(1), SETTINGS_IDS)
        rest = m.group(2)
        test = parse_uint(keyword, rest, 2**32 - 1).test if rest else None
        return lambda frames: any(
            i == ident and (test is None or test(v)) for f in frames for i, v in f.settings
        )
    picks: dict[str, tuple[int, Callable[[Frame], list[int]]]] = {
        "http2.priority": (255, lambda f: [f.weight] if f.weight is not None else []),
        "http2.window": (2**31 - 1, lambda f: [f.window] if f.window is not None else []),
        "http2.size_update": (2**64 - 1, lambda f: list(f.size_updates)),
    }
    if keyword not in picks:
        raise RuleError(f"unknown keyword '{keyword}'")
    limit, pick = picks[keyword]
    number = parse_uint(keyword, text, limit).test
    return lambda frames: any(number(v) for v in _values(frames, pick))
