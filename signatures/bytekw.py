"""byte_test, byte_jump, byte_extract and byte_math: parsing and matching.

Scope: the four keywords that read a number out of the buffer (binary big/little endian,
or ASCII text in hex/dec/oct read like C's strtoull) and test it, move the cursor with it,
store it in a rule variable, or compute with it. Semantics follow Suricata 7's
DetectBytetestDoMatch / DetectBytejumpDoMatch / DetectByteExtractDoMatch / DetectByteMathDoMatch.

This module holds the shared option parsing and number extraction; ``bytesteps`` holds
the per-keyword parsers and hot-path steps.

The ``dce`` option (or ``endian dce``) takes the byte order from the inspected buffer: a
DCERPC stub from a little-endian PDU (``LittleEndianData``, see sensor/applayer/common.py)
is read little-endian, anything else big-endian, as Suricata 7 applies its
``DETECT_CI_FLAGS_DCE_LE`` buffer flag. Like Suricata, ``dce`` refuses string, big, little
and the bases.
"""

from __future__ import annotations

import re

from sensor.applayer.common import LittleEndianData
from sensor.errors import RuleError
from signatures.inspect import MatchEnv

U64 = (1 << 64) - 1
_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_BASES = {"hex": 16, "dec": 10, "oct": 8}
_STRING_MAX = {16: 16, 10: 20, 8: 22}  # digits that fit a 64-bit value per base
_C_SPACE = b" \t\n\x0b\x0c\r"


def parse_int(text: str, keyword: str, what: str) -> int:
    t = text.strip()
    try:
        return int(t, 16) if t.lower().startswith(("0x", "-0x")) else int(t, 10)
    except ValueError as exc:
        raise RuleError(f"{keyword}: invalid {what} {text!r}") from exc


def int_or_var(text: str, keyword: str, what: str, known: frozenset[str]) -> tuple[int, str | None]:
    """A number, or the name of a byte_extract/byte_math variable defined earlier."""
    t = text.strip()
    if t and (t[0].isalpha() or t[0] == "_"):
        if not _VAR.match(t):
            raise RuleError(f"{keyword}: invalid {what} {text!r}")
        if t not in known:
            raise RuleError(f"{keyword}: unknown variable {t!r} for {what}")
        return 0, t
    return parse_int(t, keyword, what), None


def strtoull(chunk: bytes, base: int) -> int | None:
    """Value of the number at the start of ``chunk`` as C's strtoull reads it; None if none."""
    parsed = read_c_number(chunk, base)
    return None if parsed is None else parsed[0]


def read_c_number(chunk: bytes, base: int) -> tuple[int, int] | None:
    """(value, bytes consumed) like strtoull: spaces, sign, 0x for hex, then digits."""
    i, n = 0, len(chunk)
    while i < n and chunk[i] in _C_SPACE:
        i += 1
    negative = False
    if i < n and chunk[i] in b"+-":
        negative = chunk[i] == 0x2D
        i += 1
    hex_prefix = base == 16 and chunk[i : i + 2].lower() == b"0x" and i + 2 < n
    if hex_prefix and chr(chunk[i + 2]) in "0123456789abcdefABCDEF":
        i += 2
    start = i
    digits = "0123456789abcdef"[:base]
    while i < n and chr(chunk[i]).lower() in digits:
        i += 1
    if i == start:
        return None
    value = int(chunk[start:i], base)
    if value > U64:
        return None  # ERANGE: Suricata reports no match
    return ((-value) & U64 if negative else value), i


class Extractor:
    """Reads ``nbytes`` at a position: binary (big/little endian) or string in a base."""

    __slots__ = ("base", "dce", "little", "mask", "nbytes", "nbytes_var", "shift", "string")

    def __init__(
        self, nbytes: int, nbytes_var: str | None, string: bool, base: int, little: bool,
        mask: int, dce: bool = False,
    ) -> None:  # fmt: skip
        self.dce = dce  # byte order from the buffer (DCERPC stub's data representation)
        self.nbytes = nbytes
        self.nbytes_var = nbytes_var
        self.string = string
        self.base = base
        self.little = little
        self.mask = mask
        self.shift = (mask & -mask).bit_length() - 1 if mask else 0

    def read(
        self, buf: bytes, start: int, relative: bool, offset: int, env: MatchEnv
    ) -> tuple[int, int] | None:
        """(value, end of the consumed bytes) or None when it does not fit or parse."""
        nbytes = self.nbytes if self.nbytes_var is None else env.vars.get(self.nbytes_var, 0)
        pos = (env.offset if relative else 0) + offset
        avail = len(buf) - pos
        if nbytes == 0:
            # byte_jump:0 reads nothing: Suricata 7 accepts it and only moves the cursor
            # (by offset and post_offset), even from the very end of the buffer.
            return (0, pos) if 0 <= pos <= len(buf) else None
        if (relative and avail <= 0) or pos < 0 or nbytes > avail or nbytes <= 0:
            return None
        if self.string:
            parsed = read_c_number(buf[pos : pos + nbytes], self.base)
            if parsed is None:
                return None
            value, consumed = parsed  # Suricata moves on by the bytes strtoull consumed
        else:
            little = self.little or (self.dce and isinstance(buf, LittleEndianData))
            value = int.from_bytes(buf[pos : pos + nbytes], "little" if little else "big")
            consumed = nbytes
        if self.mask:
            value &= self.mask
            if value and self.shift:
                value >>= self.shift
        return value, pos + consumed


class ByteOptions:
    """The options shared by the byte_* keywords, collected from comma-separated words."""

    def __init__(self, keyword: str) -> None:
        self.keyword = keyword
        self.relative = False
        self.little = False
        self.endian_set = False
        self.string = False
        self.base = 0
        self.mask = 0
        self.multiplier = 1
        self.align = 0
        self.post_offset = 0
        self.from_beginning = False
        self.from_end = False
        self.dce = False

    def apply(self, word: str, allowed: frozenset[str]) -> None:
        parts = word.split()
        name = parts[0].lower() if parts else ""
        arg = parts[1] if len(parts) > 1 else None
        if name not in allowed or (arg is not None and name not in _TAKES_ARG) or len(parts) > 2:
            raise RuleError(f"{self.keyword}: unknown option {word.strip()!r}")
        if name == "dce" or (name == "endian" and arg == "dce"):
            if self.dce:
                raise RuleError(f"{self.keyword}: dce given twice")
            self.dce = True
        elif name == "relative":
            self.relative = True
        elif name in ("big", "little"):
            self._endian(name)
        elif name == "endian":
            if arg not in ("big", "little"):
                raise RuleError(f"{self.keyword}: endian must be big, little or dce")
            self._endian(arg)
        elif name == "string":
            self.string = True
            if arg is not None:
                self._base(arg)
        elif name in _BASES:
            self._base(name)
        elif name == "bitmask":
            self.mask = _need(arg, self.keyword, name, 1, 0xFFFFFFFF)
        elif name == "multiplier":
            self.multiplier = _need(arg, self.keyword, name, 1, 65535)
        elif name == "align":
            self.align = 4 if arg is None else _need(arg, self.keyword, name, 2, 4)
            if self.align not in (2, 4):
                raise RuleError(f"{self.keyword}: align must be 2 or 4")
        elif name == "post_offset":
            self.post_offset = _need(arg, self.keyword, name, -(1 << 31), (1 << 31) - 1)
        elif name == "from_beginning":
            self.from_beginning = True
        elif name == "from_end":
            self.from_end = True

    def _endian(self, name: str) -> None:
        if self.endian_set:
            raise RuleError(f"{self.keyword}: endianness given twice")
        self.endian_set = True
        self.little = name == "little"

    def _base(self, name: str) -> None:
        if name not in _BASES or self.base:
            raise RuleError(f"{self.keyword}: string base must be given once as hex, dec or oct")
        self.base = _BASES[name]

    def finish(self, nbytes: int | None, numeric_max: int, min_bytes: int = 1) -> Extractor:
        if self.dce and (self.string or self.endian_set or self.base):
            raise RuleError(f"{self.keyword}: dce excludes string, big, little and the bases")
        if self.base and not self.string:
            raise RuleError(f"{self.keyword}: hex/dec/oct need 'string'")
        if self.string and self.endian_set:
            raise RuleError(f"{self.keyword}: 'string' and an endianness exclude each other")
        base = self.base or 10
        if nbytes is not None:
            limit = _STRING_MAX[base] if self.string else numeric_max
            if not min_bytes <= nbytes <= limit:
                kind = "string" if self.string else "binary"
                raise RuleError(
                    f"{self.keyword}: {kind} bytes must be {min_bytes}-{limit}, got {nbytes}"
                )
        return Extractor(nbytes or 0, None, self.string, base, self.little, self.mask, self.dce)


_TAKES_ARG = frozenset({"string", "bitmask", "multiplier", "align", "post_offset", "endian"})


def _need(arg: str | None, keyword: str, name: str, lo: int, hi: int) -> int:
    if arg is None:
        raise RuleError(f"{keyword}: {name} needs a value")
    value = parse_int(arg, keyword, name)
    if not lo <= value <= hi:
        raise RuleError(f"{keyword}: {name} must be {lo}-{hi}, got {value}")
    return value


def split_args(value: str | None, keyword: str, minimum: int) -> list[str]:
    parts = [p.strip() for p in (value or "").split(",")]
    if len(parts) < minimum or any(p == "" for p in parts):
        raise RuleError(f"{keyword}: expected at least {minimum} comma-separated arguments")
    return parts


def nbytes_of(text: str, keyword: str, known: frozenset[str]) -> tuple[int | None, str | None]:
    number, var = int_or_var(text, keyword, "bytes", known)
    return (None, var) if var is not None else (number, None)
