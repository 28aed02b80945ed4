"""The ``asn1`` payload keyword: a small BER walker with Suricata 7's three checks.

Scope, as Suricata 7 (``rust/src/asn1``): options ``bitstring_overflow``,
``double_overflow``, ``oversize_length <u32>``, ``absolute_offset <u16>``,
``relative_offset <-65535..65535>`` (from the cursor), separated by commas or spaces.
From the offset, BER objects are decoded one after another until one does not decode
(the ones before it are still checked); more than 30 top-level objects with data left, or
an offset at or past the buffer end, is no match. Each object and its children (depth 30) are checked:

* ``oversize_length N`` — a definite length above N;
* ``bitstring_overflow`` — a primitive universal BIT STRING whose unused-bits byte is larger
  than its length in bits;
* ``double_overflow`` — a primitive universal REAL longer than 256 bytes in decimal
  (ASCII) encoding (first content byte with the top two bits clear).

The keyword matches when any check holds; it does not move the cursor and, as in
Suricata, a failing asn1 does not make an earlier content retry.

Non-goals: validating the content of every universal type (Suricata's der-parser refuses
e.g. a BOOLEAN of two bytes; here only the structure - tags, lengths, nesting - is decoded).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sensor.errors import RuleError
from signatures.inspect import NO_MATCH, MatchEnv, Step, run_next

MAX_FRAMES = 30  # Suricata's asn1-max-frames default: top-level objects and nesting depth
_OPTION = re.compile(
    r"\s*(?:(bitstring_overflow)|(double_overflow)|oversize_length\s+(\d+)|"
    r"absolute_offset\s+(\d+)|relative_offset\s+(-?\d+))(?:\s+|\s*,|$)"
)


@dataclass(frozen=True, slots=True)
class Asn1Options:
    bitstring_overflow: bool = False
    double_overflow: bool = False
    oversize_length: int | None = None
    absolute_offset: int | None = None
    relative_offset: int | None = None


def parse_asn1(value: str | None) -> Asn1Options:
    text = value or ""
    if not text.strip():
        raise RuleError("asn1: needs at least one option")
    opts: dict[str, object] = {}
    pos = 0
    while pos < len(text):
        m = _OPTION.match(text, pos)
        if m is None or m.end() == pos:
            raise RuleError(f"asn1: invalid option at {text[pos:]!r}")
        bits, double, oversize, absolute, relative = m.groups()
        if bits:
            opts["bitstring_overflow"] = True
        elif double:
            opts["double_overflow"] = True
        elif oversize is not None:
            opts["oversize_length"] = _bounded("oversize_length", oversize, 0, 0xFFFFFFFF)
        elif absolute is not None:
            opts["absolute_offset"] = _bounded("absolute_offset", absolute, 0, 0xFFFF)
        else:
            opts["relative_offset"] = _bounded("relative_offset", relative, -0xFFFF, 0xFFFF)
        pos = m.end()
    return Asn1Options(**opts)  # type: ignore[arg-type]


def _bounded(name: str, text: str, lo: int, hi: int) -> int:
    n = int(text)
    if not lo <= n <= hi:
        raise RuleError(f"asn1: {name} {n} out of range {lo}..{hi}")
    return n


class _Bad(Exception):
    """The bytes do not decode as a BER object."""


def _object(buf: bytes, pos: int, end: int, depth: int, opts: Asn1Options,
            hits: list[bool]) -> int:  # fmt: skip
    """Decode one object at ``pos`` (children included); returns its end."""
    if depth > MAX_FRAMES:
        raise _Bad
    if pos + 2 > end:
        raise _Bad
    ident = buf[pos]
    constructed = bool(ident & 0x20)
    universal = ident & 0xC0 == 0
    tag = ident & 0x1F
    pos += 1
    if tag == 0x1F:  # high tag number form
        tag = 0
        while True:
            if pos >= end:
                raise _Bad
            b = buf[pos]
            pos += 1
            tag = (tag << 7) | (b & 0x7F)
            if not b & 0x80:
                break
    if pos >= end:
        raise _Bad
    first = buf[pos]
    pos += 1
    length: int | None
    if first < 0x80:
        length = first
    elif first == 0x80:
        if not constructed:
            raise _Bad  # indefinite length only for constructed encodings
        length = None
    else:
        n = first & 0x7F
        if n == 0x7F or pos + n > end:
            raise _Bad
        length = int.from_bytes(buf[pos : pos + n], "big")
        pos += n
    if length is None:  # children up to the end-of-contents marker
        while True:
            if pos + 2 <= end and buf[pos] == 0 and buf[pos + 1] == 0:
                return pos + 2
            pos = _object(buf, pos, end, depth + 1, opts, hits)
    stop = pos + length
    if stop > end:
        raise _Bad
    content = buf[pos:stop]
    if opts.oversize_length is not None and length > opts.oversize_length:
        hits.append(True)
    if universal and not constructed:
        if tag == 3 and opts.bitstring_overflow:
            if not content:
                raise _Bad
            if length > 0 and content[0] > length * 8:
                hits.append(True)
        real = tag == 9 and opts.double_overflow and content and content[0] & 0xC0 == 0
        if real and length > 256:
            hits.append(True)
    if constructed:
        while pos < stop:
            pos = _object(buf, pos, stop, depth + 1, opts, hits)
    return stop


def asn1_matches(buf: bytes, cursor: int, opts: Asn1Options) -> bool:
    if opts.absolute_offset is not None:
        offset = opts.absolute_offset
    elif opts.relative_offset is not None:
        offset = cursor + opts.relative_offset
        if not 0 <= offset <= 0xFFFF:
            return False
    else:
        offset = 0
    end = len(buf) & 0xFFFF  # Suricata hands the decoder a 16-bit length
    if offset >= end:
        return False
    # Suricata decodes every object first (stopping at the first that does not decode),
    # then checks them: too many objects is no match even after a hit.
    pos, objects, matched = offset, 0, False
    while pos < end:
        if objects >= MAX_FRAMES:
            return False
        hits: list[bool] = []
        try:
            pos = _object(buf, pos, end, 1, opts, hits)
        except _Bad:
            break
        matched |= bool(hits)
        objects += 1
    return matched


class Asn1Step:
    """One ``asn1`` keyword in a buffer's chain."""

    __slots__ = ("opts",)

    def __init__(self, opts: Asn1Options) -> None:
        self.opts = opts

    def run(self, steps: tuple[Step, ...], i: int, buf: bytes, env: MatchEnv) -> int:
        if not asn1_matches(buf, env.offset, self.opts):
            return NO_MATCH
        return run_next(steps, i, buf, env)
